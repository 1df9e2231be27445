"""The five scale-end taps L1..L5 of a ResNet, for saliency and for masking.

L1 is the stem ReLU, L2..L5 the ends of layer1..layer4 (after the ReLU that closes the last block).
Truncated-normal statistics need the tensor *before* that ReLU, so every tap can also return its
pre-activation. Works on any torchvision-style ResNet (``conv1, bn1, relu, maxpool, layer1..4,
avgpool, fc``), including a plain ``torchvision.models.resnet50()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

TAPS: tuple[str, ...] = ("L1", "L2", "L3", "L4", "L5")


def check_tap(tap: str) -> int:
    """Index of ``tap`` in :data:`TAPS`, or a ValueError that names the valid taps."""
    if tap not in TAPS:
        raise ValueError(f"unknown tap {tap!r}: expected one of {', '.join(TAPS)}")
    return TAPS.index(tap)


@dataclass
class TapActivation:
    """A tap's activation after its ReLU (``post``) and before it (``pre``), both [B, C, h, w]."""

    post: Tensor
    pre: Tensor | None = None


def _block_pre_relu(block: nn.Module, x: Tensor) -> Tensor:
    """Run a BasicBlock or Bottleneck up to, not including, its final ReLU."""
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    if hasattr(block, "conv3"):  # Bottleneck
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    else:  # BasicBlock
        out = block.bn2(block.conv2(out))
    return out + identity


class TappedResNet(nn.Module):
    """A ResNet seen as five stages that end at the taps, plus a classification head.

    ``forward`` is the plain network. ``forward_to``/``forward_from`` split it at a tap so the layer
    protocol can mask the tap's activation; ``taps`` returns every tap in one forward pass.
    """

    def __init__(self, net: nn.Module, name: str = "resnet"):
        super().__init__()
        for attr in (
            "conv1",
            "bn1",
            "relu",
            "maxpool",
            "layer1",
            "layer2",
            "layer3",
            "layer4",
            "fc",
        ):
            if not hasattr(net, attr):
                raise TypeError(
                    f"{type(net).__name__} is not a torchvision-style ResNet: no {attr!r}"
                )
        self.net = net
        self.name = name

    @property
    def num_classes(self) -> int:
        return self.net.fc.out_features

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    # -- stages ---------------------------------------------------------------------------------
    def _stage(self, index: int, x: Tensor, pre_relu: bool) -> tuple[Tensor, Tensor | None]:
        net = self.net
        if index == 0:
            pre = net.bn1(net.conv1(x))
            if not pre_relu:
                return net.relu(pre), None
            return torch.relu(pre), pre  # not net.relu: it is in-place and would overwrite ``pre``
        if index == 1:
            x = net.maxpool(x)
        layer = getattr(net, f"layer{index}")
        if not pre_relu:
            return layer(x), None
        blocks = list(layer.children())
        for block in blocks[:-1]:
            x = block(x)
        pre = _block_pre_relu(blocks[-1], x)
        return torch.relu(pre), pre

    def stage_modules(self, index: int) -> list[nn.Module]:
        """Modules whose parameters belong to stage ``index`` (0 = stem .. 4 = layer4)."""
        net = self.net
        return [net.conv1, net.bn1] if index == 0 else [getattr(net, f"layer{index}")]

    def head(self, x: Tensor) -> Tensor:
        net = self.net
        return net.fc(torch.flatten(net.avgpool(x), 1))

    def forward_to(self, x: Tensor, tap: str, pre_relu: bool = False) -> TapActivation:
        """Activation at ``tap`` (and its pre-ReLU tensor when asked)."""
        last = check_tap(tap)
        pre = None
        for index in range(last + 1):
            x, pre = self._stage(index, x, pre_relu and index == last)
        return TapActivation(x, pre)

    def prefix_sequential(self, tap: str) -> nn.Sequential:
        """The network up to ``tap``'s post-ReLU activation as one Sequential of its own modules
        (shared, not copied): what :meth:`forward_to` computes without ``pre_relu``."""
        net = self.net
        modules = [net.conv1, net.bn1, net.relu]
        last = check_tap(tap)
        if last >= 1:
            modules.append(net.maxpool)
        modules += [getattr(net, f"layer{index}") for index in range(1, last + 1)]
        return nn.Sequential(*modules)

    def forward_from(self, h: Tensor, tap: str) -> Tensor:
        """Logits from an activation at ``tap`` (the rest of the network after it)."""
        first = check_tap(tap) + 1
        for index in range(first, len(TAPS)):
            h, _ = self._stage(index, h, False)
        return self.head(h)

    def forward_taps(
        self, x: Tensor, pre_relu: bool = False
    ) -> tuple[dict[str, TapActivation], Tensor]:
        """Every tap's activation and the logits, in one forward pass."""
        taps = {}
        for index, tap in enumerate(TAPS):
            x, pre = self._stage(index, x, pre_relu)
            taps[tap] = TapActivation(x, pre)
        return taps, self.head(x)

    # -- freezing -------------------------------------------------------------------------------
    def prefix_parameters(self, tap: str) -> Iterator[nn.Parameter]:
        """Parameters of every stage up to and including ``tap``."""
        for index in range(check_tap(tap) + 1):
            for module in self.stage_modules(index):
                yield from module.parameters()

    def freeze_prefix(self, tap: str) -> list[nn.Parameter]:
        """Freeze everything up to ``tap``; return the parameters that stay trainable."""
        frozen = {id(p) for p in self.prefix_parameters(tap)}
        trainable = []
        for p in self.parameters():
            p.requires_grad_(id(p) not in frozen)
            if id(p) not in frozen:
                trainable.append(p)
        return trainable

    def prefix_modules(self, tap: str) -> list[nn.Module]:
        """Modules up to ``tap``; the layer protocol keeps them in eval mode (frozen BN stats)."""
        return [m for index in range(check_tap(tap) + 1) for m in self.stage_modules(index)]
