"""Control maps: a random map (the ROAR/KAR baseline) and, on synthetic data, the ground truth."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

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
        return self._check_output(_uniform((b, h, w), generator, images), (b, h, w))

    def tap_saliency(self, act, *, relevance=None, generator=None) -> Tensor:
        """Uniform random map [B, h, w] at the tap's resolution."""
        b, _, h, w = act.post.shape
        return _uniform((b, h, w), generator, act.post)


GROUND_TRUTH_ERROR = "ground_truth needs the dataset's relevance maps (synthetic datasets only)"


@register(
    "ground_truth", label="Ground Truth", reference="synthetic datasets: the generator's relevance"
)
class GroundTruthMap(SaliencyMethod):
    """The dataset's ground-truth relevance map, resized with area interpolation when needed."""

    kind: ClassVar[str] = "control"
    supports_layer: ClassVar[bool] = True
    uses_model: ClassVar[bool] = False

    def _saliency(self, images, targets, *, relevance, generator):
        if relevance is None:
            raise ValueError(GROUND_TRUTH_ERROR)
        return resize_map(relevance.float(), tuple(images.shape[-2:]))

    def tap_saliency(self, act, *, relevance=None, generator=None) -> Tensor:
        """The relevance map area-resized to the tap's resolution [B, h, w]."""
        if relevance is None:
            raise ValueError(GROUND_TRUTH_ERROR)
        return resize_map(relevance.float(), tuple(act.post.shape[-2:])).to(act.post.device)


__all__ = ["GROUND_TRUTH_ERROR", "GroundTruthMap", "RandomMap"]
