"""The file-system helpers every layer needs, written once: an exclusive lock on a file (dataset
preparation, base models, claims), an atomic write (a file appears whole or not at all), and the
commit stamp recorded in results and bench reports. Bottom layer: no roarkar imports."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "atomic_write",
    "child_path",
    "file_lock",
    "git_commit",
    "path_component",
    "write_text_atomic",
]

log = logging.getLogger(__name__)


def path_component(value: object, key: str) -> str:
    """``value`` as one folder or file name, else a ValueError naming ``key``: a name that becomes
    a path (a dataset, model, method id or label, a layer, a preset) must not climb out of the tree
    it is joined to (``..``), reach into another (a separator), replace it (an absolute path) or
    vanish (empty, ``.``)."""
    name = str(value)
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or name != name.strip()
    ):
        raise ValueError(
            f"{key}={name!r}: expected one path component (a name without '/', '\\', "
            "surrounding spaces, and not '', '.' or '..'), because it names a folder"
        )
    return name


def child_path(root: Path | str, *names: tuple[object, str] | str) -> Path:
    """``root / name / ...``, each name checked by :func:`path_component`: the one way an
    artifact's folder is built from names (cells, base models, saliency, maps, metric runs,
    shards), so none lands outside ``paths.results`` or ``paths.data``. A name is ``(value, key)``
    or a literal of roarkar's own (``"cells"``)."""
    path = Path(root)
    for name in names:
        value, key = name if isinstance(name, tuple) else (name, "path")
        path = path / path_component(value, key)
    return path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock (``flock``): the first process does the work, the others wait for it
    (and say so); released on exit, also when the process dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process holding %s", path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to, renamed over ``path`` when the block ends
    without error (readers, also on other hosts, see the old file or the new one, never half of
    one) and removed when it raises. The name carries host and pid: writers never share it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def git_commit(short: bool = False) -> str:
    """The commit of the roarkar checkout (with '+dirty' for local changes to tracked files), or
    'unknown' outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        args = ["git", "rev-parse", "--short", "HEAD"] if short else ["git", "rev-parse", "HEAD"]
        commit = subprocess.run(args, cwd=here, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
