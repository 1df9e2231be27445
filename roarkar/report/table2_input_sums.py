"""Table 2 (input protocol): KAR = sum of a method's KAR accuracies over the percents, ROAR = minus
the sum of its ROAR accuracies, SUM = KAR + ROAR (fractions, as the paper); with several seeds
their std, n and bootstrap CIs (:mod:`roarkar.report.uncertainty`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from roarkar.report.render import Layout, fmt_cell
from roarkar.report.rows import BASELINE, MODE_ORDER, ordered
from roarkar.report.table_spec import TableSpec, register_table, select_rows
from roarkar.report.uncertainty import Seeds, attach_intervals, score_samples, seed_matrix

__all__ = ["T2_COLUMNS", "input_sums", "layout_table2", "table2"]

T2_COLUMNS = ("dataset", "method", "kar", "roar", "sum")
VALUES = ["kar", "roar", "sum"]


def input_sums(kar: np.ndarray, roar: np.ndarray) -> dict[str, np.ndarray]:
    """Table 2's scores from a method's KAR and ROAR accuracies over the percents (last axis):
    ``kar`` (sum), ``roar`` (minus the sum) and ``sum``; a mode the study did not run is NaN, not
    a sum of nothing (0), and so is the SUM."""

    def total(a: np.ndarray) -> np.ndarray:
        return a.sum(axis=-1) if a.shape[-1] else np.full(a.shape[:-1], np.nan)

    k, r = total(np.asarray(kar, float)), total(np.asarray(roar, float))
    return {"kar": k, "roar": -r, "sum": k - r}


def _plan(cells: pd.DataFrame) -> dict[tuple, dict[str, np.ndarray]]:
    """Per (dataset, method), in the table's order: the indices of its KAR and ROAR cells. Every
    method must have the percents the other methods of its dataset have."""
    plan = {}
    for ds in ordered(cells["dataset"]):
        dd = cells[cells["dataset"] == ds]
        wanted = {mode: set(dd.loc[dd["mode"] == mode, "percent"]) for mode in MODE_ORDER}
        for method in ordered(dd["method"], first=(BASELINE,)):
            dm = dd[dd["method"] == method]
            entry = {}
            for mode in MODE_ORDER:
                have = dm[dm["mode"] == mode]
                lacking = sorted(wanted[mode] - set(have["percent"]))
                if lacking:
                    raise ValueError(
                        f"table2: method {method!r} on {ds!r} has no {mode} result at "
                        f"percent {lacking[0]:g} (other methods have one)"
                    )
                entry[mode] = have.index.to_numpy()
            plan[(ds, method)] = entry
    return plan


def table2(df: pd.DataFrame, *, seeds: Seeds | None = None) -> pd.DataFrame:
    """Input-protocol summary ``[dataset,] method, kar, roar, sum`` (fractions, as the paper).

    The random baseline is included; the ``dataset`` column only when there are several. With
    ``seeds``: ``<score>_std``, ``n`` and bootstrap CI columns.
    """
    sm = seed_matrix(select_rows(df, "input", "table2"))
    cells = sm.cells
    plan = _plan(cells)

    def scores(m: np.ndarray) -> dict[tuple, dict[str, np.ndarray]]:
        return {key: input_sums(m[:, p["kar"]], m[:, p["roar"]]) for key, p in plan.items()}

    point = scores(cells["mean"].to_numpy(float)[None, :])
    rows = [
        {
            "dataset": ds,
            "method": method,
            **{k: float(v[0]) for k, v in point[(ds, method)].items()},
        }
        for ds, method in plan
    ]
    out = pd.DataFrame(rows)
    several = out["dataset"].nunique() > 1
    if seeds is not None:
        n = cells["n"].to_numpy()
        multi = {k: bool((n[np.concatenate(list(p.values()))] > 1).any()) for k, p in plan.items()}
        samples = score_samples(sm, scores, seeds)
        out = attach_intervals(out, ["dataset", "method"], VALUES, samples, multi, seeds)
    return out if several else out.drop(columns="dataset")


def layout_table2(t2: pd.DataFrame, floatfmt: str = ".2f") -> Layout:
    """Rows = methods (grouped by dataset when several); columns KAR, ROAR, SUM."""
    rows = []
    for _, r in t2.iterrows():
        cells = [fmt_cell(r[v], r.get(f"{v}_std"), floatfmt) for v in VALUES]
        rows.append((r["dataset"] if "dataset" in t2.columns else None, r["method"], cells))
    return Layout("Method", ["KAR", "ROAR", "SUM"], None, rows)


def wide_table2(t2: pd.DataFrame) -> pd.DataFrame:
    """Table 2 for the console: its score columns, no spread."""
    return t2[[c for c in t2.columns if c in T2_COLUMNS]]


SPEC = register_table(
    TableSpec(
        name="table2",
        title="Table 2: KAR sum, -ROAR sum and their SUM, input protocol",
        protocol="input",
        compute=table2,
        layout=layout_table2,
        wide=wide_table2,
        interval_values=tuple(VALUES),
    )
)
