"""Gather cell results into one long table (one row per trained cell) and average seeds.

``collect_results`` reads a results tree (one ``result.json`` per cell, see docs/ARCHITECTURE.md);
the long format itself (columns, checks, reading a CSV) is :mod:`roarkar.report.long`, and the
choice of metric a table is computed from is :mod:`roarkar.report.metric`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from roarkar.report.long import CELL_COLUMNS, LONG_COLUMNS, OPTIONAL_METRICS, normalize_long
from roarkar.store import is_finished_record

__all__ = [
    "base_model_warnings",
    "cell_means",
    "collect_results",
    "summarize_seeds",
]

log = logging.getLogger(__name__)


def collect_results(runs_dir: str | Path) -> pd.DataFrame:
    """Long table of every ``result.json`` under ``runs_dir`` whose status is ``ok``.

    Failed (or otherwise not-ok) cells are skipped and logged; unreadable files are skipped and
    logged too. A result without ``true_class_score`` (written before it was recorded) loads with
    NaN there. How many of each is in ``df.attrs``: ``n_ok``, ``n_failed``, ``failed`` (paths),
    ``n_unreadable``, ``unreadable`` (paths). Rows are sorted by the cell columns and seed.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results directory not found: {root}")
    rows: list[dict] = []
    failed: list[str] = []
    unreadable: list[str] = []
    for path in sorted(root.rglob("result.json")):
        try:
            rec = json.loads(path.read_text())
            cell = rec["cell"]
            status = rec.get("status")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("skipping unreadable result %s: %s", path, exc)
            unreadable.append(str(path))
            continue
        if not is_finished_record(rec):
            failed.append(str(path))
            log.info("skipping %s cell %s: %s", status, path, rec.get("error"))
            continue
        row = {c: cell.get(c) for c in LONG_COLUMNS if c != "accuracy"}
        row["layer"] = row["layer"] or ""
        row["accuracy"] = rec.get("accuracy")
        for col in OPTIONAL_METRICS:
            value = rec.get(col)  # None or NaN: not recorded
            if value is None or (isinstance(value, float) and math.isnan(value)):
                row[col] = math.nan
                continue
            if isinstance(value, bool) or not (isinstance(value, int | float) and 0 <= value <= 1):
                raise ValueError(f"{path}: {col} must be in [0, 1]; got {value!r}")
            row[col] = float(value)
        base = rec.get("base_model") or {}
        row["base_warning"] = "; ".join(base.get("warnings") or [])
        for col in ("accuracy", *OPTIONAL_METRICS):  # the unmasked base model (seed 002's t = 0)
            value = base.get(col)
            row[f"base_{col}"] = float(value) if isinstance(value, int | float) else math.nan
        row["source"] = str(path)
        missing = [c for c in LONG_COLUMNS if row[c] is None]
        if missing:
            raise ValueError(f"{path}: result has no {', '.join(missing)}")
        if not (isinstance(row["accuracy"], int | float) and 0 <= row["accuracy"] <= 1):
            raise ValueError(f"{path}: accuracy must be in [0, 1]; got {row['accuracy']!r}")
        rows.append(row)
    base_cols = [f"base_{c}" for c in ("accuracy", *OPTIONAL_METRICS)]
    df = pd.DataFrame(
        rows, columns=[*LONG_COLUMNS, *OPTIONAL_METRICS, "base_warning", *base_cols, "source"]
    )
    if rows:
        df = normalize_long(df, where=str(root))
        df = df.sort_values(list(CELL_COLUMNS) + ["seed"], kind="stable").reset_index(drop=True)
    if failed:
        log.warning("%d failed cell(s) under %s were skipped", len(failed), root)
    df.attrs.update(
        n_ok=len(rows),
        n_failed=len(failed),
        failed=failed,
        n_unreadable=len(unreadable),
        unreadable=unreadable,
    )
    return df


def base_model_warnings(df: pd.DataFrame) -> list[str]:
    """The distinct base-model warnings a long table carries (its ``base_warning`` column, from
    each cell's ``result.json``), as ``dataset / model: what``."""
    if "base_warning" not in df.columns:
        return []
    d = df[df["base_warning"].fillna("").astype(str) != ""]
    pairs = d[["dataset", "model", "base_warning"]].drop_duplicates()
    return [f"{r.dataset} / {r.model}: {r.base_warning}" for r in pairs.itertuples(index=False)]


def summarize_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (NaN for one seed) and number of seeds of the accuracy per cell.

    Columns: the cell columns (all long columns but ``seed`` and ``accuracy``), ``mean``,
    ``std``, ``n``; cells keep their first-appearance order.
    """
    df = normalize_long(df)
    g = df.groupby(list(CELL_COLUMNS), sort=False, dropna=False)["accuracy"]
    return g.agg(mean="mean", std="std", n="count").reset_index()


def cell_means(df: pd.DataFrame) -> pd.DataFrame:
    """Long table with one row per cell, ``accuracy`` = mean over seeds, ``seed`` dropped."""
    summary = summarize_seeds(df)
    return summary.rename(columns={"mean": "accuracy"}).drop(columns=["std", "n"])
