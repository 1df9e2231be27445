"""Pretrained weights from a file (``model.weights=<path>``): torchvision's published ``.pth``
files, a ``state_dict`` a user saved, or a roarkar ``model.pt``.

Loading never runs code from the file (``weights_only=True``). The file's identity is its content
(SHA-256, see ``roarkar.identity.model_identity``), not its path: the same weights anywhere are the
same base model, other weights another. The loaded network is saved once per content hash and
model (``shared_model_file``), and every base model made from it (one per dataset subset) links
that one file (``link_model_file``) instead of holding its own copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from roarkar.files import atomic_write, file_lock

__all__ = [
    "classes_in",
    "link_model_file",
    "load_into",
    "read_state_dict",
    "shared_model_file",
    "weights_identity",
]

#: Prefixes other tools put before a network's own keys (DDP, roarkar's TappedNet, Lightning).
_PREFIXES = ("module.", "net.", "model.")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a weights file as the network's own keys (wrappers' prefixes removed)."""
    path = Path(path)
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"model.weights={path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - truncated, foreign or crafted (refused, never run)
        raise ValueError(f"model.weights={path} cannot be read as weights: {exc}") from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    ):
        raise ValueError(
            f"model.weights={path} holds {type(obj).__name__}, not a state_dict (a dict of "
            "tensors, or {'state_dict': ...})"
        )
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def classes_in(state: dict[str, Tensor], path: str | Path) -> int:
    """The number of classes of a classifier's weights: rows of its last linear layer's weight."""
    for key in ("fc.weight", "classifier.weight", "head.weight"):
        if key in state and state[key].dim() == 2:
            return int(state[key].shape[0])
    linear = [k for k, v in state.items() if k.endswith(".weight") and v.dim() == 2]
    if not linear:
        raise ValueError(f"model.weights={path}: no linear layer, so no number of classes")
    return int(state[linear[-1]].shape[0])


def load_into(net: nn.Module, state: dict[str, Tensor], path: str | Path) -> None:
    """Load ``state`` into ``net`` exactly: every missing, unexpected or misshapen key is named."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if keys:
                more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{what}: {', '.join(keys[:3])}{more}")
        raise ValueError(
            f"model.weights={path} does not fit the model ({type(net).__name__}): "
            + "; ".join(parts)
        )
    net.load_state_dict(state)


def weights_identity(sha256: str) -> str:
    """The identity a shared model file records: the weights file's content, not a base model
    (every dataset subset's base model of those weights links the same file)."""
    return f"weights:{sha256}"


def shared_model_file(store: Path, sha256: str, model: str, state: dict[str, Tensor]) -> Path:
    """``store/<sha256>-<model>.pt``, the one saved copy of ``model`` loaded from the weights
    file of content ``sha256`` (a roarkar model file: identity, model, state_dict), written once
    (atomically, under a lock) and kept."""
    store.mkdir(parents=True, exist_ok=True)
    path = store / f"{sha256}-{model}.pt"
    with file_lock(store / f".{path.name}.lock"):
        if not path.is_file():
            with atomic_write(path) as tmp:
                torch.save(
                    {"identity": weights_identity(sha256), "model": model, "state_dict": state}, tmp
                )
    return path


def link_model_file(shared: Path, dest: Path) -> None:
    """``dest`` as a hard link to ``shared`` (a copy where the file system has no links),
    replacing ``dest`` atomically."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(shared, tmp)
    except OSError:  # another file system, or links not allowed: one copy more
        shutil.copyfile(shared, tmp)
    os.replace(tmp, dest)
