"""What a real dataset's shards are made of: the shard tasks of its files or arrays (read as its
registered kind says, :mod:`roarkar.data.kinds`), a seeded subset of them for pilots, and its
normalisation statistics."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass
class RealSource:
    """What a real dataset's shards are made from: class names and, per split, the chosen
    ``(path, label)`` items of an image-file layout (``root``: its resolved root, ``meta``: the
    list files it read) or the chosen indices of an array release (``arrays``)."""

    names: list[str]
    items: dict[str, list[tuple[Path, int]]] | None = None
    root: Path | None = None
    meta: list[Path] = field(default_factory=list)
    arrays: Any = None
    keep: dict[str, list[int]] = field(default_factory=dict)

    def files(self) -> list[Path]:
        """Every file the conversion reads: the chosen images and the layout's list files."""
        assert self.items is not None
        return [p for items in self.items.values() for p, _ in items] + list(self.meta)


def read_source(plain: Mapping[str, Any], kind: str) -> RealSource:
    """List a real dataset (files or arrays), check its classes, choose each split's samples."""
    spec = KINDS.get(kind)
    if spec.source == "arrays":
        arrays = spec.read(plain, lambda: resolve_root(plain, kind))
        names = arrays.class_names
    elif spec.source == "files":
        root = resolve_root(plain, kind)
        listing = spec.read(root, plain)  # checks its paths first
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
    if spec.source == "arrays":
        keep = {
            s: limit_samples(list(range(len(arrays.labels[s]))), plain.get(f"{s}_size"), s)
            for s in ("train", "val")
        }
        return RealSource(names, arrays=arrays, keep=keep)
    check_classes(listing.samples, names, plain)
    items = {
        s: limit_samples(listing.samples[s], plain.get(f"{s}_size"), s) for s in ("train", "val")
    }
    return RealSource(names, items, root, list(listing.meta))


def check_classes(
    samples: Mapping[str, list[tuple[Path, int]]], names: list[str], plain: Mapping[str, Any]
) -> None:
    """Every class has train and val images: else an error naming the classes, or a warning
    listing them with ``dataset.allow_class_mismatch=true``."""
    problems = []
    for split in ("train", "val"):
        present = {label for _, label in samples[split]}
        absent = [names[i] for i in range(len(names)) if i not in present]
        if absent:
            more = f" (+{len(absent) - 10} more)" if len(absent) > 10 else ""
            problems.append(f"{len(absent)} class(es) have no {split} images: {absent[:10]}{more}")
    if not problems:
        return
    what = f"dataset {plain.get('name')!r} at dataset.root={plain.get('root')}: " + "; ".join(
        problems
    )
    if plain.get("allow_class_mismatch") in (True, "true", "True", 1):
        warnings.warn(f"{what} (dataset.allow_class_mismatch=true)", stacklevel=2)
        return
    raise ValueError(
        f"{what}; fix the tree (or its list files), or pass +dataset.allow_class_mismatch=true "
        "to go on with them"
    )


def real_tasks(
    source: RealSource,
    plain: Mapping[str, Any],
    directory: Path,
    image_size: int,
    shard_size: int,
) -> list[convert.ShardTask]:
    """The shard tasks of both splits of a real dataset (files or arrays)."""
    how = {
        "image_size": image_size,
        "resize": plain.get("resize"),
        "shard_size": shard_size,
        "seed": int(plain.get("shuffle_seed") or 0),
    }
    tasks = []
    for split in ("train", "val"):
        if source.arrays is not None:
            arrays, keep = source.arrays, source.keep[split]
            tasks += convert.plan_array_tasks(
                directory,
                split,
                arrays.images[split][keep],
                arrays.labels[split][keep],
                [arrays.sources[split][i] for i in keep],
                **how,
            )
        else:
            assert source.items is not None and source.root is not None
            tasks += convert.plan_tasks(
                directory,
                split,
                source.items[split],
                source.root,
                skip_corrupt=bool(plain.get("skip_corrupt", False)),
                **how,
            )
    return tasks


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
