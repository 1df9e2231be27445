"""``task=plan`` and ``task=status``: every cell of a study with its state (done, running, failed,
todo), what it cost and what is left, from the results tree and the config alone (no data touched)."""

from __future__ import annotations

import logging

import pandas as pd
import torch
from omegaconf import DictConfig

from roarkar.config import Config, resolve
from roarkar.plan import cell_configs
from roarkar.protocols.cell import cell_path
from roarkar.report.progress import estimate_left, progress_line
from roarkar.store import cell_state

log = logging.getLogger(__name__)


def forward_flops(config: Config, num_classes: int) -> float:
    """FLOPs of one forward pass of the configured model at the dataset's image size (counted on
    the meta device, so nothing is allocated)."""
    from torch.utils.flop_counter import FlopCounterMode

    from roarkar.models import build_model

    size = int(config.dataset.image_size)
    with torch.device("meta"):
        model = build_model(
            config.model.name, num_classes, taps=config.model.taps, **config.model.params
        )
        images = torch.empty(1, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        model(images)
    return float(counter.get_total_flops())


def survey(cfg: DictConfig, overrides: list[str]) -> pd.DataFrame:
    """Every cell of the study with its state (done, failed, running, todo), what it cost if
    finished, and what it will cost (image-epochs, FLOPs) if not. Touches no data. An edge: the
    plan composes the cells from ``cfg``, each is resolved here."""
    rows = []
    flops: dict[tuple, float] = {}
    for config in map(resolve, cell_configs(cfg, overrides)):
        cell, identity, directory = cell_path(config)
        status, result = cell_state(directory)
        epochs = config.trainer.stage(cell.protocol).epochs
        images = config.dataset.split_size("train")
        key = (cell.dataset, cell.model)
        if key not in flops:
            flops[key] = forward_flops(config, int(config.dataset.num_classes or 1000))
        rows.append(
            cell.as_dict()
            | {
                "status": status,
                "cell_id": identity[:8],
                "epochs": epochs,
                "image_epochs": None if images is None else epochs * images,
                "train_flops": None if images is None else 3 * flops[key] * epochs * images,
                "wall_time_s": result.get("wall_time_s") if status == "done" else None,
                "gpu_hours": result.get("gpu_hours") if status == "done" else None,
                "path": str(directory),
            }
        )
    return pd.DataFrame(rows)


def _counts(table: pd.DataFrame) -> str:
    states = table.status.value_counts()
    return f"{len(table)} cells: " + ", ".join(
        f"{states.get(s, 0)} {s}" for s in ("done", "running", "failed", "todo")
    )


def run_plan(cfg: DictConfig, overrides: list[str]) -> dict:
    """Dry run: list the study's cells, whether each is done, failed, running or to run, and what the
    missing ones cost (image-epochs, and FLOPs at 3x a forward pass per trained image, an upper
    bound for fine-tuning after a frozen prefix). Nothing is trained or written."""
    table = survey(cfg, overrides)
    todo = table[table.status != "done"]
    lines = [
        table.drop(columns=["path", "train_flops", "wall_time_s", "gpu_hours"]).to_string(
            index=False
        ),
        "",
        f"datasets: {', '.join(sorted(table.dataset.unique()))}",
        _counts(table),
        f"to run: {todo.image_epochs.sum():,.0f} image-epochs, {todo.train_flops.sum() / 1e15:,.1f} PFLOP "
        "(3x forward FLOPs per trained image; base models and saliency precompute not included)",
    ]
    unknown = int(todo.image_epochs.isna().sum())
    if unknown:
        lines.append(
            f"{unknown} cells have no known split size (set dataset.train_size or nominal_train_size)"
        )
    text = "\n".join(lines)
    print(text, flush=True)
    return {"cells": table.to_dict("records"), "text": text}


def run_status(cfg: DictConfig, overrides: list[str]) -> dict:
    """Where a study stands: cells done, running, failed and missing per dataset and protocol; GPU-hours
    and wall time spent; and an estimate to finish from the mean cost of finished cells of the same
    (dataset, protocol)."""
    table = survey(cfg, overrides)
    groups = []
    remaining_gpu = remaining_wall = 0.0
    for (dataset, protocol), part in table.groupby(["dataset", "protocol"], sort=False):
        done = part[part.status == "done"]
        left = int((part.status != "done").sum())
        mean_wall = done.wall_time_s.fillna(0).mean() if len(done) else float("nan")
        mean_gpu = done.gpu_hours.fillna(0).mean() if len(done) else float("nan")
        if left and len(done):
            remaining_wall += left * mean_wall
            remaining_gpu += left * mean_gpu
        states = part.status.value_counts()
        groups.append(
            {
                "dataset": dataset,
                "protocol": protocol,
                **{s: int(states.get(s, 0)) for s in ("done", "running", "failed", "todo")},
                "gpu_hours_spent": float(done.gpu_hours.fillna(0).sum()),
                "wall_hours_spent": float(done.wall_time_s.fillna(0).sum()) / 3600,
                "est_gpu_hours_left": left * mean_gpu if left else 0.0,
                "est_wall_hours_left": left * mean_wall / 3600 if left else 0.0,
            }
        )
    summary = pd.DataFrame(groups)
    done_rows = table[table.status == "done"]
    lines = [
        summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
        "",
        _counts(table),
        f"spent: {summary.gpu_hours_spent.sum():.3f} GPU-hours, {summary.wall_hours_spent.sum():.3f} hours "
        f"of cell wall time; estimated to finish: {remaining_gpu:.3f} GPU-hours, "
        f"{remaining_wall / 3600:.3f} cell-hours (from finished cells of the same dataset and "
        "protocol; groups with none finished are not estimated)",
        progress_line(
            int((table.status == "done").sum()),
            len(table),
            estimate_left(
                (((r.dataset, r.protocol), r.wall_time_s or 0.0) for r in done_rows.itertuples()),
                [(r.dataset, r.protocol) for r in table[table.status != "done"].itertuples()],
            ),
            int((table.status == "failed").sum()),
        ),
    ]
    failed = table[table.status == "failed"]
    for row in failed.itertuples():
        lines.append(f"failed: {row.path}")
    text = "\n".join(lines)
    print(text, flush=True)
    return {"summary": summary.to_dict("records"), "cells": table.to_dict("records"), "text": text}
