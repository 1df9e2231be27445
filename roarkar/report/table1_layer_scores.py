"""Table 1 (layer protocol): Difference (Eq 8) and Information (Eq 9) per dataset and non-random
method, plus AVG; the paper's layout has one row per method, Difference then Information columns.
With several seeds their std, n and bootstrap CIs (:mod:`roarkar.report.uncertainty`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from roarkar.report.render import Layout, fmt_cell
from roarkar.report.rows import AVG, BASELINE, MODE_ORDER, MissingBaselineError, ordered, sort_by
from roarkar.report.scores import DEFAULT_LOG_BASE, eq8, eq9, parse_log_base
from roarkar.report.table_spec import TableSpec, register_table, select_rows
from roarkar.report.uncertainty import Seeds, attach_intervals, score_samples, seed_matrix

__all__ = ["layout_table1", "pivot_table1", "table1"]

log = logging.getLogger(__name__)

VALUES = ["difference", "information"]


def _layers(cells: pd.DataFrame, ds: str, method: str, mode: str) -> dict[str, int]:
    sel = (cells["dataset"] == ds) & (cells["method"] == method) & (cells["mode"] == mode)
    return dict(zip(cells.loc[sel, "layer"], cells.index[sel], strict=True))


def _plan(cells: pd.DataFrame) -> dict[tuple, dict[str, list[int]]]:
    """Per (dataset, non-random method), in the table's order: the indices of its KAR and ROAR
    cells and of the random baseline's (``zkar``, ``zroar``), by layer. Each (layer, mode) of a
    method needs a random cell, and the method every layer the baseline has."""
    plan = {}
    for ds in ordered(cells["dataset"]):
        for method in ordered(cells.loc[cells["dataset"] == ds, "method"]):
            if method == BASELINE:
                continue
            entry = {}
            for mode in MODE_ORDER:
                m, r = _layers(cells, ds, method, mode), _layers(cells, ds, BASELINE, mode)
                for layer in m:
                    if layer not in r:
                        raise MissingBaselineError(ds, layer, mode, method)
                for layer in r:
                    if layer not in m:
                        raise ValueError(
                            f"table1: method {method!r} has no {mode} result for dataset "
                            f"{ds!r}, layer {layer!r}, which the random baseline has"
                        )
                entry[mode] = [m[layer] for layer in sorted(m)]
                entry["z" + mode] = [r[layer] for layer in sorted(m)]
                entry[mode + " layers"] = sorted(m)
            if entry["kar layers"] != entry["roar layers"]:
                raise ValueError(
                    f"table1: method {method!r} on {ds!r} has KAR layers "
                    f"{entry['kar layers']} but ROAR layers {entry['roar layers']}"
                )
            plan[(ds, method)] = {c: entry[c] for c in ("kar", "roar", "zkar", "zroar")}
    if not plan:
        raise ValueError("table1: no non-random methods in the layer protocol")
    return plan


def _scores(m: np.ndarray, plan: dict, base: float) -> dict[tuple, dict[str, np.ndarray]]:
    """Difference and Information for every row of ``m`` (resamples or seeds x cells), and the
    AVG of each method over its datasets."""
    out = {}
    for key, p in plan.items():
        k, r, zk, zr = (m[:, p[c]] for c in ("kar", "roar", "zkar", "zroar"))
        out[key] = {
            "difference": eq8(k, r, zk, zr, axis=1),
            "information": eq9(k, r, zk, zr, base, axis=1),
        }
    for method in {m_ for _ds, m_ in plan}:
        keys = [k for k in plan if k[1] == method]
        out[(AVG, method)] = {v: np.mean([out[k][v] for k in keys], axis=0) for v in VALUES}
    return out


def table1(
    df: pd.DataFrame,
    log_base: float = DEFAULT_LOG_BASE,
    percent: Mapping[str, float] | None = None,
    *,
    seeds: Seeds | None = None,
) -> pd.DataFrame:
    """Difference (Eq 8) and Information (Eq 9) per dataset and non-random method, plus AVG.

    Columns ``dataset, method, difference, information`` (with ``seeds``: their std, ``n`` and
    bootstrap CIs). Each score uses the layers the method has in that dataset, from the seed
    means of its cells; every such (layer, mode) needs a random cell (else
    :class:`MissingBaselineError`), and the method must have every layer the random baseline has
    (else ValueError). ``AVG`` rows are the mean over the datasets a method has. Methods are
    sorted by AVG difference, best first, as in the paper. ``log_base`` defaults to e, which
    reproduces the published Information scores (see :mod:`roarkar.report.scores`).
    """
    base = parse_log_base(log_base)
    sm = seed_matrix(select_rows(df, "layer", "table1", percent))
    cells = sm.cells
    plan = _plan(cells)
    point = _scores(cells["mean"].to_numpy(float)[None, :], plan, base)
    out = pd.DataFrame(
        [
            {"dataset": ds, "method": m, **{v: float(point[(ds, m)][v][0]) for v in VALUES}}
            for ds, m in plan
        ]
    )
    datasets = ordered(out["dataset"])
    counts = out.groupby("method", sort=False)["dataset"].nunique()
    partial = counts[counts < len(datasets)]
    if len(partial):
        log.warning(
            "table1: AVG of %s is over fewer datasets than the others", ", ".join(partial.index)
        )
    avg = out.groupby("method", sort=False)[VALUES].mean().reset_index()
    out = pd.concat([out, avg.assign(dataset=AVG)], ignore_index=True)
    ranking = avg.sort_values("difference", ascending=False, kind="stable")["method"].tolist()
    out = sort_by(out, {"method": ranking, "dataset": datasets + [AVG]})
    out = out[["dataset", "method", *VALUES]]
    out.attrs["log_base"] = base
    if seeds is None:
        return out
    n = cells["n"].to_numpy()
    multi = {key: bool((n[sum(p.values(), [])] > 1).any()) for key, p in plan.items()}
    for method in {m_ for _ds, m_ in plan}:
        multi[(AVG, method)] = any(v for (_ds, m_), v in multi.items() if m_ == method)
    samples = score_samples(sm, lambda m: _scores(m, plan, base), seeds)
    return attach_intervals(out, ["dataset", "method"], VALUES, samples, multi, seeds)


def pivot_table1(t1: pd.DataFrame) -> pd.DataFrame:
    """Table 1 in the paper's layout: one row per method, Difference then Information columns."""
    datasets = list(pd.unique(t1["dataset"]))
    wide = t1.pivot_table(index="method", columns="dataset", values=VALUES, sort=False)
    wide = wide.reindex(columns=[(s, ds) for s in VALUES for ds in datasets])
    wide.columns = [f"{s} {ds}" for s, ds in wide.columns]
    return wide.reset_index()


def layout_table1(t1: pd.DataFrame, floatfmt: str = ".2f") -> Layout:
    """Rows = methods; Difference Score and Information Score groups, one column per dataset."""
    datasets = list(pd.unique(t1["dataset"]))
    cells = {}
    for score in VALUES:
        std = t1[f"{score}_std"] if f"{score}_std" in t1.columns else [None] * len(t1)
        for (ds, method), m, s in zip(
            t1[["dataset", "method"]].itertuples(index=False, name=None),
            t1[score],
            std,
            strict=True,
        ):
            cells[(method, score, ds)] = fmt_cell(m, s, floatfmt)
    rows = [
        (None, m, [cells.get((m, s, ds), "") for s in VALUES for ds in datasets])
        for m in pd.unique(t1["method"])
    ]
    groups = [("Difference Score", len(datasets)), ("Information Score", len(datasets))]
    return Layout("Method", datasets * 2, groups, rows)


SPEC = register_table(
    TableSpec(
        name="table1",
        title="Table 1: Difference (Eq 8) and Information (Eq 9) scores, layer protocol",
        protocol="layer",
        compute=table1,
        layout=layout_table1,
        wide=pivot_table1,
        interval_values=tuple(VALUES),
        uses_log_base=True,
    )
)
