"""Saliency precompute for the input protocol: one rank map per train and val image, in shards.

The work is cut into parts of ``precompute.part_size`` images per split, each written atomically as
its own shard, so a killed precompute resumes where it stopped and a SLURM array can share it out
(``task=precompute precompute.part=I precompute.parts=N``: task I computes the parts p with
p % N == I). A spec file pins what the maps are of — base model identity, the SHA-256 of its weights
file, method and parameters, target — and a directory whose spec differs is stale: it is moved
aside and recomputed, never reused. Before training reads the maps they are verified: every key
present once, counts as in the dataset, every map a permutation of 0..H*W-1.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from roarkar.data import ImageSplit
from roarkar.masking import saliency_ranks
from roarkar.models import TappedResNet
from roarkar.protocols.context import Context
from roarkar.saliency import create
from roarkar.store import file_lock, identity_hash, write_json_atomic
from roarkar.training.batches import epoch_generator
from roarkar.training.distributed import barrier

log = logging.getLogger(__name__)

SPEC = "spec.json"
MANIFEST = "manifest.json"
TARGETS = ("predicted", "label")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def spec_for(ctx: Context, base_id: str, weights: Path) -> dict:
    """What the maps are of; any change makes earlier maps stale."""
    target = str(ctx.cfg.protocol.target)
    if target not in TARGETS:
        raise ValueError(f"protocol.target={target!r}: expected one of {', '.join(TARGETS)}")
    return {
        "dataset": str(ctx.cfg.dataset.name),
        "base_model": base_id,
        "weights_sha256": file_sha256(weights),
        "method": OmegaConf.to_container(ctx.cfg.method, resolve=True),
        "target": target,
        "seed": int(ctx.cfg.seed),
        "part_size": part_size(ctx),
    }


def part_size(ctx: Context) -> int:
    """Images per part, a multiple of the batch so maps do not depend on how parts are shared out."""
    batch = ctx.settings.eval_batch_size
    return max(batch, math.ceil(int(ctx.cfg.precompute.part_size) / batch) * batch)


def precompute_dir(ctx: Context, base_id: str) -> Path:
    pid = identity_hash(
        {
            "base": base_id,
            "method": ctx.cfg.method,
            "target": ctx.cfg.protocol.target,
            "dataset": ctx.cfg.dataset.name,
        }
    )
    return ctx.results / "saliency" / str(ctx.cfg.dataset.name) / f"{ctx.cfg.method.id}-{pid[:8]}"


def _parts(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _part_path(directory: Path, split: str, index: int) -> Path:
    return directory / f"{split}-{index:06d}.tar"


def _compute_part(
    ctx: Context, base: TappedResNet, split: ImageSplit, name: str, span: tuple[int, int]
) -> torch.Tensor:
    method = create(str(ctx.cfg.method.name), base, **ctx.method_params())
    by_label = str(ctx.cfg.protocol.target) == "label"
    base.eval()
    out = []
    batch = ctx.settings.eval_batch_size
    for start in range(span[0], span[1], batch):
        stop = min(start + batch, span[1])
        images = ctx.inputs(split.images[start:stop])
        targets = split.labels[start:stop].to(images.device) if by_label else None
        relevance = (
            split.relevance[start:stop].to(images.device) if split.relevance is not None else None
        )
        generator = epoch_generator(
            int(ctx.cfg.seed), start, salt=11
        )  # by image position: reproducible
        maps = method.saliency(images, targets, relevance=relevance, generator=generator)
        out.append(saliency_ranks(maps.float().cpu(), generator).to(torch.int32))
    return torch.cat(out)


def _write_part(path: Path, keys: list[str], ranks: torch.Tensor) -> None:
    dtype = np.uint16 if ranks[0].numel() <= 65536 else np.int32
    tmp = path.with_name(f".{path.name}.tmp")
    with wds.TarWriter(str(tmp)) as sink:
        for key, rank in zip(keys, ranks, strict=True):
            buffer = io.BytesIO()
            np.save(buffer, rank.numpy().astype(dtype))
            sink.write({"__key__": key, "ranks.npy": buffer.getvalue()})
    tmp.replace(path)


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
    ctx: Context, base: TappedResNet, base_id: str, weights: Path, part: int = 0, parts: int = 1
) -> Path:
    """Compute this worker's missing parts (p % parts == part) and return the directory."""
    if not 0 <= part < parts:
        raise ValueError(f"precompute.part={part} must be in [0, precompute.parts={parts})")
    directory = precompute_dir(ctx, base_id)
    spec = spec_for(ctx, base_id, weights)
    with file_lock(directory.parent / f".{directory.name}.lock"):
        _open_directory(directory, spec)
    size = spec["part_size"]
    jobs = [
        (name, split, i, span)
        for name, split in (("train", ctx.train), ("val", ctx.val))
        for i, span in enumerate(_parts(len(split.labels), size))
        if i % parts == part
    ]
    todo = [j for j in jobs if not _part_path(directory, j[0], j[2]).exists()]
    for name, split, index, span in tqdm(
        todo, desc=f"saliency {ctx.cfg.method.id}", leave=False, disable=not ctx.settings.progress
    ):
        ranks = _compute_part(ctx, base, split, name, span)
        _write_part(_part_path(directory, name, index), split.keys[span[0] : span[1]], ranks)
    return directory


def _read_split(directory: Path, name: str, split: ImageSplit, size: int) -> torch.Tensor:
    found: dict[str, np.ndarray] = {}
    for index, _ in enumerate(_parts(len(split.labels), size)):
        path = _part_path(directory, name, index)
        if not path.exists():
            raise RuntimeError(
                f"saliency part {path} is missing; run task=precompute for it (or the cell again)"
            )
        try:
            for sample in wds.WebDataset(str(path), shardshuffle=False, empty_check=False):
                if sample["__key__"] in found:
                    raise RuntimeError(f"key {sample['__key__']} appears twice")
                found[sample["__key__"]] = np.load(io.BytesIO(sample["ranks.npy"]))
        except Exception as exc:
            raise RuntimeError(
                f"saliency part {path} is unreadable or inconsistent ({exc}); delete it to recompute"
            ) from exc
    missing = [k for k in split.keys if k not in found]
    if missing or len(found) != len(split.keys):
        raise RuntimeError(
            f"{directory}: {len(found)} maps for {len(split.keys)} {name} images "
            f"(first missing: {missing[:3]}); delete the affected parts to recompute"
        )
    ranks = torch.from_numpy(np.stack([found[k].astype(np.int32) for k in split.keys]))
    flat = ranks.flatten(1)
    if (
        not (flat.min(1).values == 0).all()
        or not (flat.max(1).values == flat.shape[1] - 1).all()
        or not (flat.sort(1).values == torch.arange(flat.shape[1])).all()
    ):
        raise RuntimeError(
            f"{directory}: some {name} maps are not a permutation of 0..{flat.shape[1] - 1}"
        )
    return ranks


def ensure_ranks(
    ctx: Context, base: TappedResNet, base_id: str, weights: Path
) -> dict[str, torch.Tensor]:
    """Ranks of every train and val image for the configured method: computed once (what is missing),
    verified, then read. Rank 0 computes; the other ranks wait and read."""
    if ctx.dist.is_main:
        directory = compute_parts(ctx, base, base_id, weights)
    barrier(ctx.dist)
    directory = precompute_dir(ctx, base_id)
    size = json.loads((directory / SPEC).read_text())["part_size"]
    ranks = {
        name: _read_split(directory, name, split, size)
        for name, split in (("train", ctx.train), ("val", ctx.val))
    }
    if ctx.dist.is_main and not (directory / MANIFEST).exists():
        write_json_atomic(
            directory / MANIFEST,
            json.loads((directory / SPEC).read_text())
            | {"counts": {k: len(v) for k, v in ranks.items()}, "verified": True},
        )
    return ranks
