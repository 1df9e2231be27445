"""Shards of fixed-size uint8 images: the on-disk format, ``dataset.json`` (the index of a dataset's
shards, written last and validated on reading), and writing shards (``roarkar.data.reader`` reads
them, ``roarkar.data.npytar`` is the tar-of-arrays container).

Format version 2. A dataset directory holds ``dataset.json`` and, per split, shard files
``{split}-{i:06d}.tar``. Each shard is a plain (uncompressed, POSIX) tar of whole-shard arrays:

- ``images.npy``     uint8 [N, 3, H, W]
- ``labels.npy``     int64 [N]
- ``relevance.npy``  float16 [N, H, W] (synthetic data only: the ground-truth map)
- ``sources.json``   the source file of each sample, relative to the dataset root (real data only)

``tar x`` gives ordinary ``.npy`` files; roarkar memory-maps the arrays in place (tar data starts on
512-byte boundaries and ``.npy`` data on 64-byte ones), so a batch is a gather from the page cache,
not a per-sample decode. Sample ``j`` of a split (over its shards in order) has the key
``{split}_{j:08d}``. Samples are in a seeded random order over the whole split, never in listing
order: class-sorted sources (ImageNet's ``train/<wnid>/``) would otherwise give shards of one or two
classes and streamed batches of a few. Format 1 (one tar member per sample, listing order) is
refused with a message saying how to rebuild.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roarkar.data.npytar import write_arrays
from roarkar.files import write_text_atomic

SPLITS = ("train", "val")
INFO_FILE = "dataset.json"
FORMAT_VERSION = 2
IMAGES, LABELS, RELEVANCE, SOURCES = "images.npy", "labels.npy", "relevance.npy", "sources.json"


class CorruptShardError(RuntimeError):
    """A shard is unreadable or disagrees with ``dataset.json`` (the message names the file)."""


class ShardFormatError(CorruptShardError):
    """A shard directory written in another format version (the message says how to rebuild)."""


@dataclass
class DatasetInfo:
    """What a consumer needs to know about a prepared dataset (the contents of ``dataset.json``)."""

    name: str
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    root: Path
    counts: dict[str, int]
    has_relevance: bool
    class_names: list[str] = field(default_factory=list)
    shards: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    order: str = ""
    skipped: int = 0
    source: dict[str, Any] | None = None  # real data: the source tree's record (fingerprint.py)

    def shard_paths(self, split: str) -> list[Path]:
        """The shard files of ``split`` in sample order."""
        check_split(split)
        return [self.root / s["file"] for s in self.shards.get(split, [])]

    def shard_counts(self, split: str) -> list[int]:
        check_split(split)
        return [int(s["count"]) for s in self.shards.get(split, [])]

    def shard_offsets(self, split: str) -> list[int]:
        """The split-wide index of each shard's first sample."""
        offsets, total = [], 0
        for count in self.shard_counts(split):
            offsets.append(total)
            total += count
        return offsets

    def shard_keys(self, split: str, index: int) -> list[str]:
        """The keys of shard ``index``'s samples, in order (anything keyed by sample, such as a
        saliency rank shard, holds these)."""
        first = self.shard_offsets(split)[index]
        return [sample_key(split, first + j) for j in range(self.shard_counts(split)[index])]

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the samples behind each key: format, order and shard layout. Anything
        keyed by sample (saliency maps) must be recomputed when this changes."""
        return {
            "format_version": FORMAT_VERSION,
            "order": self.order,
            "shards": {s: self.shard_counts(s) for s in SPLITS},
        }


def check_split(split: str) -> None:
    """Raise a ValueError naming ``split`` unless it is one of ``SPLITS``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {list(SPLITS)}")


def sample_key(split: str, index: int) -> str:
    """Key of sample ``index`` of ``split`` (no dots: webdataset-style tools split names on them)."""
    return f"{split}_{index:08d}"


def shard_name(split: str, index: int) -> str:
    """File name of shard ``index`` of ``split`` (``train-000000.tar``)."""
    return f"{split}-{index:06d}.tar"


# ----------------------------------------------------------------------------------------------
# writing a shard


class ChannelStats:
    """Per-channel mean/std on the 0..1 scale from exact integer sums, so the result does not depend
    on the order (or the process) in which shards were summed."""

    def __init__(self) -> None:
        self.n = 0
        self.s = np.zeros(3, dtype=np.int64)
        self.ss = np.zeros(3, dtype=np.int64)

    def update(self, images: np.ndarray) -> None:
        """Add uint8 images [..., 3, H, W]."""
        x = images.reshape(-1, 3, images.shape[-2] * images.shape[-1])
        self.n += x.shape[0] * x.shape[2]
        self.s += x.sum(axis=(0, 2), dtype=np.int64)
        sq = x.astype(np.uint16)
        self.ss += (sq * sq).sum(axis=(0, 2), dtype=np.int64)

    def add(self, other: dict[str, Any]) -> None:
        """Add the sums of another ChannelStats (``as_dict``), e.g. from a conversion worker."""
        self.n += int(other["n"])
        self.s += np.asarray(other["s"], dtype=np.int64)
        self.ss += np.asarray(other["ss"], dtype=np.int64)

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "s": self.s.tolist(), "ss": self.ss.tolist()}

    def result(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        if self.n == 0:
            raise ValueError("no images to compute mean/std from (empty train split)")
        mean = self.s / (255.0 * self.n)
        var = self.ss / (255.0**2 * self.n) - mean**2
        std = np.sqrt(np.maximum(var, 1e-12))
        return tuple(float(v) for v in mean), tuple(float(max(v, 1e-3)) for v in std)  # type: ignore[return-value]


def write_shard(
    path: Path,
    images: np.ndarray,
    labels: np.ndarray,
    relevance: np.ndarray | None = None,
    sources: list[str] | None = None,
) -> None:
    """Write one shard atomically (temp file, then rename): a killed writer leaves no half shard."""
    n = len(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"{path}: images must be uint8 [N, 3, H, W], got {images.dtype} {images.shape}"
        )
    if len(labels) != n or (relevance is not None and len(relevance) != n):
        raise ValueError(f"{path}: images, labels and relevance differ in length")
    arrays = {IMAGES: images, LABELS: np.asarray(labels, dtype=np.int64)}
    if relevance is not None:
        arrays[RELEVANCE] = np.asarray(relevance, dtype=np.float16)
    files = {SOURCES: json.dumps(list(sources)).encode()} if sources is not None else None
    write_arrays(path, arrays, files)


# ----------------------------------------------------------------------------------------------
# dataset.json: the index of a dataset's shards, written last, validated when read


def info_to_json(info: DatasetInfo) -> dict[str, Any]:
    """The ``dataset.json`` document of ``info`` (root is not stored: the directory is the root)."""
    return {
        "format_version": FORMAT_VERSION,
        "name": info.name,
        "num_classes": info.num_classes,
        "image_size": info.image_size,
        "mean": list(info.mean),
        "std": list(info.std),
        "counts": info.counts,
        "has_relevance": info.has_relevance,
        "class_names": info.class_names,
        "shards": info.shards,
        "config": info.config,
        "order": info.order,
        "skipped": info.skipped,
        "complete": True,
        **({"source": info.source} if info.source is not None else {}),
    }


def write_info(info: DatasetInfo, directory: Path) -> None:
    """Write ``dataset.json`` last, via a temp file and rename, so its presence means complete."""
    write_text_atomic(
        directory / INFO_FILE, json.dumps(info_to_json(info), indent=2, sort_keys=True)
    )


def load_info(root: str | Path, *, check_files: bool = True) -> DatasetInfo:
    """Read and validate ``root/dataset.json``; with ``check_files`` every listed shard must exist.

    Raises FileNotFoundError if the file or a shard is missing, ShardFormatError if it was written
    in another format version, CorruptShardError if it is otherwise invalid.
    """
    root = Path(root)
    path = root / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (not a roarkar shard directory?)")
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict):
            raise TypeError(f"expected a JSON object, found {type(doc).__name__}")
    except (ValueError, TypeError) as e:
        raise CorruptShardError(f"{path} is invalid: {e}") from e
    version = doc.get("format_version", 1)
    if version != FORMAT_VERSION:
        raise ShardFormatError(
            f"{root} holds shards of format version {version}; this roarkar reads version "
            f"{FORMAT_VERSION} (samples shuffled over the split, whole-shard arrays). Version 1 "
            "shards keep the source's listing order, so streamed batches hold only a few classes. "
            f"Delete {root} and prepare the dataset again (roarkar rebuilds it from the source)."
        )
    try:
        required = ["name", "num_classes", "image_size", "mean", "std", "counts", "shards"]
        missing = [k for k in required if k not in doc]
        if missing:
            raise KeyError(f"missing keys {missing}")
        if not doc.get("complete", False):
            raise KeyError("not marked complete")
        for split in SPLITS:
            listed = sum(int(s["count"]) for s in doc["shards"].get(split, []))
            if listed != int(doc["counts"].get(split, 0)):
                raise ValueError(
                    f"shards of {split!r} hold {listed} samples but counts say {doc['counts'].get(split)}"
                )
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptShardError(f"{path} is invalid: {e}") from e
    info = DatasetInfo(
        name=str(doc["name"]),
        num_classes=int(doc["num_classes"]),
        image_size=int(doc["image_size"]),
        mean=tuple(float(v) for v in doc["mean"]),  # type: ignore[arg-type]
        std=tuple(float(v) for v in doc["std"]),  # type: ignore[arg-type]
        root=root,
        counts={k: int(v) for k, v in doc["counts"].items()},
        has_relevance=bool(doc.get("has_relevance", False)),
        class_names=list(
            doc.get("class_names") or [str(i) for i in range(int(doc["num_classes"]))]
        ),
        shards=doc["shards"],
        config=doc.get("config", {}),
        order=str(doc.get("order", "")),
        skipped=int(doc.get("skipped", 0)),
        source=doc.get("source"),
    )
    if check_files:
        for split in SPLITS:
            for p in info.shard_paths(split):
                if not p.is_file():
                    raise FileNotFoundError(f"shard {p} listed in {path} does not exist")
    return info
