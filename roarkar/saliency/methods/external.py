"""Your own saliency method by import path: ``method=external method.params.target=pkg.mod:obj``
(or ``path/to/file.py:obj``, a relative path from the directory you run in).

Two contracts; the protocol decides which one a target is called with:

- a **pixel method** (input protocol), :data:`PixelFn`: ``f(model, images, targets, **kwargs)``
  with normalised images ``[B, C, H, W]`` and one target class per image ``[B]`` (the predicted
  class unless ``protocol.target=label``), returning maps ``[B, H, W]`` or attributions
  ``[B, C, H, W]`` (reduced over the channels by ``reduce``: ``abs_max`` by default, or ``abs_sum``);
- a **tap method** (layer protocol), :data:`TapFn`: ``f(activation, pre_relu, **kwargs)`` with the
  tap's activation ``[B, C, h, w]`` and its pre-ReLU tensor (``None`` unless ``pre_relu=true``),
  returning ``[B, h, w]``.

The target may be a function, an object with a ``saliency`` (pixel) / ``tap_saliency`` (tap)
method or a ``__call__``, or a class (instantiated once, without arguments). ``kwargs`` pass
through to every call. The base class owns what a method must not get wrong (eval mode and frozen
weights while it runs, restored after; chunks of ``batch_size`` images); the global torch RNG is
seeded per batch from the protocol's generator, so a method that draws noise is reproducible.
Before any training a cell puts the method through the conformance checks
(:mod:`roarkar.saliency.conformance`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from roarkar.models.taps import TapActivation
from roarkar.saliency import stats
from roarkar.saliency.base import SaliencyMethod
from roarkar.saliency.methods.gradients import REDUCTIONS, input_gradient, reduce_channels
from roarkar.saliency.methods.seeds import image_seeds, mix_seed
from roarkar.saliency.registry import register
from roarkar.targets import load_target

__all__ = [
    "CONTRACTS",
    "ExternalMethod",
    "PixelFn",
    "Reference",
    "TapFn",
    "check_signature",
    "given_or_predicted",
    "seeded_rng",
]

#: A pixel method: (model, images [B, C, H, W], targets [B]) -> [B, H, W] | [B, C, H, W].
PixelFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
#: A tap method: (activation [B, C, h, w], pre_relu [B, C, h, w] | None) -> [B, h, w].
TapFn = Callable[[Tensor, Tensor | None], Tensor]

#: contract -> (the method an object target provides, the call's positional arguments, the text)
CONTRACTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "pixel": (
        "saliency",
        ("model", "images", "targets"),
        "f(model, images [B,C,H,W], targets [B], **kwargs) -> [B,H,W] | [B,C,H,W]",
    ),
    "tap": (
        "tap_saliency",
        ("activation", "pre_relu"),
        "f(activation [B,C,h,w], pre_relu [B,C,h,w] | None, **kwargs) -> [B,h,w]",
    ),
}


class Reference:
    """The default target, both contracts in their simplest form: the gradient's largest
    magnitude over the colour channels (pixel) and the activation's channel mean (tap)."""

    def saliency(self, model: nn.Module, images: Tensor, targets: Tensor) -> Tensor:
        return reduce_channels(input_gradient(model, images, targets), "abs_max")

    def tap_saliency(self, activation: Tensor, pre_relu: Tensor | None) -> Tensor:
        return stats.mean(activation)


@contextmanager
def seeded_rng(images: Tensor, generator: torch.Generator | None) -> Iterator[int]:
    """The global torch RNG forked and seeded from ``images`` and ``generator`` (whose state is not
    advanced) inside the block: a library or user method that draws from it is reproducible."""
    seed = mix_seed(*image_seeds(images, generator))
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield seed


def given_or_predicted(model: nn.Module, images: Tensor, targets: Tensor | None) -> Tensor:
    """``targets`` on the images' device, or the model's predicted classes when None [B]."""
    if targets is None:
        with torch.no_grad():
            return model(images).argmax(dim=1)
    return targets.to(images.device)


def _callable_for(obj: Any, contract: str, target: str) -> Callable[..., Any]:
    """The function of ``obj`` (a function, an object, a class) that ``contract`` calls."""
    if inspect.isclass(obj):
        try:
            obj = obj()
        except TypeError as exc:
            raise TypeError(
                f"target {target!r} is a class that cannot be built without arguments: {exc}"
            ) from exc
    attr = CONTRACTS[contract][0]
    fn = None if inspect.isroutine(obj) else getattr(obj, attr, None)
    fn = fn if fn is not None else obj
    if not callable(fn):
        raise TypeError(
            f"target {target!r} is a {type(obj).__name__}, not a function, nor an object with "
            f"{attr}() or __call__"
        )
    return fn


def check_signature(fn: Callable[..., Any], contract: str, target: str, kwargs: Mapping) -> None:
    """A TypeError naming ``target``, its signature and the contract's when ``fn`` cannot be
    called with the contract's arguments and ``kwargs``."""
    _, args, text = CONTRACTS[contract]
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin without a signature: the call itself will tell
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(
            f"target {target!r} has the wrong signature for a {contract} method: "
            f"{getattr(fn, '__name__', type(fn).__name__)}{signature} ({exc}); expected {text}"
        ) from None


@register(
    "external",
    label="External method",
    reference="your own code, by import path (method.params.target)",
)
class ExternalMethod(SaliencyMethod):
    """A user's pixel or tap method (module docstring); ``label`` names it in the tables
    (default: the target's object name)."""

    kind: ClassVar[str] = "pixel"
    supports_layer: ClassVar[bool] = True
    label_param: ClassVar[str] = "target"

    def __init__(
        self,
        model: nn.Module,
        *,
        target: str = "roarkar.saliency.methods.external:Reference",
        kwargs: Mapping[str, Any] | None = None,
        label: str | None = None,
        reduce: str = "abs_max",
        pre_relu: bool = False,
        batch_size: int | None = None,
    ):
        super().__init__(model, batch_size=batch_size)
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce={reduce!r}: expected one of {', '.join(REDUCTIONS)}")
        self.target, self.label, self.reduce = str(target), label, reduce
        self.kwargs = dict(kwargs or {})
        self.needs_pre_relu = bool(pre_relu)
        self.obj = load_target(self.target)
        self._fns: dict[str, Callable[..., Any]] = {}

    def function(self, contract: str) -> Callable[..., Any]:
        """The target's function for ``contract`` (``pixel`` or ``tap``), its signature checked."""
        if contract not in self._fns:
            fn = _callable_for(self.obj, contract, self.target)
            check_signature(fn, contract, self.target, self.kwargs)
            self._fns[contract] = fn
        return self._fns[contract]

    def _saliency(self, images, targets, *, relevance, generator):
        fn = self.function("pixel")
        targets = given_or_predicted(self.model, images, targets)
        with seeded_rng(images, generator), torch.enable_grad():
            out = fn(self.model, images.detach().clone(), targets, **self.kwargs)
        out = torch.as_tensor(out, device=images.device)
        return reduce_channels(out, self.reduce) if out.dim() == 4 else out

    def tap_saliency(self, act: TapActivation, *, relevance=None, generator=None) -> Tensor:
        fn = self.function("tap")
        post = act.post
        with seeded_rng(post, generator):
            out = fn(post.detach().clone(), act.pre if self.needs_pre_relu else None, **self.kwargs)
        out = torch.as_tensor(out, device=post.device)
        return self.check_output(out, (post.shape[0], *post.shape[-2:]))
