"""Every identity, computed once: the rule of what is result-relevant, the hashes of a dataset's
content, a base model, a cell and a saliency precompute, and the SHA-256 of a file.

An identity names a directory (``data/<name>-<hash8>``, ``models/...-<id8>``, ``cells/...-<id8>``,
``saliency/<method>-<id8>``) and a result is reused exactly when its identity matches, so what
enters each hash is decided here and nowhere else; a change here re-runs finished studies
(``tests/integration/test_identity_pins.py`` pins known identities). The functions take plain values (config
nodes, a recipe, a seed), not a run's context: the protocols, the study and the cluster tools pass
them. Bottom layer but for the config schema (``roarkar.config.schema``, whose field metadata says
what enters an identity) and ``roarkar.targets`` (itself bottom), so ``roarkar.data`` can name its
shard directories with it; the state of a cell (finished, claimed, failed) is ``roarkar.store``'s.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from roarkar import targets
from roarkar.config.schema import DatasetKeys, TrainerConfig, not_in_identity

__all__ = [
    "DATASET_NOT_CONTENT",
    "METHOD_LIBRARIES",
    "NAMING_KEYS",
    "NOT_RESULT_RELEVANT",
    "STORAGE_KEYS",
    "base_identity",
    "bytes_sha256",
    "cell_identity",
    "dataset_content_hash",
    "file_sha256",
    "identity_hash",
    "method_identity",
    "model_identity",
    "precompute_identity",
    "precompute_spec",
    "result_relevant",
    "to_plain",
]

# The one rule: keys that say where or how fast, not what (the fields of the hashed nodes' schemas
# marked ``identity: False``); at any depth they never enter an identity (a cell, a base model, a
# precompute).
NOT_RESULT_RELEVANT = not_in_identity(DatasetKeys, TrainerConfig)
# A dataset's shards are stored data, not a result: which files are listed and how they are cut
# into shards decide what is stored, so these enter the dataset's content hash after all.
STORAGE_KEYS = frozenset({"shard_size", "train_list", "val_list"})
# What a dataset is called and whether corrupt files are skipped or an error: they do enter a
# cell's identity, but not the name of its shard directory. (Conversion workers enter neither: the
# shards are byte-identical for any number of them.)
NAMING_KEYS = frozenset({"name", "skip_corrupt"})
# Top-level keys of a dataset config left out of its content hash.
DATASET_NOT_CONTENT = (NOT_RESULT_RELEVANT - STORAGE_KEYS) | NAMING_KEYS
# Saliency methods that run a library's class by name -> the library's distribution, whose
# installed version enters their identity (another version may compute another map).
METHOD_LIBRARIES = {"captum": "captum", "gradcam_lib": "grad-cam"}


def to_plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved plain dict from an OmegaConf DictConfig or any mapping (``???`` stays ``???``)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return json.loads(json.dumps(dict(cfg), default=str))


def result_relevant(obj: Any) -> Any:
    """``obj`` as plain data (OmegaConf nodes resolved) without the keys of
    :data:`NOT_RESULT_RELEVANT`, at any depth."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, DictConfig | ListConfig):
            obj = OmegaConf.to_container(obj, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Mapping):
        return {str(k): result_relevant(v) for k, v in obj.items() if k not in NOT_RESULT_RELEVANT}
    if isinstance(obj, list | tuple):
        return [result_relevant(v) for v in obj]
    return obj


def bytes_sha256(data: bytes) -> str:
    """SHA-256 of ``data`` (hex)."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path, key: str = "", expected: str = "a file") -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks; a missing file is named (by its
    config ``key`` when given). Remembered per path, size and modification time: a study asks for
    the identity of every cell, and each names the same weights file (hundreds of MB for
    ResNet-50), which is then read once per process, not once per cell."""
    path = Path(path)
    if not path.is_file():
        where = f"{key}={path}" if key else str(path)
        raise FileNotFoundError(f"{where} does not exist (expected {expected})")
    stat = path.stat()
    return _sha256_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identity_hash(obj: Any, length: int = 16) -> str:
    """Stable hash of the result-relevant part of a config (paths and speed knobs left out)."""
    text = json.dumps(result_relevant(obj), sort_keys=True, default=str)
    return bytes_sha256(text.encode())[:length]


def dataset_content_hash(cfg: Mapping[str, Any], format_version: int) -> str:
    """Eight hex digits identifying what a dataset's images are and how they are stored: every
    top-level key but :data:`DATASET_NOT_CONTENT`, plus the shard format version (format 1 hashed
    the config alone)."""
    content = {k: v for k, v in to_plain(cfg).items() if k not in DATASET_NOT_CONTENT}
    if format_version != 1:
        content["format_version"] = format_version
    blob = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
    return bytes_sha256(blob.encode())[:8]


def model_identity(model: Mapping[str, Any]) -> dict:
    """The model node as it enters every identity: ``weights`` by the file's content hash (the
    same weights at any path are the same model), and absent when not set (so identities from
    before the key existed are unchanged)."""
    node = to_plain(model)
    weights = node.pop("weights", None)
    if weights:
        node["weights_sha256"] = file_sha256(weights, "model.weights", "a weights file")
    return node


def method_identity(method: Mapping[str, Any]) -> dict:
    """The method node as it enters every identity. An external method (``params.target``, a
    ``pkg.module:obj`` or ``file.py:obj``) adds ``source_sha256``, the content of the file that
    defines it (editing the method re-runs its cells), and a file target is named by its file name,
    not its path (the same file anywhere is the same method); a library method
    (:data:`METHOD_LIBRARIES`) adds ``library_version``; ``method=precomputed`` is its files'
    content (``params.path`` replaced by the SHA-256 of every file in that directory, so changed
    files re-run the cells and the same files at any path are the same maps). Any other node is
    unchanged."""
    node = to_plain(method)
    params = node.get("params") or {}
    if node.get("name") == "precomputed":
        return _precomputed_identity(node, dict(params))
    target = params.get("target") if isinstance(params, dict) else None
    if isinstance(target, str):
        node["source_sha256"] = file_sha256(
            targets.source_file(target), "method.params.target", "a python file"
        )
        where, attr = targets.split_target(target)
        if targets.is_file(where):
            node["params"] = params | {"target": f"{Path(where).name}:{attr}"}
    library = METHOD_LIBRARIES.get(str(node.get("name")))
    if library is not None:
        try:
            node["library_version"] = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            node["library_version"] = None  # the method itself says to install it
    return node


def _precomputed_identity(node: dict, params: dict) -> dict:
    path = params.pop("path", None)
    if not path:
        raise ValueError("method=precomputed needs method.params.path=<directory of the maps>")
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"method.params.path={directory} is not a directory (expected the maps' train.npz, "
            "val.npz and meta.json)"
        )
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    return node | {
        "params": params,
        "maps_sha256": {p.name: file_sha256(p, "method.params.path") for p in files},
    }


def base_identity(dataset: Mapping, model: Mapping, recipe: Mapping, seed: int) -> str:
    """A trained base model: its data, model, recipe (trainer settings of the base stage) and
    seed; pretrained weights (``model.weights``): the data and the weights file's content (nothing
    is trained, so recipe and seed play no part)."""
    if to_plain(model).get("weights"):
        return identity_hash({"dataset": dataset, "model": model_identity(model)})
    return identity_hash(
        {
            "dataset": dataset,
            "model": model_identity(model),
            "trainer": recipe,
            "seed": int(seed),
        }
    )


def cell_identity(
    cell: Mapping,
    dataset: Mapping,
    model: Mapping,
    method: Mapping,
    protocol: Mapping,
    trainer: Mapping,
) -> str:
    """A cell: its row (``Cell.as_dict()``), dataset, model, method, protocol node (with the
    cell's resolved percent) and the trainer recipe of its stage and of the base stage."""
    return identity_hash(
        {
            "cell": dict(cell),
            "dataset": dataset,
            "model": model_identity(model),
            "method": method_identity(method),
            "protocol": protocol,
            "trainer": trainer,
        }
    )


def precompute_identity(base_id: str, method: Mapping, target: str, dataset: str) -> str:
    """The input protocol's saliency maps: base model, method node, target and dataset name."""
    return identity_hash(
        {"base": base_id, "method": method_identity(method), "target": target, "dataset": dataset}
    )


def precompute_spec(
    *,
    dataset: str,
    base_id: str,
    weights: str | Path,
    method: Mapping,
    target: str,
    seed: int,
    data: Mapping,
) -> dict:
    """What precomputed maps are of, written beside them: any change makes them stale. ``weights``
    is the base model's file (by content), ``data`` the dataset's fingerprint (which image is
    behind each key)."""
    return {
        "dataset": str(dataset),
        "base_model": base_id,
        "weights_sha256": file_sha256(weights),
        "method": method_identity(method),
        "target": str(target),
        "seed": int(seed),
        "data": data,
    }
