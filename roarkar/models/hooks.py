"""Taps by forward hooks: a network cut at modules the user names (``model.taps``), for networks
torch.fx cannot trace (control flow on tensor values in ``forward``) or whose taps are known.

Each tap is a module called once per forward pass, named in execution order (L1..Ln); its output is
the tap's activation. :meth:`HookTappedNet.forward_to` runs the network until the tap's hook fires
and ends the pass there (a private exception); :meth:`~HookTappedNet.forward_from` runs the whole
network on a zero image, the part before the tap without autograd and in eval mode, with the tap's
output replaced by the given activation (what comes after computes from it);
:meth:`~HookTappedNet.forward_masked` (the layer protocol) replaces it within one pass on the real
images. A tap's prefix is every module whose calls all end by the time the tap's does (found on a
probe pass): :meth:`~HookTappedNet.freeze_prefix` freezes its parameters as for a traced network.

At construction the split is checked (:func:`~roarkar.models.taps.check_forward_from`): a path that
jumps over a tap (a tap inside a residual block) gives other logits from a zero image and is
refused. Hooks already on the network stay and fire on every pass, the probe passes included.
Hook taps have no pre-activation tensor, no hidden activations of a graph and no BatchNorm-folded
prefix copy (the layer protocol runs the whole network instead).

On the command line the key is new (the model configs do not carry it, so no identity moves):
``+model.taps=[layer1,layer2,layer3,layer4]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from roarkar.models import graph
from roarkar.models.taps import (
    PerTap,
    Replace,
    Tap,
    TapActivation,
    TappedNet,
    check_forward_from,
    probe_input,
    tap_names,
)

#: What a tap's hook is told (tap index, the module's output) and may return (a replacement).
OnTap = Callable[[int, Tensor], Tensor | None]


class _Stop(Exception):
    """Ends a forward pass at the last tap it needs (raised by that tap's hook)."""


class HookTappedNet(TappedNet):
    """A network tapped by forward hooks on the modules ``modules`` (L1..Ln, in execution order),
    with :class:`~roarkar.models.taps.TappedNet`'s interface. The hooks are registered for one pass
    and removed after it; hooks already on the network stay and fire as usual."""

    by_hooks = True

    def __init__(
        self,
        net: nn.Module,
        modules: Sequence[str],
        name: str = "network",
        probe_size: int | None = None,
    ):
        nn.Module.__init__(self)  # not TappedNet's: there is no graph to trace and cut
        self.net = net
        self.name = name
        self.probe_size = probe_size or getattr(net, "image_size", 64)
        self._pieces = None
        self.tap_modules = tuple(str(m) for m in modules)
        #: (tap index, activation shape) -> input shape, for forward_from's zero image
        self._inputs: dict[tuple[int, tuple[int, ...]], tuple[int, ...]] = {}
        self._check_names()
        probe = probe_input(net, self.probe_size)
        self._prefixes = self._find_prefixes(probe)
        self.tap_info = tuple(
            Tap(tap, module, isinstance(net.get_submodule(module), graph.RECTIFIERS), False)
            for tap, module in zip(tap_names(len(self.tap_modules)), self.tap_modules, strict=True)
        )
        check_forward_from(
            self,
            probe,
            f"; model.taps={list(self.tap_modules)} must each be a point every path through the "
            "network passes",
        )

    # -- construction ---------------------------------------------------------------------------
    def _check_names(self) -> None:
        if not self.tap_modules:
            raise ValueError(f"{self.name}: model.taps is empty: name the modules to tap, in order")
        known = dict(self.net.named_modules())
        for module in self.tap_modules:
            if module not in known or not module:
                top = ", ".join(n for n, _ in self.net.named_children())
                raise ValueError(
                    f"{self.name}: model.taps names {module!r}, not a module of the network "
                    f"(its top-level modules: {top}; nested ones by dotted name, e.g. layer1.0)"
                )
        if len(set(self.tap_modules)) != len(self.tap_modules):
            raise ValueError(
                f"{self.name}: model.taps={list(self.tap_modules)} names a module twice"
            )

    def _find_prefixes(self, probe: Tensor) -> tuple[tuple[str, ...], ...]:
        """Per tap, the modules whose every call ends by the end of the tap's (one probe pass in
        eval mode, without autograd); each tap must run once, in the order named, and give a
        [B, C, h, w] map."""
        ends: dict[str, list[int]] = {}  # module -> the positions its calls end at
        outputs: dict[str, object] = {}
        handles = []

        def record(name: str):
            def hook(module, inputs, output):
                ends.setdefault(name, []).append(len(outputs))
                outputs[f"{name}#{len(outputs)}"] = output

            return hook

        modes = [(m, m.training) for m in self.net.modules()]
        try:
            for name, module in self.net.named_modules():
                handles.append(module.register_forward_hook(record(name)))
            self.net.eval()
            with torch.no_grad():
                self.net(probe)
        finally:
            for handle in handles:
                handle.remove()
            for module, training in modes:
                module.training = training
        last = -1
        for tap, module in zip(tap_names(len(self.tap_modules)), self.tap_modules, strict=True):
            calls = ends.get(module, [])
            if len(calls) != 1:
                raise ValueError(
                    f"{self.name}: tap {tap} = {module!r} runs {len(calls)} times in a forward pass "
                    "of a probe image: a tap must be a module called once"
                )
            out = outputs[f"{module}#{calls[0]}"]
            if not (isinstance(out, Tensor) and out.dim() == 4):
                raise ValueError(
                    f"{self.name}: tap {tap} = {module!r} does not give a [B, C, h, w] map"
                )
            if calls[0] < last:
                raise ValueError(
                    f"{self.name}: model.taps={list(self.tap_modules)} is not in the order the "
                    f"network runs them ({module!r} ends before the tap named before it)"
                )
            last = calls[0]
        return tuple(
            tuple(name for name, calls in ends.items() if max(calls) <= ends[module][0])
            for module in self.tap_modules
        )

    # -- one pass with hooks at the taps --------------------------------------------------------
    def _run(
        self, x: Tensor, on_tap: OnTap, *, stop: int | None = None, quiet_until: int | None = None
    ) -> Tensor | None:
        """The network on ``x`` with ``on_tap`` at each tap (its result, when not None, replaces the
        tap's output); the pass ends after tap ``stop`` (None returned), and runs without autograd
        up to and including tap ``quiet_until``'s hook."""
        grad = torch.is_grad_enabled()

        def hook_at(index: int):
            def hook(module, inputs, output):
                new = on_tap(index, output)
                if index == quiet_until:
                    torch.set_grad_enabled(grad)
                if index == stop:
                    raise _Stop
                return new

            return hook

        handles = [
            self.net.get_submodule(module).register_forward_hook(hook_at(index))
            for index, module in enumerate(self.tap_modules)
        ]
        try:
            if quiet_until is not None:
                torch.set_grad_enabled(False)
            return self.net(x)
        except _Stop:
            return None
        finally:
            torch.set_grad_enabled(grad)
            for handle in handles:
                handle.remove()

    def _no_pre(self, pre_relu: bool) -> None:
        if pre_relu:
            raise ValueError(
                f"{self.name}: taps by forward hooks (model.taps) have no pre-activation tensor "
                "(pre_relu=True): a hook sees a module's output only"
            )

    def _remember(self, x: Tensor, index: int, act: Tensor) -> None:
        self._inputs[(index, tuple(act.shape[1:]))] = tuple(x.shape[1:])

    def _zero_input(self, index: int, h: Tensor) -> Tensor:
        shape = self._inputs.get((index, tuple(h.shape[1:])))
        if shape is None:
            raise ValueError(
                f"{self.name}: forward_from at {self.taps[index]} runs the whole network with the "
                f"tap's output replaced, from an image of the size that gives a "
                f"{list(h.shape[1:])} activation there: run forward_to on such an image first"
            )
        return torch.zeros((h.shape[0], *shape), dtype=h.dtype, device=h.device)

    def _replaced(self, index: int, h: Tensor, *, stop: int | None = None, on_tap=None):
        """A pass from a zero image with tap ``index``'s output replaced by ``h``; the modules
        before it run in eval mode (no BatchNorm statistic or random number is touched)."""
        prefix = self.stage_prefix(index)
        modes = [(m, m.training) for m in prefix]

        def replace(i: int, out: Tensor) -> Tensor | None:
            if i == index:
                return h
            return on_tap(i, out) if on_tap is not None and i > index else None

        try:
            for module in prefix:
                module.training = False
            return self._run(self._zero_input(index, h), replace, stop=stop, quiet_until=index)
        finally:
            for module, training in modes:
                module.training = training

    # -- the TappedNet interface ----------------------------------------------------------------
    @property
    def pieces(self):
        raise ValueError(f"{self.name} is tapped by forward hooks (model.taps): it has no pieces")

    def forward_to(self, x: Tensor, tap: str, pre_relu: bool = False) -> TapActivation:
        self._no_pre(pre_relu)
        index = self.tap_index(tap)
        found: dict[str, Tensor] = {}

        def capture(i: int, out: Tensor) -> None:
            if i == index:
                found["post"] = out

        self._run(x, capture, stop=index)
        if "post" not in found:
            raise ValueError(f"{self.name}: tap {tap} ({self.tap_modules[index]}) did not run")
        self._remember(x, index, found["post"])
        return TapActivation(found["post"])

    def forward_from(self, h: Tensor, tap: str) -> Tensor:
        return self._replaced(self.tap_index(tap), h)

    def forward_masked(self, x: Tensor, tap: str, fn: Replace, pre_relu: bool = False) -> Tensor:
        """One pass on ``x``: the part up to the tap and ``fn`` without autograd, the tap's output
        replaced by ``fn(activation)``, the rest with autograd."""
        self._no_pre(pre_relu)
        index = self.tap_index(tap)

        def replace(i: int, out: Tensor) -> Tensor | None:
            return fn(TapActivation(out)) if i == index else None

        return self._run(x, replace, quiet_until=index)

    def map_taps(self, x: Tensor, fn: PerTap, pre_relu: bool = False) -> tuple[dict, Tensor]:
        self._no_pre(pre_relu)
        out: dict[str, Tensor] = {}

        def apply(i: int, act: Tensor) -> None:
            self._remember(x, i, act)
            out[self.taps[i]] = fn(i, TapActivation(act))

        logits = self._run(x, apply)
        return out, logits

    def forward_taps(
        self, x: Tensor, pre_relu: bool = False
    ) -> tuple[dict[str, TapActivation], Tensor]:
        """Every tap's activation (a copy: an in-place operation after a tap cannot change it)
        and the logits, in one forward pass."""
        return self.map_taps(x, lambda i, act: TapActivation(act.post.clone()), pre_relu)

    def stage(self, index: int, x: Tensor, pre_relu: bool = False) -> tuple[Tensor, Tensor | None]:
        self._no_pre(pre_relu)
        if index == 0:
            return self.forward_to(x, self.taps[0]).post, None
        found: dict[str, Tensor] = {}

        def capture(i: int, out: Tensor) -> None:
            if i == index:
                found["post"] = out

        self._replaced(index - 1, x, stop=index, on_tap=capture)
        return found["post"], None

    def head(self, x: Tensor) -> Tensor:
        return self.forward_from(x, self.taps[-1])

    def check_pre_relu(self, method: str) -> None:
        raise ValueError(
            f"{method} needs each tap's pre-ReLU tensor, which taps by forward hooks "
            f"(model.taps on {self.name}) cannot give: a hook sees a module's output only; use a "
            "statistic of the tap's output (smoe_scale, std, ...)"
        )

    def prefix_sequential(self, tap: str) -> nn.Sequential:
        """The network up to ``tap``'s activation, as one module (it runs the network and ends the
        pass at the tap)."""
        return nn.Sequential(_Prefix(self, tap))

    def stage_prefix(self, index: int) -> list[nn.Module]:
        """Modules whose calls all end by the end of tap ``index``'s (its own submodules too)."""
        return [self.net.get_submodule(name) for name in self._prefixes[index]]

    def stage_modules(self, index: int) -> list[nn.Module]:
        before = set(self._prefixes[index - 1]) if index else set()
        return [self.net.get_submodule(n) for n in self._prefixes[index] if n not in before]

    def prefix_modules(self, tap: str) -> list[nn.Module]:
        return self.stage_prefix(self.tap_index(tap))

    def prefix_parameters(self, tap: str) -> Iterator[nn.Parameter]:
        seen: set[int] = set()
        for module in self.prefix_modules(tap):
            for p in module.parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p

    def activation_types(self) -> set[str]:
        """The activation modules the network holds (functional activations are not seen)."""
        return {type(m).__name__ for m in self.net.modules() if isinstance(m, graph.ACTIVATIONS)}

    def forward_hidden(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        raise ValueError(
            f"{self.name} is tapped by forward hooks (model.taps): its hidden activations come "
            "from a traced graph, which it has none of"
        )


class _Prefix(nn.Module):
    """A hook-tapped network up to one tap's activation."""

    def __init__(self, model: HookTappedNet, tap: str):
        super().__init__()
        self.model, self.tap = model, tap

    def forward(self, x: Tensor) -> Tensor:
        return self.model.forward_to(x, self.tap).post


__all__ = ["HookTappedNet"]
