"""Wall time of the embedded study (`roarkar` as a subprocess into a fresh results directory) and of
re-running it once finished (every cell skipped); in the full bench also the embedded base model
trained in float32 and under bf16 autocast, to see whether accuracy holds in bf16."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from roarkar.bench.table import row
from roarkar.bench.timing import Samples
from roarkar.bench.workload import Sizes


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
            ("embedded study, from scratch", "<= 300", "first.log"),
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
    if sz.precision_overrides is not None:
        rows += precision_rows(sz, cmd_for)
    return rows


PRECISIONS = (
    ("float32", ("trainer.amp=off",)),
    ("bf16 autocast", ("trainer.amp=bf16",)),
)


def precision_rows(sz: Sizes, cmd_for=command) -> list[dict]:
    """The embedded base model (`roarkar task=base`) trained in float32 and in bf16 autocast, both
    channels-last: held-out accuracy and wall time. The trainer keeps bf16 off on a CPU by default
    (``amp: auto``); this shows what it would cost and whether accuracy holds (it is on for CUDA)."""
    rows, measured = [], {}
    overrides = tuple(sz.precision_overrides or ())
    with tempfile.TemporaryDirectory(prefix="roarkar-bench-precision-") as tmp:
        for label, settings in PRECISIONS:
            results = Path(tmp) / label.split()[0]
            log = Path(tmp) / f"{label.split()[0]}.log"
            cmd = cmd_for(results, ("task=base", "trainer.progress=false", *overrides, *settings))
            wall, cpu, code = _run(cmd, log)
            found = sorted((results / "models").glob("*/*/result.json"))
            if code != 0 or not found:
                rows.append(
                    row(
                        "precision",
                        f"embedded base model, {label}",
                        " ".join((*overrides, *settings)),
                        None,
                        "accuracy",
                        notes=f"FAILED with exit code {code}: {_tail(log)}",
                    )
                )
                continue
            result = json.loads(found[0].read_text())
            reference = measured.get(PRECISIONS[0][0])
            measured[label] = (float(result["accuracy"]), float(result.get("wall_time_s", wall)))
            accuracy, train_s = measured[label]
            rows.append(
                row(
                    "precision",
                    f"embedded base model held-out accuracy, {label}",
                    " ".join((*overrides, *settings)) or "default",
                    accuracy,
                    "accuracy",
                    ratio=None if reference is None else accuracy / reference[0],
                    samples=Samples(wall={0: wall}, cpu={0: cpu}),
                    notes=f"training {train_s:.1f} s"
                    + ("" if reference is None else f" ({train_s / reference[1]:.2f}x float32's)")
                    + "; ratio = accuracy / float32 accuracy; one seed",
                )
            )
    return rows
