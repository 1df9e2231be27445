"""Figs 10 and 11 of paper 003: Krippendorff's alpha on subsets of images, with intervals, and the
Spearman heat map between metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from roarkar.metrics.consistency import (
    ALPHA_COLUMNS,
    alpha_draws,
    alpha_intervals,
    draw_krippendorff,
    draw_spearman,
    spearman_matrix,
    spearman_table,
    subset_size,
    write_consistency,
)

METHODS = ("random", "gradient", "gradcam", "deepmaps")  # worst .. best


def _tidy(values: dict[str, np.ndarray], metric: str = "aopc") -> pd.DataFrame:
    """``values[method] [images]`` as the tidy table of one metric."""
    return pd.concat(
        pd.DataFrame({"image": np.arange(len(v)), "method": m, "metric": metric, "value": v})
        for m, v in values.items()
    )


def test_alpha_is_one_when_every_image_ranks_the_methods_alike() -> None:
    rng = np.random.default_rng(0)
    offset = rng.normal(0, 5, 200)  # images differ a lot, the order of methods never does
    same = np.stack([offset + q for q in range(len(METHODS))], axis=1)
    draws = alpha_draws(same, fraction=0.1, repeats=20, seed=1)
    assert draws == pytest.approx(np.ones(20))
    table = alpha_intervals(_tidy(dict(zip(METHODS, same.T, strict=True))), repeats=20)
    assert list(table.columns) == ALPHA_COLUMNS
    assert list(table["methods"]) == ["all", "no_random"]
    assert table["mean"].tolist() == pytest.approx([1.0, 1.0])
    assert table["lo"].tolist() == pytest.approx([1.0, 1.0])
    assert table["alpha_all_images"].tolist() == pytest.approx([1.0, 1.0])
    assert table["n_methods"].tolist() == [4, 3] and (table["subset"] == 20).all()


def test_alpha_is_near_zero_for_independent_ranks_and_its_interval_holds_zero() -> None:
    noise = np.random.default_rng(2).normal(size=(3000, 6))
    draws = alpha_draws(noise, fraction=0.2, repeats=30, seed=0)
    assert abs(draws.mean()) < 0.02
    assert np.percentile(draws, 2.5) < 0 < np.percentile(draws, 97.5)


def test_lower_is_better_metrics_are_negated_before_ranking() -> None:
    rng = np.random.default_rng(3)
    good = {m: q + rng.normal(0, 0.3, 100) for q, m in enumerate(METHODS)}
    aopc = alpha_intervals(_tidy(good, "aopc"), repeats=5)
    n_morf = alpha_intervals(_tidy({m: -v for m, v in good.items()}, "n_morf"), repeats=5)
    assert aopc["mean"].to_numpy() == pytest.approx(n_morf["mean"].to_numpy())
    assert (aopc["mean"] > 0.5).all()


def test_intervals_shrink_with_larger_subsets_and_vanish_with_all_images() -> None:
    rng = np.random.default_rng(4)
    noisy = np.arange(5)[None, :] + rng.normal(0, 2.0, (1000, 5))  # alpha well inside (0, 1)
    width = {}
    for fraction in (0.05, 0.2, 0.5, 1.0):
        d = alpha_draws(noisy, fraction=fraction, repeats=40, seed=0)
        width[fraction] = np.percentile(d, 97.5) - np.percentile(d, 2.5)
    assert width[0.05] > width[0.2] > width[0.5] > width[1.0] == pytest.approx(0.0)
    assert 0.05 < alpha_draws(noisy, fraction=1.0, repeats=1)[0] < 0.6


def test_draws_are_seeded_and_settings_are_checked() -> None:
    x = np.random.default_rng(5).normal(size=(50, 4))
    assert np.array_equal(alpha_draws(x, seed=7), alpha_draws(x, seed=7))
    assert not np.array_equal(alpha_draws(x, seed=7), alpha_draws(x, seed=8))
    assert subset_size(5000, 0.1) == 500 and subset_size(10, 0.01) == 2
    with pytest.raises(ValueError, match="fraction"):
        alpha_draws(x, fraction=0.0)
    with pytest.raises(ValueError, match="repeats"):
        alpha_draws(x, repeats=0)


@pytest.fixture()
def several_metrics() -> pd.DataFrame:
    """Three metrics of two methods over 40 images; for deepmaps, n_morf = -aopc exactly and
    afoc_morf is independent noise."""
    rng = np.random.default_rng(6)
    parts = []
    for method in ("deepmaps", "random"):
        aopc = rng.normal(size=40)
        parts += [
            _tidy({method: aopc}, "aopc"),
            _tidy({method: -aopc}, "n_morf"),
            _tidy({method: rng.normal(size=40)}, "afoc_morf"),
        ]
    return pd.concat(parts, ignore_index=True)


def test_spearman_matrix_is_symmetric_with_a_unit_diagonal_of_oriented_metrics(
    several_metrics,
) -> None:
    rho = spearman_matrix(several_metrics, "deepmaps", ["aopc", "n_morf", "afoc_morf"])
    v = rho.to_numpy()
    assert list(rho.index) == list(rho.columns) == ["aopc", "n_morf", "afoc_morf"]
    assert np.allclose(v, v.T) and np.allclose(np.diag(v), 1.0)
    assert rho.loc["aopc", "n_morf"] == pytest.approx(1.0)  # -n_morf is aopc: perfectly consistent
    assert abs(rho.loc["aopc", "afoc_morf"]) < 0.5
    long = spearman_table(several_metrics, ["deepmaps", "random"])
    assert len(long) == 2 * 3 * 3 and set(long["method"]) == {"deepmaps", "random"}


def test_figures_show_what_the_tables_say(several_metrics, tmp_path) -> None:
    import matplotlib.pyplot as plt

    table = alpha_intervals(several_metrics, repeats=10, fraction=0.5)
    fig = draw_krippendorff(table, "a run")
    try:
        bars = [p.get_height() for p in fig.axes[0].patches]
        assert bars == pytest.approx(table["mean"].tolist())  # one set: no baseline pair here
        assert "10 random subsets of 20 of 40 images" in fig._suptitle.get_text()
    finally:
        plt.close(fig)
    fig = draw_spearman(several_metrics, ["deepmaps", "random"], ["aopc", "n_morf"])
    try:
        heat = [ax for ax in fig.axes if ax.images]
        assert [ax.get_title() for ax in heat] == ["DeepMaps", "Random"]
        assert [t.get_text() for t in heat[0].get_yticklabels()] == ["aopc", "-n_morf"]
        assert np.ma.filled(heat[0].images[0].get_array(), np.nan) == pytest.approx(np.ones((2, 2)))
    finally:
        plt.close(fig)
    alpha, paths = write_consistency(
        several_metrics, tmp_path, fraction=0.5, repeats=5, seed=0,
        spearman_methods=["deepmaps", "gradcam"], label="test",
    )  # fmt: skip
    assert [p.name for p in paths] == ["fig10_krippendorff.png", "fig11_spearman.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert set(pd.read_csv(tmp_path / "spearman.csv")["method"]) == {"deepmaps"}  # gradcam absent
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "krippendorff.csv"), alpha)
