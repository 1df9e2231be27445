"""Several seeds (mean, std, n, bootstrap CIs) and the Markdown / LaTeX renderings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from roarkar.registry import UnknownName
from roarkar.report import TABLES, Seeds, table1, table2, table4, table5, write_tables
from roarkar.report.long import LONG_COLUMNS
from roarkar.report.render import (
    fmt_cell,
    latex_escape,
    layout_latex,
    layout_markdown,
)
from roarkar.report.tables import layout_table1, layout_table4

LAYERS = ["L1", "L2", "L3"]


def _long(seeds: tuple[int, ...] = (0, 1, 2), noise: float = 0.02) -> pd.DataFrame:
    """Tiny synthetic long table: 2 datasets, random + 2 methods, 3 layers, and input rows."""
    rng = np.random.default_rng(7)
    base = {"random": (0.5, 0.7), "smoe_scale": (0.7, 0.3), "std": (0.6, 0.4)}
    rows = []
    for ds in ("synth_a", "synth_b"):
        for method, (kar, roar) in base.items():
            for li, layer in enumerate(LAYERS):
                for mode, acc in (("kar", kar), ("roar", roar)):
                    for s in seeds:
                        a = acc + 0.02 * li + rng.normal(0, noise)
                        rows.append(
                            (
                                ds,
                                "m",
                                "layer",
                                method,
                                layer,
                                mode,
                                2.5 if mode == "kar" else 10.0,
                                s,
                                a,
                            )
                        )
    for method, (kar, roar) in base.items():
        for mode, acc in (("kar", kar), ("roar", roar)):
            for p in (10.0, 50.0, 90.0):
                for s in seeds:
                    a = acc + (p / 1000 if mode == "kar" else -p / 1000) + rng.normal(0, noise)
                    rows.append(("synth_a", "m", "input", method, "", mode, p, s, a))
    cols = list(LONG_COLUMNS)
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- rendering


def test_fmt_cell_and_escape() -> None:
    assert fmt_cell(1.234) == "1.23"
    assert fmt_cell(1.234, 0.056) == "1.23 ± 0.06"
    assert fmt_cell(1.234, math.nan) == "1.23"
    assert fmt_cell(math.nan, 0.1) == ""
    assert latex_escape("smoe_scale 10% & 1.2 ± 0.1") == r"smoe\_scale 10\% \& 1.2 $\pm$ 0.1"


def test_table1_markdown_and_latex_layout() -> None:
    t1 = pd.DataFrame(
        {
            "dataset": ["a", "AVG"],
            "method": ["smoe_scale", "smoe_scale"],
            "difference": [1.5, 1.5],
            "information": [1.0, 1.0],
            "difference_std": [0.1, 0.1],
            "information_std": [math.nan, math.nan],
        }
    )
    lay = layout_table1(t1)
    lay.title, lay.note = "T1", "note"
    md = layout_markdown(lay)
    assert md.splitlines()[2:5] == [
        "| Method | Difference a | Difference AVG | Information a | Information AVG |",
        "|:---|---:|---:|---:|---:|",
        "| smoe_scale | 1.50 ± 0.10 | 1.50 ± 0.10 | 1.00 | 1.00 |",
    ]
    tex = layout_latex(lay, label="tab:t1")
    lines = tex.splitlines()
    assert lines[0] == r"\begin{table}[ht]" and lines[-1] == r"\end{table}"
    assert r"\begin{tabular}{lrrrr}" in lines and r"\toprule" in lines and r"\bottomrule" in lines
    assert (
        r" & \multicolumn{2}{c}{Difference Score} & \multicolumn{2}{c}{Information Score} \\"
        in lines
    )
    assert r"\cmidrule(lr){2-3} \cmidrule(lr){4-5}" in lines
    assert r"smoe\_scale & 1.50 $\pm$ 0.10 & 1.50 $\pm$ 0.10 & 1.00 & 1.00 \\" in lines
    assert r"\label{tab:t1}" in lines and r"\caption{T1}" in lines


def test_table4_layout_groups_rows_by_dataset() -> None:
    t4 = table4(_long(), seeds=Seeds())
    lay = layout_table4(t4)
    assert lay.leaves == LAYERS * 2
    assert lay.groups == [("KAR Kept Percent", 3), ("ROAR Removed Percent", 3)]
    md = layout_markdown(lay)
    assert "| **synth_a** |" in md and "| **synth_b** |" in md
    tex = layout_latex(lay)
    assert tex.count(r"\multicolumn{7}{l}{\textit{synth\_") == 2
    assert " ± " in md and r"$\pm$" in tex


# --------------------------------------------------------------------------- seeds


def test_table4_table5_mean_std_n() -> None:
    df = _long()
    t4 = table4(df, seeds=Seeds())
    assert list(t4.columns) == ["dataset", "method", "mode", "layer", "accuracy", "std", "n"]
    raw = df[(df["dataset"] == "synth_a") & (df["method"] == "std") & (df["layer"] == "L2")]
    raw = raw[raw["mode"] == "roar"]["accuracy"]
    row = t4[(t4["dataset"] == "synth_a") & (t4["method"] == "std") & (t4["layer"] == "L2")]
    row = row[row["mode"] == "roar"].iloc[0]
    assert row["accuracy"] == pytest.approx(raw.mean() * 100)
    assert row["std"] == pytest.approx(raw.std(ddof=1) * 100) and row["n"] == 3
    assert t4.loc[t4["method"].isin(["Best", "Worst"]), "std"].isna().all()
    t5 = table5(df, seeds=Seeds())
    assert list(t5.columns) == ["method", "mode", "percent", "accuracy", "std", "n"]
    assert (t5["n"] == 3).all() and (t5["std"] > 0).all()


def test_table1_seeds_std_n_and_ci() -> None:
    df = _long()
    t = table1(df, seeds=Seeds(n_boot=500))
    point = table1(df)
    pd.testing.assert_frame_equal(t[list(point.columns)], point)
    assert (t["n"] == 3).all()
    # std of the per-seed scores (Difference is linear: their mean is the point value)
    sub = df[(df["dataset"] == "synth_a") & (df["protocol"] == "layer")]
    per_seed = [table1(sub[sub["seed"] == s]).iloc[0]["difference"] for s in (0, 1, 2)]
    row = t[(t["dataset"] == "synth_a") & (t["method"] == point.iloc[0]["method"])].iloc[0]
    assert row["difference"] == pytest.approx(np.mean(per_seed))
    assert row["difference_std"] == pytest.approx(np.std(per_seed, ddof=1))
    for v in ("difference", "information"):
        assert (t[f"{v}_ci_low"] <= t[v] + 1e-12).all() and (
            t[v] <= t[f"{v}_ci_high"] + 1e-12
        ).all()
        assert (t[f"{v}_ci_low"] < t[f"{v}_ci_high"]).all()
    # reproducible with the same RNG seed (fixed default), and it is the one used
    pd.testing.assert_frame_equal(t, table1(df, seeds=Seeds(n_boot=500)))
    assert t.attrs["ci_seed"] == 0 and t.attrs["n_boot"] == 500


def test_table2_seeds_ci_contains_point() -> None:
    df = _long()
    t = table2(df, seeds=Seeds(n_boot=500))
    point = table2(df)
    pd.testing.assert_frame_equal(t[list(point.columns)], point)
    for v in ("kar", "roar", "sum"):
        assert (t[f"{v}_ci_low"] <= t[v] + 1e-12).all() and (
            t[v] <= t[f"{v}_ci_high"] + 1e-12
        ).all()
    assert (t["n"] == 3).all()


def test_one_seed_gives_nan_ci() -> None:
    t = table1(_long(seeds=(0,)), seeds=Seeds(n_boot=100))
    assert (t["n"] == 1).all()
    assert t[["difference_std", "difference_ci_low", "information_ci_high"]].isna().all().all()


def test_unpaired_seeds_resample_per_cell() -> None:
    df = _long()
    drop = (df["method"] == "std") & (df["seed"] == 2) & (df["layer"] == "L1")
    t = table1(df[~drop], seeds=Seeds(n_boot=300))
    row = t[(t["dataset"] == "synth_a") & (t["method"] == "std")].iloc[0]
    assert row["n"] == 2  # seeds common to every cell this score uses
    assert row["difference_ci_low"] <= row["difference"] <= row["difference_ci_high"]


def test_write_tables_with_seeds(tmp_path: Path) -> None:
    written = write_tables(_long(), tmp_path, n_boot=200)
    t1 = pd.read_csv(written["table1.csv"])
    assert list(t1.columns) == [
        "dataset", "method", "difference", "information", "difference_std",
        "information_std", "n", "difference_ci_low", "difference_ci_high",
        "information_ci_low", "information_ci_high",
    ]  # fmt: skip
    t2 = pd.read_csv(written["table2.csv"])
    assert {"sum_std", "n", "sum_ci_low", "sum_ci_high"} <= set(t2.columns)
    assert {"std", "n"} <= set(pd.read_csv(written["table4.csv"]).columns)
    md = written["table1.md"].read_text()
    assert " ± " in md and "bootstrap" in md and "n = 3" in md
    assert r"$\pm$" in written["table2.tex"].read_text()
    # one seed: no extra columns, plain cells
    one = write_tables(_long(seeds=(0,)), tmp_path / "one")
    assert list(pd.read_csv(one["table1.csv"]).columns) == [
        "dataset",
        "method",
        "difference",
        "information",
    ]
    assert " ± " not in one["table1.md"].read_text()


# --------------------------------------------------------------------------- registered tables


@pytest.mark.parametrize("name", TABLES.names())
def test_every_registered_table_computes_lays_out_and_adds_its_spread(name: str) -> None:
    """Conformance over the table registry: one computation, one seed the simple case (no spread
    columns), several seeds the same means with std and n; a layout with one row per method."""
    spec = TABLES.get(name)
    assert spec.name == name and spec.title.startswith(f"Table {name[-1]}: ")
    df = _long()
    point, spread = spec.table(df), spec.table(df, seeds=Seeds(n_boot=50))
    assert set(point.columns) < set(spread.columns) and "n" in spread.columns
    assert (spread["n"].dropna() == 3).all()
    pd.testing.assert_frame_equal(spread[list(point.columns)], point, check_dtype=False)
    one = spec.table(df[df["seed"] == 0], seeds=Seeds(n_boot=50))
    assert (one["n"].dropna() == 1).all()
    lay = spec.layout(point)
    assert {stub for _g, stub, _c in lay.rows} == set(point["method"])
    assert "### " not in layout_markdown(lay) and len(spec.wide(point)) == len(lay.rows)
    for value in spec.interval_values:
        low, high = spread[f"{value}_ci_low"], spread[f"{value}_ci_high"]
        assert ((low <= spread[value] + 1e-12) & (spread[value] <= high + 1e-12)).all()


def test_an_unknown_table_names_the_registered_ones() -> None:
    with pytest.raises(UnknownName, match=r"'table3' is not a known table.*table1, table2, table4"):
        TABLES.get("table3")
