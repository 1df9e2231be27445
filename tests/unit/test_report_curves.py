"""Seed 002's figure: score against degradation level t, individual methods and combinations in
two panels, random as the baseline, t = 0 from the base model, 95 % t-intervals over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from roarkar.report.curves import INDIVIDUAL, curve_points, figure_seed002


def _long() -> pd.DataFrame:
    rows = []
    for seed, base in ((0, 0.95), (1, 0.97)):
        for method, slope in (("random", 0.1), ("smoothgrad", 0.6), ("smoothed_gbp", 0.8)):
            for percent in (10, 50, 90):
                score = base - slope * percent / 100 + 0.01 * seed
                rows.append(
                    dict(dataset="mnist", model="nielsen_cnn", protocol="input", method=method,
                         layer="", mode="roar", percent=percent, seed=seed, accuracy=score,
                         true_class_score=score - 0.05, base_accuracy=base,
                         base_true_class_score=base - 0.05)
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_points_are_seed_means_with_t_intervals_and_the_base_model_at_t0():
    points = curve_points(_long(), "true_class_score")
    sg = points[points["method"] == "smoothgrad"].set_index("t")
    assert list(sg.index) == [0.0, 0.1, 0.5, 0.9]
    assert sg.loc[0.0, "mean"] == pytest.approx(0.91)  # mean of the two base models' scores
    # the seeds' scores are 0.03 apart: half-width = t(0.975, 1) * sd / sqrt(2)
    assert sg.loc[0.5, "half"] == pytest.approx(
        12.7062 * np.std([0, 0.03], ddof=1) / np.sqrt(2), rel=1e-3
    )
    assert sg.loc[0.9, "mean"] == pytest.approx(0.96 - 0.54 + 0.005 - 0.05)  # mean of seeds
    assert set(points["n"]) == {2}


def test_without_base_columns_the_curve_starts_at_the_first_level():
    points = curve_points(_long().drop(columns=["base_accuracy", "base_true_class_score"]))
    assert points["t"].min() == pytest.approx(0.1)


def test_the_figure_is_written(tmp_path):
    path = figure_seed002(_long(), tmp_path / "fig.png", "true_class_score")
    assert path.stat().st_size > 10_000
    assert "smoothgrad" in INDIVIDUAL and "smoothed_gbp" not in INDIVIDUAL


def test_no_roar_rows_is_a_clear_error():
    kar = _long().assign(mode="kar")
    with pytest.raises(ValueError, match="needs input-protocol ROAR cells"):
        curve_points(kar)
