"""The one file format of saliency maps computed elsewhere (docs/methods.md, "Maps computed
elsewhere"): what ``task=export_maps`` writes and ``method=precomputed`` reads.

A directory holds ``train.npz`` and ``val.npz``, each with ``maps`` (float32 [N, H, W], one map
per sample), ``keys`` (str [N], the dataset's sample keys, any order) and ``split`` (the split's
name), plus ``meta.json`` (format, dataset name, its content identity, image size, and what the
maps are of). Files are read with ``allow_pickle=False``: a file that would need unpickling is
refused, never loaded. Every map of the dataset must be there with the right shape, else an
error names the file and the first missing or misshapen key, before any model is trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from roarkar.data import DatasetInfo
from roarkar.files import atomic_write, write_text_atomic

FORMAT = 1
META = "meta.json"
SPLITS = ("train", "val")
ARRAYS = ("maps", "keys", "split")
REFUSED = "refused: the file would run code (pickled data); roarkar never loads such files"


def maps_path(directory: Path, split: str) -> Path:
    """``<directory>/<split>.npz``."""
    return Path(directory) / f"{split}.npz"


def dataset_meta(info: DatasetInfo) -> dict:
    """What the maps must match of the dataset: its name, content identity (the name of its
    shard directory, ``<name>-<hash8>``) and image size."""
    return {
        "format": FORMAT,
        "dataset": info.name,
        "content": info.root.name,
        "image_size": info.image_size,
    }


def write_maps(directory: Path, split: str, keys: list[str], maps: np.ndarray) -> Path:
    """Write one split's maps [N, H, W] of the samples ``keys`` atomically; returns the file."""
    if len(keys) != len(maps) or maps.ndim != 3:
        raise ValueError(f"{split}: {len(keys)} keys for maps of shape {tuple(maps.shape)}")
    path = maps_path(directory, split)
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            maps=np.ascontiguousarray(maps, dtype=np.float32),
            keys=np.asarray(keys, dtype=str),
            split=np.asarray(split),
        )
    return path


def write_meta(directory: Path, meta: dict) -> None:
    """Write ``meta.json`` atomically (after the splits' files: it marks the directory whole)."""
    write_text_atomic(Path(directory) / META, json.dumps(meta, indent=1, sort_keys=True) + "\n")


class StoredMaps:
    """One split's maps, looked up by sample key."""

    def __init__(self, path: Path, keys: np.ndarray, maps: np.ndarray):
        self.path = path
        self.index = {str(key): i for i, key in enumerate(keys)}
        self.array = maps

    def maps(self, keys: list[str]) -> Tensor:
        """The float32 maps [len(keys), H, W] of ``keys``, in that order."""
        return torch.from_numpy(self.array[[self.index[key] for key in keys]])


def _check_meta(directory: Path, info: DatasetInfo) -> None:
    path = directory / META
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing (the maps' dataset, written by task=export_maps)"
        )
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc})") from exc
    for key, expected in dataset_meta(info).items():
        if meta.get(key) != expected:
            raise ValueError(
                f"{path}: {key}={meta.get(key)!r}, this run's is {expected!r}: these are the maps "
                "of another dataset (or its content changed); export them again for this one"
            )


def _load(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``keys`` and ``maps`` of one file, read without unpickling and checked for form."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (the {split} maps of method=precomputed)")
    try:
        with np.load(path, allow_pickle=False) as held:
            missing = [name for name in ARRAYS if name not in held.files]
            if missing:
                raise ValueError(f"{path}: no array {missing[0]!r} (expected {', '.join(ARRAYS)})")
            maps, keys, named = held["maps"], held["keys"], held["split"]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ValueError(f"{path}: {REFUSED}") from None
        raise
    except (OSError, EOFError) as exc:  # not an npz at all
        raise ValueError(f"{path} is not a .npz archive ({exc})") from exc
    if str(named) != split:
        raise ValueError(
            f"{path} holds the maps of split {str(named)!r}, expected {split!r} (a file of "
            "another split)"
        )
    if keys.ndim != 1 or keys.dtype.kind != "U":
        raise ValueError(f"{path}: keys must be a 1-D str array, got {keys.dtype} {keys.shape}")
    if maps.dtype.kind != "f" or maps.ndim < 1 or len(maps) != len(keys):
        raise ValueError(
            f"{path}: maps must be float [N={len(keys)}, H, W], got {maps.dtype} {maps.shape}"
        )
    return keys, maps


def read_split(directory: Path, info: DatasetInfo, split: str) -> StoredMaps:
    """One split's maps, checked: every sample of the dataset's split has one map of shape
    [H, W], finite, and the file holds no other sample. Errors name the file and the key."""
    path = maps_path(directory, split)
    keys, maps = _load(path, split)
    size = (info.image_size, info.image_size)
    if tuple(maps.shape[1:]) != size:
        first = str(keys[0]) if len(keys) else None
        raise ValueError(
            f"{path}: the map of key {first!r} has shape {tuple(maps.shape[1:])}, expected "
            f"{size} (maps float32 [N, H, W] at the images' size)"
        )
    held = {str(key) for key in keys}
    if len(held) != len(keys):
        seen: set[str] = set()
        twice = next(str(k) for k in keys if str(k) in seen or seen.add(str(k)))
        raise ValueError(f"{path}: key {twice!r} appears more than once")
    wanted = [
        key
        for index in range(len(info.shard_counts(split)))
        for key in info.shard_keys(split, index)
    ]
    absent = [key for key in wanted if key not in held]
    wanted_set = set(wanted)
    if absent:
        raise ValueError(
            f"{path}: no map for sample key {absent[0]!r} ({len(absent)} of {len(wanted)} missing)"
        )
    if len(held) != len(wanted):
        extra = next(str(k) for k in keys if str(k) not in wanted_set)
        raise ValueError(f"{path}: key {extra!r} is no sample of {info.name}'s {split} split")
    bad = ~np.isfinite(maps.reshape(len(maps), -1)).all(axis=1)
    if bad.any():
        raise ValueError(f"{path}: the map of key {str(keys[bad.argmax()])!r} is not finite")
    return StoredMaps(path, keys, maps.astype(np.float32, copy=False))


def read_maps(directory: str | Path, info: DatasetInfo) -> dict[str, StoredMaps]:
    """Both splits' maps under ``directory``, checked against the dataset (``meta.json``) first."""
    directory = Path(directory)
    _check_meta(directory, info)
    return {split: read_split(directory, info, split) for split in SPLITS}
