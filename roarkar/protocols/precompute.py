"""Saliency precompute for the input protocol: one rank map per train and val image, in shards.

Part i of a split holds the ranks of the dataset's image shard i, in the same order, in the image
shards' container (``roarkar.data.npytar``): ``ranks.npy`` (uint16 [N, H, W], int32 above 65536
pixels) and ``keys.json`` (the image shard's sample keys), memory-mapped when read, so a streaming
reader zips the two. Each part is written atomically, so a killed precompute resumes where it
stopped, and a SLURM array can share the parts out (``task=precompute precompute.part=I
precompute.parts=N``: task I computes the parts p with p % N == I). A spec file pins what the maps
are of — base model identity, the SHA-256 of its weights file, method and parameters, target,
the data's fingerprint, the parts' format version — and a directory whose spec differs is stale:
it is moved aside and recomputed, never reused (so are directories of format 1, per-sample
webdataset tars). Before training reads the maps they are verified: each part's keys those of its
image shard, in order, every map a permutation of 0..H*W-1; the record ``manifest.json`` (the
store's "finished") then says so, and streaming skips the permutation check.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from roarkar.data import ImageSplit, load_shard
from roarkar.data.npytar import ArrayTar, write_arrays
from roarkar.identity import precompute_identity, precompute_spec
from roarkar.models import TappedNet
from roarkar.protocols.context import Context
from roarkar.protocols.maps_file import StoredMaps, read_maps
from roarkar.removal import saliency_ranks
from roarkar.saliency import create
from roarkar.saliency.methods.precomputed import PRECOMPUTED
from roarkar.store import Artifact, child_path, file_lock, path_component, write_json_atomic
from roarkar.training.batches import epoch_generator
from roarkar.training.distributed import barrier

log = logging.getLogger(__name__)

SPEC = "spec.json"
MANIFEST = "manifest.json"
RANKS, KEYS = "ranks.npy", "keys.json"
# 2: one ranks.npy + keys.json per image shard (1: per-sample webdataset tars, recomputed)
PARTS_FORMAT = 2


def spec_for(ctx: Context, base_id: str, weights: Path) -> dict:
    """What the maps are of (``roarkar.identity.precompute_spec``) and how their parts are
    stored; any change makes them stale."""
    return precompute_spec(
        dataset=ctx.spec.dataset,
        base_id=base_id,
        weights=weights,
        method=ctx.spec.method,
        target=str(ctx.spec.target),
        seed=ctx.spec.seed,
        data=ctx.info.fingerprint(),  # which image is behind each key (shard order, format)
    ) | {"parts_format": PARTS_FORMAT}


def precompute_dir(ctx: Context, base_id: str) -> Path:
    """``saliency/<dataset>/<method id>-<id8>`` below the results root."""
    return precompute_artifact(ctx, base_id).directory


def precompute_artifact(ctx: Context, base_id: str) -> Artifact:
    """The maps in the store: ``saliency/<dataset>/<method id>-<id8>``, finished when their
    ``manifest.json`` records a full verification."""
    pid = precompute_identity(base_id, ctx.spec.method, str(ctx.spec.target), ctx.spec.dataset)
    name = f"{path_component(ctx.spec.method_id, 'method.id')}-{pid[:8]}"
    directory = child_path(ctx.results, "saliency", (ctx.spec.dataset, "dataset.name"), name)
    return Artifact("precompute", pid, directory, record=MANIFEST)


def image_parts(ctx: Context, split: str) -> list[tuple[int, int, int]]:
    """(shard index, first sample, count) of every image shard of ``split``."""
    offsets, counts = ctx.info.shard_offsets(split), ctx.info.shard_counts(split)
    return [
        (index, first, count)
        for index, (first, count) in enumerate(zip(offsets, counts, strict=True))
    ]


def shard_images(ctx: Context, split: str, index: int, first: int, count: int) -> ImageSplit:
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


def part_path(directory: Path, split: str, index: int) -> Path:
    """The ranks of image shard ``index`` of ``split`` in the maps' folder ``directory``."""
    return directory / f"{split}-{index:06d}.tar"


def stored_maps(ctx: Context) -> dict[str, StoredMaps] | None:
    """``method=precomputed``: its files (``method.params.path``) read and checked against the
    dataset, each error naming the file and the key; None for any other method. Called before
    any model is trained, so a bad file stops the run first."""
    if ctx.spec.method_name != PRECOMPUTED:
        return None
    return read_maps(ctx.method_params()["path"], ctx.info)


def shard_maps(
    ctx: Context, base: TappedNet, part: ImageSplit, first: int, stored: StoredMaps | None = None
) -> Iterator[tuple[torch.Tensor, torch.Generator]]:
    """The float32 maps of one image shard per eval batch (CPU), each with the generator seeded
    by the batch's image position that its ranks then draw from: the method's maps, or with
    ``stored`` those read by sample key (the same ranks as the method's own, when the method
    draws no randomness)."""
    method = (
        None if stored is not None else create(ctx.spec.method_name, base, **ctx.method_params())
    )
    by_label = ctx.spec.target == "label"
    base.eval()
    batch = ctx.settings.eval_batch_size
    for start in range(0, len(part.labels), batch):
        stop = min(start + batch, len(part.labels))
        generator = epoch_generator(ctx.spec.seed, first + start, salt=11)  # by image position
        if stored is not None:
            yield stored.maps(part.keys[start:stop]), generator
            continue
        images = ctx.inputs(part.images[start:stop])
        targets = part.labels[start:stop].to(images.device) if by_label else None
        relevance = (
            part.relevance[start:stop].to(images.device) if part.relevance is not None else None
        )
        maps = method.saliency(images, targets, relevance=relevance, generator=generator)
        yield maps.float().cpu(), generator


def _compute_part(
    ctx: Context, base: TappedNet, part: ImageSplit, first: int, stored: StoredMaps | None
) -> torch.Tensor:
    return torch.cat(
        [
            saliency_ranks(maps, generator).to(torch.int32)
            for maps, generator in shard_maps(ctx, base, part, first, stored)
        ]
    )


def write_part(path: Path, keys: list[str], ranks: torch.Tensor) -> None:
    """Write one part atomically: the ranks [N, H, W] of the samples ``keys``, in that order."""
    if len(keys) != len(ranks):
        raise ValueError(f"{path}: {len(keys)} keys for {len(ranks)} rank maps")
    dtype = np.uint16 if ranks[0].numel() <= 65536 else np.int32
    write_arrays(path, {RANKS: ranks.numpy().astype(dtype)}, {KEYS: json.dumps(keys).encode()})


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
        for index, first, count in image_parts(ctx, split)
        if index % parts == part
    ]
    todo = [job for job in jobs if not part_path(directory, job[0], job[1]).exists()]
    stored = stored_maps(ctx) if todo else None
    for split, index, first, count in tqdm(
        todo, desc=f"saliency {ctx.spec.method_id}", leave=False, disable=not ctx.settings.progress
    ):
        images = shard_images(ctx, split, index, first, count)
        write_part(
            part_path(directory, split, index),
            images.keys,
            _compute_part(ctx, base, images, first, stored and stored[split]),
        )
    return directory


def read_part(path: Path, keys: list[str], size: int, *, verify: bool = True) -> np.ndarray:
    """The ranks of one part, memory-mapped (uint16 or int32 [N, size, size]) and checked: the
    part holds the samples ``keys`` (its image shard's), in order, and, with ``verify``, each map
    is a permutation (streaming skips that once the manifest records a full verification). Every
    error names the file."""
    if not path.exists():
        raise RuntimeError(
            f"saliency part {path} is missing; run task=precompute for it (or the cell again)"
        )
    try:
        tar = ArrayTar(path)
        tar.check({RANKS: ((len(keys), size, size), (np.uint16, np.int32))})
        held = json.loads(tar.member(KEYS))
        if not isinstance(held, list):
            raise ValueError(f"{KEYS} holds a {type(held).__name__}, not a list of keys")
    except Exception as exc:  # noqa: BLE001 - tar, npy, JSON or shape errors: an unusable part
        raise RuntimeError(
            f"saliency part {path} is unreadable ({exc}); delete it to recompute"
        ) from exc
    if held != keys:
        j = next(j for j in range(max(len(held), len(keys))) if held[j : j + 1] != keys[j : j + 1])
        raise RuntimeError(
            f"saliency part {path} holds the maps of other samples than its image shard (key "
            f"{j}: {held[j] if j < len(held) else None!r}, expected "
            f"{keys[j] if j < len(keys) else None!r}); delete it to recompute"
        )
    ranks = tar.map(RANKS)
    flat = ranks.reshape(len(keys), size * size)
    if verify and not (np.sort(flat, axis=1) == np.arange(flat.shape[1])).all():
        raise RuntimeError(
            f"saliency part {path}: some maps are not a permutation of 0..{flat.shape[1] - 1}"
        )
    return ranks


def _record_verified(artifact: Artifact, counts: dict[str, int]) -> None:
    """Mark the maps finished: every part read and verified (``manifest.json``: spec and counts)."""
    spec = json.loads((artifact.directory / SPEC).read_text())
    artifact.write_record(spec | {"status": "ok", "counts": counts, "verified": True})


def ensure_ranks(ctx: Context, base: TappedNet, base_id: str, weights: Path) -> dict[str, object]:
    """Ranks of every train and val image for the configured method, computed once (what is missing)
    and verified. In memory: an int32 tensor per split. Streaming: a function giving each image
    shard's ranks memory-mapped, for :class:`~roarkar.training.streaming.ShardBatches`. Rank 0
    computes; others wait."""
    if ctx.dist.is_main:
        compute_parts(ctx, base, base_id, weights)
    barrier(ctx.dist)
    artifact = precompute_artifact(ctx, base_id)
    size = ctx.info.image_size

    def part(split: str, index: int, verify: bool = True) -> np.ndarray:
        path = part_path(artifact.directory, split, index)
        return read_part(path, ctx.info.shard_keys(split, index), size, verify=verify)

    counts = {split: len(ctx.info.shard_counts(split)) for split in ("train", "val")}
    if ctx.train is not None:
        ranks = {
            split: torch.cat([torch.from_numpy(part(split, i).astype(np.int32)) for i in range(n)])
            for split, n in counts.items()
        }
        if ctx.dist.is_main and artifact.finished() is None:
            _record_verified(artifact, {split: len(r) for split, r in ranks.items()})
        return ranks
    if artifact.finished() is None:
        if ctx.dist.is_main:  # streaming: verify part by part, holding one part at a time
            _record_verified(
                artifact,
                {split: sum(len(part(split, i)) for i in range(n)) for split, n in counts.items()},
            )
        barrier(ctx.dist)

    def attach_for(split: str):
        def attach(index: int) -> dict[str, np.ndarray]:
            return {"ranks": part(split, index, verify=False)}

        return attach

    return {split: attach_for(split) for split in counts}
