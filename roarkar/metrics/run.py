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
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from roarkar.masking import saliency_ranks
from roarkar.metrics.agreement import agreement
from roarkar.metrics.consistency import write_consistency
from roarkar.metrics.perturbation import (
    BASE_METRICS,
    ROAD_METRICS,
    Settings,
    delta_metrics,
    partners,
    perturbation_metrics,
    removed_count,
)
from roarkar.metrics.plots import plot_means, plot_road_curves, plot_wilcoxon, plot_win_rates
from roarkar.metrics.stats import all_statistics, higher_is_better, summary
from roarkar.saliency import create
from roarkar.saliency.configs import method_config, method_ids

log = logging.getLogger(__name__)

__all__ = ["RunSettings", "compute_metrics", "load_method", "run_perturbation"]

METRICS_COLUMNS = ["image", "method", "metric", "value"]
#: Settings that change no value of metrics.csv (a speed knob, the figures' settings)
NOT_IN_IDENTITY = ("image_chunk", "figure_metrics", "alpha_fraction", "alpha_repeats",
                   "spearman_methods")  # fmt: skip


@dataclass
class RunSettings:
    """The ``perturbation`` config block: what to run on, and the metric :class:`Settings`."""

    methods: list[Any] = field(
        default_factory=lambda: ["random", "ground_truth", "smoe_scale", "gradient", "std", "mean"]
    )
    images: int = 100
    K: int = 5
    split: str = "val"
    delta_road: bool = False
    agreement: bool = True
    reuse: bool = True
    image_chunk: int = 32
    figure_metrics: list[str] | None = None  # None: every metric in the figures
    alpha_fraction: float = 0.1  # Fig 10: share of the images in each subset ...
    alpha_repeats: int = 50  # ... and how many subsets
    spearman_methods: list[str] | None = None  # Fig 11's methods (None: every method)
    metrics: Settings = field(default_factory=Settings)

    @classmethod
    def from_config(cls, block: Any) -> RunSettings:
        if block is None:
            values = {}
        elif OmegaConf.is_config(block):
            values = dict(OmegaConf.to_container(block, resolve=True))
        else:
            values = dict(block)
        own = {f.name for f in fields(cls)} - {"metrics"}
        metric_keys = {f.name for f in fields(Settings)}
        unknown = sorted(set(values) - own - metric_keys)
        if unknown:
            raise ValueError(
                f"perturbation: unknown key(s) {', '.join(unknown)}; "
                f"known are {', '.join(sorted(own | metric_keys))}"
            )
        metric_values = {k: values.pop(k) for k in list(values) if k in metric_keys}
        if "percents" in metric_values:
            metric_values["percents"] = tuple(float(p) for p in metric_values["percents"])
        out = cls(**values, metrics=Settings(**metric_values))
        if out.K < 0 or out.images < 2 or out.image_chunk < 1:
            raise ValueError(
                f"perturbation: need K >= 0, images >= 2, image_chunk >= 1; "
                f"got K={out.K}, images={out.images}, image_chunk={out.image_chunk}"
            )
        if out.split not in ("train", "val"):
            raise ValueError(f"perturbation.split={out.split!r}: expected train or val")
        for metric in out.figure_metrics or []:
            higher_is_better(metric)  # raises on an unknown metric name
        if not 0 < out.alpha_fraction <= 1 or out.alpha_repeats < 1:
            raise ValueError(
                f"perturbation: need 0 < alpha_fraction <= 1 and alpha_repeats >= 1; got "
                f"{out.alpha_fraction}, {out.alpha_repeats}"
            )
        return out


def load_method(entry: Any) -> tuple[str, str, dict]:
    """``(id, registry name, params)`` of a method entry: a method id (a ``conf/method`` preset or
    a registered name, composed as ``method=<id>`` would be), or a mapping ``{id?, name, params?}``;
    another string is kept as a name (``create`` names the registered ones)."""
    if isinstance(entry, str):
        if entry not in method_ids():
            return entry, entry, {}
        entry = method_config(entry)
    entry = dict(entry)
    if "name" not in entry:
        raise ValueError(f"perturbation.methods: entry {entry!r} has no name")
    return str(entry.get("id", entry["name"])), str(entry["name"]), dict(entry.get("params") or {})


def _drop_ground_truth(run: RunSettings, dataset: str) -> None:
    """Leave ``ground_truth`` out of ``run.methods`` (with a warning): the data has no relevance."""
    kept = [e for e in run.methods if load_method(e)[1] != "ground_truth"]
    if len(kept) < len(run.methods):
        log.warning(
            "ground_truth left out on %s: that dataset has no relevance maps (only the embedded "
            "synthetic sets have a ground truth)",
            dataset,
        )
        run.methods = kept


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(start + size, n)


@torch.no_grad()
def predictions(model: torch.nn.Module, images: torch.Tensor, batch: int) -> torch.Tensor:
    model.eval()
    return torch.cat([model(images[a:b]).argmax(1) for a, b in _batches(len(images), batch)])


def method_ranks(
    method_entry: Any,
    model: torch.nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    relevance: torch.Tensor | None,
    *,
    seed: int,
    batch: int,
) -> tuple[str, torch.Tensor]:
    """One method's maps of ``images`` (explaining ``targets``) as per-pixel ranks ``[N, H, W]``."""
    method_id, name, params = load_method(method_entry)
    method = create(name, model, **params)
    salt = zlib.crc32(method_id.encode()) % 100_000
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + salt)
    out = []
    for a, b in _batches(len(images), batch):
        rel = relevance[a:b].to(images.device) if relevance is not None else None
        maps = method.saliency(images[a:b], targets[a:b], relevance=rel, generator=generator)
        if maps.dim() != 3:
            raise ValueError(f"method {method_id!r} returned maps of shape {tuple(maps.shape)}")
        out.append(saliency_ranks(maps.detach().float().cpu(), generator))
    return method_id, torch.cat(out).to(images.device)


def compute_metrics(
    model: torch.nn.Module,
    images: torch.Tensor,
    ranks: torch.Tensor,
    targets: torch.Tensor,
    pairs: torch.Tensor,
    run: RunSettings,
    generator: torch.Generator,
    pixel_std: Sequence[float] | None = None,
) -> dict[str, torch.Tensor]:
    """Every metric and its Delta (Eq 9, partners ``pairs [N, K]``) per image, in image chunks;
    ``pixel_std`` is the dataset's per-channel std (the imputation noise's pixel scale)."""
    parts: list[dict[str, torch.Tensor]] = []
    k = pairs.shape[1] if pairs.numel() else 0
    for a, b in _batches(len(images), run.image_chunk):
        own = perturbation_metrics(
            model,
            images[a:b],
            ranks[a:b],
            targets[a:b],
            run.metrics,
            generator=generator,
            pixel_std=pixel_std,
        )
        if k:
            rows = pairs[a:b].reshape(-1).to(images.device)
            others = perturbation_metrics(
                model,
                images[a:b].repeat_interleave(k, 0),
                ranks[rows],
                targets[a:b].repeat_interleave(k, 0),
                run.metrics,
                road=run.delta_road,
                generator=generator,
                pixel_std=pixel_std,
            )
            wanted = BASE_METRICS + (ROAD_METRICS if run.delta_road else ())
            own |= delta_metrics({m: own[m] for m in wanted}, others, k)
        parts.append(own)
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


def _road_curves(
    method: str,
    values: dict[str, torch.Tensor],
    targets: torch.Tensor,
    labels: torch.Tensor,
    settings: Settings,
    hw: int,
) -> pd.DataFrame:
    """ROAD's curves of one method: per order and percent removed (roarkar's axis), with ROAD's
    own percent (LeRF: kept) and the pixel count beside it."""
    rows = []
    for order in ("morf", "lerf"):
        pred = values[f"road_{order}_pred"]
        prob = values[f"road_{order}_curve"]
        for j, percent in enumerate(settings.percents):
            rows.append(
                {
                    "method": method,
                    "order": order,
                    "percent": float(percent),
                    "road_percent": float(percent) if order == "morf" else 100.0 - float(percent),
                    "pixels_removed": removed_count(
                        float(percent) / 100, hw, order, settings.count
                    ),
                    "kept_decision": float((pred[:, j] == targets).float().mean()),
                    "accuracy": float((pred[:, j] == labels).float().mean()),
                    "probability": float(prob[:, j].mean()),
                }
            )
    return pd.DataFrame(rows)


def _previous(out_dir: Path, identity: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """metrics.csv and road_curves.csv of a finished run with the same identity, else None."""
    try:
        record = json.loads((out_dir / "run.json").read_text())
        if record.get("identity") != identity:
            return None
        return (
            pd.read_csv(out_dir / "metrics.csv", dtype={"image": str}),
            pd.read_csv(out_dir / "road_curves.csv"),
        )
    except (OSError, ValueError):
        return None


def _agreement(cfg: DictConfig, metrics: pd.DataFrame, out_dir: Path) -> pd.DataFrame | None:
    from roarkar.report.aggregate import collect_results

    dataset, model = str(cfg.dataset.name), str(cfg.model.name)
    cells = Path(cfg.paths.results) / "cells"
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


def run_perturbation(cfg: DictConfig) -> dict:
    """Compute, write and print the metrics without retraining for ``cfg.dataset`` (see module doc)."""
    from roarkar.identity import identity_hash
    from roarkar.protocols.base import ensure_base_model
    from roarkar.protocols.context import make_context
    from roarkar.store import git_commit, write_json_atomic
    from roarkar.training import setup

    run = RunSettings.from_config(cfg.get("perturbation"))
    started = time.time()
    dist = setup(str(cfg.device))
    ctx = make_context(cfg, dist)
    model, base_id, base_record = ensure_base_model(ctx)
    if not dist.is_main:
        return {}
    model.eval()
    split = ctx.val if run.split == "val" else ctx.train
    if split is None:
        raise ValueError(
            f"perturbation: {cfg.dataset.name} is streamed from its shards, not held in memory; "
            "set dataset.train_size and dataset.val_size so that both splits fit in "
            "loader.memory_limit_gb (ImageNet: dataset.train_size=1000 dataset.val_size=5000)"
        )
    n = min(int(run.images), len(split))
    images = ctx.inputs(split.images[:n])
    labels = split.labels[:n].to(images.device)
    relevance = split.relevance[:n] if split.relevance is not None else None
    keys = list(split.keys[:n])
    if relevance is None:
        _drop_ground_truth(run, str(cfg.dataset.name))
    batch = int(ctx.settings.eval_batch_size)
    targets = predictions(model, images, batch)
    seed = int(cfg.seed)
    pairs = partners(n, run.K, torch.Generator().manual_seed(seed)) if run.K else torch.empty(0)

    dataset = str(cfg.dataset.name)
    out_dir = Path(cfg.paths.results) / "perturbation" / dataset
    settings_dict = asdict(run)
    for key in NOT_IN_IDENTITY:
        settings_dict.pop(key)
    settings_dict["metrics"].pop("batch_size")
    identity = identity_hash(
        {"base": base_id, "settings": settings_dict, "images": keys, "seed": seed}
    )
    previous = _previous(out_dir, identity) if run.reuse else None
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
        curves.append(_road_curves(method_id, values, targets, labels, run.metrics, hw))
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
        f"{dataset}, {cfg.model.name}, {n} images, replacement={run.metrics.replacement}, "
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
    agree = _agreement(cfg, metrics, out_dir) if run.agreement else None
    if agree is not None:
        print("\nagreement with ROAR/KAR (rank correlation over methods):", flush=True)
        cols = ["protocol", "metric", "n_methods", "kendall_tau", "spearman_rho"]
        print(agree[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"), flush=True)
    wall = time.time() - started
    write_json_atomic(
        out_dir / "run.json",
        {
            "identity": identity,
            "dataset": dataset,
            "model": str(cfg.model.name),
            "base_model": base_id,
            "base_accuracy": base_record.get("accuracy"),
            "images": n,
            "settings": OmegaConf.to_container(cfg.get("perturbation") or {}, resolve=True),
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
