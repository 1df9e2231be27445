"""A CNN seen as stages that end at its taps L1..Ln, for saliency and for masking.

The taps are the ends of the network's spatial scales, found from its graph
(:func:`roarkar.models.graph.scale_ends`): on a torchvision ResNet-50 at 224 px the stem ReLU and
the outputs of layer1..layer4 (112, 56, 28, 14, 7 px), on VGG-16 the last ReLU before each
max-pool (224 .. 14 px). A network may name its own (``tap_nodes``, as roarkar's small ResNet
does). A tap that is an activation also gives the tensor before it (``pre``) for the statistics of
pre-ReLU values; for any other tap ``pre`` is the tap itself. A network torch.fx cannot trace is
tapped by forward hooks on modules the user names instead (``model.taps``,
:mod:`roarkar.models.hooks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, fx, nn

from roarkar.models import graph

#: The paper's five taps; a network with fewer scales has the first of these names.
TAPS: tuple[str, ...] = ("L1", "L2", "L3", "L4", "L5")


def tap_names(count: int) -> tuple[str, ...]:
    """``L1`` .. ``L<count>``."""
    return tuple(f"L{i + 1}" for i in range(count))


def check_tap(tap: str, taps: Sequence[str] = TAPS, model: str = "the model") -> int:
    """Index of ``tap`` in ``taps``, or a ValueError that names the valid taps."""
    if tap not in taps:
        raise ValueError(
            f"unknown tap {tap!r} for {model}: expected one of {', '.join(taps)} (or last)"
        )
    return list(taps).index(tap)


def check_forward_from(model: TappedNet, x: Tensor, why: str = "") -> None:
    """Refuse a split that is not the network: at every tap, ``forward_from(forward_to(x))`` must
    give the network's own logits (in eval mode, without autograd; modes restored). ``why`` is
    added to the error (what to do about it). Skipped on the meta device (no values)."""
    if x.device.type == "meta":
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x)
            for tap in model.tap_info:
                got = model.forward_from(model.forward_to(x, tap.name).post, tap.name)
                if got.shape != logits.shape or not torch.allclose(
                    got, logits, rtol=1e-4, atol=1e-4 * float(logits.abs().max()) + 1e-6
                ):
                    raise ValueError(
                        f"{model.name}: the network after tap {tap.name} ({tap.node}) does not "
                        "give the network's logits from that tap's activation alone (a path that "
                        f"jumps over it, or a hook that changes an output?){why}"
                    )
    finally:
        for module, training in modes:
            module.training = training


@dataclass
class TapActivation:
    """A tap's activation (``post``) and the tensor before its activation (``pre``), [B, C, h, w]."""

    post: Tensor
    pre: Tensor | None = None


#: What replaces a tap's activation (:meth:`TappedNet.forward_masked`).
Replace = Callable[[TapActivation], Tensor]
#: What is taken of each tap, by its index, as a forward pass reaches it (:meth:`TappedNet.map_taps`).
PerTap = Callable[[int, TapActivation], Tensor]


@dataclass(frozen=True)
class Tap:
    """One tap: its name (L1..), the graph node it is (torchvision's node name), whether its values
    are never negative (a ReLU's output) and whether it has a separate pre-activation tensor."""

    name: str
    node: str
    rectified: bool
    has_pre: bool


def probe_input(net: nn.Module, size: int) -> Tensor:
    """Two seeded N(0, 1) images of ``size`` px in the dtype and on the device of ``net``'s
    weights, with the channels of its first convolution (the global random state untouched)."""
    weight = next(net.parameters())
    images = torch.randn(
        2,
        graph.first_conv_channels(net),
        size,
        size,
        generator=torch.Generator().manual_seed(0),
        dtype=weight.dtype if weight.is_floating_point() else torch.float32,
    )
    return images.to(weight.device)


@dataclass
class _Pieces:
    stages: list[tuple[fx.GraphModule, fx.GraphModule | None]]  # (body to pre, activation)
    head: fx.GraphModule
    traced: graph.Traced
    hidden: fx.GraphModule | None = None  # the network returning its hidden activations too


class TappedNet(nn.Module):
    """A CNN cut at its taps, plus the rest of the network after the last one (the head).

    ``forward`` is the plain network. ``forward_to``/``forward_from`` split it at a tap so the layer
    protocol can mask the tap's activation; ``forward_taps`` returns every tap in one forward pass.
    The pieces share the network's modules and parameters (its state dict is the network's under
    ``net.``) and are rebuilt after a copy or a move to another device or dtype.

    Hooks another library left on the network's modules are set aside while it is traced and kept
    (they fire whenever the network runs); when some are there, the split is checked against the
    network with them (:func:`check_forward_from`), so a hook that changes an output is refused.
    """

    #: Tapped by forward hooks on named modules (:class:`roarkar.models.hooks.HookTappedNet`),
    #: not cut into traced pieces: no frozen-prefix copy, no pre-activation tensors.
    by_hooks: bool = False

    def __init__(
        self,
        net: nn.Module,
        name: str = "network",
        taps: Sequence[str] | None = None,
        probe_size: int | None = None,
    ):
        super().__init__()
        self.net = net
        self.name = name
        traced = graph.trace(net)
        declared = taps or getattr(net, "tap_nodes", None)
        cuts = graph.cut_nodes(traced)
        if declared:
            ends = [traced.node(t) for t in declared]
            for node, wanted in zip(ends, declared, strict=True):
                if node not in cuts:
                    raise ValueError(
                        f"{name}: tap node {wanted!r} is not a point every path through the "
                        "network passes (a tensor inside a residual block?)"
                    )
        else:
            ends = graph.scale_ends(traced, probe_size or getattr(net, "image_size", 64))
        self.probe_size = probe_size or getattr(net, "image_size", 64)
        if not ends:
            raise ValueError(f"{name}: no spatial scale found in its graph, so no taps")
        cut_set = set(cuts)
        self.tap_info = tuple(
            Tap(
                name,
                traced.names[node],
                graph.activation(traced, node) is True,
                graph.pre_activation(traced, node, cut_set) is not None,
            )
            for name, node in zip(tap_names(len(ends)), ends, strict=True)
        )
        self._pieces: _Pieces | None = self._split(traced, cut_set)
        hooks = graph.module_hooks(net)
        if hooks:
            check_forward_from(
                self,
                probe_input(net, self.probe_size),
                f"; tracing sets hooks aside ({'; '.join(hooks)}): name the modules to tap with "
                "+model.taps=[...] to tap by forward hooks with the hooks in place",
            )

    # -- the pieces -----------------------------------------------------------------------------
    def _split(self, traced: graph.Traced, cuts: set | None = None) -> _Pieces:
        cuts = set(graph.cut_nodes(traced)) if cuts is None else cuts
        stages, start = [], None
        for tap in self.tap_info:
            end = traced.node(tap.node)
            pre = graph.pre_activation(traced, end, cuts)
            if pre is None:
                stages.append((graph.subgraph(traced, self.net, start, end), None))
            else:
                stages.append(
                    (
                        graph.subgraph(traced, self.net, start, pre),
                        graph.subgraph(traced, self.net, pre, end),
                    )
                )
            start = end
        head = graph.subgraph(traced, self.net, start, graph.output_node(traced))
        return _Pieces(stages, head, traced)

    @property
    def pieces(self) -> _Pieces:
        if self._pieces is None:
            self._pieces = self._split(graph.trace(self.net, check_modes=False))
        return self._pieces

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._pieces = None  # a piece may hold a buffer the move replaced
        return out

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state["_pieces"] = None  # rebuilt from the copied network on first use
        return state

    # -- taps -----------------------------------------------------------------------------------
    @property
    def taps(self) -> tuple[str, ...]:
        """This network's tap names, L1..Ln."""
        return tuple(t.name for t in self.tap_info)

    def tap_index(self, tap: str) -> int:
        return check_tap(tap, self.taps, self.name)

    def resolve_tap(self, tap: str) -> str:
        """``tap`` checked against this network's taps; ``last`` is its last (L5 on a ResNet)."""
        if tap == "last":
            return self.taps[-1]
        self.tap_index(tap)
        return tap

    @property
    def num_classes(self) -> int:
        last = [m for m in self.net.modules() if isinstance(m, nn.Linear | nn.Conv2d)][-1]
        return last.out_features if isinstance(last, nn.Linear) else last.out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    # -- stages ---------------------------------------------------------------------------------
    def stage(self, index: int, x: Tensor, pre_relu: bool = False) -> tuple[Tensor, Tensor | None]:
        """Stage ``index`` from the previous tap's activation to this tap's: (post, pre), with
        ``pre`` only when asked (the tensor before the tap's activation, or the tap itself)."""
        body, act = self.pieces.stages[index]
        x = body(x)
        if act is None:
            return x, (x if pre_relu else None)
        if not pre_relu:
            return act(x), None
        return act(x.clone()), x  # the activation may work in place: keep ``pre`` intact

    def stage_modules(self, index: int) -> list[nn.Module]:
        """Modules whose parameters belong to stage ``index``."""
        return [
            m
            for piece in self.pieces.stages[index]
            if piece is not None
            for m in graph.modules_of(piece, self.net)
        ]

    def head(self, x: Tensor) -> Tensor:
        """Logits from the last tap's activation."""
        return self.pieces.head(x)

    def forward_to(self, x: Tensor, tap: str, pre_relu: bool = False) -> TapActivation:
        """Activation at ``tap`` (and its pre-activation tensor when asked)."""
        last = self.tap_index(tap)
        pre = None
        for index in range(last + 1):
            x, pre = self.stage(index, x, pre_relu and index == last)
        return TapActivation(x, pre)

    def prefix_sequential(self, tap: str) -> nn.Sequential:
        """The network up to ``tap``'s activation as one Sequential of pieces that share its
        modules: what :meth:`forward_to` computes without ``pre_relu``."""
        last = self.tap_index(tap)
        pieces = [p for stage in self.pieces.stages[: last + 1] for p in stage if p is not None]
        return nn.Sequential(*pieces)

    def forward_from(self, h: Tensor, tap: str) -> Tensor:
        """Logits from an activation at ``tap`` (the rest of the network after it)."""
        for index in range(self.tap_index(tap) + 1, len(self.tap_info)):
            h, _ = self.stage(index, h)
        return self.head(h)

    def forward_masked(self, x: Tensor, tap: str, fn: Replace, pre_relu: bool = False) -> Tensor:
        """Logits with ``tap``'s activation replaced by ``fn(activation)``; the network up to the
        tap and ``fn`` run without autograd (the layer protocol's masked forward)."""
        with torch.no_grad():
            h = fn(self.forward_to(x, tap, pre_relu=pre_relu))
        return self.forward_from(h, tap)

    def map_taps(self, x: Tensor, fn: PerTap, pre_relu: bool = False) -> tuple[dict, Tensor]:
        """``fn(index, activation)`` of every tap as soon as one forward pass reaches it, and the
        logits: no tap outlives the next stage (``forward_taps`` holds them all)."""
        out = {}
        for index, tap in enumerate(self.taps):
            x, pre = self.stage(index, x, pre_relu)
            out[tap] = fn(index, TapActivation(x, pre))
            del pre
        return out, self.head(x)

    def check_pre_relu(self, method: str) -> None:
        """Nothing to refuse: every traced tap gives its pre-activation tensor (or the tap itself);
        a network tapped by hooks refuses ``method``, which needs it."""

    def forward_taps(
        self, x: Tensor, pre_relu: bool = False
    ) -> tuple[dict[str, TapActivation], Tensor]:
        """Every tap's activation and the logits, in one forward pass."""
        taps = {}
        for index, tap in enumerate(self.taps):
            x, pre = self.stage(index, x, pre_relu)
            taps[tap] = TapActivation(x, pre)
        return taps, self.head(x)

    def activation_types(self) -> set[str]:
        """What the network's activations are (``ReLU``, ``SiLU``, ``relu`` for F.relu, ...)."""
        return graph.activation_types(self.pieces.traced)

    def forward_hidden(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and every hidden activation (:func:`roarkar.models.graph.hidden_activations`),
        in one forward pass; the activations are kept apart from in-place updates after them."""
        pieces = self.pieces
        if pieces.hidden is None:
            nodes = graph.hidden_activations(pieces.traced, self.probe_size)
            if not nodes:
                raise ValueError(
                    f"{self.name} has no hidden activation that every path passes through (its "
                    "blocks end in a residual sum, not an activation): no hidden layers to use"
                )
            pieces.hidden = graph.with_outputs(pieces.traced, self.net, nodes)
        logits, *hidden = pieces.hidden(x)
        return logits, hidden

    # -- freezing -------------------------------------------------------------------------------
    def prefix_parameters(self, tap: str) -> Iterator[nn.Parameter]:
        """Parameters of every stage up to and including ``tap``."""
        for stage in self.pieces.stages[: self.tap_index(tap) + 1]:
            for piece in stage:
                if piece is not None:
                    yield from graph.parameters_of(piece, self.net)

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
        return [m for index in range(self.tap_index(tap) + 1) for m in self.stage_modules(index)]
