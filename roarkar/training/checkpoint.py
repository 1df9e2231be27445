"""Training checkpoints: written atomically, and read back only by the run that wrote them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from roarkar.files import atomic_write

__all__ = ["CheckpointMismatchError", "load_checkpoint", "save_atomic"]


class CheckpointMismatchError(ValueError):
    """A checkpoint on disk belongs to another run or model."""


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then renamed: a crash never leaves half a file."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path, identity: str) -> dict:
    """Load a checkpoint and check it was written by the run ``identity``."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise CheckpointMismatchError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("identity") != identity:
        found = ckpt.get("identity") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointMismatchError(
            f"checkpoint {path} belongs to run {found!r}, not {identity!r}; "
            "move it away or point paths.results elsewhere"
        )
    return ckpt
