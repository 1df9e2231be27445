"""`roarkar-bench`: one table of figures measured side by side in one run, printed and written as CSV
(plus a Markdown file with the environment) under ``results/bench/``.

    roarkar-bench --quick                 # about a minute on 2 CPU cores
    roarkar-bench                         # full: the real embedded study too (10-15 minutes)
    roarkar-bench --only smoe,captum --repeats 7 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from roarkar.files import git_commit

if TYPE_CHECKING:  # torch and pandas load in run(), after roarkar.entry settled OpenMP
    import pandas as pd

    from roarkar.bench.common import Sizes

SECTIONS = (
    "saliency",
    "smoe",
    "captum",
    "training",
    "layer",
    "loader",
    "runtime",
    "imputation",
    "study",
    "gpu",
)


def _runner(name: str) -> Callable[[Sizes], list[dict]]:
    if name in ("saliency", "smoe", "captum"):
        from roarkar.bench import saliency as mod

        return getattr(mod, f"run_{name}")
    if name in ("training", "layer"):
        from roarkar.bench import training as mod

        return getattr(mod, f"run_{name}")
    if name == "loader":
        from roarkar.bench.loader import run_loader

        return run_loader
    if name == "runtime":
        from roarkar.bench.runtime import run_runtime

        return run_runtime
    if name == "imputation":
        from roarkar.bench.imputation import run_imputation

        return run_imputation
    if name == "study":
        from roarkar.bench.study import run_study

        return run_study
    if name == "gpu":
        from roarkar.bench.gpu import run_gpu

        return run_gpu
    raise ValueError(name)


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


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(sz: Sizes, sections: list[str]) -> dict[str, str]:
    import torch

    from roarkar import runtime

    try:
        import captum

        captum_version = captum.__version__
    except ImportError:
        captum_version = "not installed"
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "mode": sz.mode,
        "sections": ", ".join(sections),
        "repeats": str(sz.repeats),
        "git commit": git_commit(short=True),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "captum": captum_version,
        "cpu": cpu_model(),
        "cpu cores (os.cpu_count)": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "OMP_WAIT_POLICY": runtime.omp_wait_policy_state,
        "glibc malloc": runtime.malloc_state,
        "device (CPU sections)": sz.device,
        "gpu": gpu,
        "load average at start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [_fmt(r[c]).replace("|", "/") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def console_table(df: pd.DataFrame) -> str:
    """The table for a terminal: long text cut short (the CSV and Markdown keep all of it)."""

    def cut(text: str, n: int) -> str:
        return text if len(text) <= n else text[: n - 3] + "..."

    widths = {"what": 72, "config": 44, "notes": 60}
    shown = df.drop(columns=["spread_pct"]).copy()
    for col in shown.columns:
        shown[col] = [cut(_fmt(v), widths.get(col, 24)) for v in shown[col]]
    shown = shown.rename(
        columns={
            "cpu_over_wall": "cpu/wall",
            "meets_target": "met",
            "repeats": "n",
            "peak_mem_mb": "mem_mb",
        }
    )
    return shown.to_string(index=False, justify="left")


def summary_lines(df: pd.DataFrame) -> list[str]:
    lines = []
    smoe = df[(df.section == "smoe") & df.what.str.startswith("SMOE overhead")]
    for _, r in smoe.iterrows():
        lines.append(
            f"SMOE Scale overhead over a plain forward pass: {r.value:.2f} % of the forward time "
            f"({r.config}; target {r.target} %: {'met' if r.meets_target == 'yes' else 'missed'})"
        )
    for _, r in df[df.target != ""].iterrows():
        measured = r.ratio if not math.isnan(r.ratio) else r.value
        verdict = {"yes": "met", "no": "MISSED"}.get(r.meets_target, "n/a")
        lines.append(
            f"target {verdict:6s} {r.section}: {r.what} = {measured:.4g} (target {r.target})"
        )
    return lines


def write(
    df: pd.DataFrame,
    env: dict[str, str],
    out: Path,
    mode: str,
    lines: list[str],
    sections: list[str] | None = None,
) -> Path:
    """Write the CSV and Markdown; a run of every section also refreshes ``latest[-mode]``, a run
    of some (``--only``) names them in its file name and leaves the latest full table alone."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    partial = sections is not None and set(sections) != set(SECTIONS)
    only = f"-only-{'-'.join(sections)}" if partial else ""
    stem = f"bench-{socket.gethostname()}-{stamp}-{mode}{only}"
    csv_path = out / f"{stem}.csv"
    df.to_csv(csv_path, index=False)
    md = [f"# roarkar-bench ({mode})", ""]
    md += [f"- **{k}**: {v}" for k, v in env.items()]
    md += [
        "",
        "Timings are medians over interleaved rounds; ratios are medians of per-round ratios. "
        "`cpu_over_wall` = process CPU time / wall time of the same calls (the cores are shared). "
        "`peak_mem_mb` on CPU = growth of the process's peak resident set over one call "
        "(malloc_trim, VmHWM reset through /proc/self/clear_refs), on CUDA max_memory_allocated "
        "growth. `spread_pct` = (max - min) / median of the rounds.",
        "",
        *[f"    {line}" for line in lines],
        "",
        markdown_table(df),
        "",
    ]
    md_path = out / f"{stem}.md"
    md_path.write_text("\n".join(md))
    if not partial:
        latest = "latest" if mode == "full" else f"latest-{mode}"
        (out / f"{latest}.csv").write_text(csv_path.read_text())
        (out / f"{latest}.md").write_text(md_path.read_text())
    return csv_path


def run(argv: list[str] | None = None) -> tuple[pd.DataFrame, Path]:
    args = parse_args(argv)
    import pandas as pd

    from roarkar.bench.common import COLUMNS, row, sizes_for

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
    path = write(df, env, Path(args.out), mode, lines, args.sections)
    print(f"\nroarkar-bench ({mode}): {wall:.1f} s wall; wrote {path} and its .md")
    return df, path


def main(argv: list[str] | None = None) -> int:
    df, _ = run(argv)
    return 1 if (df["what"] == "section failed").any() else 0


if __name__ == "__main__":  # python -m: the same process settings as the console script
    from roarkar.entry import bench

    bench()
