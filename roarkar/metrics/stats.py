"""Statistics over per-image metric values (paper 003, Sec 4.2, Fig 7, Appendix C).

Input is the tidy table ``image, method, metric, value``. Every statistic first *orients* a metric so
that higher is better (:data:`HIGHER_IS_BETTER`; a Delta metric keeps its base metric's direction),
as paper 003 does for its figures ("we use the negative of the n_MoRF and AFOC_LeRF metrics").

- win rates (Fig 7): fraction of images on which method a beats method b (ties count one half);
- Wilcoxon signed-rank p-values (Fig 9): ``scipy.stats.wilcoxon`` on the paired per-image values,
  two-sided; 1.0 when every difference is zero;
- Krippendorff's alpha (Fig 10): images are the raters, methods the units; each image "rates" the
  methods by their rank under the metric (``scipy.stats.rankdata``, ties averaged); ordinal level,
  through the ``krippendorff`` package; with and without the random baseline;
- Spearman correlation between metrics (Fig 11): per method, across images, of oriented values.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "HIGHER_IS_BETTER",
    "krippendorff_alpha",
    "metric_spearman",
    "oriented",
    "rank_alpha",
    "summary",
    "wide_values",
    "wilcoxon_pvalues",
    "win_rates",
    "all_statistics",
]

#: Direction of every base metric (paper 003 Sec 4.1-4.2; ROAD: MoRF lower, LeRF higher is better).
HIGHER_IS_BETTER: dict[str, bool] = {
    "aopc": True,
    "afoc_morf": True,
    "afoc_lerf": False,
    "n_morf": False,
    "n_lerf": True,
    "road_morf": False,
    "road_lerf": True,
}


def higher_is_better(metric: str) -> bool:
    base = metric.removeprefix("delta_")
    if base not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}: known are {', '.join(HIGHER_IS_BETTER)}")
    return HIGHER_IS_BETTER[base]


def oriented(metric: str, values):
    """``values`` if higher is better for ``metric``, else their negative."""
    return values if higher_is_better(metric) else -values


def wide_values(df: pd.DataFrame, metric: str, methods: list[str] | None = None) -> pd.DataFrame:
    """One metric as ``images x methods`` (rows with any missing method dropped)."""
    d = df[df["metric"] == metric]
    wide = d.pivot_table(index="image", columns="method", values="value", sort=False)
    if methods is not None:
        wide = wide.reindex(columns=[m for m in methods if m in wide.columns])
    return wide.dropna()


def _methods(df: pd.DataFrame) -> list[str]:
    return list(pd.unique(df["method"]))


def win_rates(df: pd.DataFrame, metric: str, methods: list[str] | None = None) -> pd.DataFrame:
    """``W[a, b]`` = fraction of images where ``a`` is better than ``b`` (ties 1/2); diagonal 0.5."""
    wide = oriented(metric, wide_values(df, metric, methods or _methods(df)))
    names = list(wide.columns)
    v = wide.to_numpy()
    w = (v[:, :, None] > v[:, None, :]).mean(0) + 0.5 * (v[:, :, None] == v[:, None, :]).mean(0)
    return pd.DataFrame(w, index=names, columns=names)


def wilcoxon_pvalues(
    df: pd.DataFrame, metric: str, methods: list[str] | None = None
) -> pd.DataFrame:
    """Two-sided Wilcoxon signed-rank p-value of every pair of methods (diagonal NaN)."""
    wide = wide_values(df, metric, methods or _methods(df))
    names = list(wide.columns)
    p = np.full((len(names), len(names)), np.nan)
    for i, j in itertools.combinations(range(len(names)), 2):
        diff = wide.iloc[:, i].to_numpy() - wide.iloc[:, j].to_numpy()
        if len(diff) == 0:
            continue
        if np.allclose(diff, 0):
            value = 1.0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = float(stats.wilcoxon(diff).pvalue)
        p[i, j] = p[j, i] = value
    return pd.DataFrame(p, index=names, columns=names)


def krippendorff_alpha(df: pd.DataFrame, metric: str, methods: list[str] | None = None) -> float:
    """Inter-rater reliability of the methods' per-image ranks under ``metric`` (ordinal alpha)."""
    wide = oriented(metric, wide_values(df, metric, methods or _methods(df)))
    return rank_alpha(wide.to_numpy())


def rank_alpha(values: np.ndarray) -> float:
    """Ordinal Krippendorff's alpha of ``values [images, methods]`` (higher is better): each image
    (a rater) ranks the methods (the units), ties averaged; NaN when it is undefined."""
    import krippendorff

    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[0] < 2 or values.shape[1] < 2:
        return math.nan
    ranks = np.apply_along_axis(stats.rankdata, 1, values)
    if np.unique(ranks).size < 2:
        return math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return float(krippendorff.alpha(reliability_data=ranks, level_of_measurement="ordinal"))
        except (ValueError, ZeroDivisionError):
            return math.nan


def metric_spearman(df: pd.DataFrame, method: str, metrics: list[str]) -> pd.DataFrame:
    """Spearman rho (and p) between every pair of oriented metrics, across images, for one method."""
    d = df[df["method"] == method].pivot_table(
        index="image", columns="metric", values="value", sort=False
    )
    rows = []
    for a, b in itertools.combinations([m for m in metrics if m in d.columns], 2):
        pair = d[[a, b]].dropna()
        x, y = oriented(a, pair[a].to_numpy()), oriented(b, pair[b].to_numpy())
        if len(pair) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
            rho, p = math.nan, math.nan
        else:
            res = stats.spearmanr(x, y)
            rho, p = float(res.statistic), float(res.pvalue)
        rows.append({"metric": a, "other_metric": b, "rho": rho, "p": p, "n": len(pair)})
    return pd.DataFrame(rows, columns=["metric", "other_metric", "rho", "p", "n"])


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample sd and count per (metric, method), in first-appearance order."""
    g = df.groupby(["metric", "method"], sort=False)["value"]
    return g.agg(mean="mean", sd="std", n="count").reset_index()


def all_statistics(df: pd.DataFrame, baseline: str = "random") -> pd.DataFrame:
    """Every statistic as one tidy table.

    Columns ``statistic, metric, other_metric, method, other_method, value, n``; ``statistic`` is
    ``mean``, ``sd``, ``win_rate`` (method beats other_method), ``wilcoxon_p``,
    ``krippendorff_alpha`` (``method`` = ``all`` or ``no_<baseline>``) or ``spearman``.
    """
    rows: list[dict] = []
    metrics = list(pd.unique(df["metric"]))
    methods = _methods(df)
    for r in summary(df).itertuples():
        n = int(r.n)
        rows.append(dict(statistic="mean", metric=r.metric, method=r.method, value=r.mean, n=n))
        rows.append(dict(statistic="sd", metric=r.metric, method=r.method, value=r.sd, n=n))
    for metric in metrics:
        wide = wide_values(df, metric, methods)
        n = len(wide)
        wins, pvals = win_rates(df, metric, methods), wilcoxon_pvalues(df, metric, methods)
        for a, b in itertools.permutations(wins.index, 2):
            common = dict(metric=metric, method=a, other_method=b, n=n)
            rows.append(dict(statistic="win_rate", value=float(wins.loc[a, b]), **common))
            rows.append(dict(statistic="wilcoxon_p", value=float(pvals.loc[a, b]), **common))
        rows.append(
            dict(
                statistic="krippendorff_alpha",
                metric=metric,
                method="all",
                value=krippendorff_alpha(df, metric, methods),
                n=n,
            )
        )
        others = [m for m in methods if m != baseline]
        if len(others) < len(methods) and len(others) >= 2:
            rows.append(
                dict(
                    statistic="krippendorff_alpha",
                    metric=metric,
                    method=f"no_{baseline}",
                    value=krippendorff_alpha(df, metric, others),
                    n=n,
                )
            )
    for method in methods:
        for r in metric_spearman(df, method, metrics).itertuples():
            rows.append(
                dict(
                    statistic="spearman",
                    metric=r.metric,
                    other_metric=r.other_metric,
                    method=method,
                    value=r.rho,
                    n=int(r.n),
                )
            )
    cols = ["statistic", "metric", "other_metric", "method", "other_method", "value", "n"]
    return pd.DataFrame(rows).reindex(columns=cols)
