"""Reading shards: one shard's arrays memory-mapped and checked against ``dataset.json``
(``ShardArrays``, what streaming reads; ``open_container`` names an unreadable file), a shard or a
whole split in memory (``load_shard``, ``load_split``), and the model's float view of uint8 images
(``normalize``, ``denormalize``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from roarkar.data.npytar import ArrayTar
from roarkar.data.shards import (
    FORMAT_VERSION,
    IMAGES,
    INFO_FILE,
    LABELS,
    RELEVANCE,
    CorruptShardError,
    DatasetInfo,
    check_split,
    sample_key,
)


@dataclass
class ImageSplit:
    """One split held in memory: images uint8 [N,3,H,W], labels int64 [N], relevance [N,H,W]|None."""

    images: torch.Tensor
    labels: torch.Tensor
    relevance: torch.Tensor | None
    keys: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def open_container(path: Path, expected: str) -> ArrayTar:
    """The container ``path`` opened (a missing file is a FileNotFoundError); unreadable: a
    CorruptShardError naming the file and what it should hold (``expected``)."""
    try:
        return ArrayTar(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - tar/npy header errors all mean an unreadable shard
        raise CorruptShardError(
            f"shard {path} is unreadable ({type(e).__name__}: {e}); expected {expected}"
        ) from e


class ShardArrays:
    """The arrays of one shard, checked against ``dataset.json`` and memory-mapped (read-only).

    ``images`` uint8 [N,3,H,W], ``labels`` int64 [N] (read into memory and range-checked),
    ``relevance`` float16 [N,H,W] or None; ``keys`` the samples' keys, in order.
    """

    def __init__(self, info: DatasetInfo, split: str, index: int) -> None:
        entry = info.shards[split][index]
        path = info.root / entry["file"]
        if not path.is_file():
            raise FileNotFoundError(
                f"shard {path} listed in {info.root / INFO_FILE} does not exist"
            )
        count, size = int(entry["count"]), info.image_size
        tar = open_container(
            path, f"a tar of {IMAGES} and {LABELS} (roarkar shard format {FORMAT_VERSION})"
        )
        expected = {IMAGES: ((count, 3, size, size), (np.uint8,)), LABELS: ((count,), (np.int64,))}
        if info.has_relevance:
            expected[RELEVANCE] = ((count, size, size), (np.float16,))
        try:
            tar.check(expected)
        except ValueError as e:
            raise CorruptShardError(
                f"shard {path}: {e} (from {INFO_FILE}: count {count}, {size} px)"
            ) from e
        self.path, self.count, self._tar = path, count, tar
        self.keys = info.shard_keys(split, index)
        self.images = tar.map(IMAGES)
        self.labels = np.array(tar.map(LABELS))
        if count and (self.labels.min() < 0 or self.labels.max() >= info.num_classes):
            bad = int(np.flatnonzero((self.labels < 0) | (self.labels >= info.num_classes))[0])
            raise CorruptShardError(
                f"shard {path}: sample {bad} has label {int(self.labels[bad])}, expected "
                f"0..{info.num_classes - 1}"
            )
        self.relevance = tar.map(RELEVANCE) if info.has_relevance else None

    def read_into(self, name: str, out: np.ndarray) -> None:
        """Read a whole array with one ``readinto`` (faster than faulting in a mapping page by page)."""
        try:
            self._tar.read_into(name, out)
        except EOFError as e:
            raise CorruptShardError(f"shard {self.path}: {name} is truncated") from e


def load_shard(info: DatasetInfo, split: str, index: int) -> ImageSplit:
    """One shard of ``split`` in memory (the saliency precompute works shard by shard)."""
    check_split(split)
    shard = ShardArrays(info, split, index)
    images = torch.empty((shard.count, 3, info.image_size, info.image_size), dtype=torch.uint8)
    shard.read_into(IMAGES, images.numpy())
    rel = None
    if shard.relevance is not None:
        rel = torch.from_numpy(np.asarray(shard.relevance, dtype=np.float32))
    return ImageSplit(images, torch.from_numpy(shard.labels), rel, shard.keys)


def load_split(info: DatasetInfo, split: str) -> ImageSplit:
    """Read every shard of ``split`` into memory, checked against ``dataset.json``.

    Raises CorruptShardError (naming the shard) on unreadable data, wrong shapes or labels, or a
    sample count that differs from the one recorded.
    """
    check_split(split)
    n = int(info.counts.get(split, 0))
    size = info.image_size
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.int64)
    rel = torch.empty((n, size, size), dtype=torch.float32) if info.has_relevance else None
    for index, first in enumerate(info.shard_offsets(split)):
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
