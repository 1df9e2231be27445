"""How a bench run is reported: the environment it ran in, the table for a terminal, the summary of
its targets, and the CSV and Markdown files (the latest full table refreshed only by a full run)."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from roarkar.files import git_commit

if TYPE_CHECKING:  # torch and pandas load in cli.run(), after roarkar.entry settled OpenMP
    import pandas as pd

    from roarkar.bench.workload import Sizes


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else what ``platform`` says)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(sz: Sizes, sections: list[str]) -> dict[str, str]:
    """What the figures depend on, for the Markdown file's header: versions, CPU, threads, process
    settings, load."""
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


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def markdown_table(df: pd.DataFrame) -> str:
    """The whole table in Markdown, every cell in full."""
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
    """One line for SMOE's overhead and one per row with a target: met or missed."""
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
    only_sections: list[str] | None = None,
) -> Path:
    """Write the CSV and Markdown; a run of every section (``only_sections`` None) also refreshes
    ``latest[-mode]``, a run of some (``--only``) names them in its file name and leaves the latest
    full table alone."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    partial = only_sections is not None
    only = f"-only-{'-'.join(only_sections)}" if partial else ""
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
