"""Seed 002's figure (Nielsen et al., Figs. 2-4): score against degradation level.

The score (the true-class score the paper plots, or accuracy) of the models retrained at each
degradation level t (the fraction of the pixels removed, most salient first: ROAR at ``percent``
= 100 t), individual methods and combinations in two panels, random removal as the baseline in
both, one row per dataset. t = 0 is the unmasked base model, where the long table carries its
value (``base_<metric>``, from each cell's ``base_model`` record). With several seeds each point is
their mean with a 95 % t-interval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from roarkar.report.long import normalize_long
from roarkar.report.metric import DEFAULT_METRIC, METRICS, select_metric
from roarkar.report.plotting import method_styles, pyplot, save_figure, side_legend
from roarkar.report.rows import BASELINE
from roarkar.saliency.labels import method_labels

#: Seed 002's left panel; every other method is drawn in the right one (its combinations).
INDIVIDUAL: tuple[str, ...] = (
    "gradient",
    "grad_x_input",
    "smoothgrad",
    "integrated_gradients",
    "guided_backprop",
)
FILE = "fig_seed002_{metric}_vs_t.png"


def _interval(values: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of the 95 % t-interval (0 for one value)."""
    from scipy import stats

    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, 0.0
    sem = float(np.std(values, ddof=1)) / np.sqrt(len(values))
    return mean, float(stats.t.ppf(0.975, len(values) - 1)) * sem


def curve_points(df_long: pd.DataFrame, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """Per (dataset, method, t): ``mean``, ``half`` (95 % half-width) and ``n`` seeds, from the
    input protocol's ROAR rows, with t = 0 from ``base_<metric>`` where the table has it."""
    d = select_metric(normalize_long(df_long), metric)
    d = d[(d["protocol"] == "input") & (d["mode"] == "roar")]
    if d.empty:
        raise ValueError("seed 002's figure needs input-protocol ROAR cells; there are none")
    rows = []
    for (ds, method, percent), g in d.groupby(["dataset", "method", "percent"], sort=True):
        mean, half = _interval(g["accuracy"].to_numpy(float))
        rows.append((ds, method, percent / 100.0, mean, half, len(g)))
    base_col = f"base_{metric}"
    if base_col in d.columns:
        for ds, g in d.groupby("dataset"):
            per_seed = g.groupby("seed")[base_col].first().dropna()
            if len(per_seed):
                mean, half = _interval(per_seed.to_numpy(float))
                for method in pd.unique(g["method"]):
                    rows.append((ds, method, 0.0, mean, half, len(per_seed)))
    out = pd.DataFrame(rows, columns=["dataset", "method", "t", "mean", "half", "n"])
    return out.sort_values(["dataset", "method", "t"], kind="stable").reset_index(drop=True)


def draw_seed002(df_long: pd.DataFrame, metric: str = DEFAULT_METRIC):
    """The figure as a matplotlib Figure (the caller saves or closes it)."""
    plt = pyplot()
    points = curve_points(df_long, metric)
    datasets = list(pd.unique(points["dataset"]))
    methods = [m for m in pd.unique(points["method"]) if m != BASELINE]
    panels = (
        ("individual methods", [m for m in methods if m in INDIVIDUAL]),
        ("combinations", [m for m in methods if m not in INDIVIDUAL]),
    )
    styles = method_styles(methods)
    names = method_labels([BASELINE, *methods])
    fig, axes = plt.subplots(
        len(datasets), 2, figsize=(11, 3.8 * len(datasets)), squeeze=False, sharey=True
    )
    handles: dict[str, object] = {}
    for row, ds in enumerate(datasets):
        for col, (title, members) in enumerate(panels):
            ax = axes[row, col]
            for m in [BASELINE, *members]:
                s = points[(points["dataset"] == ds) & (points["method"] == m)]
                if s.empty:
                    continue
                style = (
                    {"color": "black", "linestyle": "--", "marker": "x"}
                    if m == BASELINE
                    else styles[m]
                )
                (h,) = ax.plot(s["t"], s["mean"], linewidth=1.5, **style)
                if (s["half"] > 0).any():
                    # both metrics are fractions: the interval is clipped to [0, 1]
                    lo = (s["mean"] - s["half"]).clip(0, 1)
                    hi = (s["mean"] + s["half"]).clip(0, 1)
                    ax.fill_between(s["t"], lo, hi, color=style["color"], alpha=0.12)
                handles.setdefault(names[m] + (" (baseline)" if m == BASELINE else ""), h)
            ax.set_title(f"{ds}: {title}")
            ax.set_xlabel("degradation level t (fraction of the most salient pixels removed)")
            ax.set_ylabel(METRICS[metric])
            ax.grid(alpha=0.3)
    n = int(points["n"].max())
    fig.suptitle(
        f"Seed 002 Figs. 2-4: {METRICS[metric]} of models retrained at each t "
        f"(mean{' and 95 % t-interval' if n > 1 else ''} over {n} seed(s); lower is better)"
    )
    side_legend(fig, handles)
    return fig


def figure_seed002(df_long: pd.DataFrame, path: str | Path, metric: str = DEFAULT_METRIC) -> Path:
    """Write the figure to ``path``."""
    return save_figure(draw_seed002(df_long, metric), path)


__all__ = ["FILE", "INDIVIDUAL", "curve_points", "draw_seed002", "figure_seed002"]
