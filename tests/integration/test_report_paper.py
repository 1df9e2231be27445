"""Comparison with the published tables, prior layer weights, and Figures 4 and 5."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from roarkar.report import read_long
from roarkar.report.cli import main as tables_main
from roarkar.report.long import LONG_COLUMNS
from roarkar.report.paper import (
    KNOWN_INCONSISTENT,
    compare_with_paper,
    is_paper_data,
    load_paper,
)
from roarkar.report.paper_text import flagged_cells, format_comparison
from roarkar.report.prior import (
    PAPER_PRIOR_WEIGHTS,
    derive_prior_weights,
    load_prior_weights,
    per_layer_scores,
)
from roarkar.report.rows import MissingBaselineError

PAPER = Path(__file__).resolve().parents[2] / "results" / "paper"


@pytest.fixture(scope="module")
def paper() -> dict[str, pd.DataFrame]:
    return load_paper(PAPER)


@pytest.fixture(scope="module")
def both_long(paper: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([paper["t4_long"], paper["t5_long"]], ignore_index=True)


# --------------------------------------------------------------------------- comparison


def test_comparison_flags_exactly_the_known_cells(paper, both_long) -> None:
    cmps = compare_with_paper(both_long, paper)
    assert set(cmps) == {"table1", "table2", "table4", "table5"}
    assert all(t.attrs["paper_data"] for t in cmps.values())
    flags = flagged_cells(cmps)
    got = {(f["table"], f["dataset"], f["method"], f["column"]) for f in flags}
    assert got == KNOWN_INCONSISTENT and len(got) == 11
    assert not cmps["table4"]["accuracy_flag"].any() and not cmps["table5"]["accuracy_flag"].any()
    text = format_comparison(cmps)
    assert "natural log (ln)" in text and "exactly the known inconsistencies" in text
    assert "table1 imagenet lognormal_mean difference: ours 1.0855, published 1.4600" in text
    assert "table2 imagenet guided_backprop sum: ours 0.0277, published 0.0400" in text
    assert "NOT" not in text


def test_own_runs_keep_ours_beside_published(paper) -> None:
    t4 = paper["t4_long"]
    ours = t4[t4["dataset"] == "imagenet"].assign(dataset="synth_objects")
    ours = ours.assign(
        accuracy=ours["accuracy"].where(ours["method"] != "std", ours["accuracy"] * 0.9)
    )
    assert compare_with_paper(ours, paper) == {}  # no shared dataset id
    cmps = compare_with_paper(ours, paper, dataset_map={"synth_objects": "imagenet"})
    t1 = cmps["table1"]
    assert set(t1["dataset"]) == {"synth_objects"}  # our names; no AVG (not the paper's datasets)
    assert set(t1["paper_dataset"]) == {"imagenet"} and not cmps["table1"].attrs["paper_data"]
    smoe = t1[t1["method"] == "smoe_scale"].iloc[0]
    assert smoe["difference_published"] == 1.70 and smoe["difference"] == pytest.approx(
        1.7058, abs=1e-9
    )
    assert t1.loc[t1["method"] == "std", "difference_flag"].item()
    assert "synth_objects (paper: imagenet) std" in format_comparison(cmps)


def test_is_paper_data(paper, both_long) -> None:
    assert is_paper_data(both_long, paper) == {"layer": True, "input": True}
    changed = both_long.copy()
    changed.loc[0, "accuracy"] += 0.001
    assert is_paper_data(changed, paper)["layer"] is False


def test_cli_compare_on_and_off(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = str(PAPER / "table4_long.csv")
    assert tables_main(["--raw", raw, "--out", str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    assert "ARE the paper's own" in text and "(known inconsistency of the paper)" in text
    assert (tmp_path / "a" / "compare_table1.csv").is_file()
    assert tables_main(["--raw", raw, "--out", str(tmp_path / "b"), "--compare-paper", "off"]) == 0
    assert not (tmp_path / "b" / "comparison.md").exists()


# --------------------------------------------------------------------------- prior weights


def test_paper_prior_weights_reproduced(paper) -> None:
    t4 = paper["t4_long"]
    w = derive_prior_weights(t4, "smoe_scale", datasets=["imagenet", "places365"])
    assert w == pytest.approx([0.1771, 0.1472, 0.3744, 0.4000, 0.7159], abs=1e-4)
    rounded = derive_prior_weights(t4, datasets=["imagenet", "places365"], ndigits=2)
    assert rounded == list(PAPER_PRIOR_WEIGHTS)


def test_derive_prior_weights_by_hand() -> None:
    rows = []
    # random: KAR 0.5, ROAR 0.8 everywhere; method: KAR 0.6 / ROAR 0.4 at L1..L4, 0.4 / 0.9 at L5
    for layer in ("L1", "L2", "L3", "L4", "L5"):
        bad = layer == "L5"
        for method, kar, roar in (
            ("random", 0.5, 0.8),
            ("m", 0.4 if bad else 0.6, 0.9 if bad else 0.4),
        ):
            rows += [
                ("d", "x", "layer", method, layer, "kar", 2.5, 0, kar),
                ("d", "x", "layer", method, layer, "roar", 10.0, 0, roar),
            ]
    cols = list(LONG_COLUMNS)
    df = pd.DataFrame(rows, columns=cols)
    import math

    good = -(0.4 * math.log(0.4 / 0.8)) - 0.5 * math.log(0.5 / 0.6)  # 0.185095
    w = derive_prior_weights(df, "m")
    assert w[:4] == pytest.approx([good] * 4) and w[4] == 0.0  # L5 worse than random: clipped
    d = derive_prior_weights(df, "m", score="difference", clip=False)
    assert d == pytest.approx([0.5] * 4 + [-0.2])  # (0.8 - 0.4) + (0.6 - 0.5); (0.8-0.9)+(0.4-0.5)
    pls = per_layer_scores(df)
    assert list(pls.columns) == [
        "dataset",
        "method",
        "layer",
        "kar_gain",
        "roar_gain",
        "difference",
        "information",
    ]
    with pytest.raises(ValueError, match="no layer results for method 'nope'"):
        derive_prior_weights(df, "nope")
    with pytest.raises(MissingBaselineError, match="'L3'.*'roar'"):
        derive_prior_weights(
            df[~((df["method"] == "random") & (df["layer"] == "L3") & (df["mode"] == "roar"))], "m"
        )


def test_cli_prior_weights_and_load(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "prior"
    argv = ["--raw", str(PAPER / "table4_long.csv"), "--out", str(out), "--compare-paper", "off"]
    argv += ["--prior-weights", "smoe_scale", "--prior-datasets", "imagenet,places365"]
    assert tables_main(argv) == 0
    assert "[0.18, 0.15, 0.37, 0.4, 0.72]" in capsys.readouterr().out
    rec = json.loads((out / "prior_weights.json").read_text())
    assert rec["method"] == "smoe_scale" and rec["datasets"] == ["imagenet", "places365"]
    assert load_prior_weights(out / "prior_weights.json") == pytest.approx(rec["weights"])
    bare = tmp_path / "bare.json"
    bare.write_text("[1, 2, 3, 4, 5]")
    assert load_prior_weights(bare) == [1.0, 2.0, 3.0, 4.0, 5.0]
    bare.write_text('{"weights": [1, -2, 3, 4, 5]}')
    with pytest.raises(ValueError, match="non-negative"):
        load_prior_weights(bare)


# --------------------------------------------------------------------------- figures


def test_figures_from_paper_and_synthetic(tmp_path: Path, paper, both_long) -> None:
    pytest.importorskip("matplotlib")
    from roarkar.report.figures import write_figures

    written = write_figures(both_long, tmp_path / "paper")
    assert set(written) == {"fig4_layer_scores.png", "fig5_accuracy_vs_percent.png"}
    for p in written.values():
        assert p.stat().st_size > 10_000 and p.read_bytes()[:4] == b"\x89PNG"
    # a tiny synthetic long table (two seeds, one dataset mapped onto the paper's ImageNet)
    t4, t5 = paper["t4_long"], paper["t5_long"]
    keep = ["random", "smoe_scale", "gradient_smoothgrad_sq"]
    tiny = pd.concat([t4[t4["dataset"] == "cowc"], t5], ignore_index=True)
    tiny = tiny[tiny["method"].isin(keep)].assign(dataset="synth")
    tiny = pd.concat([tiny, tiny.assign(seed=1, accuracy=tiny["accuracy"] * 0.99)])
    w2 = write_figures(tiny, tmp_path / "synth", dataset_map={"synth": "imagenet"})
    assert len(w2) == 2 and all(p.stat().st_size > 10_000 for p in w2.values())


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


def test_figure4_names_methods_as_the_paper_draws_random_and_defines_its_symbols(paper) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from roarkar.report.figures import draw_figure4

    fig = draw_figure4(paper["t4_long"])
    try:
        legend = _legend_texts(fig)
        assert legend[1:] == ["SMOE Scale", "Standard Dev", "Trunc Normal Ent", "Trunc Normal Std",
                              "Shannon Ent"]  # fmt: skip
        assert not any("_" in t for t in legend)  # no internal ids
        assert legend[0].startswith("Random")
        # Random is a drawn series at 0 in every visible panel, not just a grid line
        panels = [ax for ax in fig.axes if ax.get_visible()]
        assert len(panels) == 4
        for ax in panels:
            random = [ln for ln in ax.get_lines() if ln.get_marker() == "x"]
            assert len(random) == 1 and list(random[0].get_ydata()) == [0.0] * 5
        text = " ".join(t.get_text() for t in fig.texts)
        assert "κ: accuracy when the 2.5 %" in text and "ρ: when the 10 %" in text
        assert "z: the same for the Random map" in text
        assert "(z − ρ) + (κ − z)" in panels[0].get_ylabel()
    finally:
        plt.close(fig)


def test_figure5_paper_names_and_distinct_styles(paper) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from roarkar.report.figures import draw_figure5

    fig = draw_figure5(paper["t5_long"])
    try:
        legend = _legend_texts(fig)
        assert legend[0] == "Random (baseline)" and len(legend) == 12
        assert "SMOE Scale + Prior Layer Weights" in legend
        assert "Integrated Grad. -w- SmoothGrad Sq." in legend
        assert not any("_" in t for t in legend)
        # every method differs from every other in colour, marker or line style, and methods
        # next to each other in the legend in all three
        lines = fig.axes[0].get_lines()  # one data line per method (one seed: no error bars)
        styles = [(ln.get_color(), ln.get_marker(), ln.get_linestyle()) for ln in lines]
        assert len(styles) == 12 and len(set(styles)) == 12
        for a, b in zip(styles[1:], styles[2:], strict=False):
            assert all(x != y for x, y in zip(a, b, strict=True))
    finally:
        plt.close(fig)


def test_method_labels_paper_names_presets_and_fallback() -> None:
    from roarkar.saliency.labels import method_label, method_labels

    assert method_label("std") == "Standard Dev"  # registry label (Table 1's name)
    assert method_label("smoe_scale_linear") == "SMOE Scale + Layer Weights [1,...,5]"  # preset
    assert method_label("Best") == "Best"  # not a method: shown as it is
    assert method_labels(["a", "std"]) == {"a": "a", "std": "Standard Dev"}


def test_cli_figures(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    raw = str(PAPER / "table5_long.csv")
    assert (
        tables_main(["--raw", raw, "--out", str(tmp_path), "--figures", "--compare-paper", "off"])
        == 0
    )
    assert (tmp_path / "fig5_accuracy_vs_percent.png").stat().st_size > 10_000


def test_read_long_roundtrip_of_paper() -> None:
    # the paper's long tables remain valid input
    assert len(read_long(PAPER / "table4_long.csv")) == 300
