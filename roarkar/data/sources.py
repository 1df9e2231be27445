"""What a real dataset's shards are made of: the shard tasks of its files or arrays (read as its
registered kind says, :mod:`roarkar.data.kinds`), a seeded subset of them for pilots, and its
normalisation statistics."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from roarkar.data import convert
from roarkar.data.kinds import KINDS, resolve_root


def limit_samples(items: list[Any], size: Any, split: str, seed: int = 0) -> list[Any]:
    """A seeded random subset of ``size`` samples of a real split, in listing order;
    ``None`` keeps them all. Used by ``debug=smoke`` and for quick pilots on real data."""
    if size is None:
        return items
    size = int(size)
    if size < 1:
        raise ValueError(f"dataset.{split}_size must be >= 1 or null; got {size}")
    if size >= len(items):
        return items
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:size]
    return [items[i] for i in sorted(order.tolist())]


def real_tasks(
    plain: dict[str, Any], kind: str, directory: Path, image_size: int, shard_size: int
) -> tuple[list[str], list[convert.ShardTask]]:
    """The class names and the shard tasks of both splits of a real dataset (files or arrays)."""
    arrays = listing = None
    spec = KINDS.get(kind)
    if spec.source == "arrays":
        arrays = spec.read(plain, lambda: resolve_root(plain, kind))
        names = arrays.class_names
    elif spec.source == "files":
        listing = spec.read(resolve_root(plain, kind), plain)  # checks its paths first
        for s, items in listing.samples.items():
            if not items:
                raise FileNotFoundError(f"dataset.root={plain.get('root')}: no {s} images found")
        names = listing.class_names
    else:
        raise ValueError(f"dataset.kind={kind!r} is {spec.source}, not a real dataset")
    expected = plain.get("num_classes")
    if expected is not None and int(expected) != len(names):
        raise ValueError(
            f"dataset.num_classes={expected} but dataset.root={plain.get('root')} has "
            f"{len(names)} classes; set dataset.num_classes={len(names)} (or null)"
        )
    how = {
        "image_size": image_size,
        "resize": plain.get("resize"),
        "shard_size": shard_size,
        "seed": int(plain.get("shuffle_seed") or 0),
    }
    tasks = []
    for split in ("train", "val"):
        size = plain.get(f"{split}_size")
        if arrays is not None:
            keep = limit_samples(list(range(len(arrays.labels[split]))), size, split)
            tasks += convert.plan_array_tasks(
                directory,
                split,
                arrays.images[split][keep],
                arrays.labels[split][keep],
                [arrays.sources[split][i] for i in keep],
                **how,
            )
        else:
            assert listing is not None
            tasks += convert.plan_tasks(
                directory,
                split,
                limit_samples(listing.samples[split], size, split),
                resolve_root(plain, kind),
                skip_corrupt=bool(plain.get("skip_corrupt", False)),
                **how,
            )
    return names, tasks


def fixed_stats(
    plain: Mapping[str, Any], mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``dataset.mean`` / ``dataset.std`` when the config fixes them (one value or one per
    channel, on the 0..1 scale), else the train split's own ``mean`` / ``std``."""
    out = []
    for key, measured in (("mean", mean), ("std", std)):
        value = plain.get(key)
        if value is None:
            out.append(measured)
            continue
        values = [value] * 3 if isinstance(value, int | float) else list(value)
        if len(values) == 1:
            values *= 3
        if len(values) != 3 or not all(isinstance(v, int | float) for v in values):
            raise ValueError(f"dataset.{key}={value!r}: expected a number or 3 numbers (R, G, B)")
        if key == "std" and min(values) <= 0:
            raise ValueError(f"dataset.std={value!r}: every value must be > 0")
        out.append(tuple(float(v) for v in values))
    return out[0], out[1]
