"""Gather cell results into one long table (one row per trained cell) and average seeds.

The long table is the single input of every table and score in :mod:`roarkar.report`: it comes
either from a results tree (``collect_results``, one ``result.json`` per cell, see
docs/ARCHITECTURE.md) or from a CSV (``read_long``, e.g. the paper's transcribed tables).

Besides ``accuracy`` a row may carry the cell's ``true_class_score`` (the mean softmax probability
of the true class on the held-out split); results written before it was recorded, and the paper's
tables, lack it (NaN). Tables of either metric are computed from the ``accuracy`` column of
:func:`select_metric`'s view, which refuses, naming them, cells that lack the chosen metric.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from roarkar.store import is_finished_record

__all__ = [
    "base_model_warnings",
    "CELL_COLUMNS",
    "DEFAULT_METRIC",
    "LONG_COLUMNS",
    "METRICS",
    "MODES",
    "MissingMetricError",
    "OPTIONAL_METRICS",
    "PROTOCOLS",
    "cell_means",
    "collect_results",
    "normalize_long",
    "read_long",
    "select_metric",
    "summarize_seeds",
]

log = logging.getLogger(__name__)

#: Columns of the long format, in order.
LONG_COLUMNS: tuple[str, ...] = (
    "dataset",
    "model",
    "protocol",
    "method",
    "layer",
    "mode",
    "percent",
    "seed",
    "accuracy",
)
#: Columns that identify a cell up to its seed (what seeds are averaged over).
CELL_COLUMNS: tuple[str, ...] = (
    "dataset",
    "model",
    "protocol",
    "method",
    "layer",
    "mode",
    "percent",
)
#: Held-out metrics a cell's result.json records, with how outputs name them.
METRICS: dict[str, str] = {
    "accuracy": "accuracy",
    "true_class_score": "true-class score",
}
#: What each metric is, for the notes under tables computed from it.
METRIC_DEFINITIONS: dict[str, str] = {
    "accuracy": "top-1 accuracy on the held-out split",
    "true_class_score": "the mean softmax probability of the true class on the held-out split",
}
DEFAULT_METRIC = "accuracy"
#: Metric columns a long table may lack (older results, the paper's tables): NaN where absent.
OPTIONAL_METRICS: tuple[str, ...] = ("true_class_score",)
PROTOCOLS: frozenset[str] = frozenset({"layer", "input"})
MODES: frozenset[str] = frozenset({"kar", "roar"})
LAYERS: frozenset[str] = frozenset({"L1", "L2", "L3", "L4", "L5"})


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, so a message shows ``1.5``, not
    ``np.float64(1.5)``."""
    return value.item() if hasattr(value, "item") else value


def normalize_long(
    df: pd.DataFrame, where: str = "long table", *, exact_duplicates: bool = False
) -> pd.DataFrame:
    """Check a long table and coerce its dtypes; extra columns (e.g. ``source``) are kept.

    Raises ValueError naming ``where`` and the offending column or value: missing columns,
    unknown protocol/mode, a layer-protocol row without ``L1``..``L5``, accuracy outside [0, 1],
    and two rows for one cell and seed (averaging them would silently move a method's rank).
    ``exact_duplicates=True`` drops rows repeated with the same accuracy instead of failing;
    rows that disagree are an error either way.
    """
    missing = [c for c in LONG_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{where}: missing column(s) {', '.join(missing)}; "
            f"the long format needs {', '.join(LONG_COLUMNS)}"
        )
    out = df.copy()
    for col in ("dataset", "model", "protocol", "method", "mode"):
        out[col] = out[col].astype(object).where(out[col].notna(), "").astype(str).str.strip()
    out["layer"] = out["layer"].astype(object).where(out["layer"].notna(), "").astype(str)
    out["layer"] = out["layer"].str.strip()
    for col, kind in (("percent", float), ("seed", int), ("accuracy", float)):
        num = pd.to_numeric(out[col], errors="coerce")
        wrong = num.isna() | (num != num.round() if kind is int else False)
        if wrong.any():
            row = int(wrong.to_numpy().argmax())
            raise ValueError(
                f"{where}: column {col!r} must hold {'integers' if kind is int else 'numbers'}; "
                f"row {row} has {_plain(out[col].iloc[row])!r} ({int(wrong.sum())} such row(s))"
            )
        out[col] = num.astype(kind)

    def bad(mask: pd.Series, what: str) -> None:
        if mask.any():
            row = out[mask].iloc[0]
            cell = ", ".join(f"{c}={_plain(row[c])!r}" for c in LONG_COLUMNS)
            raise ValueError(f"{where}: {what} ({int(mask.sum())} row(s)); first: {cell}")

    bad(~out["protocol"].isin(PROTOCOLS), "protocol must be 'layer' or 'input'")
    bad(~out["mode"].isin(MODES), "mode must be 'kar' or 'roar'")
    bad((out["protocol"] == "layer") & ~out["layer"].isin(LAYERS), "layer must be L1..L5")
    bad((out["protocol"] == "input") & (out["layer"] != ""), "input-protocol layer must be ''")
    bad(out["method"] == "", "method is empty")
    acc = out["accuracy"]
    over = acc[(acc > 1) & (acc <= 100)]
    hint = f" — percent? e.g. got {over.iloc[0]:g}" if len(over) else ""
    bad(~((acc >= 0) & (acc <= 1)), f"accuracy must be in [0, 1]{hint}")
    for col in OPTIONAL_METRICS:
        if col not in out.columns:
            continue
        given = out[col].notna() & (out[col].astype(str).str.strip() != "")
        num = pd.to_numeric(out[col].where(given), errors="coerce")
        bad(given & num.isna(), f"{col} must be a number (or empty where not recorded)")
        bad(num.notna() & ~((num >= 0) & (num <= 1)), f"{col} must be in [0, 1]")
        out[col] = num.astype(float)
    return _no_duplicates(out, where, exact_duplicates)


def _no_duplicates(out: pd.DataFrame, where: str, exact_ok: bool) -> pd.DataFrame:
    key = [*CELL_COLUMNS, "seed"]
    dup = out.duplicated(key, keep=False)
    if not dup.any():
        return out
    groups = out[dup].groupby(key, sort=False, dropna=False)["accuracy"]
    spread = groups.agg(lambda a: a.max() - a.min())
    conflicting = spread[spread > 0]
    if len(conflicting) or not exact_ok:
        first = conflicting.index[0] if len(conflicting) else spread.index[0]
        accs = groups.get_group(first).tolist()
        cell = ", ".join(f"{c}={_plain(v)!r}" for c, v in zip(key, first, strict=True))
        kind = "conflicting" if len(conflicting) else "repeated"
        allow = "" if len(conflicting) else " (or allow exact repeats: --allow-exact-duplicates)"
        sources = ""
        if "source" in out.columns:
            rows = out[dup].set_index(key).loc[first, "source"]
            sources = f" (from {', '.join(map(str, rows.tolist()))})"
        raise ValueError(
            f"{where}: {len(spread)} cell(s) appear more than once ({len(conflicting)} with "
            f"different accuracies); first, {kind}: {cell} with accuracies {accs}{sources}; keep "
            f"one row per cell and seed{allow}. In a results tree this means two configurations "
            "share a dataset name (a changed generator or data): give one its own dataset.name, "
            "or move one's cells away"
        )
    return out.drop_duplicates(key).reset_index(drop=True)


def read_long(path_csv: str | Path, *, exact_duplicates: bool = False) -> pd.DataFrame:
    """Read a long-format CSV; errors name the file and any missing columns."""
    path = Path(path_csv)
    if not path.is_file():
        raise FileNotFoundError(f"long table not found: {path}")
    try:
        df = pd.read_csv(
            path,
            dtype={"layer": str},
            keep_default_na=False,
            na_values={"accuracy": [""], **{c: ["", "nan", "NaN"] for c in OPTIONAL_METRICS}},
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a long-format CSV ({exc})") from exc
    try:
        return normalize_long(df, where=str(path), exact_duplicates=exact_duplicates)
    except (TypeError, ValueError) as exc:  # pandas' own messages name no file
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: {exc}") from exc


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


class MissingMetricError(ValueError):
    """Tables of a metric were asked for, but some cells did not record it."""


def check_metric(metric: str) -> str:
    """``metric`` if roarkar knows it, else ValueError listing the known ones."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")
    return metric


def select_metric(df: pd.DataFrame, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """The long table with its ``accuracy`` column holding ``metric`` (every table and score is
    computed from that column); ``accuracy`` itself returns ``df`` unchanged.

    Raises :class:`MissingMetricError` naming the cells (their ``result.json`` when the table has
    a ``source`` column) that lack the metric, rather than letting NaN into the tables.
    """
    check_metric(metric)
    if metric == DEFAULT_METRIC:
        return df
    values = (
        pd.to_numeric(df[metric], errors="coerce")
        if metric in df.columns
        else pd.Series(math.nan, index=df.index, dtype=float)
    )
    lacking = df[values.isna()]
    if len(lacking):
        if "source" in lacking.columns:
            names = [str(s) for s in lacking["source"]]
        else:
            names = [
                ", ".join(f"{c}={_plain(r[c])!r}" for c in (*CELL_COLUMNS, "seed"))
                for _, r in lacking.iterrows()
            ]
        shown = "; ".join(names[:10]) + (f"; and {len(names) - 10} more" if len(names) > 10 else "")
        why = (
            f"the long table has no {metric!r} column"
            if metric not in df.columns
            else "written before roarkar recorded it"
        )
        raise MissingMetricError(
            f"metric {metric!r}: {len(lacking)} of {len(df)} cell result(s) do not record it "
            f"({why}): {shown}. Re-run those cells (move their result.json away) to get it, or "
            "tabulate the accuracy metric"
        )
    return df.assign(accuracy=values.astype(float))


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
