"""Dataset kinds (``dataset.kind``): the one registry of what :func:`roarkar.data.prepare` can
materialise, each kind registered once with what that takes.

* ``synthetic``: the embedded generators (``dataset.generator``, :data:`roarkar.data.synthetic.GENERATORS`);
* image-file layouts: a listing of ``(path, label)`` per split (:mod:`roarkar.data.real`);
* array releases: uint8 arrays per split (:mod:`roarkar.data.layouts`);
* ``shards``: a shard directory ``prepare`` wrote earlier (``dataset.root``).

Importing this module registers them; nothing else happens on import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roarkar.data import layouts, real
from roarkar.registry import Registry

__all__ = ["KINDS", "DatasetKind", "register_kind", "resolve_root"]

#: ``root()``: the kind's ``dataset.root``, resolved (an error naming what to set when unset).
RootFn = Callable[[], Path]


@dataclass(frozen=True)
class DatasetKind:
    """One ``dataset.kind``: how it is materialised (``source``: ``generated``, ``files``,
    ``arrays`` or ``shards``), the environment variable its ``dataset.root`` usually comes from,
    and its reader: ``files``: ``(root, cfg) -> real.Listing``; ``arrays``: ``(cfg, root) ->
    layouts.ArrayListing`` (``root`` a :data:`RootFn`, called only when the release needs one)."""

    name: str
    source: str
    root_env: str | None = None
    read: Callable[..., Any] | None = None


KINDS: Registry[DatasetKind] = Registry("dataset kind", key="dataset.kind")


def register_kind(kind: DatasetKind) -> DatasetKind:
    """Register ``kind`` under its name (a duplicate name is an error)."""
    KINDS.register(kind.name, kind)
    return kind


def resolve_root(cfg: Mapping[str, Any], kind: str) -> Path:
    """``dataset.root`` as a Path; unset -> ValueError saying which env var / key to set."""
    root = cfg.get("root")
    if root in (None, "", "???"):
        env = KINDS.get(kind).root_env
        how = f"set the environment variable {env} or " if env else ""
        raise ValueError(
            f"dataset.root is not set for dataset {cfg.get('name')!r} (kind {kind!r}): "
            f"{how}pass dataset.root=/path/to/data"
        )
    return Path(str(root)).expanduser()


register_kind(DatasetKind("synthetic", "generated"))
register_kind(DatasetKind("imagefolder", "files", "IMAGENET_ROOT", real.list_imagefolder))
register_kind(DatasetKind("places365", "files", "PLACES365_ROOT", real.list_places365))
register_kind(DatasetKind("cowc", "files", "COWC_ROOT", real.list_cowc))
register_kind(DatasetKind("tiny_imagenet", "files", "TINY_IMAGENET_ROOT", real.list_tiny_imagenet))
register_kind(DatasetKind("cifar10", "arrays", "CIFAR10_ROOT", layouts.cifar10_arrays))
register_kind(DatasetKind("mnist", "arrays", None, layouts.mnist_arrays))
register_kind(DatasetKind("shards", "shards"))
