"""Which held-out metric a table is computed from: the metrics a cell records, their names and
definitions, and ``select_metric``'s view of the long table with that metric as its ``accuracy``.

Besides ``accuracy`` a row may carry the cell's ``true_class_score`` (the mean softmax probability
of the true class on the held-out split); results written before it was recorded, and the paper's
tables, lack it (NaN). :func:`select_metric` refuses, naming them, cells that lack the chosen metric.
"""

from __future__ import annotations

import math

import pandas as pd

from roarkar.report.long import CELL_COLUMNS, plain

__all__ = [
    "DEFAULT_METRIC",
    "METRICS",
    "METRIC_DEFINITIONS",
    "MissingMetricError",
    "check_metric",
    "select_metric",
]

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
                ", ".join(f"{c}={plain(r[c])!r}" for c in (*CELL_COLUMNS, "seed"))
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
