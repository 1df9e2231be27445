"""Consistency of the metrics (paper 003, Appendix C.2): its Figs 10 and 11.

- Fig 10, inter-rater reliability: per metric, Krippendorff's ordinal alpha of the methods' per-image
  ranks (:func:`roarkar.metrics.stats.rank_alpha`: images rate, methods are rated), computed on
  ``repeats`` random subsets of ``fraction`` of the images drawn without replacement (the paper: 500
  of 5000 images, 50 times) and shown as the mean over draws with a percentile interval
  (2.5-97.5 %), for every method ("Full") and without the random baseline ("No Random"). The same
  seeded subsets serve every metric, so metrics are compared on the same images.
- Fig 11, internal consistency: per method, Spearman's rho between every pair of metrics across
  images, of values oriented so that higher is better (the paper negates n_MoRF and AFOC_LeRF),
  as a symmetric heat map with a unit diagonal (the paper shows DeepMaps and Random).

:func:`write_consistency` writes ``krippendorff.csv``, ``spearman.csv``, ``fig10_krippendorff.png``
and ``fig11_spearman.png`` for ``task=perturbation``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from roarkar.metrics.stats import (
    higher_is_better,
    metric_spearman,
    oriented,
    rank_alpha,
    wide_values,
)

log = logging.getLogger(__name__)

__all__ = [
    "ALPHA_COLUMNS",
    "alpha_draws",
    "alpha_intervals",
    "draw_krippendorff",
    "draw_spearman",
    "spearman_matrix",
    "spearman_table",
    "write_consistency",
]

ALPHA_COLUMNS = [
    "metric", "methods", "n_methods", "images", "subset", "repeats",
    "alpha_all_images", "mean", "lo", "hi",
]  # fmt: skip


def subset_size(n: int, fraction: float) -> int:
    """Images per draw: ``round(fraction * n)``, at least 2 (alpha needs two raters), at most n."""
    if not 0 < fraction <= 1:
        raise ValueError(f"alpha fraction must be in (0, 1], got {fraction}")
    return min(n, max(2, round(fraction * n)))


def alpha_draws(
    values: np.ndarray, *, fraction: float = 0.1, repeats: int = 50, seed: int = 0
) -> np.ndarray:
    """Alpha of ``values [images, methods]`` (higher is better) on ``repeats`` seeded random subsets
    of ``fraction`` of the images (rows drawn without replacement); one value per draw."""
    if repeats < 1:
        raise ValueError(f"alpha repeats must be >= 1, got {repeats}")
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return np.full(repeats, math.nan)
    k = subset_size(n, fraction)
    rng = np.random.default_rng(seed)
    return np.array([rank_alpha(values[rng.choice(n, k, replace=False)]) for _ in range(repeats)])


def alpha_intervals(
    df: pd.DataFrame,
    metrics: list[str] | None = None,
    *,
    fraction: float = 0.1,
    repeats: int = 50,
    seed: int = 0,
    interval: tuple[float, float] = (2.5, 97.5),
    baseline: str = "random",
) -> pd.DataFrame:
    """Fig 10's numbers from the tidy table ``image, method, metric, value``: per metric and method
    set (``all``, and ``no_<baseline>`` when the baseline is there), alpha on all images and the mean
    and ``interval`` percentiles of :func:`alpha_draws` (columns :data:`ALPHA_COLUMNS`)."""
    methods = list(pd.unique(df["method"]))
    sets = {"all": methods}
    others = [m for m in methods if m != baseline]
    if len(others) < len(methods) and len(others) >= 2:
        sets[f"no_{baseline}"] = others
    rows = []
    for metric in metrics or list(pd.unique(df["metric"])):
        for name, chosen in sets.items():
            wide = wide_values(df, metric, chosen)
            values = oriented(metric, wide.to_numpy())
            draws = alpha_draws(values, fraction=fraction, repeats=repeats, seed=seed)
            finite = draws[np.isfinite(draws)]
            lo, hi = np.percentile(finite, interval) if len(finite) else (math.nan, math.nan)
            rows.append(
                dict(
                    metric=metric,
                    methods=name,
                    n_methods=wide.shape[1],
                    images=len(wide),
                    subset=subset_size(len(wide), fraction) if len(wide) >= 2 else len(wide),
                    repeats=repeats,
                    alpha_all_images=rank_alpha(values),
                    mean=float(finite.mean()) if len(finite) else math.nan,
                    lo=float(lo),
                    hi=float(hi),
                )
            )
    return pd.DataFrame(rows, columns=ALPHA_COLUMNS)


def spearman_matrix(
    df: pd.DataFrame, method: str, metrics: list[str] | None = None
) -> pd.DataFrame:
    """Fig 11 for one method: Spearman's rho between every pair of oriented metrics across images,
    ``metrics x metrics``, symmetric; the diagonal is 1 (NaN for a metric constant over images)."""
    d = df[df["method"] == method]
    names = [m for m in (metrics or list(pd.unique(df["metric"]))) if m in set(d["metric"])]
    rho = pd.DataFrame(np.nan, index=names, columns=names)
    for r in metric_spearman(d, method, names).itertuples():
        rho.loc[r.metric, r.other_metric] = rho.loc[r.other_metric, r.metric] = r.rho
    for m in names:
        varies = np.ptp(d.loc[d["metric"] == m, "value"].to_numpy(float)) > 0
        rho.loc[m, m] = 1.0 if varies else math.nan
    return rho


def spearman_table(
    df: pd.DataFrame, methods: list[str], metrics: list[str] | None = None
) -> pd.DataFrame:
    """:func:`spearman_matrix` of each method as one long table ``method, metric, other_metric, rho``
    (every ordered pair and the diagonal)."""
    rows = []
    for method in methods:
        m = spearman_matrix(df, method, metrics)
        for a in m.index:
            for b in m.columns:
                rows.append(dict(method=method, metric=a, other_metric=b, rho=m.loc[a, b]))
    return pd.DataFrame(rows, columns=["method", "metric", "other_metric", "rho"])


def _oriented_label(metric: str) -> str:
    return metric if higher_is_better(metric) else f"-{metric}"


def draw_krippendorff(table: pd.DataFrame, title: str = ""):
    """Fig 10 as a Figure: per metric, the mean alpha over draws (bar) and its interval (whisker),
    one bar per method set (all methods, and without the random baseline)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from roarkar.saliency.labels import method_label

    metrics = list(pd.unique(table["metric"]))
    sets = list(pd.unique(table["methods"]))
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(sets))
    fig, ax = plt.subplots(figsize=(1.0 * len(metrics) + 2.5, 3.6), layout="constrained")
    for j, name in enumerate(sets):
        d = table[table["methods"] == name].set_index("metric").reindex(metrics)
        mean = d["mean"].to_numpy(float)
        err = np.vstack([mean - d["lo"].to_numpy(float), d["hi"].to_numpy(float) - mean])
        n = int(d["n_methods"].max()) if d["n_methods"].notna().any() else 0
        if name == "all":
            label = f"all {n} methods"
        else:
            label = f"without {method_label(name.removeprefix('no_'))} ({n})"
        offset = (j - (len(sets) - 1) / 2) * width
        ax.bar(
            x + offset,
            mean,
            width,
            yerr=np.clip(np.nan_to_num(err), 0, None),
            capsize=3,
            label=label,
        )
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(x, metrics, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("Krippendorff's alpha (ordinal)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    first = table.iloc[0] if len(table) else None
    detail = (
        f"\nmean over {int(first.repeats)} random subsets of {int(first.subset)} of "
        f"{int(first.images)} images; whiskers: 2.5-97.5 percentiles of the draws"
        if first is not None
        else ""
    )
    fig.suptitle((title or "inter-rater reliability") + detail, fontsize=9)
    return fig


def draw_spearman(df: pd.DataFrame, methods: list[str], metrics: list[str] | None = None, title=""):
    """Fig 11 as a Figure: one heat map of :func:`spearman_matrix` per method, rho written in each
    cell; lower-is-better metrics are negated and named ``-metric``, as in the paper."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from roarkar.saliency.labels import method_label

    mats = [spearman_matrix(df, method, metrics) for method in methods]
    k = max((len(m) for m in mats), default=1)
    size = 0.5 * k + 2.0
    fig, axes = plt.subplots(
        1, len(mats), figsize=(size * len(mats) + 1, size), squeeze=False, layout="constrained"
    )
    image = None
    for ax, method, m in zip(axes.flat, methods, mats, strict=True):
        v = m.to_numpy(float)
        image = ax.imshow(v, cmap="RdBu", vmin=-1, vmax=1)
        labels = [_oriented_label(c) for c in m.columns]
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        for (i, j), r in np.ndenumerate(v):
            if np.isfinite(r):
                colour = "white" if abs(r) > 0.6 else "black"
                ax.text(
                    j,
                    i,
                    f"{r:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6.5 if len(v) <= 8 else 5,
                    color=colour,
                )
        ax.set_title(method_label(method), fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.7, label="Spearman rho")
    fig.suptitle(
        (title or "internal consistency") + "\nSpearman rho between metrics across images "
        "(values oriented: higher is better)",
        fontsize=9,
    )
    return fig


def write_consistency(
    metrics: pd.DataFrame,
    out_dir: Path,
    *,
    fraction: float,
    repeats: int,
    seed: int,
    spearman_methods: list[str] | None,
    label: str,
) -> tuple[pd.DataFrame, list[Path]]:
    """Figs 10 and 11 and their CSVs (``krippendorff.csv``, ``spearman.csv``) in ``out_dir``.

    ``spearman_methods``: Fig 11's methods (those present; None or none present: every method).
    Returns the alpha table and the figure paths.
    """
    import matplotlib.pyplot as plt

    present = list(pd.unique(metrics["method"]))
    chosen = [m for m in (spearman_methods or []) if m in present]
    missing = [m for m in (spearman_methods or []) if m not in present]
    if missing:
        log.warning("fig 11: method(s) %s not in this run; shown: %s", missing, chosen or present)
    chosen = chosen or present
    alpha = alpha_intervals(metrics, fraction=fraction, repeats=repeats, seed=seed)
    alpha.to_csv(out_dir / "krippendorff.csv", index=False)
    spearman_table(metrics, chosen).to_csv(out_dir / "spearman.csv", index=False)
    paths = []
    for name, fig in (
        ("fig10_krippendorff.png", draw_krippendorff(alpha, f"Krippendorff's alpha: {label}")),
        ("fig11_spearman.png", draw_spearman(metrics, chosen, title=f"Spearman: {label}")),
    ):
        fig.savefig(out_dir / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(out_dir / name)
    return alpha, paths
