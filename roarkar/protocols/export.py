"""``task=export_maps method=X``: any method's maps of every train and val image, written in the
format ``method=precomputed`` reads (``roarkar.protocols.maps_file``), so maps can be studied,
shared, or run back through the protocols. The base model is trained or found as for a cell, and
the maps are the input protocol's own (same batches, targets and per-image seeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from roarkar.config import Config, resolve
from roarkar.files import child_path, path_component
from roarkar.protocols.base import ensure_base_model
from roarkar.protocols.context import Context, make_context
from roarkar.protocols.maps_file import SPLITS, dataset_meta, write_maps, write_meta
from roarkar.protocols.precompute import (
    image_parts,
    precompute_artifact,
    shard_images,
    shard_maps,
    stored_maps,
)
from roarkar.training import setup


def export_directory(ctx: Context, base_id: str) -> Path:
    """``export.path``, else ``<results>/maps/<method id>-<id8>`` (id8: the precompute's)."""
    chosen = ctx.config.export.path
    if chosen:
        return Path(str(chosen))
    identity = precompute_artifact(ctx, base_id).identity
    name = f"{path_component(ctx.spec.method_id, 'method.id')}-{identity[:8]}"
    return child_path(ctx.results, "maps", name)


def run_export_maps(cfg: DictConfig | Config) -> dict:
    """Compute the configured method's maps of both splits and write them; returns the
    directory and the number of maps per split (an edge: a composed config is resolved here)."""
    config = resolve(cfg)
    ctx = make_context(config, setup(str(config.device)))
    stored = stored_maps(ctx)  # method=precomputed: its files checked before any training
    base, base_id, _ = ensure_base_model(ctx)
    directory = export_directory(ctx, base_id)
    counts = {}
    for split in SPLITS:
        keys: list[str] = []
        maps: list[torch.Tensor] = []
        for index, first, count in tqdm(
            image_parts(ctx, split),
            desc=f"export {ctx.spec.method_id} {split}",
            leave=False,
            disable=not ctx.settings.progress,
        ):
            images = shard_images(ctx, split, index, first, count)
            keys += images.keys
            held = stored and stored[split]
            maps += [batch for batch, _ in shard_maps(ctx, base, images, first, held)]
        size = (ctx.info.image_size,) * 2
        array = torch.cat(maps).numpy() if maps else np.zeros((0, *size), np.float32)
        if ctx.dist.is_main:
            write_maps(directory, split, keys, array)
        counts[split] = len(keys)
    if ctx.dist.is_main:
        write_meta(
            directory,
            dataset_meta(ctx.info)
            | {
                "method": ctx.spec.method,
                "base_model": base_id,
                "target": ctx.spec.target or "predicted",
                "seed": ctx.spec.seed,
                "counts": counts,
            },
        )
    return {"directory": str(directory), "counts": counts}
