"""`roarkar-bench`: one table of figures measured side by side in one run, printed and written as CSV
(plus a Markdown file with the environment) under ``results/bench/``.

    roarkar-bench --quick                 # about a minute on 2 CPU cores
    roarkar-bench                         # full: the real embedded study too (10-15 minutes)
    roarkar-bench --only smoe,captum --repeats 7 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and pandas load in run(), after roarkar.entry settled OpenMP
    import pandas as pd

    from roarkar.bench.workload import Sizes

SECTIONS = (
    "saliency",
    "smoe",
    "captum",
    "training",
    "layer",
    "group",
    "loader",
    "runtime",
    "imputation",
    "study",
    "gpu",
)


def _runner(name: str) -> Callable[[Sizes], list[dict]]:
    """The function of section ``name`` (imported only when its section runs)."""
    if name == "saliency":
        from roarkar.bench.saliency import run_saliency as fn
    elif name == "smoe":
        from roarkar.bench.smoe import run_smoe as fn
    elif name == "captum":
        from roarkar.bench.captum_compare import run_captum as fn
    elif name == "training":
        from roarkar.bench.training import run_training as fn
    elif name == "layer":
        from roarkar.bench.training import run_layer as fn
    elif name == "group":
        from roarkar.bench.group import run_group as fn
    elif name == "loader":
        from roarkar.bench.loader import run_loader as fn
    elif name == "runtime":
        from roarkar.bench.runtime import run_runtime as fn
    elif name == "imputation":
        from roarkar.bench.imputation import run_imputation as fn
    elif name == "study":
        from roarkar.bench.study import run_study as fn
    elif name == "gpu":
        from roarkar.bench.gpu import run_gpu as fn
    else:
        raise ValueError(name)
    return fn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="roarkar-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: about a minute on 2 cores")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: seconds
    p.add_argument(
        "--only", default="", help=f"comma-separated sections to run: {', '.join(SECTIONS)}"
    )
    p.add_argument("--out", default="results/bench", help="where the CSV and Markdown go")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per figure (median)")
    p.add_argument(
        "--device",
        default="cpu",
        help="device of the CPU sections (cpu or cuda); gpu is always cuda",
    )
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}: expected some of {', '.join(SECTIONS)}")
    args.sections = [s for s in SECTIONS if not only or s in only]
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def run(argv: list[str] | None = None) -> tuple[pd.DataFrame, Path]:
    args = parse_args(argv)
    import pandas as pd

    from roarkar.bench.report import console_table, environment, summary_lines, write
    from roarkar.bench.table import COLUMNS, row
    from roarkar.bench.workload import sizes_for

    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    sz = sizes_for(mode, args.repeats, args.device)
    env = environment(sz, args.sections)
    w0, c0 = time.perf_counter(), time.process_time()
    rows: list[dict] = []
    for section in args.sections:
        s0 = time.perf_counter()
        print(f"[roarkar-bench] {section} ...", file=sys.stderr, flush=True)
        try:
            rows += _runner(section)(sz)
        except Exception as exc:  # one section failing keeps the others
            traceback.print_exc()
            rows.append(
                row(section, "section failed", "", None, "", notes=f"{type(exc).__name__}: {exc}")
            )
        print(
            f"[roarkar-bench] {section} done in {time.perf_counter() - s0:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    env["bench wall time"] = (
        f"{wall:.1f} s (process CPU {cpu:.1f} s, study subprocesses not included)"
    )
    env["load average at end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    lines = summary_lines(df)
    print(console_table(df))
    print()
    for line in lines:
        print(line)
    partial = set(args.sections) != set(SECTIONS)
    path = write(df, env, Path(args.out), mode, lines, args.sections if partial else None)
    print(f"\nroarkar-bench ({mode}): {wall:.1f} s wall; wrote {path} and its .md")
    return df, path


def main(argv: list[str] | None = None) -> int:
    df, _ = run(argv)
    return 1 if (df["what"] == "section failed").any() else 0


if __name__ == "__main__":  # python -m: the same process settings as the console script
    from roarkar.entry import bench

    bench()
