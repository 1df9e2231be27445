"""Webdataset shards of fixed-size uint8 images: writing, validating, loading, streaming.

Shard layout (one directory per dataset, see ``prepare``): ``{split}-{i:06d}.tar`` files whose samples
are ``{"__key__": f"{split}_{index:08d}", "image.npy": uint8 [3,H,W], "cls": int,
"relevance.npy": float16 [H,W]}`` (relevance only for synthetic data), plus ``dataset.json``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from tqdm import tqdm

SPLITS = ("train", "val")
INFO_FILE = "dataset.json"
FORMAT_VERSION = 1


class CorruptShardError(RuntimeError):
    """A shard is unreadable or disagrees with ``dataset.json`` (the message names the file)."""


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

    def shard_paths(self, split: str) -> list[Path]:
        """The shard files of ``split`` in sample order."""
        _check_split(split)
        return [self.root / s["file"] for s in self.shards.get(split, [])]


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
    """Webdataset key of sample ``index`` of ``split`` (no dots: webdataset splits names on them)."""
    return f"{split}_{index:08d}"


# ----------------------------------------------------------------------------------------------
# writing


class ChannelStats:
    """Running per-channel mean/std on the 0..1 scale (float64 sums, exact enough for uint8)."""

    def __init__(self) -> None:
        self.n = 0
        self.s = np.zeros(3)
        self.ss = np.zeros(3)

    def update(self, images: np.ndarray) -> None:
        """Add uint8 images [..., 3, H, W]."""
        x = images.reshape(-1, 3, images.shape[-2] * images.shape[-1]).astype(np.float64) / 255.0
        self.n += x.shape[0] * x.shape[2]
        self.s += x.sum(axis=(0, 2))
        self.ss += (x * x).sum(axis=(0, 2))

    def result(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        if self.n == 0:
            raise ValueError("no images to compute mean/std from (empty train split)")
        mean = self.s / self.n
        std = np.sqrt(np.maximum(self.ss / self.n - mean**2, 1e-12))
        return tuple(float(v) for v in mean), tuple(float(max(v, 1e-3)) for v in std)  # type: ignore[return-value]


def write_split(
    directory: Path,
    split: str,
    samples: Iterable[tuple[np.ndarray, int, np.ndarray | None]],
    total: int,
    shard_size: int,
    *,
    stats: ChannelStats | None = None,
    desc: str = "",
) -> list[dict[str, Any]]:
    """Write ``total`` samples (image uint8 [3,H,W], label, relevance [H,W] or None) as shards.

    Tar members get a fixed mtime/owner so the same samples give byte-identical shards. Returns the
    shard list recorded in ``dataset.json``: ``[{"file": ..., "count": ...}, ...]``.
    """
    _check_split(split)
    if shard_size < 1:
        raise ValueError(f"shard_size={shard_size} must be >= 1")
    shards: list[dict[str, Any]] = []
    writer: wds.TarWriter | None = None
    written = 0
    with tqdm(total=total, desc=desc or f"writing {split}", unit="img", mininterval=1.0) as bar:
        for index, (image, label, rel) in enumerate(samples):
            if index % shard_size == 0:
                if writer is not None:
                    writer.close()
                fname = f"{split}-{len(shards):06d}.tar"
                writer = wds.TarWriter(
                    str(directory / fname), mtime=0.0, user="roarkar", group="roarkar"
                )
                shards.append({"file": fname, "count": 0})
            sample: dict[str, Any] = {
                "__key__": sample_key(split, index),
                "image.npy": np.ascontiguousarray(image, dtype=np.uint8),
                "cls": int(label),
            }
            if rel is not None:
                sample["relevance.npy"] = np.asarray(rel, dtype=np.float16)
            assert writer is not None
            writer.write(sample)
            shards[-1]["count"] += 1
            if stats is not None:
                stats.update(image)
            written += 1
            bar.update(1)
    if writer is not None:
        writer.close()
    if written != total:
        raise RuntimeError(f"{desc or split}: expected {total} samples, the source gave {written}")
    return shards


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

    Raises FileNotFoundError if the file or a shard is missing, CorruptShardError if it is invalid.
    """
    root = Path(root)
    path = root / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (not a roarkar shard directory?)")
    try:
        doc = json.loads(path.read_text())
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
    )
    if check_files:
        for split in SPLITS:
            for p in info.shard_paths(split):
                if not p.is_file():
                    raise FileNotFoundError(f"shard {p} listed in {path} does not exist")
    return info


def _decode_npy(data: bytes, what: str, shard: Path, key: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any decoding failure means a corrupt member
        raise CorruptShardError(
            f"shard {shard}: sample {key!r} has an unreadable {what}: {e}"
        ) from e


def _decode_sample(
    raw: dict[str, Any], shard: Path, size: int, want_relevance: bool
) -> tuple[np.ndarray, int, np.ndarray | None, str]:
    """Decode and check one raw webdataset sample against the expected image size."""
    key = raw.get("__key__", "?")
    if "image.npy" not in raw or "cls" not in raw:
        raise CorruptShardError(
            f"shard {shard}: sample {key!r} lacks image.npy or cls (has {sorted(k for k in raw if not k.startswith('_'))})"
        )
    image = _decode_npy(raw["image.npy"], "image.npy", shard, key)
    if image.dtype != np.uint8 or image.shape != (3, size, size):
        raise CorruptShardError(
            f"shard {shard}: sample {key!r} image.npy is {image.dtype} {list(image.shape)}, expected uint8 [3, {size}, {size}]"
        )
    try:
        label = int(raw["cls"])
    except ValueError as e:
        raise CorruptShardError(f"shard {shard}: sample {key!r} has a non-integer cls") from e
    rel = None
    if want_relevance:
        if "relevance.npy" not in raw:
            raise CorruptShardError(f"shard {shard}: sample {key!r} lacks relevance.npy")
        rel = _decode_npy(raw["relevance.npy"], "relevance.npy", shard, key)
        if rel.shape != (size, size):
            raise CorruptShardError(
                f"shard {shard}: sample {key!r} relevance.npy is {list(rel.shape)}, expected [{size}, {size}]"
            )
    return image, label, rel, key


def _iter_shard(path: Path) -> Iterator[dict[str, Any]]:
    """Raw samples of one shard; tar-level failures become CorruptShardError naming the file."""
    ds = wds.WebDataset(
        [str(path)], shardshuffle=False, nodesplitter=None, workersplitter=None, empty_check=False
    )
    it = iter(ds)
    while True:
        try:
            raw = next(it)
        except StopIteration:
            return
        except CorruptShardError:
            raise
        except Exception as e:  # noqa: BLE001 - tarfile/IO errors from a truncated or bad shard
            raise CorruptShardError(
                f"shard {path} is unreadable ({type(e).__name__}: {e}); expected a tar of samples with image.npy and cls"
            ) from e
        yield raw


def _shard_offsets(info: DatasetInfo, split: str) -> list[int]:
    offsets, total = [], 0
    for entry in info.shards.get(split, []):
        offsets.append(total)
        total += int(entry["count"])
    return offsets


def _read_shard(info: DatasetInfo, split: str, index: int, first: int) -> ImageSplit:
    """Decode and check shard ``index`` of ``split`` whose first sample is number ``first``."""
    entry = info.shards[split][index]
    path = info.root / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"shard {path} listed in {info.root / INFO_FILE} does not exist")
    count, size = int(entry["count"]), info.image_size
    images = torch.empty((count, 3, size, size), dtype=torch.uint8)
    labels = torch.empty(count, dtype=torch.int64)
    rel = torch.empty((count, size, size), dtype=torch.float32) if info.has_relevance else None
    keys: list[str] = []
    for raw in _iter_shard(path):
        image, label, r, key = _decode_sample(raw, path, size, info.has_relevance)
        got = len(keys)
        if got >= count:
            raise CorruptShardError(
                f"shard {path}: more samples than the {count} recorded in {INFO_FILE}"
            )
        if key != sample_key(split, first + got):
            raise CorruptShardError(
                f"shard {path}: sample {got} has key {key!r}, expected {sample_key(split, first + got)!r}"
            )
        if not 0 <= label < info.num_classes:
            raise CorruptShardError(
                f"shard {path}: sample {key!r} has label {label}, expected 0..{info.num_classes - 1}"
            )
        images[got] = torch.from_numpy(image)
        labels[got] = label
        if rel is not None:
            rel[got] = torch.from_numpy(r.astype(np.float32))
        keys.append(key)
    if len(keys) != count:
        raise CorruptShardError(
            f"shard {path}: holds {len(keys)} samples, expected {count} (from {INFO_FILE}); truncated?"
        )
    return ImageSplit(images=images, labels=labels, relevance=rel, keys=keys)


def load_shard(info: DatasetInfo, split: str, index: int) -> ImageSplit:
    """One shard of ``split`` in memory (streaming reads data too big for memory shard by shard)."""
    _check_split(split)
    return _read_shard(info, split, index, _shard_offsets(info, split)[index])


def load_split(info: DatasetInfo, split: str) -> ImageSplit:
    """Read every shard of ``split`` into memory and check it against ``dataset.json``.

    Raises CorruptShardError (naming the shard) on unreadable data, wrong shapes, keys out of order or
    a sample count that differs from the one recorded.
    """
    _check_split(split)
    n = int(info.counts.get(split, 0))
    size = info.image_size
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.int64)
    rel = torch.empty((n, size, size), dtype=torch.float32) if info.has_relevance else None
    keys: list[str] = []
    for index, first in enumerate(_shard_offsets(info, split)):
        part = _read_shard(info, split, index, first)
        stop = first + len(part.keys)
        if stop > n:
            raise CorruptShardError(
                f"{info.root}: split {split!r} holds more than the {n} samples recorded"
            )
        images[first:stop] = part.images
        labels[first:stop] = part.labels
        if rel is not None:
            rel[first:stop] = part.relevance
        keys.extend(part.keys)
    if len(keys) != n:
        raise CorruptShardError(
            f"{info.root}: split {split!r} holds {len(keys)} samples, expected {n}"
        )
    return ImageSplit(images=images, labels=labels, relevance=rel, keys=keys)


def stream_split(info: DatasetInfo, split: str, *, shuffle: bool, seed: int) -> wds.WebDataset:
    """A webdataset pipeline over ``split`` for data too big for memory.

    Shards are split by node (DDP rank) and by DataLoader worker; with ``shuffle`` the shard order and
    a 1000-sample buffer are shuffled deterministically from ``seed`` (the epoch advances only with
    ``persistent_workers=True``). Yields ``(image uint8 tensor [3,H,W], label int, key str)``.
    """
    _check_split(split)
    paths = info.shard_paths(split)
    if not paths:
        raise ValueError(f"{info.root}: split {split!r} has no shards")
    size = info.image_size

    def decode(raw: dict[str, Any]) -> tuple[torch.Tensor, int, str]:
        path = Path(raw.get("__url__", "?"))
        image, label, _, key = _decode_sample(raw, path, size, False)
        return torch.from_numpy(image), label, key

    ds = wds.WebDataset(
        [str(p) for p in paths],
        shardshuffle=len(paths) if shuffle else False,
        detshuffle=True,
        seed=seed,
        nodesplitter=wds.split_by_node,
        workersplitter=wds.split_by_worker,
        empty_check=False,
    )
    if shuffle:
        ds = ds.compose(wds.filters.detshuffle(1000, initial=100, seed=seed))
    return ds.map(decode)


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
