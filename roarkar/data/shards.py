"""Shards of fixed-size uint8 images: the on-disk format, writing, validating and reading.

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

import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

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

    def shard_paths(self, split: str) -> list[Path]:
        """The shard files of ``split`` in sample order."""
        _check_split(split)
        return [self.root / s["file"] for s in self.shards.get(split, [])]

    def shard_counts(self, split: str) -> list[int]:
        _check_split(split)
        return [int(s["count"]) for s in self.shards.get(split, [])]

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the samples behind each key: format, order and shard layout. Anything
        keyed by sample (saliency maps) must be recomputed when this changes."""
        return {
            "format_version": FORMAT_VERSION,
            "order": self.order,
            "shards": {s: self.shard_counts(s) for s in SPLITS},
        }


@dataclass
class ImageSplit:
    """One split held in memory: images uint8 [N,3,H,W], labels int64 [N], relevance [N,H,W]|None."""

    images: torch.Tensor
    labels: torch.Tensor
    relevance: torch.Tensor | None
    keys: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {list(SPLITS)}")


def sample_key(split: str, index: int) -> str:
    """Key of sample ``index`` of ``split`` (no dots: webdataset-style tools split names on them)."""
    return f"{split}_{index:08d}"


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}.tar"


# ----------------------------------------------------------------------------------------------
# writing


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


def _member(name: str, size: int) -> tarfile.TarInfo:
    """A tar header with fixed owner and time, so the same arrays give byte-identical shards."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "roarkar"
    return info


class _Chunks(io.RawIOBase):
    """A read-only stream over byte chunks (a .npy header, then the array's memory), no copy."""

    def __init__(self, *chunks: bytes | memoryview) -> None:
        self._chunks = [memoryview(c).cast("B") for c in chunks]
        self._i = self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while self._i < len(self._chunks) and self._pos >= len(self._chunks[self._i]):
            self._i, self._pos = self._i + 1, 0
        if self._i == len(self._chunks):
            return 0
        chunk = self._chunks[self._i][self._pos : self._pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def _add_array(tar: tarfile.TarFile, name: str, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    head = header.getvalue()
    data = array.reshape(-1).view(np.uint8) if array.size else np.empty(0, np.uint8)
    tar.addfile(_member(name, len(head) + array.nbytes), io.BufferedReader(_Chunks(head, data)))


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        _add_array(tar, IMAGES, images)
        _add_array(tar, LABELS, np.asarray(labels, dtype=np.int64))
        if relevance is not None:
            _add_array(tar, RELEVANCE, np.asarray(relevance, dtype=np.float16))
        if sources is not None:
            blob = json.dumps(list(sources)).encode()
            tar.addfile(_member(SOURCES, len(blob)), io.BytesIO(blob))
    os.replace(tmp, path)


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
    }


def write_info(info: DatasetInfo, directory: Path) -> None:
    """Write ``dataset.json`` last, via a temp file and rename, so its presence means complete."""
    tmp = directory / (INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(info_to_json(info), indent=2, sort_keys=True))
    tmp.replace(directory / INFO_FILE)


# ----------------------------------------------------------------------------------------------
# reading


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
    )
    if check_files:
        for split in SPLITS:
            for p in info.shard_paths(split):
                if not p.is_file():
                    raise FileNotFoundError(f"shard {p} listed in {path} does not exist")
    return info


@dataclass(frozen=True)
class _Array:
    offset: int  # of the array data in the shard file
    shape: tuple[int, ...]
    dtype: np.dtype


def _locate(path: Path) -> dict[str, _Array]:
    """Where each ``.npy`` member's data lies in the shard file, read from the tar and npy headers."""
    out: dict[str, _Array] = {}
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh, tarfile.open(fileobj=fh, mode="r:") as tar:
            for member in tar.getmembers():
                if not member.name.endswith(".npy"):
                    continue
                if member.offset_data + member.size > size:
                    raise EOFError(f"member {member.name} runs past the end of the file")
                fh.seek(member.offset_data)
                version = np.lib.format.read_magic(fh)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(fh)
                offset = fh.tell()
                nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if fortran or dtype.hasobject:
                    raise ValueError(f"member {member.name} is not a plain C-order array")
                if offset + nbytes > member.offset_data + member.size:
                    raise EOFError(f"member {member.name} is shorter than its header says")
                out[member.name] = _Array(offset, tuple(shape), dtype)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - tar/npy header errors all mean an unreadable shard
        raise CorruptShardError(
            f"shard {path} is unreadable ({type(e).__name__}: {e}); expected a tar of "
            f"{IMAGES} and {LABELS} (roarkar shard format {FORMAT_VERSION})"
        ) from e
    return out


class ShardArrays:
    """The arrays of one shard, checked against ``dataset.json`` and memory-mapped (read-only).

    ``images`` uint8 [N,3,H,W], ``labels`` int64 [N] (read into memory and range-checked),
    ``relevance`` float16 [N,H,W] or None.
    """

    def __init__(self, info: DatasetInfo, split: str, index: int) -> None:
        entry = info.shards[split][index]
        path = info.root / entry["file"]
        if not path.is_file():
            raise FileNotFoundError(
                f"shard {path} listed in {info.root / INFO_FILE} does not exist"
            )
        count, size = int(entry["count"]), info.image_size
        arrays = _locate(path)
        expected = {IMAGES: ((count, 3, size, size), np.uint8), LABELS: ((count,), np.int64)}
        if info.has_relevance:
            expected[RELEVANCE] = ((count, size, size), np.float16)
        for name, (shape, dtype) in expected.items():
            found = arrays.get(name)
            if found is None:
                raise CorruptShardError(f"shard {path} lacks {name} (has {sorted(arrays)})")
            if found.shape != shape or found.dtype != np.dtype(dtype):
                raise CorruptShardError(
                    f"shard {path}: {name} is {found.dtype} {list(found.shape)}, expected "
                    f"{np.dtype(dtype)} {list(shape)} (from {INFO_FILE}: count {count}, {size} px)"
                )
        self.path, self.count, self._arrays = path, count, arrays
        self.images = self._map(IMAGES)
        self.labels = np.array(self._map(LABELS))
        if count and (self.labels.min() < 0 or self.labels.max() >= info.num_classes):
            bad = int(np.flatnonzero((self.labels < 0) | (self.labels >= info.num_classes))[0])
            raise CorruptShardError(
                f"shard {path}: sample {bad} has label {int(self.labels[bad])}, expected "
                f"0..{info.num_classes - 1}"
            )
        self.relevance = self._map(RELEVANCE) if info.has_relevance else None

    def _map(self, name: str) -> np.ndarray:
        a = self._arrays[name]
        if 0 in a.shape:
            return np.empty(a.shape, a.dtype)
        return np.memmap(self.path, dtype=a.dtype, mode="r", offset=a.offset, shape=a.shape)

    def read_into(self, name: str, out: np.ndarray) -> None:
        """Read a whole array with one ``readinto`` (faster than faulting in a mapping page by page)."""
        a = self._arrays[name]
        with open(self.path, "rb") as fh:
            fh.seek(a.offset)
            view = memoryview(out.reshape(-1).view(np.uint8))
            got = fh.readinto(view)
        if got != len(view):
            raise CorruptShardError(f"shard {self.path}: {name} is truncated")


def _shard_offsets(info: DatasetInfo, split: str) -> list[int]:
    offsets, total = [], 0
    for count in info.shard_counts(split):
        offsets.append(total)
        total += count
    return offsets


def load_shard(info: DatasetInfo, split: str, index: int) -> ImageSplit:
    """One shard of ``split`` in memory (the saliency precompute works shard by shard)."""
    _check_split(split)
    first = _shard_offsets(info, split)[index]
    shard = ShardArrays(info, split, index)
    images = torch.empty((shard.count, 3, info.image_size, info.image_size), dtype=torch.uint8)
    shard.read_into(IMAGES, images.numpy())
    rel = None
    if shard.relevance is not None:
        rel = torch.from_numpy(np.asarray(shard.relevance, dtype=np.float32))
    keys = [sample_key(split, first + j) for j in range(shard.count)]
    return ImageSplit(images, torch.from_numpy(shard.labels), rel, keys)


def load_split(info: DatasetInfo, split: str) -> ImageSplit:
    """Read every shard of ``split`` into memory, checked against ``dataset.json``.

    Raises CorruptShardError (naming the shard) on unreadable data, wrong shapes or labels, or a
    sample count that differs from the one recorded.
    """
    _check_split(split)
    n = int(info.counts.get(split, 0))
    size = info.image_size
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.int64)
    rel = torch.empty((n, size, size), dtype=torch.float32) if info.has_relevance else None
    for index, first in enumerate(_shard_offsets(info, split)):
        shard = ShardArrays(info, split, index)
        stop = first + shard.count
        shard.read_into(IMAGES, images[first:stop].numpy())
        labels[first:stop] = torch.from_numpy(shard.labels)
        if rel is not None:
            rel[first:stop] = torch.from_numpy(np.asarray(shard.relevance, dtype=np.float32))
    keys = [sample_key(split, j) for j in range(n)]
    return ImageSplit(images=images, labels=labels, relevance=rel, keys=keys)


def normalize(images_uint8: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """uint8 images [...,3,H,W] -> float32 ``(x/255 - mean)/std`` on the images' device."""
    mean = torch.tensor(info.mean, dtype=torch.float32, device=images_uint8.device).view(3, 1, 1)
    std = torch.tensor(info.std, dtype=torch.float32, device=images_uint8.device).view(3, 1, 1)
    return (images_uint8.to(torch.float32) / 255.0 - mean) / std


def denormalize(images: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """Inverse of ``normalize``: float [...,3,H,W] -> uint8 (rounded, clamped), for viewing maps."""
    mean = torch.tensor(info.mean, dtype=images.dtype, device=images.device).view(3, 1, 1)
    std = torch.tensor(info.std, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return ((images * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
