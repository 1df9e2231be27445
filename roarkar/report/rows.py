"""The rows every paper table starts from: one protocol, one model, seeds averaged, one percent
per mode; plus the labels the tables share (the random baseline, AVG, Best/Worst, mode order)
and the error for a missing random-baseline cell."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from roarkar.report.aggregate import cell_means
from roarkar.report.long import LONG_COLUMNS, normalize_long

__all__ = [
    "AVG",
    "BASELINE",
    "BEST",
    "MODE_ORDER",
    "MissingBaselineError",
    "WORST",
    "one_percent_per_mode",
    "ordered",
    "protocol_rows",
    "protocol_rows_raw",
    "sort_by",
]

BASELINE = "random"
AVG = "AVG"
BEST, WORST = "Best", "Worst"
MODE_ORDER = ("kar", "roar")


class MissingBaselineError(ValueError):
    """A score needs a random-baseline cell (dataset, layer, mode) that the long table lacks."""

    def __init__(self, dataset: str, layer: str, mode: str, method: str | None = None) -> None:
        self.dataset, self.layer, self.mode, self.method = dataset, layer, mode, method
        needed = f" (needed by method {method!r})" if method else ""
        super().__init__(
            f"no random baseline for dataset={dataset!r}, layer={layer!r}, mode={mode!r}{needed}; "
            f"run method {BASELINE!r} for that cell"
        )


def ordered(values: pd.Series, first: tuple[str, ...] = ()) -> list[str]:
    """Unique values in first-appearance order, with ``first`` (if present) moved to the front."""
    seen = list(pd.unique(values))
    return [v for v in first if v in seen] + [v for v in seen if v not in first]


def protocol_rows(df: pd.DataFrame, protocol: str, table: str) -> pd.DataFrame:
    """Rows of one protocol, one model, seeds averaged (``accuracy`` = mean per cell)."""
    return cell_means(protocol_rows_raw(df, protocol, table))


def protocol_rows_raw(df: pd.DataFrame, protocol: str, table: str) -> pd.DataFrame:
    """Rows of one protocol and one model (long columns only), seeds kept."""
    d = normalize_long(df)
    d = d[d["protocol"] == protocol]
    if d.empty:
        raise ValueError(f"{table}: the long table has no {protocol}-protocol rows")
    models = ordered(d["model"])
    if len(models) > 1:
        raise ValueError(
            f"{table}: the long table holds several models ({', '.join(models)}); "
            "filter it to one first (roarkar-tables --model NAME)"
        )
    return d[list(LONG_COLUMNS)]


def one_percent_per_mode(
    d: pd.DataFrame, percent: Mapping[str, float] | None, table: str
) -> pd.DataFrame:
    """Layer protocol: keep one percent per mode (given, or the only one present)."""
    keep = []
    for mode in MODE_ORDER:
        dm = d[d["mode"] == mode]
        present = sorted(float(p) for p in dm["percent"].unique())
        if percent is not None and mode in percent:
            p = float(percent[mode])
            if p not in present:
                raise ValueError(f"{table}: no {mode} rows at percent {p:g}; present: {present}")
            dm = dm[dm["percent"] == p]
        elif len(present) > 1:
            raise ValueError(
                f"{table}: layer-protocol {mode} rows at several percents {present}; "
                "choose one, e.g. percent={'kar': 2.5, 'roar': 10}"
            )
        keep.append(dm)
    return pd.concat(keep, ignore_index=True)


def sort_by(df: pd.DataFrame, orders: Mapping[str, list]) -> pd.DataFrame:
    """Sort by the given columns, each in the given explicit order."""
    keys = {c: df[c].map({v: i for i, v in enumerate(o)}) for c, o in orders.items()}
    tmp = df.assign(**{f"_k_{c}": k for c, k in keys.items()})
    tmp = tmp.sort_values([f"_k_{c}" for c in orders], kind="stable")
    return tmp.drop(columns=[f"_k_{c}" for c in orders]).reset_index(drop=True)
