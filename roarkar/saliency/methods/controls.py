"""Control maps: a random map (the ROAR/KAR baseline) and, on synthetic data, the ground truth."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from roarkar.models.receptive import ReceptiveField, effective_receptive_field
from roarkar.saliency.base import SaliencyMethod, resize_map
from roarkar.saliency.registry import register


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=device).to(like.device)


@register("random", label="Random", reference="Hooker et al. 2019; Mundhenk et al. 2020, Table 4")
class RandomMap(SaliencyMethod):
    """Uniform random map, one per image, drawn from ``generator`` (the global RNG if None).

    The whole batch is drawn at once (no chunking), so the maps do not depend on ``batch_size``. Pass a
    generator seeded per image to get a map fixed per image.
    """

    kind: ClassVar[str] = "control"
    supports_layer: ClassVar[bool] = True
    uses_model: ClassVar[bool] = False

    def saliency(self, images, targets=None, *, relevance=None, generator=None) -> Tensor:
        self._check_images(images)
        b, _, h, w = images.shape
        self._targets(targets, b)
        return self.check_output(_uniform((b, h, w), generator, images), (b, h, w))

    def tap_saliency(self, act, *, relevance=None, generator=None) -> Tensor:
        """Uniform random map [B, h, w] at the tap's resolution."""
        b, _, h, w = act.post.shape
        return _uniform((b, h, w), generator, act.post)


GROUND_TRUTH_ERROR = "ground_truth needs the dataset's relevance maps (synthetic datasets only)"


FIELDS = ("effective", "downsampled")


@register(
    "ground_truth", label="Ground Truth", reference="synthetic datasets: the generator's relevance"
)
class GroundTruthMap(SaliencyMethod):
    """The dataset's ground-truth relevance map.

    On the input it is the generator's map. At a tap (layer protocol), ``field="effective"`` gives
    each location the relevance it sees: the input map weighted by the tap's effective receptive
    field, measured on this model (``roarkar.models.receptive``). ``field="downsampled"`` is the map
    area-resized to the tap, which leaks the object at shallow taps (a 3x3 stem sees it from a ring
    around it) and removes nothing at deep ones (kept for comparison).
    """

    kind: ClassVar[str] = "control"
    supports_layer: ClassVar[bool] = True
    uses_model: ClassVar[bool] = False

    def __init__(self, model, *, field: str = "effective", batch_size: int | None = None):
        super().__init__(model, batch_size=batch_size)
        if field not in FIELDS:
            raise ValueError(f"ground_truth: field={field!r}, expected one of {list(FIELDS)}")
        self.field = field
        self._tap: str | None = None
        self._fields: dict[tuple[str, int], ReceptiveField] = {}

    def bind_tap(self, tap: str) -> None:
        self._tap = tap

    def _saliency(self, images, targets, *, relevance, generator):
        if relevance is None:
            raise ValueError(GROUND_TRUTH_ERROR)
        return resize_map(relevance.float(), tuple(images.shape[-2:]))

    def receptive_field(self, tap: str, image_size: int) -> ReceptiveField:
        """The tap's effective receptive field on this model, measured once."""
        key = (tap, image_size)
        if key not in self._fields:
            self._fields[key] = effective_receptive_field(
                self.model.prefix_sequential(tap), image_size
            )
        return self._fields[key]

    def tap_saliency(self, act, *, relevance=None, generator=None) -> Tensor:
        """The relevance each location of the tap sees [B, h, w] (see the class docstring)."""
        if relevance is None:
            raise ValueError(GROUND_TRUTH_ERROR)
        size = tuple(act.post.shape[-2:])
        if self.field == "downsampled":
            return resize_map(relevance.float(), size).to(act.post.device)
        if self._tap is None:
            raise ValueError(
                "ground_truth at a tap needs to know which tap (bind_tap(tap); the layer protocol "
                "does this), or field=downsampled"
            )
        field = self.receptive_field(self._tap, relevance.shape[-1])
        if field.size != size:
            raise ValueError(
                f"tap {self._tap} is {size}, its receptive field was measured {field.size}"
            )
        return field.carry(relevance.float().to(field.kernel.device)).to(act.post.device)


__all__ = ["GROUND_TRUTH_ERROR", "GroundTruthMap", "RandomMap"]
