"""The conformance checks every saliency method passes: its maps' shape and values, determinism under
a fixed seed, independence of the other images in its batch, no hook left on the model, train/eval
mode and frozen weights restored. ``tests/unit/test_saliency.py`` runs them over the registry; before any
training, a cell runs them on an external or library method (:func:`check_before_training`), where
a failure is a :class:`ConformanceError` naming the method and the check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from roarkar.identity import method_identity, to_plain
from roarkar.models import build_model, fused
from roarkar.models.taps import TappedNet
from roarkar.saliency.base import MapShapeError, NonFiniteMapError, SaliencyMethod
from roarkar.saliency.registry import available, create, describe

__all__ = [
    "ConformanceError",
    "check_batch_independent",
    "check_before_training",
    "check_deterministic",
    "check_maps",
    "check_not_constant",
    "check_state",
    "hook_dicts",
    "run",
]


class ConformanceError(ValueError):
    """A method that fails a conformance check; the message names the method and the check."""

    def __init__(self, method: str, check: str, detail: str):
        self.method, self.check = method, check
        super().__init__(f"saliency method {method} fails the check '{check}': {detail}")


def hook_dicts(model: nn.Module) -> list[str]:
    """Names of every non-empty hook registry on any module of ``model`` or of the BatchNorm-folded
    copies the gradient methods run (and the global module hooks)."""
    found = []
    copies = [(f"fused{i}", c) for i, c in enumerate(fused.cached_copies())]
    for prefix, root in [("", model), *copies]:
        for name, module in root.named_modules():
            for attr, value in vars(module).items():
                if (
                    "hook" in attr
                    and "state_dict" not in attr
                    and isinstance(value, dict)
                    and value
                ):
                    found.append(f"{prefix}{name or '<root>'}.{attr}")
    g = nn.modules.module
    for attr in dir(g):
        if attr.startswith("_global") and "hook" in attr:
            value = getattr(g, attr)
            if isinstance(value, dict) and value:
                found.append(attr)
    return found


def run(method: SaliencyMethod, images: Tensor, relevance: Tensor | None, seed: int = 0) -> Tensor:
    """``method``'s maps of ``images`` with a generator seeded ``seed``."""
    return method.saliency(
        images, relevance=relevance, generator=torch.Generator().manual_seed(seed)
    )


def check_maps(method: str, out: Tensor, shape: tuple[int, ...]) -> None:
    """Maps of ``shape``, float32, every value finite."""
    if tuple(out.shape) != tuple(shape) or out.dtype != torch.float32:
        raise ConformanceError(
            method, "output shape", f"maps {tuple(out.shape)} {out.dtype}, expected {shape} float32"
        )
    if not torch.isfinite(out).all():
        raise ConformanceError(method, "finite", "its maps hold NaN or infinity")


def check_not_constant(method: str, out: Tensor) -> None:
    """No image's map is constant (it would rank every location the same: ties only)."""
    flat = out.flatten(1)
    constant = (flat.amax(1) == flat.amin(1)).nonzero().flatten().tolist()
    if constant:
        raise ConformanceError(
            method, "not constant", f"the map of image(s) {constant} is one value everywhere"
        )


def check_deterministic(
    method: str, again: Tensor, first: Tensor, rtol: float = 0.0, atol: float = 0.0
) -> None:
    """Two runs with the same seed give the same maps."""
    try:
        torch.testing.assert_close(again, first, rtol=rtol, atol=atol)
    except AssertionError as exc:
        raise ConformanceError(
            method, "deterministic", f"two runs with the same seed differ: {_first_line(exc)}"
        ) from None


def check_batch_independent(
    method: SaliencyMethod,
    images: Tensor,
    relevance: Tensor | None,
    rtol: float,
    atol: float,
    batch: Tensor | None = None,
    who: str | None = None,
) -> Tensor:
    """Each image's map is the same computed alone as in its batch (``batch``: the batch's maps,
    computed here when not given; ``who`` names the method, default its name); returns the
    batch's maps."""
    batch = run(method, images, relevance) if batch is None else batch
    for i in range(images.shape[0]):
        alone = run(method, images[i : i + 1], None if relevance is None else relevance[i : i + 1])
        try:
            torch.testing.assert_close(batch[i : i + 1], alone, rtol=rtol, atol=atol)
        except AssertionError as exc:
            raise ConformanceError(
                who or method.name,
                "independent of its batch",
                f"image {i}'s map alone differs from its map in a batch of {images.shape[0]} "
                f"(draw any noise per image): {_first_line(exc)}",
            ) from None
    return batch


def check_state(method: str, model: nn.Module, training: bool) -> None:
    """No hook left on ``model``; every module in the mode it was in (all ``training`` or none),
    every parameter still requires its gradient and none was accumulated."""
    left = hook_dicts(model)
    if left:
        raise ConformanceError(method, "no hook left", f"hooks left on {', '.join(left)}")
    modes = {m.training for m in model.modules()}
    if modes != {training}:
        mode = "train" if training else "eval"
        raise ConformanceError(method, "mode restored", f"the model was in {mode} mode and is not")
    if training and not all(p.requires_grad for p in model.parameters()):
        raise ConformanceError(method, "mode restored", "weights left frozen (requires_grad off)")
    if any(p.grad is not None for p in model.parameters()):
        raise ConformanceError(method, "mode restored", "weight gradients were accumulated")


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3])


_PASSED: set[str] = set()


def check_before_training(
    method: Mapping[str, Any], model: Mapping[str, Any], dataset: Mapping[str, Any], tap: str
) -> None:
    """Put an external or library method (a registry name with a ``label_param``) through the
    conformance checks, on an untrained network of the run's model and random images of the
    dataset's size, before any data is read or model trained (``protocols.cell.cell_from_config``):
    its pixel maps in the input protocol (``tap`` empty), its tap maps at ``tap`` in the layer
    protocol. Other methods pass them in the tests. Once per method, model and place per process."""
    node = to_plain(method)
    name = str(node.get("name"))
    if name not in available() or describe(name).label_param is None:
        return
    key = describe(name).label_param
    who = f"{name!r} ({key} {(node.get('params') or {}).get(key)!r})"
    model_node, data = to_plain(model), to_plain(dataset)
    try:
        identity = method_identity(node)  # its source file's content: an edited file is new
    except (ValueError, OSError) as exc:
        raise ConformanceError(who, "loads", str(exc)) from None
    signature = json.dumps(
        [identity, model_node, data.get("image_size"), data.get("num_classes"), tap],
        sort_keys=True,
        default=str,
    )
    if signature in _PASSED:
        return
    size, classes = int(data.get("image_size") or 32), int(data.get("num_classes") or 10)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_model(str(model_node["name"]), classes, **(model_node.get("params") or {}))
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    try:
        instance = create(name, net, **(node.get("params") or {}))
    except (ValueError, TypeError, ImportError) as exc:
        raise ConformanceError(who, "loads", str(exc)) from None
    if tap:
        _check_tap(who, instance, net, images, tap)
    else:
        _check_pixel(who, instance, net, images)
    _PASSED.add(signature)


def _guarded(who: str, fn, *args) -> Tensor:
    """``fn(*args)``, its failures as the check they fail."""
    try:
        return fn(*args)
    except ConformanceError:
        raise
    except MapShapeError as exc:
        raise ConformanceError(who, "output shape", str(exc)) from None
    except NonFiniteMapError as exc:
        raise ConformanceError(who, "finite", str(exc)) from None
    except Exception as exc:
        raise ConformanceError(who, "runs", f"{type(exc).__name__}: {exc}") from None


def _check_signature(who: str, method: SaliencyMethod, contract: str) -> None:
    """An external target can be called as ``contract`` says (``ExternalMethod.function``)."""
    function = getattr(method, "function", None)
    if function is not None:
        try:
            function(contract)
        except TypeError as exc:
            raise ConformanceError(who, "signature", str(exc)) from None


def _check_pixel(who: str, method: SaliencyMethod, net: TappedNet, images: Tensor) -> None:
    _check_signature(who, method, "pixel")
    size = tuple(images.shape[-2:])
    net.train()
    first = _guarded(who, run, method, images, None)
    check_maps(who, first, (images.shape[0], *size))
    check_not_constant(who, first)
    check_state(who, net, training=True)
    net.eval()
    again = _guarded(who, run, method, images, None)
    check_state(who, net, training=False)
    check_deterministic(who, again, first)
    _guarded(who, _independent, who, method, images, first)


def _independent(who: str, method: SaliencyMethod, images: Tensor, batch: Tensor) -> None:
    scale = float(batch.abs().max()) or 1.0
    check_batch_independent(method, images, None, 1e-4, 1e-4 * scale, batch=batch, who=who)


def _check_tap(who: str, method: SaliencyMethod, net: TappedNet, images: Tensor, tap: str) -> None:
    _check_signature(who, method, "tap")
    method.bind_tap(tap)
    net.eval()
    with torch.no_grad():
        act = net.forward_to(images, tap, pre_relu=bool(getattr(method, "needs_pre_relu", False)))

    def tap_maps(a) -> Tensor:
        return method.tap_saliency(a, generator=torch.Generator().manual_seed(0))

    first = _guarded(who, tap_maps, act)
    check_maps(who, first, (images.shape[0], *act.post.shape[-2:]))
    check_not_constant(who, first)
    check_deterministic(who, _guarded(who, tap_maps, act), first)
    scale = float(first.abs().max()) or 1.0
    for i in range(images.shape[0]):
        one = type(act)(act.post[i : i + 1], None if act.pre is None else act.pre[i : i + 1])
        alone = _guarded(who, tap_maps, one)
        try:
            torch.testing.assert_close(alone, first[i : i + 1], rtol=1e-4, atol=1e-4 * scale)
        except AssertionError as exc:
            raise ConformanceError(
                who, "independent of its batch", f"image {i}: {_first_line(exc)}"
            ) from None
