"""``prepare``: materialise a dataset config once as shards (under a lock) or find it already there.

The shard directory is ``data_root / f"{name}-{hash8}"`` where ``hash8`` hashes the content-relevant
config (generator parameters, sizes, seeds, image size, the shard format version; never paths or
worker counts), so changing what the images are gives a new directory and changing where the raw
data lives does not. Shards are written into ``.{name}-{hash8}.partial`` and the directory is renamed
into place after ``dataset.json``, under ``fcntl.flock`` on a lock file beside it: processes starting
together convert once and the others wait, then read; a conversion killed part-way resumes from the
shards it finished (see ``roarkar.data.convert``).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from roarkar.data import convert, fingerprint, sources, synthetic
from roarkar.data.kinds import KINDS, resolve_root
from roarkar.data.shards import (
    FORMAT_VERSION,
    INFO_FILE,
    ChannelStats,
    CorruptShardError,
    DatasetInfo,
    load_info,
    shard_name,
    write_info,
    write_shard,
)
from roarkar.files import file_lock, path_component
from roarkar.identity import NOT_RESULT_RELEVANT, dataset_content_hash, to_plain

log = logging.getLogger(__name__)

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
        "workers",
        "skip_corrupt",
        "augment",  # training's, not the generator's
        "mean",  # every kind's (sources.fixed_stats)
        "std",
        "rebuild",
    }
)
DEFAULT_SHARD_SIZE = 1000


def content_hash(cfg: Mapping[str, Any], format_version: int = FORMAT_VERSION) -> str:
    """Eight hex digits naming a dataset's shard directory (``roarkar.identity``'s dataset content
    hash at this shard format version); how the source is checked (``verify``,
    ``allow_outside_root``, ``allow_class_mismatch``: fields marked ``identity: False`` in
    ``roarkar.config.schema.DatasetKeys``) is left out with every key that is not a result.
    ``dataset.rebuild`` enters it: another value, other shards."""
    return dataset_content_hash(to_plain(cfg), format_version)


def dataset_dir(cfg: Mapping[str, Any], data_root: str | Path) -> Path:
    """Where ``prepare`` puts the shards of ``cfg``: ``data_root / f"{name}-{hash8}"``."""
    plain = to_plain(cfg)
    if plain.get("kind") == "shards":
        return resolve_root(plain, "shards")
    name = path_component(plain.get("name") or "", "dataset.name")
    return Path(data_root) / f"{name}-{content_hash(plain)}"


def _kind(plain: Mapping[str, Any]) -> str:
    """How ``dataset.kind`` is materialised (its registered source); unknown: the registry's error."""
    return KINDS.get(plain.get("kind")).source


def _find(directory: Path) -> DatasetInfo | None:
    """The dataset in ``directory`` if its ``dataset.json`` is present, complete and consistent."""
    try:
        return load_info(directory)
    except (FileNotFoundError, CorruptShardError):
        return None


def _warn_old_format(plain: dict[str, Any], data_root: Path) -> None:
    """Say so when format-1 shards of the same dataset sit beside the new ones (never reused)."""
    old = Path(data_root) / f"{plain['name']}-{content_hash(plain, format_version=1)}"
    if (old / INFO_FILE).is_file():
        size = sum(f.stat().st_size for f in old.glob("*.tar")) / 2**30
        log.warning(
            "%s holds this dataset in shard format 1 (listing order: streamed batches of a few "
            "classes); it is not used. Delete it to free %.2f GiB.",
            old,
            size,
        )


def prepare(cfg: Mapping[str, Any], data_root: str | Path) -> DatasetInfo:
    """Make (once, under a lock) or find the shards of dataset config ``cfg`` below ``data_root``.

    ``cfg`` needs ``name``, ``kind`` (registered in ``KINDS``), ``image_size`` and kind-specific keys (see
    ``conf/dataset/*.yaml``). ``kind: shards`` validates and returns the existing directory
    ``cfg.root``. Errors name the config key and path at fault.
    """
    plain = to_plain(cfg)
    source = _kind(plain)
    if source == "shards":
        root = resolve_root(plain, "shards")
        if not root.is_dir():
            raise FileNotFoundError(
                f"dataset.root={root} does not exist (expected a shard directory with dataset.json "
                "written by roarkar.data.prepare)"
            )
        return load_info(root)
    if source == "generated":
        generator = plain.get("generator")
        synthetic.class_names(str(generator), **generator_params(plain))  # validate before locking
    out = dataset_dir(plain, data_root)
    # image files: listed (and fingerprinted) on every prepare; arrays: read only to convert
    found = _find(out)
    if found is not None and source == "files" and _tree_absent(plain, found):
        return found
    real = sources.read_source(plain, plain["kind"]) if source == "files" else None
    if found is not None:
        return _checked(found, plain, real)
    out.parent.mkdir(parents=True, exist_ok=True)
    _warn_old_format(plain, out.parent)
    with file_lock(out.parent / f"{out.name}.lock"):
        found = _find(out)  # another process may have finished while we waited
        if found is not None:
            return _checked(found, plain, real)
        tree = _fingerprint(plain, real, out, mode=fingerprint.verify_mode(plain))
        partial = out.parent / f".{out.name}.partial"  # kept on failure: the next attempt resumes
        partial.mkdir(exist_ok=True)
        info = _build(plain, source, partial, real, tree)
        info.root = out
        if out.exists():  # an incomplete earlier attempt of the old layout
            shutil.rmtree(out)
        os.rename(partial, out)
    log.info("prepared %s in %s", plain.get("name"), out)
    return load_info(out)


def _fingerprint(
    plain: Mapping[str, Any], real: sources.RealSource | None, out: Path, mode: str
) -> fingerprint.Fingerprint | None:
    """The source tree of an image-file dataset, fingerprinted; files outside its root warned
    about or refused (arrays and generated data: None)."""
    if real is None or real.items is None:
        return None
    assert real.root is not None
    tree = fingerprint.fingerprint(real.root, real.files(), mode, desc=str(plain.get("name")))
    fingerprint.check_outside(tree, plain, out)
    return tree


def _tree_absent(plain: Mapping[str, Any], found: DatasetInfo) -> bool:
    """True, with a warning, when ``dataset.root`` is unset or missing but its shards are found
    (a machine that holds the shards, not the source): they are used unchecked."""
    root = plain.get("root")
    if root not in (None, "", "???") and Path(str(root)).expanduser().exists():
        return False
    log.warning(
        "%s: dataset.root=%s is not here, so the shards in %s are used without checking that "
        "they came from it",
        plain.get("name"),
        root,
        found.root,
    )
    return True


def _checked(
    found: DatasetInfo, plain: Mapping[str, Any], real: sources.RealSource | None
) -> DatasetInfo:
    """``found`` if it was converted from the source tree ``real`` lists (by the mode it was
    recorded in), else :class:`roarkar.data.fingerprint.SourceChangedError`."""
    mode = (found.source or {}).get("verify") or fingerprint.verify_mode(plain)
    tree = _fingerprint(plain, real, found.root, mode)
    if tree is not None:
        assert real is not None and real.root is not None
        fingerprint.check_source(
            found.source,
            found.root,
            tree,
            name=str(plain.get("name")),
            root=real.root,
            rebuild=plain.get("rebuild"),
        )
    return found


def generator_params(plain: Mapping[str, Any]) -> dict[str, Any]:
    """The generator's keyword arguments: the node but the keys every dataset has and the keys
    that never change a result (``dataset.verify=content``, set on any preset, checks no tree
    here)."""
    return {
        k: v for k, v in plain.items() if k not in SYNTHETIC_KEYS and k not in NOT_RESULT_RELEVANT
    }


def _require(plain: Mapping[str, Any], key: str) -> Any:
    value = plain.get(key)
    if value is None or value == "???":
        raise ValueError(
            f"dataset.{key} must be set for dataset {plain.get('name')!r} ({plain.get('kind')})"
        )
    return value


def _build(
    plain: dict[str, Any],
    source: str,
    directory: Path,
    real: sources.RealSource | None = None,
    tree: fingerprint.Fingerprint | None = None,
) -> DatasetInfo:
    """Write both splits and ``dataset.json`` into ``directory`` (``source``: the kind's; ``real``
    what a real dataset is made from, ``tree`` its source files' fingerprint, recorded)."""
    name = str(plain["name"])
    image_size = int(_require(plain, "image_size"))
    shard_size = int(plain.get("shard_size") or DEFAULT_SHARD_SIZE)
    if shard_size < 1:
        raise ValueError(f"dataset.shard_size={shard_size} must be >= 1")
    stats = ChannelStats()
    shards: dict[str, list[dict[str, Any]]] = {}
    counts: dict[str, int] = {}
    skipped: list[dict[str, str]] = []
    if source == "generated":
        names = synthetic.class_names(str(plain["generator"]), **generator_params(plain))
        for split in ("train", "val"):
            shards[split] = _write_synthetic(plain, split, image_size, shard_size, directory, stats)
        has_relevance = True
        order = f"generated (labels drawn i.i.d. from seed {int(plain.get('seed') or 0)})"
    else:
        real = real or sources.read_source(plain, plain["kind"])
        names = real.names
        tasks = sources.real_tasks(real, plain, directory, image_size, shard_size)
        seed = int(plain.get("shuffle_seed") or 0)
        workers = int(plain.get("workers") or 1)
        if workers < 1:
            raise ValueError(f"dataset.workers={workers} must be >= 1")
        shards, skipped = convert.convert(tasks, workers=workers, stats=stats, desc=name)
        convert.finish(directory, skipped)
        if skipped:
            log.warning(
                "%s: %d unreadable images left out (dataset.skip_corrupt=true); listed in %s",
                name,
                len(skipped),
                directory.name.removeprefix(".").removesuffix(".partial") + "/skipped.json",
            )
        has_relevance = False
        order = f"shuffled over each split (dataset.shuffle_seed={seed})"
    for split in ("train", "val"):
        shards.setdefault(split, [])
        counts[split] = sum(int(e["count"]) for e in shards[split])
    mean, std = sources.fixed_stats(plain, *stats.result())
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
        order=order,
        skipped=len(skipped),
        source=None if tree is None else tree.record(),
    )
    if tree is not None:
        fingerprint.write_entries(tree, directory)
    write_info(info, directory)
    return info


def _write_synthetic(
    plain: dict[str, Any],
    split: str,
    image_size: int,
    shard_size: int,
    directory: Path,
    stats: ChannelStats,
) -> list[dict[str, Any]]:
    """Generate a synthetic split and write it in generation order: its labels are already drawn
    i.i.d. at random, so every shard mixes the classes."""
    n = int(_require(plain, f"{split}_size"))
    chunks = synthetic.generate_chunks(
        str(plain["generator"]),
        split,
        n,
        image_size,
        int(plain.get("seed") or 0),
        **generator_params(plain),
    )
    shards: list[dict[str, Any]] = []
    held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def flush(final: bool) -> None:
        while held and (final or sum(len(h[1]) for h in held) >= shard_size):
            images, labels, rel = (np.concatenate(x) for x in zip(*held, strict=True))
            take = min(shard_size, len(labels))
            name = shard_name(split, len(shards))
            write_shard(
                directory / name, images[:take], labels[:take], rel[:take].astype(np.float16)
            )
            if split == "train":
                stats.update(images[:take])
            shards.append({"file": name, "count": take})
            held[:] = [(images[take:], labels[take:], rel[take:])] if take < len(labels) else []

    for chunk in chunks:
        held.append(chunk)
        flush(final=False)
    flush(final=True)
    return shards
