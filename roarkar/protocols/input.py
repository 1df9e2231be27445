"""Input protocol (paper Sec 3.2, Tables 2 and 5; Hooker et al. 2019).

1. Precompute: the trained base model explains every train and val image once (eval preprocessing,
   argmax class unless configured), and the map is stored as per-pixel ranks with ties already
   broken, in webdataset shards beside a manifest naming the base model and method.
2. Retrain: a fresh model is trained from scratch on masked images; KAR keeps ``percent`` of the
   most salient pixels, ROAR removes them; removed pixels take the dataset's channel mean. Masking
   happens on the device before augmentation, so the augmentation sees the masked image.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from roarkar.data import ImageSplit
from roarkar.masking import apply_keep_mask, keep_mask_from_ranks, saliency_ranks
from roarkar.models import TappedResNet
from roarkar.protocols.base import new_model
from roarkar.protocols.context import Context
from roarkar.saliency import create
from roarkar.store import file_lock, identity_hash, write_json_atomic
from roarkar.training import ArrayBatches, FitResult, fit
from roarkar.training.batches import epoch_generator
from roarkar.training.distributed import barrier

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TARGETS = ("predicted", "label")
REPLACEMENTS = ("mean", "zero")


def precompute_identity(ctx: Context, base_id: str) -> str:
    protocol = ctx.cfg.protocol
    return identity_hash(
        {
            "base": base_id,
            "method": ctx.cfg.method,
            "target": protocol.target,
            "dataset": ctx.cfg.dataset.name,
        }
    )


def precompute_dir(ctx: Context, precompute_id: str) -> Path:
    return (
        ctx.results
        / "saliency"
        / str(ctx.cfg.dataset.name)
        / f"{ctx.cfg.method.id}-{precompute_id[:8]}"
    )


def _split_ranks(
    ctx: Context, base: TappedResNet, split: ImageSplit, name: str, seed: int
) -> torch.Tensor:
    """Ranks [N, H, W] of one split's maps, computed in batches."""
    method = create(
        str(ctx.cfg.method.name),
        base,
        **(OmegaConf.to_container(ctx.cfg.method.get("params", {}), resolve=True) or {}),
    )
    target_kind = str(ctx.cfg.protocol.target)
    if target_kind not in TARGETS:
        raise ValueError(f"protocol.target={target_kind!r}: expected one of {', '.join(TARGETS)}")
    base.eval()
    out = []
    batch = ctx.settings.eval_batch_size
    for start in tqdm(
        range(0, len(split.labels), batch),
        desc=f"saliency {ctx.cfg.method.id} {name}",
        leave=False,
        disable=not ctx.settings.progress,
    ):
        stop = start + batch
        images = ctx.inputs(split.images[start:stop])
        targets = split.labels[start:stop].to(images.device) if target_kind == "label" else None
        relevance = (
            split.relevance[start:stop].to(images.device) if split.relevance is not None else None
        )
        generator = epoch_generator(
            seed, start, salt=11
        )  # fixed per image position: reproducible maps
        maps = method.saliency(images, targets, relevance=relevance, generator=generator)
        out.append(saliency_ranks(maps.float().cpu(), generator).to(torch.int32))
    return torch.cat(out)


def _write_shards(directory: Path, split: str, keys: list[str], ranks: torch.Tensor) -> int:
    dtype = np.uint16 if ranks[0].numel() <= 65536 else np.int32
    with wds.TarWriter(str(directory / f"{split}-000000.tar")) as sink:
        for key, rank in zip(keys, ranks, strict=True):
            buffer = io.BytesIO()
            np.save(buffer, rank.numpy().astype(dtype))
            sink.write({"__key__": key, "ranks.npy": buffer.getvalue()})
    return len(keys)


def _read_shards(directory: Path, split: str, keys: list[str]) -> torch.Tensor:
    path = directory / f"{split}-000000.tar"
    found: dict[str, np.ndarray] = {}
    try:
        for sample in wds.WebDataset(str(path), shardshuffle=False, empty_check=False):
            found[sample["__key__"]] = np.load(io.BytesIO(sample["ranks.npy"]))
    except Exception as exc:
        raise RuntimeError(
            f"saliency shard {path} is unreadable ({exc}); delete {directory} to recompute"
        ) from exc
    missing = [k for k in keys if k not in found]
    if missing or len(found) != len(keys):
        raise RuntimeError(
            f"saliency shard {path} has {len(found)} maps for {len(keys)} images "
            f"(first missing: {missing[:3]}); delete {directory} to recompute"
        )
    return torch.from_numpy(np.stack([found[k].astype(np.int32) for k in keys]))


def ensure_ranks(ctx: Context, base: TappedResNet, base_id: str) -> dict[str, torch.Tensor]:
    """Per-pixel ranks of every train and val image for the configured method, computed once."""
    precompute_id = precompute_identity(ctx, base_id)
    directory = precompute_dir(ctx, precompute_id)
    with file_lock(directory.parent / f".{directory.name}.lock"):
        if ctx.dist.is_main and not (directory / MANIFEST).exists():
            staging = directory.with_name(f".{directory.name}.staging")
            staging.mkdir(parents=True, exist_ok=True)
            counts = {}
            for name, split in (("train", ctx.train), ("val", ctx.val)):
                ranks = _split_ranks(ctx, base, split, name, int(ctx.cfg.seed))
                counts[name] = _write_shards(staging, name, split.keys, ranks)
            write_json_atomic(
                staging / MANIFEST,
                {
                    "identity": precompute_id,
                    "base_model": base_id,
                    "method": OmegaConf.to_container(ctx.cfg.method, resolve=True),
                    "target": str(ctx.cfg.protocol.target),
                    "counts": counts,
                    "dataset": str(ctx.cfg.dataset.name),
                },
            )
            staging.replace(directory)
    barrier(ctx.dist)
    return {
        name: _read_shards(directory, name, split.keys)
        for name, split in (("train", ctx.train), ("val", ctx.val))
    }


def run_input_cell(
    ctx: Context,
    ranks: dict[str, torch.Tensor],
    mode: str,
    fraction: float,
    identity: str,
    checkpoint,
    heartbeat=None,
) -> FitResult:
    """Train a fresh model on masked images and return its final held-out accuracy."""
    replacement = str(ctx.cfg.protocol.replacement)
    if replacement not in REPLACEMENTS:
        raise ValueError(
            f"protocol.replacement={replacement!r}: expected one of {', '.join(REPLACEMENTS)}"
        )
    # On normalised images the channel mean is 0; black is (0 - mean) / std per channel.
    fill = (
        0.0 if replacement == "mean" else -torch.tensor(ctx.info.mean) / torch.tensor(ctx.info.std)
    )
    model = new_model(ctx)

    def prepare(batch, train, generator):
        x = ctx.inputs(batch["images"])
        keep = keep_mask_from_ranks(batch["ranks"].to(x.device), mode, fraction)
        x = apply_keep_mask(x, keep, fill)
        if train:
            x = ctx.augment(x, generator)
        return x, batch["labels"].to(ctx.dist.device), {}

    def arrays(split: ImageSplit, name: str) -> dict:
        return {"images": split.images, "labels": split.labels, "ranks": ranks[name]}

    return fit(
        model,
        list(model.parameters()),
        prepare,
        ArrayBatches(arrays(ctx.train, "train"), ctx.rank_batch_size, ctx.dist),
        ArrayBatches(arrays(ctx.val, "val"), ctx.settings.eval_batch_size, ctx.dist),
        ctx.stage_settings("input"),
        epochs=ctx.epochs("input"),
        seed=int(ctx.cfg.seed),
        checkpoint=checkpoint,
        identity=identity,
        dist=ctx.dist,
        desc=f"input {mode} {fraction:.0%} {ctx.cfg.method.id}",
        heartbeat=heartbeat,
    )
