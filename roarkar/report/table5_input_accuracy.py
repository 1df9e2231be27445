"""Table 5 (input protocol): accuracy in percent per method, mode and percent; the paper's layout
has one row per method, columns ``KAR 10%`` .. ``ROAR 90%``."""

from __future__ import annotations

import pandas as pd

from roarkar.report.aggregate import summarize_seeds
from roarkar.report.render import Layout, layout_modes
from roarkar.report.rows import BASELINE, MODE_ORDER, ordered, sort_by
from roarkar.report.table_spec import TableSpec, register_table, select_rows
from roarkar.report.uncertainty import Seeds, with_std

__all__ = ["layout_table5", "pivot_table5", "table5"]


def table5(df: pd.DataFrame, *, seeds: Seeds | None = None) -> pd.DataFrame:
    """Input-protocol accuracies in percent: ``[dataset,] method, mode, percent, accuracy``.

    The ``dataset`` column is present only when the table holds several datasets. With
    ``seeds``: ``std`` (percent points) and ``n`` per cell.
    """
    cells = summarize_seeds(select_rows(df, "input", "table5"))
    d = cells.rename(columns={"mean": "accuracy"})
    d = d.assign(accuracy=(d["accuracy"] * 100).round(6))
    out = sort_by(
        d.sort_values("percent", kind="stable"),
        {
            "dataset": ordered(d["dataset"]),
            "method": ordered(d["method"], first=(BASELINE,)),
            "mode": list(MODE_ORDER),
        },
    )
    cols = ["method", "mode", "percent", "accuracy"]
    out = out[(["dataset"] if out["dataset"].nunique() > 1 else []) + cols]
    if seeds is None:
        return out
    keys = [c for c in ("dataset", "method", "mode", "percent") if c in out.columns]
    return with_std(out, cells, keys)


def pivot_table5(t5: pd.DataFrame) -> pd.DataFrame:
    """Table 5 in the paper's layout: one row per method, columns ``KAR 10%`` .. ``ROAR 90%``."""
    index = [c for c in ("dataset", "method") if c in t5.columns]
    col = t5["mode"].str.upper() + " " + t5["percent"].map("{:g}%".format)
    wide = t5.assign(col=col).pivot_table(index=index, columns="col", values="accuracy", sort=False)
    order = [f"{m.upper()} {p:g}%" for m in MODE_ORDER for p in sorted(t5["percent"].unique())]
    wide = wide.reindex(columns=[c for c in order if c in wide.columns])
    wide.columns.name = None
    return wide.reset_index()


def layout_table5(t5: pd.DataFrame, floatfmt: str = ".2f") -> Layout:
    """Rows = methods (grouped by dataset when several); KAR then ROAR percents."""
    labels = {p: f"{p:g}%" for p in sorted(t5["percent"].unique())}
    group = "dataset" if "dataset" in t5.columns else None
    return layout_modes(t5, "percent", labels, floatfmt, group)


SPEC = register_table(
    TableSpec(
        name="table5",
        title="Table 5: accuracy (%) per kept (KAR) / removed (ROAR) percent, input protocol",
        protocol="input",
        compute=table5,
        layout=layout_table5,
        wide=pivot_table5,
    )
)
