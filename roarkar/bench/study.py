"""Wall time of the embedded study (`roarkar` as a subprocess into a fresh results directory) and of
re-running it once finished (every cell skipped)."""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from roarkar.bench.common import Samples, Sizes, row


def command(results: Path, overrides: tuple[str, ...]) -> list[str]:
    """The `roarkar` command line of the bench's study runs."""
    return [sys.executable, "-m", "roarkar.cli", f"paths.results={results}", *overrides]


def _run(cmd: list[str], log: Path) -> tuple[float, float, int]:
    """Wall seconds, child CPU seconds and exit code of ``cmd`` (output to ``log``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.perf_counter()
    with open(log, "w") as fh:
        code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.perf_counter() - w0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, code


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def run_study(sz: Sizes, cmd_for=command) -> list[dict]:
    """Time the study from scratch, then the same command again (nothing left to do)."""
    rows = []
    overrides = tuple(sz.study_overrides)
    config = " ".join(overrides) if overrides else "default (study=embedded)"
    with tempfile.TemporaryDirectory(prefix="roarkar-bench-study-") as tmp:
        results = Path(tmp) / "results"
        for what, target, log in (
            ("embedded study, from scratch", "<= 600", "first.log"),
            ("embedded study, re-run once finished (every cell skipped)", "<= 10", "again.log"),
        ):
            wall, cpu, code = _run(cmd_for(results, overrides), Path(tmp) / log)
            s = Samples(wall={0: wall}, cpu={0: cpu})
            note = [sz.study_note] if sz.study_note else []
            note.append("subprocess incl. Python/torch start-up; cpu = child CPU time")
            if code != 0:
                note.append(f"FAILED with exit code {code}: {_tail(Path(tmp) / log)}")
            rows.append(
                row(
                    "study",
                    what,
                    config,
                    wall if code == 0 else float("nan"),
                    "s",
                    target=target if code == 0 and not overrides else None,
                    target_on="value",
                    samples=s,
                    notes="; ".join(note),
                )
            )
            if code != 0:
                break
    return rows
