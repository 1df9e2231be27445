"""The console entry points: settle the process first (roarkar.runtime: OpenMP's wait policy must
be set before torch loads), then import and run the command. Importing roarkar does neither."""

from __future__ import annotations

import importlib
import os
import sys

from roarkar.runtime import tune_process

_COMMANDS = {
    "roarkar": "roarkar.cli",
    "roarkar-tables": "roarkar.report.cli",
    "roarkar-gallery": "roarkar.gallery",
    "roarkar-bench": "roarkar.bench.cli",
}


def exit_known_error(command: str, exc: BaseException) -> None:
    """End the process on a known error: its message as the last line, exit status 2, and the
    traceback only when asked (``HYDRA_FULL_ERROR=1``, then the error is re-raised)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise exc
    print(
        f"{type(exc).__name__} (HYDRA_FULL_ERROR=1 shows the traceback)\n{command}: error: {exc}",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(2)


def _launch(command: str) -> None:
    tune_process()
    try:
        result = importlib.import_module(_COMMANDS[command]).main()
    except (ValueError, OSError) as exc:  # bad input, named by the message: one line, no traceback
        exit_known_error(command, exc)
    if isinstance(result, int):
        sys.exit(result)


def roarkar() -> None:
    """``roarkar``: the Hydra entry point (roarkar/cli.py)."""
    _launch("roarkar")


def tables() -> None:
    """``roarkar-tables`` (roarkar/report/cli.py)."""
    _launch("roarkar-tables")


def gallery() -> None:
    """``roarkar-gallery`` (roarkar/gallery.py)."""
    _launch("roarkar-gallery")


def bench() -> None:
    """``roarkar-bench`` (roarkar/bench/cli.py)."""
    _launch("roarkar-bench")
