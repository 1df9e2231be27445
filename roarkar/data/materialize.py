"""``prepare``: materialise a dataset config once as shards (under a lock) or find it already there.

The shard directory is ``data_root / f"{name}-{hash8}"`` where ``hash8`` hashes the content-relevant
config (generator parameters, sizes, seed, image size; never paths), so changing what the images are
gives a new directory and changing where the raw data lives does not. Shards are written into a
temporary directory that is renamed into place after ``dataset.json``, under ``fcntl.flock`` on a lock
file beside it: processes starting together generate once and the others wait, then read.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from roarkar.data import real, synthetic
from roarkar.data.shards import (
    ChannelStats,
    CorruptShardError,
    DatasetInfo,
    load_info,
    write_info,
    write_split,
)

log = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("synthetic", "imagefolder", "places365", "cowc", "shards")
# keys that say where things are, not what the images are: never part of the directory hash
NON_CONTENT_KEYS = frozenset({"name", "root", "nominal_train_size", "nominal_val_size"})
SYNTHETIC_KEYS = frozenset(
    {
        "name",
        "kind",
        "generator",
        "image_size",
        "train_size",
        "val_size",
        "seed",
        "shard_size",
        "root",
    }
)
DEFAULT_SHARD_SIZE = 1000


def to_plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved plain dict from an OmegaConf DictConfig or any mapping (``???`` stays ``???``)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return json.loads(json.dumps(dict(cfg), default=str))


def content_hash(cfg: Mapping[str, Any]) -> str:
    """Eight hex digits identifying what the images are (all keys but name and paths)."""
    plain = to_plain(cfg)
    content = {k: v for k, v in plain.items() if k not in NON_CONTENT_KEYS}
    blob = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def dataset_dir(cfg: Mapping[str, Any], data_root: str | Path) -> Path:
    """Where ``prepare`` puts the shards of ``cfg``: ``data_root / f"{name}-{hash8}"``."""
    plain = to_plain(cfg)
    if plain.get("kind") == "shards":
        return real.resolve_root(plain, "shards")
    name = plain.get("name")
    if not name or "/" in str(name):
        raise ValueError(f"dataset.name={name!r} must be a non-empty name without '/'")
    return Path(data_root) / f"{name}-{content_hash(plain)}"


def _check_kind(plain: Mapping[str, Any]) -> str:
    kind = plain.get("kind")
    if kind not in DATASETS:
        raise ValueError(
            f"unknown dataset kind dataset.kind={kind!r}: expected one of {list(DATASETS)}"
        )
    return str(kind)


def _find(directory: Path) -> DatasetInfo | None:
    """The dataset in ``directory`` if its ``dataset.json`` is present, complete and consistent."""
    try:
        return load_info(directory)
    except (FileNotFoundError, CorruptShardError):
        return None


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``lock_path`` (released on exit, also if the process dies)."""
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process preparing %s", lock_path.with_suffix(""))
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def prepare(cfg: Mapping[str, Any], data_root: str | Path) -> DatasetInfo:
    """Make (once, under a lock) or find the shards of dataset config ``cfg`` below ``data_root``.

    ``cfg`` needs ``name``, ``kind`` (one of ``DATASETS``), ``image_size`` and kind-specific keys (see
    ``conf/dataset/*.yaml``). ``kind: shards`` validates and returns the existing directory
    ``cfg.root``. Errors name the config key and path at fault.
    """
    plain = to_plain(cfg)
    kind = _check_kind(plain)
    if kind == "shards":
        root = real.resolve_root(plain, "shards")
        if not root.is_dir():
            raise FileNotFoundError(
                f"dataset.root={root} does not exist (expected a shard directory with dataset.json "
                "written by roarkar.data.prepare)"
            )
        return load_info(root)
    if kind == "synthetic":
        generator = plain.get("generator")
        synthetic.class_names(str(generator), **_generator_params(plain))  # validate before locking
    out = dataset_dir(plain, data_root)
    found = _find(out)
    if found is not None:
        return found
    out.parent.mkdir(parents=True, exist_ok=True)
    with _locked(out.parent / f"{out.name}.lock"):
        found = _find(out)  # another process may have finished while we waited
        if found is not None:
            return found
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        tmp.mkdir()
        try:
            info = _build(plain, kind, tmp)
            info.root = out
            if out.exists():  # an incomplete earlier attempt
                shutil.rmtree(out)
            os.rename(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    log.info("prepared %s in %s", plain.get("name"), out)
    return load_info(out)


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


def _generator_params(plain: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in plain.items() if k not in SYNTHETIC_KEYS}


def _require(plain: Mapping[str, Any], key: str) -> Any:
    value = plain.get(key)
    if value is None or value == "???":
        raise ValueError(
            f"dataset.{key} must be set for dataset {plain.get('name')!r} ({plain.get('kind')})"
        )
    return value


def _build(plain: dict[str, Any], kind: str, directory: Path) -> DatasetInfo:
    """Write both splits and ``dataset.json`` into ``directory``."""
    name = str(plain["name"])
    image_size = int(_require(plain, "image_size"))
    shard_size = int(plain.get("shard_size") or DEFAULT_SHARD_SIZE)
    stats = ChannelStats()
    shards: dict[str, list[dict[str, Any]]] = {}
    counts: dict[str, int] = {}
    if kind == "synthetic":
        generator = str(plain["generator"])
        params = _generator_params(plain)
        names = synthetic.class_names(generator, **params)
        seed = int(plain.get("seed") or 0)
        for split in ("train", "val"):
            n = int(_require(plain, f"{split}_size"))

            def samples(split: str = split, n: int = n) -> Iterator[Any]:
                for images, labels, rel in synthetic.generate_chunks(
                    generator, split, n, image_size, seed, **params
                ):
                    yield from zip(images, labels, rel, strict=True)

            shards[split] = write_split(
                directory,
                split,
                samples(),
                n,
                shard_size,
                stats=stats if split == "train" else None,
                desc=f"{name} {split}",
            )
            counts[split] = n
        has_relevance = True
    else:
        listing = real.list_real(kind, plain)
        names = listing.class_names
        expected = plain.get("num_classes")
        if expected is not None and int(expected) != len(names):
            raise ValueError(
                f"dataset.num_classes={expected} but dataset.root={plain.get('root')} has "
                f"{len(names)} classes; set dataset.num_classes={len(names)} (or null)"
            )
        resize = plain.get("resize")
        for split in ("train", "val"):
            items = limit_samples(listing.samples[split], plain.get(f"{split}_size"), split)

            def samples(items: list[Any] = items) -> Iterator[Any]:
                for path, label in items:
                    yield real.load_image(path, image_size, resize), label, None

            shards[split] = write_split(
                directory,
                split,
                samples(),
                len(items),
                shard_size,
                stats=stats if split == "train" else None,
                desc=f"{name} {split}",
            )
            counts[split] = len(items)
        has_relevance = False
    mean, std = stats.result()
    info = DatasetInfo(
        name=name,
        num_classes=len(names),
        image_size=image_size,
        mean=mean,
        std=std,
        root=directory,
        counts=counts,
        has_relevance=has_relevance,
        class_names=names,
        shards=shards,
        config=plain,
    )
    write_info(info, directory)
    return info
