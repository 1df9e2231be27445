"""The long table's format: its columns, checks and coercion (``normalize_long``) and reading it
from a CSV (``read_long``, e.g. the paper's transcribed tables).

The long table is the single input of every table and score in :mod:`roarkar.report`; a results
tree becomes one through :func:`roarkar.report.aggregate.collect_results`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = [
    "CELL_COLUMNS",
    "LAYERS",
    "LONG_COLUMNS",
    "MODES",
    "OPTIONAL_METRICS",
    "PROTOCOLS",
    "normalize_long",
    "plain",
    "read_long",
]

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
#: Columns of the long format, in order: a cell, its seed, its accuracy.
LONG_COLUMNS: tuple[str, ...] = (*CELL_COLUMNS, "seed", "accuracy")
#: Metric columns a long table may lack (older results, the paper's tables): NaN where absent.
OPTIONAL_METRICS: tuple[str, ...] = ("true_class_score",)
PROTOCOLS: frozenset[str] = frozenset({"layer", "input"})
MODES: frozenset[str] = frozenset({"kar", "roar"})
LAYERS: frozenset[str] = frozenset({"L1", "L2", "L3", "L4", "L5"})


def plain(value: object) -> object:
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
                f"row {row} has {plain(out[col].iloc[row])!r} ({int(wrong.sum())} such row(s))"
            )
        out[col] = num.astype(kind)

    def bad(mask: pd.Series, what: str) -> None:
        if mask.any():
            row = out[mask].iloc[0]
            cell = ", ".join(f"{c}={plain(row[c])!r}" for c in LONG_COLUMNS)
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
    return no_duplicates(out, where, exact_duplicates)


def no_duplicates(out: pd.DataFrame, where: str, exact_ok: bool) -> pd.DataFrame:
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
        cell = ", ".join(f"{c}={plain(v)!r}" for c, v in zip(key, first, strict=True))
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
