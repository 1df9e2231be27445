"""Saliency precompute for the input protocol: one rank map per train and val image, in shards.

Part i of a split holds the maps of the dataset's image shard i, in the same order, so a streaming
reader zips the two. Each part is written atomically, so a killed precompute resumes where it
stopped, and a SLURM array can share the parts out (``task=precompute precompute.part=I
precompute.parts=N``: task I computes the parts p with p % N == I). A spec file pins what the maps are of — base model identity, the SHA-256 of its weights
file, method and parameters, target — and a directory whose spec differs is stale: it is moved
aside and recomputed, never reused. Before training reads the maps they are verified: every key
present once, counts as in the dataset, every map a permutation of 0..H*W-1.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from tqdm.auto import tqdm

from roarkar.data import ImageSplit, load_shard
from roarkar.data.shards import sample_key
from roarkar.files import atomic_write
from roarkar.identity import precompute_identity, precompute_spec
from roarkar.models import TappedNet
from roarkar.protocols.context import Context
from roarkar.removal import saliency_ranks
from roarkar.saliency import create
from roarkar.store import file_lock, write_json_atomic
from roarkar.training.batches import epoch_generator
from roarkar.training.distributed import barrier

log = logging.getLogger(__name__)

SPEC = "spec.json"
MANIFEST = "manifest.json"


def spec_for(ctx: Context, base_id: str, weights: Path) -> dict:
    """What the maps are of (``roarkar.identity.precompute_spec``); any change makes them stale."""
    return precompute_spec(
        dataset=ctx.spec.dataset,
        base_id=base_id,
        weights=weights,
        method=ctx.spec.method,
        target=str(ctx.spec.target),
        seed=ctx.spec.seed,
        data=ctx.info.fingerprint(),  # which image is behind each key (shard order, format)
    )


def precompute_dir(ctx: Context, base_id: str) -> Path:
    """``saliency/<dataset>/<method id>-<id8>`` below the results root."""
    pid = precompute_identity(base_id, ctx.spec.method, str(ctx.spec.target), ctx.spec.dataset)
    return ctx.results / "saliency" / ctx.spec.dataset / f"{ctx.spec.method_id}-{pid[:8]}"


def _parts(ctx: Context, split: str) -> list[tuple[int, int, int]]:
    """(shard index, first sample, count) of every image shard of ``split``."""
    out, first = [], 0
    for index, entry in enumerate(ctx.info.shards[split]):
        out.append((index, first, int(entry["count"])))
        first += int(entry["count"])
    return out


def _shard_images(ctx: Context, split: str, index: int, first: int, count: int) -> ImageSplit:
    held = ctx.train if split == "train" else ctx.val
    if held is None:  # streaming: read the shard itself
        return load_shard(ctx.info, split, index)
    rel = held.relevance[first : first + count] if held.relevance is not None else None
    return ImageSplit(
        held.images[first : first + count],
        held.labels[first : first + count],
        rel,
        held.keys[first : first + count],
    )


def _part_path(directory: Path, split: str, index: int) -> Path:
    return directory / f"{split}-{index:06d}.tar"


def _compute_part(ctx: Context, base: TappedNet, part: ImageSplit, first: int) -> torch.Tensor:
    method = create(ctx.spec.method_name, base, **ctx.method_params())
    by_label = ctx.spec.target == "label"
    base.eval()
    out = []
    batch = ctx.settings.eval_batch_size
    for start in range(0, len(part.labels), batch):
        stop = min(start + batch, len(part.labels))
        images = ctx.inputs(part.images[start:stop])
        targets = part.labels[start:stop].to(images.device) if by_label else None
        relevance = (
            part.relevance[start:stop].to(images.device) if part.relevance is not None else None
        )
        generator = epoch_generator(ctx.spec.seed, first + start, salt=11)  # by image position
        maps = method.saliency(images, targets, relevance=relevance, generator=generator)
        out.append(saliency_ranks(maps.float().cpu(), generator).to(torch.int32))
    return torch.cat(out)


def _write_part(path: Path, keys: list[str], ranks: torch.Tensor) -> None:
    dtype = np.uint16 if ranks[0].numel() <= 65536 else np.int32
    with atomic_write(path) as tmp, wds.TarWriter(str(tmp)) as sink:
        for key, rank in zip(keys, ranks, strict=True):
            buffer = io.BytesIO()
            np.save(buffer, rank.numpy().astype(dtype))
            sink.write({"__key__": key, "ranks.npy": buffer.getvalue()})


def _open_directory(directory: Path, spec: dict) -> None:
    """Create the directory for ``spec``, moving a stale one (other spec) aside first."""
    path = directory / SPEC
    if path.exists():
        if json.loads(path.read_text()) == spec:
            return
        stale = directory.with_name(f"{directory.name}.stale-{int(time.time())}")
        log.warning(
            "saliency maps in %s are stale (spec changed); moved to %s and recomputing",
            directory,
            stale,
        )
        shutil.move(str(directory), stale)
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, spec)


def compute_parts(
    ctx: Context, base: TappedNet, base_id: str, weights: Path, part: int = 0, parts: int = 1
) -> Path:
    """Compute this worker's missing parts (p % parts == part) and return the directory."""
    if not 0 <= part < parts:
        raise ValueError(f"precompute.part={part} must be in [0, precompute.parts={parts})")
    directory = precompute_dir(ctx, base_id)
    spec = spec_for(ctx, base_id, weights)
    with file_lock(directory.parent / f".{directory.name}.lock"):
        _open_directory(directory, spec)
    jobs = [
        (split, index, first, count)
        for split in ("train", "val")
        for index, first, count in _parts(ctx, split)
        if index % parts == part
    ]
    todo = [job for job in jobs if not _part_path(directory, job[0], job[1]).exists()]
    for split, index, first, count in tqdm(
        todo, desc=f"saliency {ctx.spec.method_id}", leave=False, disable=not ctx.settings.progress
    ):
        images = _shard_images(ctx, split, index, first, count)
        _write_part(
            _part_path(directory, split, index),
            images.keys,
            _compute_part(ctx, base, images, first),
        )
    return directory


def read_part(
    directory: Path, split: str, index: int, first: int, count: int, *, verify: bool = True
) -> torch.Tensor:
    """Ranks of one part, checked: the image shard's keys in order and, with ``verify``, each map a
    permutation (streaming skips that after the manifest records a full verification)."""
    path = _part_path(directory, split, index)
    if not path.exists():
        raise RuntimeError(
            f"saliency part {path} is missing; run task=precompute for it (or the cell again)"
        )
    keys, maps = [], []
    try:
        for sample in wds.WebDataset(
            str(path), shardshuffle=False, empty_check=False, nodesplitter=None, workersplitter=None
        ):
            keys.append(sample["__key__"])
            maps.append(
                np.load(io.BytesIO(sample["ranks.npy"]), allow_pickle=False).astype(np.int32)
            )
    except Exception as exc:
        raise RuntimeError(
            f"saliency part {path} is unreadable ({exc}); delete it to recompute"
        ) from exc
    expected = [sample_key(split, first + j) for j in range(count)]
    if keys != expected:
        missing = sorted(set(expected) - set(keys))[:3]
        raise RuntimeError(
            f"saliency part {path} holds {len(keys)} maps, not the {count} of image shard {index} "
            f"in order (first missing: {missing}); delete it to recompute"
        )
    ranks = torch.from_numpy(np.stack(maps))
    flat = ranks.flatten(1)
    if verify and not (flat.sort(1).values == torch.arange(flat.shape[1])).all():
        raise RuntimeError(
            f"saliency part {path}: some maps are not a permutation of 0..{flat.shape[1] - 1}"
        )
    return ranks


def _write_manifest(directory: Path, counts: dict[str, int]) -> None:
    spec = json.loads((directory / SPEC).read_text())
    write_json_atomic(directory / MANIFEST, spec | {"counts": counts, "verified": True})


def ensure_ranks(ctx: Context, base: TappedNet, base_id: str, weights: Path) -> dict[str, object]:
    """Ranks of every train and val image for the configured method, computed once (what is missing)
    and verified. In memory: a tensor per split. Streaming: a function giving each image shard's
    ranks, for :class:`~roarkar.training.streaming.ShardBatches`. Rank 0 computes; others wait."""
    if ctx.dist.is_main:
        compute_parts(ctx, base, base_id, weights)
    barrier(ctx.dist)
    directory = precompute_dir(ctx, base_id)
    layout = {split: _parts(ctx, split) for split in ("train", "val")}
    if ctx.train is not None:
        ranks = {
            split: torch.cat([read_part(directory, split, *part) for part in parts])
            for split, parts in layout.items()
        }
        if ctx.dist.is_main and not (directory / MANIFEST).exists():
            _write_manifest(directory, {split: len(r) for split, r in ranks.items()})
        return ranks
    if not (directory / MANIFEST).exists():
        if ctx.dist.is_main:  # streaming: verify part by part, holding one part at a time
            counts = {
                split: sum(len(read_part(directory, split, *part)) for part in parts)
                for split, parts in layout.items()
            }
            _write_manifest(directory, counts)
        barrier(ctx.dist)

    def attach_for(split: str):
        def attach(index: int) -> dict[str, torch.Tensor]:
            _, first, count = layout[split][index]
            return {"ranks": read_part(directory, split, index, first, count, verify=False)}

        return attach

    return {split: attach_for(split) for split in layout}
