"""How much a removal mask alone says about the class: a small CNN trained on the binary mask
(no pixel of the image) and its held-out accuracy with a Wilson interval.

If the mask alone predicts the class, a model retrained on masked images can read the class from
the holes, and ROAR / KAR then measure the mask's shape, not the evidence it removed (the leak
Hooker et al. and Rong et al. warn of). Seeded and deterministic on one machine: the weights are
initialised from ``seed`` and the batches drawn from a generator seeded from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["LeakSettings", "MaskNet", "mask_accuracy", "wilson_interval"]


@dataclass(frozen=True)
class LeakSettings:
    """The mask classifier's recipe (``leak.<key>`` on the command line) and the health margin."""

    epochs: int = 5
    batch_size: int = 128
    lr: float = 3e-3
    margin: float = 10.0  # points above chance that make a health warning
    train_size: int | None = None  # at most this many train masks (None: every one)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or self.margin < 0:
            raise ValueError(
                f"leak: need epochs >= 1, batch_size >= 1, lr > 0, margin >= 0; got {self}"
            )
        if self.train_size is not None and self.train_size < 1:
            raise ValueError(f"leak.train_size={self.train_size}: expected null or >= 1")


class MaskNet(nn.Module):
    """Two 3x3 conv layers on the 1-channel mask, pooled to 4 x 4 (where the holes are), then a
    linear classifier."""

    def __init__(self, num_classes: int, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Linear(2 * width * 16, num_classes)

    def forward(self, masks: Tensor) -> Tensor:
        return self.head(self.features(masks).flatten(1))


def _inputs(masks: Tensor) -> Tensor:
    """Bool masks [N, H, W] -> float [N, 1, H, W] in {-1, 1}."""
    return masks.float().mul(2).sub(1)[:, None]


def mask_accuracy(
    train_masks: Tensor,
    train_labels: Tensor,
    val_masks: Tensor,
    val_labels: Tensor,
    num_classes: int,
    *,
    seed: int = 0,
    settings: LeakSettings | None = None,
) -> int:
    """Correct held-out predictions of a :class:`MaskNet` trained on ``train_masks`` (bool
    [N, H, W], True where removed) for ``train_labels``; ``settings.epochs`` of Adam."""
    s = settings or LeakSettings()
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MaskNet(num_classes)
    optimizer = torch.optim.Adam(net.parameters(), lr=s.lr)
    x, y = _inputs(train_masks), train_labels.long()
    n = len(y)
    net.train()
    for _ in range(s.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, s.batch_size):
            idx = order[start : start + s.batch_size]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    net.eval()
    correct = 0
    with torch.no_grad():
        xv, yv = _inputs(val_masks), val_labels.long()
        for start in range(0, len(yv), 512):
            pred = net(xv[start : start + 512]).argmax(1)
            correct += int((pred == yv[start : start + 512]).sum())
    return correct


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval (95 % by default) of a proportion ``correct / n``."""
    if n < 1:
        raise ValueError("wilson_interval needs n >= 1")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if correct == 0 else max(0.0, centre - half)  # exact ends, no rounding past p
    return low, 1.0 if correct == n else min(1.0, centre + half)
