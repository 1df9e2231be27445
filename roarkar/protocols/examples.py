"""What a study's input cells trained on, shown: the first val images with each method's stored
ranks applied, KAR keeping and ROAR removing each percent, removed pixels replaced exactly as the
input protocol replaces them. From the study's own data and its precomputed maps (nothing is
explained again); for the report page (:mod:`roarkar.report.page`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from roarkar.config import Config
from roarkar.data import denormalize
from roarkar.protocols.base import base_artifact, base_model_id
from roarkar.protocols.context import make_context
from roarkar.protocols.input import masked_inputs
from roarkar.protocols.precompute import (
    image_parts,
    part_path,
    precompute_artifact,
    read_part,
    shard_images,
)
from roarkar.training import DistInfo

__all__ = ["MaskedExamples", "masked_examples"]


@dataclass(frozen=True)
class MaskedExamples:
    """One method's examples: ``images[(mode, percent)]`` uint8 [n, 3, H, W], ``original`` the
    unmasked ones, ``keys`` their sample keys."""

    method: str
    keys: list[str]
    original: torch.Tensor
    images: dict[tuple[str, float], torch.Tensor]


def masked_examples(
    config: Config, dist: DistInfo, percents: list[float], count: int = 4
) -> MaskedExamples | None:
    """The first ``count`` val images of the input cell ``config`` under its method's stored
    ranks at each of ``percents`` (KAR and ROAR); None when the maps or base model are not
    there yet (the page then says so; nothing is computed here)."""
    ctx = make_context(config, dist)
    base_id = base_model_id(ctx)
    if base_artifact(ctx, base_id).finished() is None:
        return None
    artifact = precompute_artifact(ctx, base_id)
    if artifact.finished() is None:
        return None
    index, first, shard_count = image_parts(ctx, "val")[0]
    held = shard_images(ctx, "val", index, first, shard_count)
    keys = ctx.info.shard_keys("val", index)
    path = part_path(artifact.directory, "val", index)
    n = min(count, len(keys))
    ranks = torch.from_numpy(read_part(path, keys, ctx.info.image_size)[:n].astype("int64"))
    x = ctx.inputs(held.images[:n])
    images = {}
    for mode in ("kar", "roar"):
        for percent in percents:
            noise = torch.Generator(device=x.device).manual_seed(0)  # linear's, for display
            shown = masked_inputs(ctx, x, ranks.to(x.device), mode, percent / 100.0, None, noise)
            images[(mode, float(percent))] = denormalize(shown, ctx.info).cpu()
    return MaskedExamples(ctx.spec.method_id, list(keys[:n]), held.images[:n].clone(), images)
