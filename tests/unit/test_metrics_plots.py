"""Perturbation figures: up is better in Fig 6 (no hanging bars), Fig 7 says which of row and column
wins, and both name methods as the paper does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

import matplotlib.pyplot as plt  # noqa: E402

from roarkar.metrics.plots import (  # noqa: E402
    WIN_NOTE,
    draw_means,
    draw_road_curves,
    draw_win_rates,
)

METHODS = ("random", "smoe_scale", "ground_truth")  # worst .. best on every metric


@pytest.fixture()
def tidy() -> pd.DataFrame:
    """30 images; ground_truth best, random worst on aopc (higher better) and n_morf (lower)."""
    rng = np.random.default_rng(0)
    rows = []
    for image in range(30):
        noise = rng.normal(0, 0.01)
        for quality, method in enumerate(METHODS):
            for metric, sign in (("aopc", 1), ("n_morf", -1)):
                value = 0.5 + sign * 0.2 * quality + noise
                rows.append(dict(image=image, method=method, metric=metric, value=value))
    return pd.DataFrame(rows)


def _ticks(labels) -> list[str]:
    return [t.get_text() for t in labels]


def test_fig6_puts_the_better_method_higher_on_every_panel(tidy) -> None:
    fig = draw_means(tidy)
    try:
        fig.canvas.draw()
        panels = [ax for ax in fig.axes if ax.get_title()]
        assert [ax.get_title() for ax in panels] == ["aopc", "n_morf (lower is better)"]
        for ax in panels:
            assert not ax.patches  # no bars that could hang from a flipped axis
            assert _ticks(ax.get_xticklabels()) == ["Random", "SMOE Scale", "Ground Truth"]
            dots = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
            assert len(dots) == len(METHODS)
            xy = [(ln.get_xdata()[0], ln.get_ydata()[0]) for ln in dots]
            screen_y = [ax.transData.transform(p)[1] for p in xy]
            assert screen_y == sorted(screen_y)  # worst lowest, best highest on screen
            assert "better" in ax.get_ylabel()
    finally:
        plt.close(fig)


def test_fig7_says_the_row_wins_where_blue(tidy) -> None:
    fig = draw_win_rates(tidy, "win rate - 50 %: a run")
    try:
        assert WIN_NOTE in fig._suptitle.get_text()
        assert "row method beats the column method" in WIN_NOTE
        heat = [ax for ax in fig.axes if ax.images]
        assert len(heat) == 2
        for ax in heat:
            assert _ticks(ax.get_yticklabels()) == ["Random", "SMOE Scale", "Ground Truth"]
            v = np.ma.filled(ax.images[0].get_array(), np.nan)
            assert v[2, 0] == 50 and v[0, 2] == -50  # Ground Truth (row) beats Random (column)
            assert np.isnan(np.diag(v)).all()
            assert ax.images[0].get_cmap().name == "RdBu"  # high (a row win) is blue
        assert "row method" in heat[0].get_ylabel()
        assert any(ax.get_xlabel() == "column method" for ax in heat)
        bar = [ax for ax in fig.axes if not ax.images and ax.get_ylabel()][-1]
        assert "row" in bar.get_ylabel()
        assert "+50: row always wins" in _ticks(bar.get_yticklabels())
        assert "-50: column always wins" in _ticks(bar.get_yticklabels())
    finally:
        plt.close(fig)


def test_road_curves_name_their_percent_axis() -> None:
    """roarkar's x axis is the percent removed in both panels; ROAD's LeRF percent is the kept one."""
    rows = [
        dict(method=m, order=o, percent=p, kept_decision=1 - p / 100)
        for m in ("random", "smoe_scale")
        for o in ("morf", "lerf")
        for p in (10, 50, 90)
    ]
    fig = draw_road_curves(pd.DataFrame(rows), "ROAD")
    try:
        morf, lerf = fig.axes[:2]
        assert "MORF" in morf.get_title() and "LERF" in lerf.get_title()
        assert morf.get_xlabel().startswith("percent removed")
        assert lerf.get_xlabel().startswith("percent removed")
        assert "100 - this, kept" in lerf.get_xlabel()
    finally:
        plt.close(fig)
