"""Our tables beside the published ones (results/paper/), flagging cells that differ.

The published numbers live in ``results/paper/`` of the repository (``ROARKAR_PAPER_DIR``
overrides the location). A comparison joins *our* table with the published one on the ids
(dataset, method; plus mode and layer/percent for Tables 4 and 5): every row of ours is kept,
with ``<value>_published`` and ``<value>_delta`` beside it (NaN where the paper has no such
cell, never replacing ours) and ``<value>_flag`` true when ``|delta| > tol`` (0.01, the
published rounding: score units for Tables 1 and 2, percentage points for Tables 4 and 5).

Table 1's ``AVG`` rows are compared only when ours average over exactly the paper's datasets.
``dataset_map`` (``{"synth_objects": "imagenet"}``) lets a run on another dataset be compared
with a paper column, the output keeping our dataset name and adding ``paper_dataset``.

On the paper's own Table 4 / Table 5 the comparison flags exactly :data:`KNOWN_INCONSISTENT`:
cells the paper publishes that do not follow from its own appendix tables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from roarkar.report.long import normalize_long, read_long
from roarkar.report.rows import AVG
from roarkar.report.scores import DEFAULT_LOG_BASE
from roarkar.report.tables import table1, table2, table4, table5

__all__ = [
    "KNOWN_INCONSISTENT",
    "PAPER_FILES",
    "TABLE_KEYS",
    "TABLE_VALUES",
    "TOL",
    "compare_with_paper",
    "is_paper_data",
    "load_paper",
    "paper_dir",
    "paper_overlap",
]


TOL = 0.01
PAPER_FILES = ("table1.csv", "table2.csv", "table4_long.csv", "table5_long.csv")
#: (table, dataset, method, column) of published cells that do not follow from Tables 4 / 5.
KNOWN_INCONSISTENT: frozenset[tuple[str, str, str, str]] = frozenset(
    {
        ("table1", ds, m, "difference")
        for ds in ("imagenet", AVG)
        for m in (
            "shannon_entropy",
            "truncnormal_std",
            "truncnormal_mean",
            "lognormal_entropy",
            "lognormal_mean",
        )
    }
    | {("table2", "imagenet", "guided_backprop", "sum")}
)
#: The value columns each compared table holds.
TABLE_VALUES = {
    "table1": ["difference", "information"],
    "table2": ["kar", "roar", "sum"],
    "table4": ["accuracy"],
    "table5": ["accuracy"],
}
#: The columns that identify a row of each compared table.
TABLE_KEYS = {
    "table1": ["dataset", "method"],
    "table2": ["dataset", "method"],
    "table4": ["dataset", "method", "mode", "layer"],
    "table5": ["dataset", "method", "mode", "percent"],
}


def paper_dir() -> Path | None:
    """``$ROARKAR_PAPER_DIR`` or the repository's ``results/paper``, if it holds the tables."""
    env = os.environ.get("ROARKAR_PAPER_DIR")
    cand = Path(env) if env else Path(__file__).resolve().parents[2] / "results" / "paper"
    return cand if all((cand / f).is_file() for f in PAPER_FILES) else None


def load_paper(root: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """The published tables: ``table1``, ``table2`` (+ ``dataset`` = imagenet), ``t4_long``,
    ``t5_long``, ``table4`` and ``table5`` (recomputed from the long ones; they are the paper's
    cells, since Tables 4 and 5 are published as is)."""
    root = Path(root) if root is not None else paper_dir()
    if root is None:
        raise FileNotFoundError(
            "published tables not found: set ROARKAR_PAPER_DIR to a folder holding "
            + ", ".join(PAPER_FILES)
        )
    t4_long, t5_long = read_long(root / "table4_long.csv"), read_long(root / "table5_long.csv")
    t5 = table5(t5_long)
    return {
        "table1": pd.read_csv(root / "table1.csv"),
        "table2": pd.read_csv(root / "table2.csv").assign(dataset="imagenet"),
        "t4_long": t4_long,
        "t5_long": t5_long,
        "table4": table4(t4_long),
        "table5": t5 if "dataset" in t5 else t5.assign(dataset="imagenet"),
    }


def paper_overlap(
    df_long: pd.DataFrame,
    paper: Mapping[str, pd.DataFrame],
    dataset_map: Mapping | None = None,
    *,
    same_settings: bool = False,
) -> dict[str, set[tuple[str, str]]]:
    """Per protocol, the (dataset, method) pairs (non-random) that both we and the paper have.

    ``same_settings=True`` counts a pair only where our cells are the paper's: the same model,
    layer, mode and percent too (a small ResNet on a user's data named ``imagenet``, or the
    embedded study's 12.5 % KAR, is not the paper's experiment and is not compared by default).
    """
    d = normalize_long(df_long)
    dmap = dict(dataset_map or {})
    keys = ["model", "layer", "mode", "percent"] if same_settings else []
    out = {}
    for protocol, long in (("layer", paper["t4_long"]), ("input", paper["t5_long"])):
        ours = d[(d["protocol"] == protocol) & (d["method"] != "random")]
        ours = ours.assign(dataset=ours["dataset"].map(lambda x: dmap.get(x, x)))
        cols = ["dataset", "method", *keys]
        pub = {tuple(r) for r in long[cols].itertuples(index=False)}
        out[protocol] = {
            (r[0], r[1]) for r in ours[cols].itertuples(index=False) if tuple(r) in pub
        }
    return out


def is_paper_data(df_long: pd.DataFrame, paper: Mapping[str, pd.DataFrame]) -> dict[str, bool]:
    """Per protocol: are our rows exactly the paper's long table (same cells and accuracies)?"""
    d = normalize_long(df_long)
    keys = ["dataset", "model", "method", "layer", "mode", "percent"]
    out = {}
    for protocol, long in (("layer", paper["t4_long"]), ("input", paper["t5_long"])):
        ours = d[d["protocol"] == protocol]
        if len(ours) != len(long):
            out[protocol] = False
            continue
        m = ours[keys + ["accuracy"]].merge(long[keys + ["accuracy"]], on=keys, how="inner")
        out[protocol] = len(m) == len(long) and bool(
            ((m["accuracy_x"] - m["accuracy_y"]).abs() < 1e-9).all()
        )
    return out


def _join(
    name: str, ours: pd.DataFrame, pub: pd.DataFrame, dmap: Mapping, tol: float
) -> pd.DataFrame:
    keys, values = TABLE_KEYS[name], TABLE_VALUES[name]
    ours = ours.copy()
    if "dataset" not in ours.columns:
        raise ValueError(f"{name}: our table needs a dataset column to compare")
    ours["paper_dataset"] = ours["dataset"].map(lambda ds: dmap.get(ds, ds))
    pub = pub[keys + values].rename(columns={"dataset": "paper_dataset"})
    pub = pub.rename(columns={v: f"{v}_published" for v in values})
    pkeys = ["paper_dataset" if k == "dataset" else k for k in keys]
    m = ours[keys + ["paper_dataset"] + values].merge(pub, on=pkeys, how="left", sort=False)
    cols = list(keys) + ["paper_dataset"]
    for v in values:
        m[f"{v}_delta"] = m[v] - m[f"{v}_published"]
        m[f"{v}_flag"] = m[f"{v}_delta"].abs() > tol + 1e-9
        cols += [v, f"{v}_published", f"{v}_delta", f"{v}_flag"]
    return m[cols]


def compare_with_paper(
    df_long: pd.DataFrame,
    paper: Mapping[str, pd.DataFrame] | None = None,
    log_base: float = DEFAULT_LOG_BASE,
    percent: Mapping[str, float] | None = None,
    dataset_map: Mapping[str, str] | None = None,
    tol: float = TOL,
    *,
    same_settings: bool = False,
) -> dict[str, pd.DataFrame]:
    """Our Tables 1, 2, 4, 5 beside the published ones, for the protocols we have.

    Returns ``{"table1": ..., ...}`` (see the module docstring for the columns); ``attrs`` of
    each hold ``log_base`` and, when our rows are the paper's own, ``paper_data=True``. Only
    tables whose (dataset, method) pairs overlap the paper's are returned.
    """
    paper = paper if paper is not None else load_paper()
    dmap = dict(dataset_map or {})
    d = normalize_long(df_long)
    overlap = paper_overlap(d, paper, dmap, same_settings=same_settings)
    own = is_paper_data(d, paper)
    out: dict[str, pd.DataFrame] = {}
    if overlap["layer"]:
        t1 = table1(d, log_base=log_base, percent=percent)
        ours_ds = {dmap.get(x, x) for x in t1["dataset"] if x != AVG}
        pub_ds = set(paper["table1"]["dataset"]) - {AVG}
        if ours_ds != pub_ds:
            t1 = t1[t1["dataset"] != AVG]
        out["table1"] = _join("table1", t1, paper["table1"], dmap | {AVG: AVG}, tol)
        out["table4"] = _join("table4", table4(d, percent=percent), paper["table4"], dmap, tol)
    if overlap["input"]:
        t2, t5 = table2(d), table5(d)
        ds0 = d.loc[d["protocol"] == "input", "dataset"].iloc[0]
        t2 = t2 if "dataset" in t2 else t2.assign(dataset=ds0)
        t5 = t5 if "dataset" in t5 else t5.assign(dataset=ds0)
        out["table2"] = _join("table2", t2, paper["table2"], dmap, tol)
        out["table5"] = _join("table5", t5, paper["table5"], dmap, tol)
    for name, t in out.items():
        t.attrs.update(
            log_base=log_base,
            paper_data=own["layer" if name in ("table1", "table4") else "input"],
        )
    return out
