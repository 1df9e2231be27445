"""Scores (Eq 8, 9), aggregation, and the paper's tables recomputed from its own Tables 4 and 5."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from roarkar.report import (
    LONG_COLUMNS,
    MissingBaselineError,
    collect_results,
    compare,
    difference,
    information,
    log_base_label,
    parse_log_base,
    read_long,
    summarize_seeds,
    table1,
    table2,
    table4,
    table5,
    to_markdown,
    write_tables,
)
from roarkar.report.cli import main as tables_main
from tests.conftest import cell_record

PAPER = Path(__file__).resolve().parents[2] / "results" / "paper"

# --------------------------------------------------------------------------- Eq 8 and Eq 9

KAR, ROAR = [0.6, 0.8], [0.2, 0.4]
Z_KAR, Z_ROAR = [0.5, 0.5], [0.5, 0.8]


def test_difference_by_hand() -> None:
    # sum_p (z_p - rho_p) = (0.5 - 0.2) + (0.8 - 0.4) = 0.7
    # sum_q (kappa_q - z_q) = (0.6 - 0.5) + (0.8 - 0.5) = 0.4
    assert difference(KAR, ROAR, Z_KAR, Z_ROAR) == pytest.approx(1.1)


def test_information_by_hand_natural_log() -> None:
    # -[0.2 ln(0.2/0.5) + 0.4 ln(0.4/0.8)] = -[0.2 * -0.916291 + 0.4 * -0.693147] = 0.460517
    # -[0.5 ln(0.5/0.6) + 0.5 ln(0.5/0.8)] = -[0.5 * -0.182322 + 0.5 * -0.470004] = 0.326163
    expected = 0.460517 + 0.326163
    assert information(KAR, ROAR, Z_KAR, Z_ROAR) == pytest.approx(expected, abs=1e-6)


def test_information_log_base_switch() -> None:
    nats = information(KAR, ROAR, Z_KAR, Z_ROAR)
    bits = information(KAR, ROAR, Z_KAR, Z_ROAR, base=2)
    assert bits == pytest.approx(nats / math.log(2))  # 0.786680 / 0.693147 = 1.134939
    assert bits == pytest.approx(1.134939, abs=1e-6)
    assert information(KAR, ROAR, Z_KAR, Z_ROAR, base="2") == pytest.approx(bits)
    assert parse_log_base("e") == math.e and parse_log_base("2") == 2.0
    assert log_base_label(math.e) == "natural log (ln)" and log_base_label(2) == "log2"
    with pytest.raises(ValueError, match="log base"):
        parse_log_base("ten")


def test_information_zero_accuracies() -> None:
    # rho = 0 contributes 0 (x log x -> 0); kappa = 0 gives -inf.
    assert information([0.5], [0.0], [0.5], [0.5]) == pytest.approx(0.0)
    assert information([0.0], [0.5], [0.5], [0.5]) == -math.inf


def test_percent_instead_of_fraction_is_named() -> None:
    with pytest.raises(ValueError, match=r"accuracy must be in \[0, 1\]; got 63.5 — percent\?"):
        difference([63.5, 0.5], ROAR, Z_KAR, Z_ROAR)
    with pytest.raises(ValueError, match=r"random_roar\[1\].*got -0.1"):
        information(KAR, ROAR, Z_KAR, [0.5, -0.1])
    with pytest.raises(ValueError, match="finite"):
        difference([math.nan, 0.5], ROAR, Z_KAR, Z_ROAR)


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="same length.*2, 1, 2, 2"):
        difference(KAR, [0.3], Z_KAR, Z_ROAR)
    with pytest.raises(ValueError, match="at least one"):
        information([], [], [], [])


# --------------------------------------------------------------------------- published tables


@pytest.fixture(scope="module")
def t4_long() -> pd.DataFrame:
    return read_long(PAPER / "table4_long.csv")


@pytest.fixture(scope="module")
def t5_long() -> pd.DataFrame:
    return read_long(PAPER / "table5_long.csv")


# The paper's own inconsistency: Table 4 does not give these ImageNet Difference cells of Table 1.
BROKEN_IMAGENET_DIFFERENCE = {
    "shannon_entropy",
    "truncnormal_std",
    "truncnormal_mean",
    "lognormal_entropy",
    "lognormal_mean",
}


def test_table1_from_table4_matches_published(t4_long: pd.DataFrame) -> None:
    ours = table1(t4_long)
    pub = pd.read_csv(PAPER / "table1.csv")
    cmp = compare(ours, pub, ["dataset", "method"], ["difference", "information"])
    assert len(cmp) == 36 and not cmp.isna().any().any()
    # Every Information cell (natural log) reproduces.
    assert (cmp["information_delta"].abs() <= 0.01).all(), cmp
    broken = cmp["method"].isin(BROKEN_IMAGENET_DIFFERENCE) & cmp["dataset"].isin(
        ["imagenet", "AVG"]
    )
    # Every other Difference cell reproduces ...
    assert (cmp.loc[~broken, "difference_delta"].abs() <= 0.01).all(), cmp[~broken]
    # ... and the five ImageNet cells do not, nor (hence) those methods' AVG cells.
    assert (cmp.loc[broken, "difference_delta"].abs() > 0.01).all(), cmp[broken]
    assert broken.sum() == 10
    # The published AVG column is the mean of the published per-dataset cells.
    pub_avg = pub[pub["dataset"] != "AVG"].groupby("method")["difference"].mean()
    pub_avg_col = pub[pub["dataset"] == "AVG"].set_index("method")["difference"]
    assert ((pub_avg - pub_avg_col).abs() <= 0.01).all()  # rounding of published cells


def test_table1_log2_does_not_match_published(t4_long: pd.DataFrame) -> None:
    ours = table1(t4_long, log_base=2)
    pub = pd.read_csv(PAPER / "table1.csv")
    cmp = compare(ours, pub, ["dataset", "method"], ["information"])
    assert (cmp["information_delta"] > 0.1).all()  # log2 inflates every cell by 1/ln 2
    row = ours[(ours["dataset"] == "imagenet") & (ours["method"] == "smoe_scale")].iloc[0]
    assert row["information"] == pytest.approx(1.63, abs=0.01)


def test_table1_sorted_by_avg_difference(t4_long: pd.DataFrame) -> None:
    ours = table1(t4_long)
    avg = ours[ours["dataset"] == "AVG"]
    assert list(avg["difference"]) == sorted(avg["difference"], reverse=True)
    assert avg["method"].iloc[0] == "smoe_scale"
    assert list(ours.columns) == ["dataset", "method", "difference", "information"]
    assert "random" not in set(ours["method"])


def test_table4_best_worst_match_paper(t4_long: pd.DataFrame) -> None:
    t4 = table4(t4_long)
    assert list(t4.columns) == ["dataset", "method", "mode", "layer", "accuracy"]
    # Published ImageNet Best / Worst rows: KAR L1..L5, ROAR L1..L5.
    best = [56.61, 51.02, 51.25, 47.21, 63.00, 44.48, 42.74, 35.44, 33.88, 18.07]
    worst = [50.66, 32.28, 50.57, 42.54, 61.18, 57.20, 68.22, 44.42, 38.18, 22.88]
    for label, row in (("Best", best), ("Worst", worst)):
        got = t4[(t4["dataset"] == "imagenet") & (t4["method"] == label)]["accuracy"]
        assert list(got) == pytest.approx(row, abs=1e-6)
    cowc_best = t4[(t4["dataset"] == "cowc") & (t4["method"] == "Best")]["accuracy"]
    assert list(cowc_best) == pytest.approx(
        [66.37, 63.78, 73.29, 65.68, 80.65, 42.76, 43.45, 43.89, 60.69, 57.98]
    )
    assert len(t4) == 3 * 12 * 10


def test_table2_from_table5_matches_published(t5_long: pd.DataFrame) -> None:
    ours = table2(t5_long)
    assert list(ours.columns) == ["method", "kar", "roar", "sum"]
    rnd = ours[ours["method"] == "random"].iloc[0]
    assert (rnd["kar"], rnd["roar"], rnd["sum"]) == pytest.approx((3.4339, -3.4339, 0.0))
    pub = pd.read_csv(PAPER / "table2.csv")
    cmp = compare(ours, pub, ["method"], ["kar", "roar", "sum"]).dropna()
    assert len(cmp) == 11
    assert (cmp["kar_delta"].abs() <= 0.01).all() and (cmp["roar_delta"].abs() <= 0.01).all()
    # Guided Backprop: 3.6001 - 3.5724 = 0.0277, published 0.04 (also inconsistent with its own
    # published 3.60 - 3.57); every other SUM reproduces within 0.01.
    gbp = cmp["method"] == "guided_backprop"
    assert cmp.loc[gbp, "sum"].item() == pytest.approx(0.0277, abs=1e-9)
    assert abs(cmp.loc[gbp, "sum_delta"].item()) > 0.01
    assert (cmp.loc[~gbp, "sum_delta"].abs() <= 0.01 + 1e-9).all(), cmp
    smoe = ours[ours["method"] == "smoe_scale_prior"].iloc[0]
    assert (smoe["kar"], smoe["roar"], smoe["sum"]) == pytest.approx((3.61, -2.31, 1.30), abs=0.01)


def test_table5_round_trip(t5_long: pd.DataFrame) -> None:
    t5 = table5(t5_long)
    assert list(t5.columns) == ["method", "mode", "percent", "accuracy"]
    row = t5[(t5["method"] == "gradient_smoothgrad_sq") & (t5["mode"] == "roar")]
    assert list(row["percent"]) == [10, 30, 50, 70, 90]
    assert list(row["accuracy"]) == pytest.approx([69.35, 60.28, 41.55, 29.45, 11.09])


# --------------------------------------------------------------------------- errors


def test_missing_baseline_names_cell(t4_long: pd.DataFrame) -> None:
    drop = (
        (t4_long["method"] == "random")
        & (t4_long["dataset"] == "places365")
        & (t4_long["layer"] == "L3")
        & (t4_long["mode"] == "roar")
    )
    with pytest.raises(MissingBaselineError, match=r"places365.*'L3'.*'roar'") as info:
        table1(t4_long[~drop])
    assert (info.value.dataset, info.value.layer, info.value.mode) == ("places365", "L3", "roar")


def test_method_missing_layer_is_named(t4_long: pd.DataFrame) -> None:
    drop = (
        (t4_long["method"] == "std")
        & (t4_long["dataset"] == "cowc")
        & (t4_long["layer"] == "L2")
        & (t4_long["mode"] == "kar")
    )
    with pytest.raises(ValueError, match=r"'std'.*kar.*'cowc'.*'L2'"):
        table1(t4_long[~drop])


def test_subset_of_layers_is_scored(t4_long: pd.DataFrame) -> None:
    sub = t4_long[t4_long["layer"].isin(["L1", "L5"])]
    ours = table1(sub)
    d = sub[sub["dataset"] == "cowc"]

    def acc(method: str, mode: str) -> list[float]:
        rows = d[(d["method"] == method) & (d["mode"] == mode)].sort_values("layer")
        return rows["accuracy"].tolist()

    k, r, zk, zr = (
        acc("smoe_scale", "kar"),
        acc("smoe_scale", "roar"),
        acc("random", "kar"),
        acc("random", "roar"),
    )
    got = ours[(ours["dataset"] == "cowc") & (ours["method"] == "smoe_scale")].iloc[0]
    assert got["difference"] == pytest.approx(difference(k, r, zk, zr))


def test_read_long_names_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"dataset": ["a"], "method": ["random"], "accuracy": [0.5]}).to_csv(path)
    with pytest.raises(ValueError, match=r"bad\.csv.*model.*seed"):
        read_long(path)


def test_read_long_rejects_percents(tmp_path: Path, t5_long: pd.DataFrame) -> None:
    path = tmp_path / "pct.csv"
    t5_long.assign(accuracy=t5_long["accuracy"] * 100).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"pct\.csv.*accuracy must be in \[0, 1\] — percent\?"):
        read_long(path)


# --------------------------------------------------------------------------- aggregation


def _write_result(root: Path, name: str, cell: dict, accuracy: float | None, status="ok") -> None:
    path = root / name / "result.json"
    path.parent.mkdir(parents=True)
    rec = {
        "cell": cell,
        "status": status,
        "accuracy": accuracy,
        "error": None if status == "ok" else "RuntimeError: out of memory",
        "cell_id": name,
    }
    path.write_text(json.dumps(rec))


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    accs = {("random", "kar"): 0.5, ("random", "roar"): 0.6, ("smoe_scale", "kar"): 0.7}
    accs[("smoe_scale", "roar")] = 0.3
    for (method, mode), acc in accs.items():
        for layer in ("L2", "L4"):
            for seed in (0, 1):
                a = acc + (0.1 if seed else -0.1) if method == "smoe_scale" else acc
                _write_result(
                    root,
                    f"{method}-{mode}-{layer}-{seed}",
                    cell_record(method, mode, layer, seed),
                    a,
                )
    _write_result(root, "input-rnd", cell_record("random", "kar", None, 0, 50.0), 0.4)
    _write_result(root, "failed", cell_record("std", "kar", "L2", 0), None, status="failed")
    (root / "garbage").mkdir()
    (root / "garbage" / "result.json").write_text("{not json")
    return root


def test_collect_results(runs: Path) -> None:
    df = collect_results(runs)
    # results without a true-class score (written before it was recorded) load with NaN there
    base = ["base_accuracy", "base_true_class_score"]  # the cell's base model (seed 002's t = 0)
    assert list(df.columns) == [*LONG_COLUMNS, "true_class_score", "base_warning", *base, "source"]
    assert df["true_class_score"].isna().all() and df[base].isna().all().all()
    assert len(df) == 4 * 2 * 2 + 1
    assert df.attrs["n_ok"] == 17 and df.attrs["n_failed"] == 1 and df.attrs["n_unreadable"] == 1
    assert df.attrs["failed"][0].endswith("failed/result.json")
    assert "std" not in set(df["method"])
    assert df.loc[df["protocol"] == "input", "layer"].tolist() == [""]


def test_seeds_are_averaged(runs: Path) -> None:
    df = collect_results(runs)
    s = summarize_seeds(df)
    cell = s[(s["method"] == "smoe_scale") & (s["mode"] == "kar") & (s["layer"] == "L2")].iloc[0]
    assert (cell["mean"], cell["std"], cell["n"]) == pytest.approx((0.7, math.sqrt(0.02), 2))
    t1 = table1(df)
    # Means 0.7/0.3 vs random 0.5/0.6 on two layers: D = 2*(0.6-0.3) + 2*(0.7-0.5) = 1.0
    row = t1[(t1["dataset"] == "synth")].iloc[0]
    assert row["difference"] == pytest.approx(1.0)
    t4 = table4(df)
    got = t4[(t4["method"] == "smoe_scale") & (t4["mode"] == "kar")]["accuracy"]
    assert list(got) == pytest.approx([70.0, 70.0])


def test_write_tables_and_cli(tmp_path: Path, runs: Path, capsys: pytest.CaptureFixture) -> None:
    layer_only = collect_results(runs).query("protocol == 'layer'")
    written = write_tables(layer_only, tmp_path / "out")
    assert set(written) == {
        "long.csv",
        *(f"{t}.{ext}" for t in ("table1", "table4") for ext in ("csv", "md", "tex")),
    }
    assert "natural log" in written["table1.md"].read_text()

    out = tmp_path / "paper"
    assert tables_main(["--raw", str(PAPER / "table5_long.csv"), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {
        "long.csv",
        *(f"{t}.{ext}" for t in ("table2", "table5") for ext in ("csv", "md", "tex")),
        "compare_table2.csv",  # the paper's own ids: compared with the published tables
        "compare_table5.csv",
        "comparison.md",
    }
    text = capsys.readouterr().out
    assert "smoe_scale_prior" in text and "table1, table4 skipped" in text

    # all or nothing: a failed or unreadable cell is an error naming it, nothing is written
    r = tmp_path / "r"
    assert tables_main(["--runs", str(runs), "--out", str(r), "--log-base", "2"]) == 2
    err = capsys.readouterr().err
    assert "1 failed and 1 unreadable" in err and "failed/result.json" in err and not r.exists()
    argv = ["--runs", str(runs), "--out", str(r), "--log-base", "2", "--skip-failed"]
    assert tables_main(argv) == 0
    text = capsys.readouterr().out
    assert "1 failed" in text and "Information score (Eq 9) uses the log2" in text

    assert tables_main(["--raw", str(tmp_path / "nope.csv"), "--out", str(out)]) == 2


def test_to_markdown() -> None:
    df = pd.DataFrame({"method": ["a|b", "c"], "score": [1.234, math.nan]})
    md = to_markdown(df, "T", note="n")
    assert md.splitlines() == [
        "### T",
        "",
        "| method | score |",
        "|:---|---:|",
        "| a\\|b | 1.23 |",
        "| c |  |",
        "",
        "n",
    ]


def test_table2_of_a_roar_only_study_leaves_kar_and_sum_empty_not_zero():
    """seed 002 runs ROAR only: a KAR sum of no cells is not 0 (which would rank methods by ROAR
    alone under the name SUM), in the point table and in the seeds' table alike."""
    from roarkar.report.tables import Seeds, table2

    rows = [
        dict(dataset="d", model="m", protocol="input", method=method, layer="", mode="roar",
             percent=p, seed=s, accuracy=acc - 0.1 * p / 100 + 0.01 * s)
        for method, acc in (("random", 0.9), ("gradient", 0.6))
        for p in (10, 50) for s in (0, 1)
    ]  # fmt: skip
    for t in (table2(pd.DataFrame(rows)), table2(pd.DataFrame(rows), seeds=Seeds())):
        assert t["kar"].isna().all() and t["sum"].isna().all()
        assert t.set_index("method").loc["gradient", "roar"] == pytest.approx(-(0.59 + 0.55 + 0.01))
