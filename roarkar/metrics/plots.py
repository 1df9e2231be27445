"""Summary figures in the manner of paper 003: Fig 6 (mean +- sd bars, y-axis oriented so that up is
better), Fig 7 (win rate - 50 % heat maps), Fig 9 (Wilcoxon p-values) and the ROAD curves."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from roarkar.metrics.stats import higher_is_better, summary, wilcoxon_pvalues, win_rates  # noqa: E402

__all__ = ["plot_means", "plot_road_curves", "plot_wilcoxon", "plot_win_rates"]


def _grid(n: int, cols: int = 4) -> tuple[int, int]:
    cols = min(cols, n)
    return math.ceil(n / cols), cols


def _metrics(df: pd.DataFrame) -> list[str]:
    return list(pd.unique(df["metric"]))


def plot_means(df: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Fig 6: per metric, the mean over images +- one sd per method; ``(lower is better)`` panels
    have their y-axis inverted, so up is better everywhere."""
    s = summary(df)
    metrics = _metrics(df)
    rows, cols = _grid(len(metrics))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    methods = list(pd.unique(df["method"]))
    colours = plt.cm.tab10(np.arange(len(methods)) % 10)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        d = s[s["metric"] == metric].set_index("method").reindex(methods)
        ax.bar(
            range(len(methods)),
            d["mean"],
            yerr=d["sd"].fillna(0),
            color=colours,
            capsize=3,
            error_kw={"lw": 0.8},
        )
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=7)
        better = higher_is_better(metric)
        ax.set_title(f"{metric}" + ("" if better else " (lower is better)"), fontsize=9)
        if not better:
            ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.flat[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(title or "mean +- sd over images (up is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _heat(df: pd.DataFrame, path: Path, title: str, cell, cmap, vmin, vmax, label) -> Path:
    metrics = _metrics(df)
    rows, cols = _grid(len(metrics))
    methods = list(pd.unique(df["method"]))
    size = 0.45 * len(methods) + 1.6
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    image = None
    for ax, metric in zip(axes.flat, metrics, strict=False):
        m = cell(metric, methods)
        image = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_xticks(range(len(m.columns)), m.columns, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(m.index)), m.index, fontsize=7)
        ax.set_title(metric, fontsize=9)
        if len(methods) <= 8:
            for (i, j), v in np.ndenumerate(m.to_numpy()):
                if np.isfinite(v):
                    ax.text(
                        j,
                        i,
                        f"{v:.0f}" if abs(v) >= 1 else f"{v:.1f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                    )
    for ax in axes.flat[len(metrics) :]:
        ax.axis("off")
    fig.subplots_adjust(wspace=0.55, hspace=0.55)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label=label)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_win_rates(df: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Fig 7: percent of images on which the row method beats the column method, minus 50."""
    return _heat(
        df,
        path,
        title or "win rate - 50 % (row beats column)",
        lambda metric, methods: (win_rates(df, metric, methods) - 0.5) * 100,
        "RdBu",
        -50,
        50,
        "win rate - 50 (%)",
    )


def plot_wilcoxon(df: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Fig 9: -log10 of the Wilcoxon signed-rank p-value of each pair (capped at 30)."""
    return _heat(
        df,
        path,
        title or "Wilcoxon signed-rank: -log10 p",
        lambda metric, methods: -np.log10(wilcoxon_pvalues(df, metric, methods).clip(1e-30)),
        "Greys",
        0,
        30,
        "-log10 p",
    )


def plot_road_curves(curves: pd.DataFrame, path: Path, title: str = "") -> Path:
    """ROAD: share of images whose decision is kept, against the percent removed, MoRF and LeRF."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), squeeze=False)
    for ax, order in zip(axes.flat, ("morf", "lerf"), strict=True):
        d = curves[curves["order"] == order]
        for method, m in d.groupby("method", sort=False):
            ax.plot(m["percent"], m["kept_decision"], marker="o", ms=3, label=method)
        ax.set_title(f"ROAD {order.upper()} (noisy linear imputation)", fontsize=9)
        ax.set_xlabel("percent removed")
        ax.set_ylabel("decision kept")
        ax.set_ylim(-0.02, 1.02)
    axes.flat[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
