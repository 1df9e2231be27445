"""Metrics without retraining (paper 003) and ROAD, their statistics, and agreement with ROAR/KAR.

>>> from roarkar.metrics import Settings, perturbation_metrics
>>> values = perturbation_metrics(model, images, ranks, targets, Settings())  # per image
>>> values["aopc"], values["n_morf"], values["road_lerf"]

``roarkar.metrics.run.run_perturbation(cfg)`` is ``task=perturbation`` (``experiment=perturbation``).
"""

from roarkar.metrics.agreement import agreement, retrain_scores
from roarkar.metrics.consistency import alpha_draws, alpha_intervals, spearman_matrix
from roarkar.metrics.delta import delta_metrics, partners
from roarkar.metrics.perturbation import perturbation_metrics
from roarkar.metrics.scoring import scores_after_removal
from roarkar.metrics.settings import BASE_METRICS, REPLACEMENTS, ROAD_METRICS, Settings
from roarkar.metrics.stats import (
    HIGHER_IS_BETTER,
    all_statistics,
    krippendorff_alpha,
    metric_spearman,
    wilcoxon_pvalues,
    win_rates,
)

__all__ = [
    "BASE_METRICS",
    "HIGHER_IS_BETTER",
    "REPLACEMENTS",
    "ROAD_METRICS",
    "Settings",
    "agreement",
    "alpha_draws",
    "alpha_intervals",
    "all_statistics",
    "delta_metrics",
    "krippendorff_alpha",
    "metric_spearman",
    "partners",
    "perturbation_metrics",
    "retrain_scores",
    "scores_after_removal",
    "spearman_matrix",
    "wilcoxon_pvalues",
    "win_rates",
]
