"""How well the cheap metrics predict ROAR/KAR: rank agreement of methods, per dataset.

Retraining score per method (higher is better), from the study's long table
(:func:`roarkar.report.aggregate.collect_results`):

- input protocol: Table 2 SUM = sum of KAR accuracies - sum of ROAR accuracies (random included);
- layer protocol: Table 1 Difference (Eq 8); the random baseline scores 0 by definition (it is the
  reference of Eq 8) and is included as such.

Cheap score per method: the mean over images of each metric, oriented so that higher is better.
Then Kendall's tau and Spearman's rho (``scipy.stats``) between the two scores over the methods both
have. With fewer than 3 common methods a correlation is reported but says little; with fewer than 2
it is NaN.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from roarkar.metrics.stats import oriented
from roarkar.report.tables import table1, table2

log = logging.getLogger(__name__)

__all__ = ["AGREEMENT_COLUMNS", "agreement", "retrain_scores"]

AGREEMENT_COLUMNS = [
    "dataset",
    "protocol",
    "retrain_score",
    "metric",
    "n_methods",
    "methods",
    "kendall_tau",
    "kendall_p",
    "spearman_rho",
    "spearman_p",
]


def retrain_scores(long: pd.DataFrame, dataset: str, model: str | None = None) -> pd.DataFrame:
    """``protocol, method, score, score_name`` from ROAR/KAR results of one dataset (and model):
    Table 2's SUM for the input protocol (or -ROAR sum, KAR sum, when the study ran one mode),
    Table 1's Difference for the layer protocol.

    A protocol whose table cannot be built (no random baseline, missing percents) is left out and
    logged.
    """
    d = long[long["dataset"] == dataset]
    if model is not None:
        d = d[d["model"] == model]
    parts = []
    if (d["protocol"] == "input").any():
        try:
            t2 = table2(d)
            # a study of one mode (seed 002 runs ROAR only) has no SUM: its own mode's sum then
            column = next((c for c in ("sum", "roar", "kar") if t2[c].notna().all()), "sum")
            parts.append(
                pd.DataFrame(
                    {
                        "protocol": "input",
                        "method": t2["method"],
                        "score": t2[column],
                        "score_name": f"table2_{column}",
                    }
                )
            )
        except ValueError as exc:
            log.warning("agreement: no Table 2 for %s: %s", dataset, exc)
    if (d["protocol"] == "layer").any():
        try:
            t1 = table1(d)
            t1 = t1[t1["dataset"] == dataset]
            rows = pd.DataFrame(
                {
                    "protocol": "layer",
                    "method": t1["method"],
                    "score": t1["difference"],
                    "score_name": "table1_difference",
                }
            )
            if (d[d["protocol"] == "layer"]["method"] == "random").any():
                rows = pd.concat(
                    [
                        rows,
                        pd.DataFrame(
                            [("layer", "random", 0.0, "table1_difference")],
                            columns=rows.columns,
                        ),
                    ],
                    ignore_index=True,
                )
            parts.append(rows)
        except ValueError as exc:
            log.warning("agreement: no Table 1 for %s: %s", dataset, exc)
    cols = ["protocol", "method", "score", "score_name"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def _corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return (math.nan,) * 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = stats.kendalltau(x, y)
        s = stats.spearmanr(x, y)
    return float(k.statistic), float(k.pvalue), float(s.statistic), float(s.pvalue)


def agreement(
    metrics: pd.DataFrame, long: pd.DataFrame, dataset: str, model: str | None = None
) -> pd.DataFrame:
    """Kendall and Spearman correlation between each cheap metric's ranking of the methods and the
    ROAR/KAR ranking (per protocol) on ``dataset``; one row per (protocol, metric)."""
    retrain = retrain_scores(long, dataset, model)
    means = metrics.groupby(["metric", "method"], sort=False)["value"].mean().reset_index()
    rows = []
    for (protocol, score_name), r in retrain.groupby(["protocol", "score_name"], sort=False):
        truth = r.set_index("method")["score"]
        for metric, m in means.groupby("metric", sort=False):
            cheap = oriented(metric, m.set_index("method")["value"])
            common = [x for x in truth.index if x in cheap.index]
            x = cheap.loc[common].to_numpy(float)
            y = truth.loc[common].to_numpy(float)
            tau, tau_p, rho, rho_p = _corr(x, y)
            rows.append(
                {
                    "dataset": dataset,
                    "protocol": protocol,
                    "retrain_score": score_name,
                    "metric": metric,
                    "n_methods": len(common),
                    "methods": " ".join(common),
                    "kendall_tau": tau,
                    "kendall_p": tau_p,
                    "spearman_rho": rho,
                    "spearman_p": rho_p,
                }
            )
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
