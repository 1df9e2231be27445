"""``method=precomputed``: maps computed elsewhere, read from files by sample key.

The maps come from ``method.params.path`` (format: docs/methods.md, "Maps computed elsewhere";
reader: ``roarkar.protocols.maps_file``), never from images, so the method has no image -> map
function: the input protocol's precompute recognises it (:data:`PRECOMPUTED`) and reads each
image's map by its key. It cannot run in the layer protocol (no per-tap maps), nor in the
perturbation metrics or the gallery, which explain images rather than sample keys.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from roarkar.saliency.base import SaliencyMethod
from roarkar.saliency.registry import register

PRECOMPUTED = "precomputed"


@register(
    PRECOMPUTED, label="Precomputed", reference="maps computed elsewhere (method.params.path)"
)
class PrecomputedMaps(SaliencyMethod):
    """Maps read from the files under ``path`` by sample key (input protocol only)."""

    kind: ClassVar[str] = "pixel"
    uses_model: ClassVar[bool] = False

    def __init__(self, model: nn.Module, *, path: str | None = None, batch_size: int | None = None):
        super().__init__(model, batch_size=batch_size)
        self.path = path

    def _saliency(self, images, targets, *, relevance, generator):
        raise ValueError(
            f"method={PRECOMPUTED} has no maps of its own: its maps are read from "
            f"method.params.path={self.path} by sample key, by the input protocol only"
        )
