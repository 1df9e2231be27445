"""Writing and printing the tables: each run renders every file first, clears what an earlier run
left, then writes (all or nothing). Above :mod:`roarkar.report.tables`, whose registry
(:data:`~roarkar.report.tables.TABLES`) it iterates: the tables compute and know nothing of files.

Tables are computed from one metric: ``accuracy`` (the default, written to ``out_dir`` itself) or
``true_class_score`` (written to the subfolder ``out_dir/true_class_score/``, :func:`metric_dir`,
with the same file names, the metric in every title and a note saying what it is). A run for one
metric never removes or overwrites the other's outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from roarkar.files import write_text_atomic
from roarkar.report.aggregate import base_model_warnings
from roarkar.report.long import normalize_long
from roarkar.report.markdown import to_markdown
from roarkar.report.metric import (
    DEFAULT_METRIC,
    METRIC_DEFINITIONS,
    METRICS,
    check_metric,
    select_metric,
)
from roarkar.report.render import layout_latex, layout_markdown
from roarkar.report.scores import DEFAULT_LOG_BASE, log_base_label
from roarkar.report.tables import TABLES, TableSpec
from roarkar.report.uncertainty import DEFAULT_CI_SEED, Seeds, has_several_seeds

__all__ = [
    "OUTPUT_PATTERNS",
    "clear_outputs",
    "format_for_console",
    "metric_dir",
    "metric_note",
    "write_tables",
]

log = logging.getLogger(__name__)


def _log_note(log_base: float) -> str:
    return f"Information score (Eq 9) uses the {log_base_label(log_base)}."


def _title(spec: TableSpec, metric: str) -> str:
    """A table's title; tables of a metric other than accuracy say it in brackets and in place of
    the word accuracy (Tables 4, 5)."""
    if metric == DEFAULT_METRIC:
        return spec.title
    head, _, rest = spec.title.partition(": ")
    return f"{head} [{METRICS[metric]}]: {rest.replace('accuracy', METRICS[metric])}"


def metric_note(metric: str) -> str | None:
    """The line under every table (and in the console) of a metric other than accuracy."""
    if metric == DEFAULT_METRIC:
        return None
    return (
        f"Metric: {METRICS[metric]} ({metric}), {METRIC_DEFINITIONS[metric]}, in place of "
        "accuracy in every cell and in Eq 8/9."
    )


def metric_dir(out_dir: str | Path, metric: str = DEFAULT_METRIC) -> Path:
    """Where the outputs of ``metric`` go: ``out_dir`` for accuracy, ``out_dir/<metric>/`` for
    another, so the two never overwrite each other."""
    check_metric(metric)
    out = Path(out_dir)
    return out if metric == DEFAULT_METRIC else out / metric


def _build(
    df_long: pd.DataFrame,
    log_base: float,
    percent: Mapping[str, float] | None,
    n_boot: int | None = None,
    ci_seed: int | None = None,
    metric: str = DEFAULT_METRIC,
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Every registered table the long table supports, computed from ``metric``, and notes on the
    skipped ones (a cell lacking the metric is an error naming it: :func:`select_metric`).

    With several seeds of some cell (and ``n_boot`` not None), the tables carry their spread
    (:mod:`roarkar.report.uncertainty`: std, n, bootstrap CIs).
    """
    d = select_metric(normalize_long(df_long), metric)
    seeds = None
    if n_boot is not None and has_several_seeds(d):
        seeds = Seeds(n_boot=n_boot, ci_seed=DEFAULT_CI_SEED if ci_seed is None else ci_seed)
    protocols = set(d["protocol"])
    tables: dict[str, pd.DataFrame] = {}
    lacking: dict[str, list[str]] = {}
    for name, spec in TABLES.items():
        if spec.protocol not in protocols:
            lacking.setdefault(spec.protocol, []).append(name)
            continue
        t = spec.table(d, log_base=log_base, percent=percent, seeds=seeds)
        t.attrs["title"] = _title(spec, metric) + spec.percents_said(d, percent)
        t.attrs["metric"] = metric
        tables[name] = t
    skipped = [f"{', '.join(n)} skipped: no {p}-protocol rows" for p, n in lacking.items()]
    return tables, skipped


def _notes(spec: TableSpec, t: pd.DataFrame, log_base: float) -> str | None:
    notes = [_log_note(log_base)] if spec.uses_log_base else []
    said = metric_note(t.attrs.get("metric", DEFAULT_METRIC))
    notes += [said] if said else []
    if "n" in t.columns:
        n = pd.to_numeric(t["n"], errors="coerce").dropna()
        if len(n):
            span = f"{int(n.min())}" if n.min() == n.max() else f"{int(n.min())}..{int(n.max())}"
            notes.append(
                f"Cells: mean ± sample std over seeds (n = {span}); std and n per cell in the CSV."
            )
    if "n_boot" in t.attrs:
        notes.append(
            f"{t.attrs['ci_level']:.0%} percentile bootstrap CIs over seeds "
            f"({t.attrs['n_boot']} resamples, RNG seed {t.attrs['ci_seed']}) in the CSV "
            "(*_ci_low, *_ci_high); NaN where every cell of a score has one seed."
        )
    return " ".join(notes) or None


def _ci_markdown(spec: TableSpec, t: pd.DataFrame) -> str:
    keys = [c for c in ("dataset", "method") if c in t.columns]
    cols = keys + [f"{v}_ci_{b}" for v in spec.interval_values for b in ("low", "high")]
    return "\n" + to_markdown(t[cols], "95 % bootstrap confidence intervals over seeds")


#: What roarkar writes into a tables folder; a new run removes these first (no stale Table 5
#: from an earlier study beside a fresh ``long.csv``). Only files directly in the folder: the
#: outputs of another metric, in its subfolder (:func:`metric_dir`), are left alone.
OUTPUT_PATTERNS: tuple[str, ...] = (
    "long.csv",
    *(f"{name}.{ext}" for name in TABLES for ext in ("csv", "md", "tex")),
    "compare_table*.csv",
    "comparison.md",
    "fig4_layer_scores.png",
    "fig5_accuracy_vs_percent.png",
    "fig5_true_class_score_vs_percent.png",
    "fig_seed002_*_vs_t.png",
    "prior_weights.json",
)


def clear_outputs(out_dir: str | Path) -> list[Path]:
    """Remove what an earlier run wrote into ``out_dir`` (only :data:`OUTPUT_PATTERNS`)."""
    out = Path(out_dir)
    gone = [p for pat in OUTPUT_PATTERNS for p in sorted(out.glob(pat)) if p.is_file()]
    for p in gone:
        p.unlink()
    return gone


def write_tables(
    df_long: pd.DataFrame,
    out_dir: str | Path,
    log_base: float = DEFAULT_LOG_BASE,
    percent: Mapping[str, float] | None = None,
    *,
    n_boot: int | None = 2000,
    ci_seed: int | None = None,
    latex: bool = True,
    metric: str = DEFAULT_METRIC,
) -> dict[str, Path]:
    """Write ``long.csv`` and per table ``tableN.csv`` (tidy), ``tableN.md`` and ``tableN.tex``
    (laid out like the paper; LaTeX with booktabs) to ``out_dir`` (accuracy) or to
    ``out_dir/<metric>/`` (:func:`metric_dir`), the tables computed from ``metric``.

    ``long.csv`` holds every metric column the results have. In the CSVs of Tables 4 and 5 the
    value column is named after the metric; every title names a metric other than accuracy.

    With several seeds the CSVs carry ``std``/``n`` (and for Tables 1, 2 bootstrap CIs with
    ``n_boot`` resamples, RNG seed ``ci_seed``; ``n_boot=None`` turns all that off) and the
    renderings show ``mean ± std``. Tables whose protocol has no rows are skipped (logged).
    All or nothing: every file is rendered before any is written, and what an earlier run left
    in ``out_dir`` (:data:`OUTPUT_PATTERNS`) is removed first. Returns file name -> path.
    """
    out = metric_dir(out_dir, metric)
    d = normalize_long(df_long)
    tables, skipped = _build(d, log_base, percent, n_boot=n_boot, ci_seed=ci_seed, metric=metric)
    for msg in skipped:
        log.warning(msg)
    warn = base_model_warnings(d)
    files: dict[str, str] = {"long.csv": d.to_csv(index=False)}
    for name, t in tables.items():
        spec = TABLES.get(name)
        files[f"{name}.csv"] = t.rename(columns={"accuracy": metric}).to_csv(index=False)
        lay = spec.layout(t)
        lay.title, lay.note = t.attrs["title"], _notes(spec, t, log_base)
        md = layout_markdown(lay)
        if "n_boot" in t.attrs:
            md += _ci_markdown(spec, t)
        md += "".join(
            f"\n> **Base model unfit, these numbers are meaningless**: {w}\n" for w in warn
        )
        files[f"{name}.md"] = md
        if latex:
            files[f"{name}.tex"] = layout_latex(lay, label=f"tab:{name}")
    out.mkdir(parents=True, exist_ok=True)
    clear_outputs(out)
    written: dict[str, Path] = {}
    for fname, text in files.items():
        write_text_atomic(out / fname, text)
        written[fname] = out / fname
    return written


def format_for_console(
    df_long: pd.DataFrame,
    log_base: float = DEFAULT_LOG_BASE,
    percent: Mapping[str, float] | None = None,
    metric: str = DEFAULT_METRIC,
) -> str:
    """The tables of ``metric`` in the paper's layout as plain text, with the Information score's
    log base (and, for a metric other than accuracy, a first line saying which)."""
    tables, skipped = _build(df_long, log_base, percent, metric=metric)  # means, no bootstrap
    said = metric_note(metric)
    parts = [said] if said else []
    for name, t in tables.items():
        spec = TABLES.get(name)
        text = spec.wide(t).to_string(index=False, float_format="{:.2f}".format)
        parts.append(f"{t.attrs['title']}\n{text}")
        if spec.uses_log_base:
            parts[-1] += "\n" + _log_note(log_base)
    parts += skipped
    parts += [
        f"WARNING base model unfit, these numbers are meaningless: {w}"
        for w in base_model_warnings(df_long)
    ]
    return "\n\n".join(parts) + "\n"
