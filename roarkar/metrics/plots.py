"""Summary figures in the manner of paper 003: Fig 6 (mean +- sd per method, y-axis oriented so
that up is better), Fig 7 (win rate - 50 % heat maps, saying which of row and column wins), Fig 9
(Wilcoxon p-values) and the ROAD curves. Methods are shown by their paper names
(:func:`roarkar.saliency.labels.method_labels`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from roarkar.metrics.stats import higher_is_better, summary, wilcoxon_pvalues, win_rates  # noqa: E402
from roarkar.saliency.labels import method_labels  # noqa: E402

__all__ = [
    "ROAD_AXES",
    "draw_means",
    "draw_road_curves",
    "draw_win_rates",
    "plot_means",
    "plot_road_curves",
    "plot_wilcoxon",
    "plot_win_rates",
]

#: What Fig 7's colours mean, written into the figure (RdBu: blue is positive).
WIN_NOTE = (
    "blue: the row method beats the column method on more images; red: the column method does"
)


def _grid(n: int, cols: int = 4) -> tuple[int, int]:
    cols = min(cols, n)
    return math.ceil(n / cols), cols


def _metrics(df: pd.DataFrame) -> list[str]:
    return list(pd.unique(df["metric"]))


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def draw_means(df: pd.DataFrame, title: str = "") -> Figure:
    """Fig 6 as a Figure: per metric, the mean over images (dot) +- one sd (whisker) per method.

    Dots rather than bars: a ``(lower is better)`` panel has its y-axis flipped so that up is better
    everywhere, and bars on a flipped axis would hang from the top.
    """
    s = summary(df)
    metrics = _metrics(df)
    rows, cols = _grid(len(metrics))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 2.9 * rows + 0.4), squeeze=False, layout="constrained"
    )
    methods = list(pd.unique(df["method"]))
    names = method_labels(methods)
    colours = plt.cm.tab10(np.arange(len(methods)) % 10)
    x = np.arange(len(methods))
    for ax, metric in zip(axes.flat, metrics, strict=False):
        d = s[s["metric"] == metric].set_index("method").reindex(methods)
        if metric.startswith("delta_"):
            ax.axhline(0, color="0.4", lw=0.8, ls="--")
        for i in range(len(methods)):
            ax.errorbar(
                x[i],
                d["mean"].iloc[i],
                yerr=0 if np.isnan(d["sd"].iloc[i]) else d["sd"].iloc[i],
                fmt="o",
                color=colours[i],
                ms=6,
                capsize=3,
                elinewidth=1.0,
            )
        ax.set_xticks(x, [names[m] for m in methods], rotation=45, ha="right", fontsize=7)
        ax.set_xlim(-0.6, len(methods) - 0.4)
        better = higher_is_better(metric)
        ax.set_title(metric + ("" if better else " (lower is better)"), fontsize=9)
        ax.set_ylabel("↑ better" + ("" if better else " (axis flipped)"), fontsize=7)
        if not better:
            ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(metrics) :]:
        ax.axis("off")
    head = title or "mean +- sd over images (up is better)"
    if any(m.startswith("delta_") for m in metrics):
        head += "\ndelta_*: minus the mean over K other images' maps; 0 (dashed) is no better"
    fig.suptitle(head, fontsize=10)
    return fig


def plot_means(df: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Fig 6 (:func:`draw_means`) as a PNG."""
    return _save(draw_means(df, title), path)


def _heat(
    df: pd.DataFrame,
    title: str,
    cell: Callable[[str, list[str]], pd.DataFrame],
    cmap: str,
    vmin: float,
    vmax: float,
    label: str,
    ticks: dict[float, str] | None = None,
    win: bool = False,
) -> Figure:
    """One method x method heat map per metric, paper names on both axes, a shared colour bar."""
    metrics = _metrics(df)
    rows, cols = _grid(len(metrics))
    methods = list(pd.unique(df["method"]))
    names = method_labels(methods)
    size = 0.45 * len(methods) + 1.9
    fig, axes = plt.subplots(
        rows, cols, figsize=(size * cols, size * rows + 0.8), squeeze=False, layout="constrained"
    )
    image = None
    for k, (ax, metric) in enumerate(zip(axes.flat, metrics, strict=False)):
        m = cell(metric, methods)
        v = m.to_numpy(dtype=float).copy()
        np.fill_diagonal(v, np.nan)  # a method against itself says nothing
        image = ax.imshow(v, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_xticks(range(len(m.columns)), [names.get(c, c) for c in m.columns],
                      rotation=60, ha="right", fontsize=7)  # fmt: skip
        ax.set_yticks(range(len(m.index)), [names.get(r, r) for r in m.index], fontsize=7)
        better = "" if higher_is_better(metric) else " (lower is better)"
        ax.set_title(metric + better, fontsize=9)
        if k % cols == 0:
            ax.set_ylabel("row method" + (" (wins where blue)" if win else ""), fontsize=8)
        if k >= len(metrics) - cols:
            ax.set_xlabel("column method", fontsize=8)
        if len(methods) <= 8:
            span = max(abs(vmin), abs(vmax))
            for (i, j), x in np.ndenumerate(v):
                if np.isfinite(x):
                    ax.text(j, i, f"{x:+.0f}" if win else f"{x:.0f}", ha="center", va="center",
                            fontsize=6, color="white" if abs(x) > 0.6 * span else "black")  # fmt: skip
    for ax in axes.flat[len(metrics) :]:
        ax.axis("off")
    if image is not None:
        bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label=label)
        if ticks:
            bar.set_ticks(list(ticks), labels=list(ticks.values()))
    fig.suptitle(title + (f"\n{WIN_NOTE}" if win else ""), fontsize=10)
    return fig


def draw_win_rates(df: pd.DataFrame, title: str = "") -> Figure:
    """Fig 7 as a Figure: percent of images on which the row method beats the column method,
    minus 50; the title, axis labels and colour bar say that blue is a win of the row."""
    return _heat(
        df,
        title or "win rate - 50 %",
        lambda metric, methods: (win_rates(df, metric, methods) - 0.5) * 100,
        "RdBu",
        -50,
        50,
        "row's win rate over column - 50 (%)",
        ticks={
            -50: "-50: column always wins",
            -25: "-25",
            0: "0: even",
            25: "+25",
            50: "+50: row always wins",
        },  # fmt: skip
        win=True,
    )


def plot_win_rates(df: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Fig 7 (:func:`draw_win_rates`) as a PNG."""
    return _save(draw_win_rates(df, title), path)


def plot_wilcoxon(df: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Fig 9: -log10 of the Wilcoxon signed-rank p-value of each pair (capped at 30)."""
    fig = _heat(
        df,
        (title or "Wilcoxon signed-rank: -log10 p") + "\n(symmetric; darker: the pair's values "
        "differ more surely, whichever is better)",
        lambda metric, methods: -np.log10(wilcoxon_pvalues(df, metric, methods).clip(1e-30)),
        "Greys",
        0,
        30,
        "-log10 p",
    )
    return _save(fig, path)


def plot_road_curves(curves: pd.DataFrame, path: Path, title: str = "") -> Path:
    """ROAD: share of images whose decision is kept, against the percent removed, MoRF and LeRF.

    The x axis is roarkar's, the percent *removed* in both panels; the LeRF panel says that ROAD's
    own LeRF axis is the percent kept (100 - x)."""
    fig = draw_road_curves(curves, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: x-axis labels of the ROAD panels (roarkar's axis; ROAD's LeRF percent is the percent kept).
ROAD_AXES = {
    "morf": "percent removed (most relevant first; = ROAD's MoRF percent)",
    "lerf": "percent removed (least relevant first; ROAD's LeRF percent = 100 - this, kept)",
}


def draw_road_curves(curves: pd.DataFrame, title: str = "") -> Figure:
    """The figure of :func:`plot_road_curves`, not saved."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4), squeeze=False)
    names = method_labels(list(pd.unique(curves["method"])))
    for ax, order in zip(axes.flat, ("morf", "lerf"), strict=True):
        d = curves[curves["order"] == order]
        for method, m in d.groupby("method", sort=False):
            ax.plot(m["percent"], m["kept_decision"], marker="o", ms=3, label=names[method])
        ax.set_title(f"ROAD {order.upper()} (noisy linear imputation)", fontsize=9)
        ax.set_xlabel(ROAD_AXES[order], fontsize=7)
        ax.set_ylabel("decision kept")
        ax.set_ylim(-0.02, 1.02)
    axes.flat[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
