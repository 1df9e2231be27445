"""Base class every saliency method derives from.

The base owns what peer tools get wrong (docs/ARCHITECTURE.md, "Pitfalls"): hooks are registered through a context
manager that removes every one of them even when the method raises; the model is put in eval mode (and
its parameters frozen, so no weight gradients are computed or accumulated) and restored exactly
afterwards; images go through in chunks of at most ``batch_size``; there is one target per image; the
output is a finite float32 [B, H, W] map at input resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from roarkar.models.taps import TapActivation, TappedNet

KINDS: tuple[str, ...] = ("statistic", "pixel", "cam", "control")
Targets = int | Sequence[int] | Tensor | None


def as_tapped(model: nn.Module) -> TappedNet:
    """``model`` itself if it is a TappedNet, else the CNN wrapped in one (its taps found)."""
    return model if isinstance(model, TappedNet) else TappedNet(model)


class HookSet:
    """Hooks registered for one computation; :meth:`remove` (or leaving the ``with``) removes all."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def forward(self, module: nn.Module, fn: Callable[..., Any]) -> RemovableHandle:
        return self._keep(module.register_forward_hook(fn))

    def forward_pre(self, module: nn.Module, fn: Callable[..., Any]) -> RemovableHandle:
        return self._keep(module.register_forward_pre_hook(fn))

    def backward(self, module: nn.Module, fn: Callable[..., Any]) -> RemovableHandle:
        return self._keep(module.register_full_backward_hook(fn))

    def tensor(self, tensor: Tensor, fn: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        return self._keep(tensor.register_hook(fn))

    def _keep(self, handle: RemovableHandle) -> RemovableHandle:
        self._handles.append(handle)
        return handle

    def remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> HookSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


@contextmanager
def inference_state(model: nn.Module, freeze: bool = True) -> Iterator[None]:
    """Eval mode (and frozen parameters) inside the block; each module's and parameter's own
    ``training`` / ``requires_grad`` flag is restored afterwards, also on exception."""
    # Only the flags that change are set and restored (model.eval() recurses with one
    # Module.__setattr__ per module, twice per call: ~0.3-0.5 ms on a small ResNet).
    training = [m for m in model.modules() if m.training]
    frozen = [p for p in model.parameters() if p.requires_grad] if freeze else []
    try:
        for m in training:
            m.training = False
        for p in frozen:
            p.requires_grad_(False)
        yield
    finally:
        for m in training:
            m.training = True
        for p in frozen:
            p.requires_grad_(True)


def gather_targets(logits: Tensor, targets: Tensor | None) -> tuple[Tensor, Tensor]:
    """Each image's own target logit [B] and the targets used (argmax where ``targets`` is None).

    Summing the result gives d(sum_i logit_i[t_i]) whose gradient w.r.t. image i is that image's own
    d logit_i[t_i] / d x_i -- never a sum of several targets of one image.
    """
    if targets is None:
        targets = logits.argmax(dim=1)
    targets = targets.to(logits.device)
    return logits.gather(1, targets[:, None])[:, 0], targets


def resize_map(maps: Tensor, size: tuple[int, int], mode: str = "area") -> Tensor:
    """Resize [B, h, w] maps to ``size`` (area interpolation by default, for relevance maps)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(maps[:, None].float(), size=tuple(size), mode=mode, **kwargs)[:, 0]


class MapShapeError(RuntimeError):
    """A method's maps are not ``[B, H, W]`` (the conformance check "output shape")."""


class NonFiniteMapError(RuntimeError):
    """A method's maps hold NaN or infinity (the conformance check "finite")."""


class SaliencyMethod:
    """A saliency method bound to a model. Subclasses implement :meth:`_saliency` for one chunk.

    Class attributes: ``kind`` (one of :data:`KINDS`), ``supports_layer`` (the layer protocol may call
    :meth:`tap_saliency`), ``needs_pre_relu`` (the protocol must supply ``act.pre``), ``uses_model``
    (False for controls that never run the network), ``freeze_parameters`` (freeze the weights while
    the method runs; a method that needs weight gradients sets it False), ``label_param`` (a
    generic adaptor's parameter whose value names its results, e.g. ``external``'s ``target``).
    """

    kind: ClassVar[str] = "pixel"
    supports_layer: ClassVar[bool] = False
    needs_pre_relu: bool = False
    uses_model: ClassVar[bool] = True
    freeze_parameters: ClassVar[bool] = True
    label_param: ClassVar[str | None] = None

    def __init__(self, model: nn.Module, *, batch_size: int | None = None):
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        self.model = as_tapped(model)
        self.batch_size = batch_size
        self.name = type(self).__name__  # the registry sets the registered name
        self.info: Any = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- public API ------------------------------------------------------------------------------
    def saliency(
        self,
        images: Tensor,
        targets: Targets = None,
        *,
        relevance: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Saliency maps [B, H, W] (float32, finite) for normalised images [B, 3, H, W].

        ``targets``: one class per image (int for all, sequence or tensor [B]); default argmax.
        ``relevance``: ground-truth maps [B, H, W] (``ground_truth`` only). ``generator``: randomness.
        """
        self._check_images(images)
        b, _, h, w = images.shape
        targets_t = self._targets(targets, b)
        if relevance is not None and (relevance.dim() != 3 or relevance.shape[0] != b):
            raise ValueError(f"relevance must be [B={b}, H, W], got {tuple(relevance.shape)}")
        outs = []
        with self.prepared():
            for sl in self._chunks(b):
                out = self._saliency(
                    images[sl],
                    None if targets_t is None else targets_t[sl],
                    relevance=None if relevance is None else relevance[sl],
                    generator=generator,
                )
                outs.append(self.check_output(out, (sl.stop - sl.start, h, w)))
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def bind_tap(self, tap: str) -> None:
        """The layer protocol names the tap that the following :meth:`tap_saliency` calls are for
        (a method that needs the network's geometry at that tap uses it; most ignore it)."""

    def tap_saliency(
        self,
        act: TapActivation,
        *,
        relevance: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Map [B, h, w] of one tap's activation (layer protocol). Only methods with
        ``supports_layer`` implement it."""
        raise NotImplementedError(
            f"saliency method {self.name!r} ({self.kind}) has no per-tap map; the layer protocol "
            "accepts only per-tap statistics and the random / ground_truth controls"
        )

    # -- for subclasses ----------------------------------------------------------------------------
    def _saliency(
        self,
        images: Tensor,
        targets: Tensor | None,
        *,
        relevance: Tensor | None,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Maps [b, H, W] for one chunk of at most ``batch_size`` images."""
        raise NotImplementedError

    @contextmanager
    def prepared(self) -> Iterator[None]:
        """Eval mode and frozen weights while the method runs (restored afterwards)."""
        if not self.uses_model:
            yield
            return
        with inference_state(self.model, freeze=self.freeze_parameters):
            yield

    def hooks(self) -> HookSet:
        """A HookSet to use as ``with self.hooks() as hooks: hooks.forward(module, fn)``."""
        return HookSet()

    # -- helpers -------------------------------------------------------------------------------------
    def _chunks(self, b: int) -> Iterator[slice]:
        step = self.batch_size or b
        for start in range(0, b, step):
            yield slice(start, min(b, start + step))

    @staticmethod
    def _check_images(images: Tensor) -> None:
        if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(
                f"images must be a float tensor [B, 3, H, W] (normalised), got {shape}"
            )

    def _targets(self, targets: Targets, b: int) -> Tensor | None:
        if targets is None:
            return None
        if isinstance(targets, int):
            t = torch.full((b,), targets, dtype=torch.long)
        else:
            t = torch.as_tensor(targets).long().flatten().cpu()
            if t.numel() != b:
                raise ValueError(f"need one target per image ({b}), got {t.numel()}")
        n = self.model.num_classes
        if ((t < 0) | (t >= n)).any():
            raise ValueError(f"targets must lie in [0, {n}), got {t.tolist()}")
        return t

    def check_output(self, out: Tensor, shape: tuple[int, int, int]) -> Tensor:
        """``out`` detached as float32 maps, after checking its shape ``[B, H, W]`` and that every
        value is finite (a method that overrides ``saliency`` calls it on what it returns)."""
        if tuple(out.shape) != shape:
            raise MapShapeError(f"{self.name}: produced maps {tuple(out.shape)}, expected {shape}")
        out = out.detach().float()
        # A finite sum means every value is finite (NaN and inf propagate): one reduction, no
        # [B, H, W] mask, in the common case; a non-finite sum is checked value by value.
        if not math.isfinite(float(out.sum())) and not torch.isfinite(out).all():
            raise NonFiniteMapError(f"{self.name}: produced non-finite saliency values")
        return out


class PixelMethod(SaliencyMethod):
    """An input-attribution method: :meth:`attribute` gives raw [B, C, H, W] attributions and
    :meth:`reduce` turns them into a [B, H, W] map (documented per method)."""

    kind: ClassVar[str] = "pixel"

    def attribute(self, images: Tensor, targets: Targets = None) -> Tensor:
        """Raw attributions [B, C, H, W], before the channel reduction, in the images' dtype."""
        self._check_images(images)
        targets_t = self._targets(targets, images.shape[0])
        with self.prepared():
            outs = [
                self._attribute(images[sl], None if targets_t is None else targets_t[sl]).detach()
                for sl in self._chunks(images.shape[0])
            ]
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def _attribute(self, images: Tensor, targets: Tensor | None) -> Tensor:
        raise NotImplementedError

    def reduce(self, attributions: Tensor) -> Tensor:
        """Channel reduction [B, C, H, W] -> [B, H, W]; default: max over channels of |a| (Simonyan)."""
        return attributions.abs().amax(dim=1)

    def _saliency(self, images, targets, *, relevance, generator):
        return self.reduce(self._attribute(images, targets))


__all__ = [
    "KINDS",
    "HookSet",
    "MapShapeError",
    "NonFiniteMapError",
    "PixelMethod",
    "SaliencyMethod",
    "Targets",
    "as_tapped",
    "gather_targets",
    "inference_state",
    "resize_map",
]
