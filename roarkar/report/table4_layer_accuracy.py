"""Table 4 (layer protocol): accuracy in percent per dataset, method, mode and layer, with
Best/Worst rows; the paper's layout has rows dataset/method, columns ``KAR L1`` .. ``ROAR L5``."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from roarkar.report.aggregate import summarize_seeds
from roarkar.report.render import Layout, layout_modes
from roarkar.report.rows import BASELINE, BEST, MODE_ORDER, WORST, ordered, sort_by
from roarkar.report.table_spec import TableSpec, register_table, select_rows
from roarkar.report.uncertainty import Seeds, with_std

__all__ = ["layout_table4", "pivot_table4", "table4"]

LAYERS = [f"L{i}" for i in range(1, 6)]


def table4(
    df: pd.DataFrame, percent: Mapping[str, float] | None = None, *, seeds: Seeds | None = None
) -> pd.DataFrame:
    """Layer-protocol accuracies in percent: ``dataset, method, mode, layer, accuracy``.

    Adds per dataset/mode/layer a ``Best`` and a ``Worst`` row over the non-random methods
    (best = highest for KAR, lowest for ROAR). ``percent`` picks the kept/removed percent per
    mode when a study ran several (e.g. ``{"kar": 2.5, "roar": 10}``). With ``seeds``: ``std``
    (percent points) and ``n`` per cell, NaN on Best/Worst.
    """
    cells = summarize_seeds(select_rows(df, "layer", "table4", percent))
    d = cells.rename(columns={"mean": "accuracy"})
    d = d.assign(accuracy=(d["accuracy"] * 100).round(6))
    out = d[["dataset", "method", "mode", "layer", "accuracy"]]
    methods = ordered(out["method"], first=(BASELINE,))
    stats = out[out["method"] != BASELINE]
    extra = []
    if not stats.empty:
        g = stats.groupby(["dataset", "mode", "layer"], sort=False)["accuracy"]
        hi, lo = g.max().reset_index(), g.min().reset_index()
        for label, kar_src, roar_src in ((BEST, hi, lo), (WORST, lo, hi)):
            part = pd.concat(
                [kar_src[kar_src["mode"] == "kar"], roar_src[roar_src["mode"] == "roar"]]
            ).assign(method=label)
            extra.append(part)
    out = pd.concat([out, *extra], ignore_index=True)
    out = sort_by(
        out[["dataset", "method", "mode", "layer", "accuracy"]],
        {
            "dataset": ordered(d["dataset"]),
            "method": methods + [BEST, WORST],
            "mode": list(MODE_ORDER),
            "layer": LAYERS,
        },
    )
    return out if seeds is None else with_std(out, cells, ["dataset", "method", "mode", "layer"])


def pivot_table4(t4: pd.DataFrame) -> pd.DataFrame:
    """Table 4 in the paper's layout: rows dataset/method, columns ``KAR L1`` .. ``ROAR L5``."""
    wide = t4.assign(col=t4["mode"].str.upper() + " " + t4["layer"]).pivot_table(
        index=["dataset", "method"], columns="col", values="accuracy", sort=False
    )
    cols = [f"{m.upper()} {layer}" for m in MODE_ORDER for layer in LAYERS]
    wide = wide.reindex(columns=[c for c in cols if c in wide.columns])
    wide.columns.name = None
    return wide.reset_index()


def layout_table4(t4: pd.DataFrame, floatfmt: str = ".2f") -> Layout:
    """Rows = datasets (row groups) x methods incl. Best/Worst; KAR L1..L5, ROAR L1..L5."""
    return layout_modes(t4, "layer", {layer: layer for layer in LAYERS}, floatfmt, "dataset")


SPEC = register_table(
    TableSpec(
        name="table4",
        title="Table 4: accuracy (%) per layer, KAR kept / ROAR removed, layer protocol",
        protocol="layer",
        compute=table4,
        layout=layout_table4,
        wide=pivot_table4,
    )
)
