"""``task=perturbation``: the metrics without retraining on the study's base model, their statistics,
figures, and their rank agreement with ROAR/KAR.

Writes under ``{paths.results}/perturbation/<dataset>/``:

- ``metrics.csv``: ``image, method, metric, value`` (one row per image, method and metric);
- ``stats.csv``: means, sds, win rates, Wilcoxon p-values, Krippendorff's alpha, Spearman rho
  (:func:`roarkar.metrics.stats.all_statistics`);
- ``road_curves.csv``: per method, order and percent, the share of images whose decision is kept,
  their accuracy against the label and the mean probability of the original decision (ROAD's two
  curves); ``percent`` is roarkar's axis, the percent *removed* for MoRF and LeRF alike,
  ``road_percent`` ROAD's own (MoRF: removed; LeRF: *kept*, 100 - percent), ``pixels_removed`` the
  count under ``count`` (round | floor);
- ``fig6_means.png``, ``fig7_win_rates.png``, ``fig9_wilcoxon.png``, ``road_curves.png``;
- ``krippendorff.csv`` and ``fig10_krippendorff.png`` (alpha on subsets of images, with intervals),
  ``spearman.csv`` and ``fig11_spearman.png`` (:mod:`roarkar.metrics.consistency`); the figures
  show ``figure_metrics`` (default: every metric);
- ``agreement.csv`` when the study's ROAR/KAR results for the dataset exist under
  ``{paths.results}/cells`` (and ``{paths.results}/perturbation/agreement.csv`` over every dataset
  done so far); ``run.json`` with the settings, base model and timings.

The config block is read by :mod:`roarkar.metrics.run_settings`, the values are computed by
:mod:`roarkar.metrics.compute`; this module reuses, writes and prints them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig

from roarkar.config import Config, resolve
from roarkar.metrics.agreement import agreement
from roarkar.metrics.compute import compute_metrics, method_ranks, predictions, road_curves
from roarkar.metrics.consistency import write_consistency
from roarkar.metrics.delta import partners
from roarkar.metrics.plots import plot_means, plot_road_curves, plot_wilcoxon, plot_win_rates
from roarkar.metrics.run_settings import RunSettings, drop_ground_truth
from roarkar.metrics.settings import BASE_METRICS, ROAD_METRICS
from roarkar.metrics.stats import all_statistics, summary
from roarkar.store import Artifact, child_path, git_commit

log = logging.getLogger(__name__)

__all__ = ["run_perturbation"]

METRICS_COLUMNS = ["image", "method", "metric", "value"]


def _previous(run: Artifact) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """metrics.csv and road_curves.csv of the run when it is finished (same identity), else None."""
    out_dir = run.directory
    try:
        if run.finished() is None:
            return None
        return (
            pd.read_csv(out_dir / "metrics.csv", dtype={"image": str}),
            pd.read_csv(out_dir / "road_curves.csv"),
        )
    except (OSError, ValueError):
        return None


def _agreement(config: Config, metrics: pd.DataFrame, out_dir: Path) -> pd.DataFrame | None:
    from roarkar.report.aggregate import collect_results

    dataset, model = str(config.dataset.name), config.model.name
    cells = Path(config.paths.results) / "cells"
    long = collect_results(cells) if cells.is_dir() else pd.DataFrame()
    if len(long):
        long = long[(long["dataset"] == dataset) & (long["model"] == model)]
    if not len(long):
        print(
            f"agreement with ROAR/KAR: NOT computed -- no study results for dataset={dataset} "
            f"model={model} under {cells} (run the study first, e.g. `roarkar dataset={dataset}`, "
            "then re-run this task)",
            flush=True,
        )
        (out_dir / "agreement.csv").unlink(missing_ok=True)
        return None
    table = agreement(metrics, long, dataset, model)
    table.to_csv(out_dir / "agreement.csv", index=False)
    everything = [pd.read_csv(p) for p in sorted(out_dir.parent.glob("*/agreement.csv"))]
    pd.concat(everything, ignore_index=True).to_csv(out_dir.parent / "agreement.csv", index=False)
    return table


def run_perturbation(cfg: DictConfig | Config) -> dict:
    """Compute, write and print the metrics without retraining for ``cfg.dataset`` (see module
    doc). An edge: a composed config is resolved here."""
    from roarkar.identity import identity_hash
    from roarkar.protocols.base import ensure_base_model
    from roarkar.protocols.context import make_context
    from roarkar.training import setup

    config = resolve(cfg)
    run = RunSettings.from_config(config.perturbation)
    started = time.time()
    dist = setup(str(config.device))
    ctx = make_context(config, dist)
    model, base_id, base_record = ensure_base_model(ctx)
    if not dist.is_main:
        return {}
    model.eval()
    split = ctx.val if run.split == "val" else ctx.train
    if split is None:
        raise ValueError(
            f"perturbation: {config.dataset.name} is streamed from its shards, not held in memory; "
            "set dataset.train_size and dataset.val_size so that both splits fit in "
            "loader.memory_limit_gb (ImageNet: dataset.train_size=1000 dataset.val_size=5000)"
        )
    n = min(int(run.images), len(split))
    images = ctx.inputs(split.images[:n])
    labels = split.labels[:n].to(images.device)
    relevance = split.relevance[:n] if split.relevance is not None else None
    keys = list(split.keys[:n])
    if relevance is None:
        drop_ground_truth(run, str(config.dataset.name))
    batch = int(ctx.settings.eval_batch_size)
    targets = predictions(model, images, batch)
    seed = int(config.seed)
    pairs = partners(n, run.K, torch.Generator().manual_seed(seed)) if run.K else torch.empty(0)

    dataset = str(config.dataset.name)
    out_dir = child_path(config.paths.results, "perturbation", (dataset, "dataset.name"))
    identity = identity_hash(
        {"base": base_id, "settings": run.identity(), "images": keys, "seed": seed}
    )
    artifact = Artifact("metric_run", identity, out_dir, record="run.json")
    previous = _previous(artifact) if run.reuse else None
    frames, curves, timings = [], [], {}
    if previous is not None:
        print(f"perturbation: reusing {out_dir / 'metrics.csv'} (same base model and settings)")
        frames, curves = [previous[0]], [previous[1]]
    for entry in run.methods if previous is None else []:
        t0 = time.time()
        method_id, ranks = method_ranks(
            entry, model, images, targets, relevance, seed=seed, batch=batch
        )
        generator = torch.Generator().manual_seed(seed * 7_919 + 17)
        values = compute_metrics(
            model, images, ranks, targets, pairs, run, generator, pixel_std=ctx.info.std
        )
        for name, v in values.items():
            if v.dim() == 1:
                frames.append(
                    pd.DataFrame(
                        {"image": keys, "method": method_id, "metric": name, "value": v.cpu()}
                    )
                )
        hw = images.shape[-1] * images.shape[-2]
        curves.append(road_curves(method_id, values, targets, labels, run.metrics, hw))
        timings[method_id] = round(time.time() - t0, 3)
        log.info("perturbation: %s done in %.1f s", method_id, timings[method_id])

    out_dir.mkdir(parents=True, exist_ok=True)
    order = [*BASE_METRICS, *ROAD_METRICS]
    metrics = pd.concat(frames, ignore_index=True)[METRICS_COLUMNS]
    rank = {m: i for i, m in enumerate(order)}
    metrics["_o"] = metrics["metric"].map(
        lambda m: rank.get(m.removeprefix("delta_"), 99) + (100 if m.startswith("delta_") else 0)
    )
    metrics = metrics.sort_values("_o", kind="stable").drop(columns="_o").reset_index(drop=True)
    metrics.to_csv(out_dir / "metrics.csv", index=False)
    stats = all_statistics(metrics)
    stats.to_csv(out_dir / "stats.csv", index=False)
    road = pd.concat(curves, ignore_index=True)
    road.to_csv(out_dir / "road_curves.csv", index=False)
    label = (
        f"{dataset}, {config.model.name}, {n} images, replacement={run.metrics.replacement}, "
        f"count={run.metrics.count}"
    )
    shown = metrics[metrics["metric"].isin(run.figure_metrics or metrics["metric"])]
    shown = shown if len(shown) else metrics
    figures = [
        plot_means(shown, out_dir / "fig6_means.png", f"mean +- sd (up is better): {label}"),
        plot_win_rates(shown, out_dir / "fig7_win_rates.png", f"win rate - 50 %: {label}"),
        plot_wilcoxon(shown, out_dir / "fig9_wilcoxon.png", f"Wilcoxon -log10 p: {label}"),
        plot_road_curves(road, out_dir / "road_curves.png", f"ROAD: {label}"),
    ]
    alpha, more = write_consistency(
        shown,
        out_dir,
        fraction=run.alpha_fraction,
        repeats=run.alpha_repeats,
        seed=seed,
        spearman_methods=run.spearman_methods,
        label=label,
    )
    figures += more

    table = summary(metrics).pivot_table(
        index="metric", columns="method", values="mean", sort=False
    )
    print(f"\nmetrics without retraining ({label}); mean over images:", flush=True)
    print(table.to_string(float_format=lambda v: f"{v:.3f}"), flush=True)
    agree = _agreement(config, metrics, out_dir) if run.agreement else None
    if agree is not None:
        print("\nagreement with ROAR/KAR (rank correlation over methods):", flush=True)
        cols = ["protocol", "metric", "n_methods", "kendall_tau", "spearman_rho"]
        print(agree[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"), flush=True)
    wall = time.time() - started
    artifact.write_record(
        {
            "status": "ok",
            "dataset": dataset,
            "model": config.model.name,
            "base_model": base_id,
            "base_accuracy": base_record.get("accuracy"),
            "images": n,
            "settings": config.perturbation,
            "method_seconds": timings,
            "wall_time_s": wall,
            "device": str(dist.device),
            "git_commit": git_commit(),
        },
    )
    print(f"\nwrote {out_dir} ({wall:.1f} s)", flush=True)
    return {
        "dataset": dataset,
        "out_dir": str(out_dir),
        "images": n,
        "base_model": base_id,
        "metrics": metrics,
        "stats": stats,
        "summary": table,
        "agreement": agree,
        "krippendorff": alpha,
        "figures": [str(f) for f in figures],
        "method_seconds": timings,
        "wall_time_s": wall,
    }
