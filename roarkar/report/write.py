"""Writing and printing the tables: each run renders every file first, clears what an earlier run
left, then writes (all or nothing). Above :mod:`roarkar.report.tables` and
:mod:`roarkar.report.uncertainty`, which compute the tables and know nothing of files.

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
from roarkar.report import uncertainty as unc
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
from roarkar.report.rows import MODE_ORDER, one_percent_per_mode
from roarkar.report.scores import DEFAULT_LOG_BASE, log_base_label
from roarkar.report.tables import (
    pivot_table1,
    pivot_table4,
    pivot_table5,
    table1,
    table2,
    table4,
    table5,
)

__all__ = [
    "OUTPUT_PATTERNS",
    "clear_outputs",
    "format_for_console",
    "metric_dir",
    "metric_note",
    "write_tables",
]

log = logging.getLogger(__name__)

_TITLES = {
    "table1": "Table 1: Difference (Eq 8) and Information (Eq 9) scores, layer protocol",
    "table2": "Table 2: KAR sum, -ROAR sum and their SUM, input protocol",
    "table4": "Table 4: accuracy (%) per layer, KAR kept / ROAR removed, layer protocol",
    "table5": "Table 5: accuracy (%) per kept (KAR) / removed (ROAR) percent, input protocol",
}


def _log_note(log_base: float) -> str:
    return f"Information score (Eq 9) uses the {log_base_label(log_base)}."


def _title(name: str, metric: str) -> str:
    """A table's title; tables of a metric other than accuracy say it in brackets and in place of
    the word accuracy (Tables 4, 5)."""
    if metric == DEFAULT_METRIC:
        return _TITLES[name]
    head, _, rest = _TITLES[name].partition(": ")
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
    """All tables the long table supports, computed from ``metric``, and notes on the skipped
    ones (a cell lacking the metric is an error naming it: :func:`select_metric`).

    With several seeds of some cell (and ``n_boot`` not None), the tables carry the extra
    columns of :mod:`roarkar.report.uncertainty` (std, n, bootstrap CIs).
    """
    d = select_metric(normalize_long(df_long), metric)
    seeds = n_boot is not None and unc.has_several_seeds(d)
    boot = {"n_boot": n_boot, "ci_seed": unc.DEFAULT_CI_SEED if ci_seed is None else ci_seed}
    tables: dict[str, pd.DataFrame] = {}
    skipped: list[str] = []
    protocols = set(d["protocol"])
    if "layer" in protocols:
        if seeds:
            tables["table4"] = unc.table4_seeds(d, percent=percent)
            tables["table1"] = unc.table1_seeds(d, log_base=log_base, percent=percent, **boot)
        else:
            tables["table4"] = table4(d, percent=percent)
            tables["table1"] = table1(d, log_base=log_base, percent=percent)
    else:
        skipped.append("table1, table4 skipped: no layer-protocol rows")
    if "input" in protocols:
        tables["table5"] = unc.table5_seeds(d) if seeds else table5(d)
        tables["table2"] = unc.table2_seeds(d, **boot) if seeds else table2(d)
    else:
        skipped.append("table2, table5 skipped: no input-protocol rows")
    for name, t in tables.items():
        t.attrs["title"] = _title(name, metric) + _percents_said(d, name, percent)
        t.attrs["metric"] = metric
    return tables, skipped


def _percents_said(d: pd.DataFrame, name: str, percent: Mapping[str, float] | None) -> str:
    """Which percents a table shows, for its title: every table states them."""
    if name in ("table1", "table4"):
        used = one_percent_per_mode(d[d["protocol"] == "layer"], percent, name)
        said = {m: sorted(set(used.loc[used["mode"] == m, "percent"])) for m in MODE_ORDER}
        kar = "/".join(f"{p:g}" for p in said["kar"]) or "-"
        roar = "/".join(f"{p:g}" for p in said["roar"]) or "-"
        return f" (KAR keeps {kar} %, ROAR removes {roar} % of the tap's locations)"
    used = sorted(set(d.loc[d["protocol"] == "input", "percent"]))
    return f" (at {', '.join(f'{p:g}' for p in used)} % of the pixels)"


def _wide(name: str, t: pd.DataFrame) -> pd.DataFrame:
    pivots = {"table1": pivot_table1, "table4": pivot_table4, "table5": pivot_table5}
    return pivots[name](t) if name in pivots else t[[c for c in t.columns if c in T2_COLUMNS]]


T2_COLUMNS = ("dataset", "method", "kar", "roar", "sum")


def _notes(name: str, t: pd.DataFrame, log_base: float) -> str | None:
    notes = [_log_note(log_base)] if name == "table1" else []
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


def _ci_markdown(name: str, t: pd.DataFrame) -> str:
    values = ["difference", "information"] if name == "table1" else ["kar", "roar", "sum"]
    keys = [c for c in ("dataset", "method") if c in t.columns]
    cols = keys + [f"{v}_ci_{b}" for v in values for b in ("low", "high")]
    return "\n" + to_markdown(t[cols], "95 % bootstrap confidence intervals over seeds")


#: What roarkar writes into a tables folder; a new run removes these first (no stale Table 5
#: from an earlier study beside a fresh ``long.csv``). Only files directly in the folder: the
#: outputs of another metric, in its subfolder (:func:`metric_dir`), are left alone.
OUTPUT_PATTERNS: tuple[str, ...] = (
    "long.csv",
    "table[1245].csv",
    "table[1245].md",
    "table[1245].tex",
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
    from roarkar.report import render

    out = metric_dir(out_dir, metric)
    d = normalize_long(df_long)
    tables, skipped = _build(d, log_base, percent, n_boot=n_boot, ci_seed=ci_seed, metric=metric)
    for msg in skipped:
        log.warning(msg)
    warn = base_model_warnings(d)
    files: dict[str, str] = {"long.csv": d.to_csv(index=False)}
    layouts = {
        "table1": render.layout_table1,
        "table2": render.layout_table2,
        "table4": render.layout_table4,
        "table5": render.layout_table5,
    }
    for name in ("table1", "table2", "table4", "table5"):
        if name not in tables:
            continue
        t = tables[name]
        files[f"{name}.csv"] = t.rename(columns={"accuracy": metric}).to_csv(index=False)
        lay = layouts[name](t)
        lay.title, lay.note = t.attrs.get("title", _TITLES[name]), _notes(name, t, log_base)
        md = render.layout_markdown(lay)
        if "n_boot" in t.attrs:
            md += _ci_markdown(name, t)
        md += "".join(
            f"\n> **Base model unfit, these numbers are meaningless**: {w}\n" for w in warn
        )
        files[f"{name}.md"] = md
        if latex:
            files[f"{name}.tex"] = render.layout_latex(lay, label=f"tab:{name}")
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
    for name in ("table1", "table2", "table4", "table5"):
        if name not in tables:
            continue
        text = _wide(name, tables[name]).to_string(index=False, float_format="{:.2f}".format)
        parts.append(f"{tables[name].attrs.get('title', _title(name, metric))}\n{text}")
        if name == "table1":
            parts[-1] += "\n" + _log_note(log_base)
    parts += skipped
    parts += [
        f"WARNING base model unfit, these numbers are meaningless: {w}"
        for w in base_model_warnings(df_long)
    ]
    return "\n\n".join(parts) + "\n"
