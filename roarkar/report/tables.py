"""The paper's Tables 1, 2, 4 and 5 as pure functions of the long table, and their layouts.

* Table 4 (layer protocol): accuracy per dataset, method, mode and layer, with Best/Worst rows.
* Table 1 (layer protocol): Difference (Eq 8) and Information (Eq 9) per dataset and method, AVG.
* Table 5 (input protocol): accuracy per method, mode and percent.
* Table 2 (input protocol): KAR = sum of KAR accuracies, ROAR = -sum of ROAR accuracies, SUM.

Several seeds of a cell are averaged first. Accuracies are shown in percent in Tables 4 and 5
(as in the paper) and as fractions in Tables 1 and 2 (whose published scores are sums of
fractions). Every function returns a long, tidy DataFrame; ``pivot_*`` give the paper's layout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from roarkar.report.rows import (
    AVG,
    BASELINE,
    BEST,
    MODE_ORDER,
    WORST,
    MissingBaselineError,
    one_percent_per_mode,
    ordered,
    protocol_rows,
    sort_by,
)
from roarkar.report.scores import DEFAULT_LOG_BASE, difference, information

__all__ = [
    "input_sums",
    "pivot_table1",
    "pivot_table4",
    "pivot_table5",
    "table1",
    "table2",
    "table4",
    "table5",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- Table 4


def table4(df: pd.DataFrame, percent: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Layer-protocol accuracies in percent: ``dataset, method, mode, layer, accuracy``.

    Adds per dataset/mode/layer a ``Best`` and a ``Worst`` row over the non-random methods
    (best = highest for KAR, lowest for ROAR). ``percent`` picks the kept/removed percent per
    mode when a study ran several (e.g. ``{"kar": 2.5, "roar": 10}``).
    """
    d = one_percent_per_mode(protocol_rows(df, "layer", "table4"), percent, "table4")
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
    return sort_by(
        out[["dataset", "method", "mode", "layer", "accuracy"]],
        {
            "dataset": ordered(d["dataset"]),
            "method": methods + [BEST, WORST],
            "mode": list(MODE_ORDER),
            "layer": [f"L{i}" for i in range(1, 6)],
        },
    )


def pivot_table4(t4: pd.DataFrame) -> pd.DataFrame:
    """Table 4 in the paper's layout: rows dataset/method, columns ``KAR L1`` .. ``ROAR L5``."""
    wide = t4.assign(col=t4["mode"].str.upper() + " " + t4["layer"]).pivot_table(
        index=["dataset", "method"], columns="col", values="accuracy", sort=False
    )
    cols = [f"{m.upper()} L{i}" for m in MODE_ORDER for i in range(1, 6)]
    wide = wide.reindex(columns=[c for c in cols if c in wide.columns])
    wide.columns.name = None
    return wide.reset_index()


# --------------------------------------------------------------------------- Table 1


def _series(d: pd.DataFrame, mode: str) -> pd.Series:
    return d[d["mode"] == mode].set_index("layer")["accuracy"]


def table1(
    df: pd.DataFrame,
    log_base: float = DEFAULT_LOG_BASE,
    percent: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Difference (Eq 8) and Information (Eq 9) per dataset and non-random method, plus AVG.

    Columns ``dataset, method, difference, information``. Each score uses the layers the method
    has in that dataset; every such (layer, mode) needs a random cell (else
    :class:`MissingBaselineError`), and the method must have every layer the random baseline has
    (else ValueError). ``AVG`` rows are the mean over the datasets a method has. Methods are
    sorted by AVG difference, best first, as in the paper. ``log_base`` defaults to e, which
    reproduces the published Information scores (see :mod:`roarkar.report.scores`).
    """
    d = one_percent_per_mode(protocol_rows(df, "layer", "table1"), percent, "table1")
    datasets = ordered(d["dataset"])
    rows = []
    for ds in datasets:
        dd = d[d["dataset"] == ds]
        rnd = dd[dd["method"] == BASELINE]
        for method in ordered(dd["method"]):
            if method == BASELINE:
                continue
            dm = dd[dd["method"] == method]
            acc, base = {}, {}
            for mode in MODE_ORDER:
                m, r = _series(dm, mode), _series(rnd, mode)
                for layer in m.index:
                    if layer not in r.index:
                        raise MissingBaselineError(ds, layer, mode, method)
                for layer in r.index:
                    if layer not in m.index:
                        raise ValueError(
                            f"table1: method {method!r} has no {mode} result for dataset "
                            f"{ds!r}, layer {layer!r}, which the random baseline has"
                        )
                acc[mode], base[mode] = m.sort_index(), r.sort_index()
            if list(acc["kar"].index) != list(acc["roar"].index):
                raise ValueError(
                    f"table1: method {method!r} on {ds!r} has KAR layers "
                    f"{list(acc['kar'].index)} but ROAR layers {list(acc['roar'].index)}"
                )
            args = (acc["kar"].values, acc["roar"].values, base["kar"].values, base["roar"].values)
            rows.append(
                {
                    "dataset": ds,
                    "method": method,
                    "difference": difference(*args),
                    "information": information(*args, base=log_base),
                }
            )
    if not rows:
        raise ValueError("table1: no non-random methods in the layer protocol")
    out = pd.DataFrame(rows)
    counts = out.groupby("method", sort=False)["dataset"].nunique()
    partial = counts[counts < len(datasets)]
    if len(partial):
        log.warning(
            "table1: AVG of %s is over fewer datasets than the others", ", ".join(partial.index)
        )
    avg = out.groupby("method", sort=False)[["difference", "information"]].mean().reset_index()
    out = pd.concat([out, avg.assign(dataset=AVG)], ignore_index=True)
    ranking = avg.sort_values("difference", ascending=False, kind="stable")["method"].tolist()
    out = sort_by(out, {"method": ranking, "dataset": datasets + [AVG]})
    out.attrs["log_base"] = log_base
    return out[["dataset", "method", "difference", "information"]]


def pivot_table1(t1: pd.DataFrame) -> pd.DataFrame:
    """Table 1 in the paper's layout: one row per method, Difference then Information columns."""
    datasets = list(pd.unique(t1["dataset"]))
    wide = t1.pivot_table(
        index="method", columns="dataset", values=["difference", "information"], sort=False
    )
    wide = wide.reindex(columns=[(s, ds) for s in ("difference", "information") for ds in datasets])
    wide.columns = [f"{s} {ds}" for s, ds in wide.columns]
    return wide.reset_index()


# --------------------------------------------------------------------------- Tables 5 and 2


def table5(df: pd.DataFrame) -> pd.DataFrame:
    """Input-protocol accuracies in percent: ``[dataset,] method, mode, percent, accuracy``.

    The ``dataset`` column is present only when the table holds several datasets.
    """
    d = protocol_rows(df, "input", "table5")
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
    return out[(["dataset"] if out["dataset"].nunique() > 1 else []) + cols]


def pivot_table5(t5: pd.DataFrame) -> pd.DataFrame:
    """Table 5 in the paper's layout: one row per method, columns ``KAR 10%`` .. ``ROAR 90%``."""
    index = [c for c in ("dataset", "method") if c in t5.columns]
    col = t5["mode"].str.upper() + " " + t5["percent"].map("{:g}%".format)
    wide = t5.assign(col=col).pivot_table(index=index, columns="col", values="accuracy", sort=False)
    order = [f"{m.upper()} {p:g}%" for m in MODE_ORDER for p in sorted(t5["percent"].unique())]
    wide = wide.reindex(columns=[c for c in order if c in wide.columns])
    wide.columns.name = None
    return wide.reset_index()


def input_sums(kar: np.ndarray, roar: np.ndarray) -> dict[str, np.ndarray]:
    """Table 2's scores from a method's KAR and ROAR accuracies over the percents (last axis):
    ``kar`` (sum), ``roar`` (minus the sum) and ``sum``; a mode the study did not run is NaN, not
    a sum of nothing (0), and so is the SUM."""

    def total(a: np.ndarray) -> np.ndarray:
        return a.sum(axis=-1) if a.shape[-1] else np.full(a.shape[:-1], np.nan)

    k, r = total(np.asarray(kar, float)), total(np.asarray(roar, float))
    return {"kar": k, "roar": -r, "sum": k - r}


def table2(df: pd.DataFrame) -> pd.DataFrame:
    """Input-protocol summary ``[dataset,] method, kar, roar, sum`` (fractions, as the paper).

    KAR = sum of the method's KAR accuracies over the percents, ROAR = minus the sum of its
    ROAR accuracies, SUM = KAR + ROAR. The random baseline is included. Every method must have
    the same percents as the other methods of its dataset, else the sums are not comparable.
    """
    d = protocol_rows(df, "input", "table2")
    rows = []
    for ds in ordered(d["dataset"]):
        dd = d[d["dataset"] == ds]
        wanted = {mode: set(dd.loc[dd["mode"] == mode, "percent"]) for mode in MODE_ORDER}
        for method in ordered(dd["method"], first=(BASELINE,)):
            dm = dd[dd["method"] == method]
            values = {}
            for mode in MODE_ORDER:
                have = dm[dm["mode"] == mode]
                lacking = sorted(wanted[mode] - set(have["percent"]))
                if lacking:
                    raise ValueError(
                        f"table2: method {method!r} on {ds!r} has no {mode} result at "
                        f"percent {lacking[0]:g} (other methods have one)"
                    )
                values[mode] = have["accuracy"].to_numpy(float)
            sums = input_sums(values["kar"], values["roar"])
            rows.append({"dataset": ds, "method": method, **{k: float(v) for k, v in sums.items()}})
    out = pd.DataFrame(rows)
    cols = ["method", "kar", "roar", "sum"]
    return out[(["dataset"] if out["dataset"].nunique() > 1 else []) + cols]
