"""The computing half of ``task=perturbation``: the model's decisions, each method's maps as
per-pixel ranks, every metric and its Delta per image, and ROAD's curves of a method."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import torch

from roarkar.metrics.delta import delta_metrics
from roarkar.metrics.perturbation import perturbation_metrics
from roarkar.metrics.run_settings import RunSettings, load_method
from roarkar.metrics.settings import BASE_METRICS, ROAD_METRICS, Settings
from roarkar.removal import removed_count, saliency_ranks
from roarkar.saliency import create

__all__ = ["batches", "compute_metrics", "method_ranks", "predictions", "road_curves"]


def batches(n: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of at most ``size`` of ``n`` items."""
    for start in range(0, n, size):
        yield start, min(start + size, n)


@torch.no_grad()
def predictions(model: torch.nn.Module, images: torch.Tensor, batch: int) -> torch.Tensor:
    """The model's decision (argmax) on each image, ``batch`` images at a time."""
    model.eval()
    return torch.cat([model(images[a:b]).argmax(1) for a, b in batches(len(images), batch)])


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
    for a, b in batches(len(images), batch):
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
    for a, b in batches(len(images), run.image_chunk):
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


def road_curves(
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
