"""Two file-system helpers every layer needs, written once: an exclusive lock on a file (dataset
preparation, base models, claims) and the commit stamp recorded in results and bench reports.
Bottom layer: no roarkar imports."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

__all__ = ["file_lock", "git_commit"]

log = logging.getLogger(__name__)


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
