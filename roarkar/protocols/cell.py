"""One cell = one trained model: resolve it from config, skip it when finished, run it, record it."""

from __future__ import annotations

import logging
import math
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from roarkar.masking import MODES, check_percent
from roarkar.models import check_tap
from roarkar.protocols.base import ensure_base_model, recipe, stage_recipe
from roarkar.protocols.context import Context, make_context
from roarkar.protocols.input import ensure_ranks, run_input_cell
from roarkar.protocols.layer import run_layer_cell
from roarkar.saliency import available, describe
from roarkar.store import (
    RESULT_FILE,
    Cell,
    git_commit,
    identity_hash,
    read_result,
    write_json_atomic,
)
from roarkar.training import DistInfo, setup

log = logging.getLogger(__name__)

PROTOCOLS = ("layer", "input")


def cell_from_config(cfg: DictConfig) -> Cell:
    """The cell a config describes, validated: every bad value is named."""
    protocol = cfg.protocol
    if protocol.name not in PROTOCOLS:
        raise ValueError(f"protocol.name={protocol.name!r}: expected one of {', '.join(PROTOCOLS)}")
    mode = str(protocol.mode)
    if mode not in MODES:
        raise ValueError(f"protocol.mode={mode!r}: expected one of {', '.join(MODES)}")
    method = cfg.method
    if method.name not in available():
        raise ValueError(
            f"method.name={method.name!r} is not a known saliency method; available: {', '.join(available())}"
        )
    if protocol.name == "layer":
        layer = str(protocol.layer)
        check_tap(layer)
        if not describe(method.name).supports_layer:
            raise ValueError(
                f"method {method.name!r} cannot run in the layer protocol (it needs the input image); "
                "use protocol=input, or a per-tap statistic or control"
            )
        percent = protocol.percent if protocol.percent is not None else protocol[f"{mode}_percent"]
        check_percent(
            percent,
            "protocol.percent" if protocol.percent is not None else f"protocol.{mode}_percent",
        )
    else:
        layer = ""
        percent = protocol.percent
        check_percent(percent, "protocol.percent")
    return Cell(
        dataset=str(cfg.dataset.name),
        model=str(cfg.model.name),
        protocol=str(protocol.name),
        method=str(method.id),
        layer=layer,
        mode=mode,
        percent=float(percent),
        seed=int(cfg.seed),
    )


def cell_identity(cfg: DictConfig, cell: Cell, stage_recipe: dict) -> str:
    """Hash of everything that changes a cell's accuracy (not paths, not progress bars)."""
    protocol = OmegaConf.to_container(cfg.protocol, resolve=True)
    protocol["percent"] = cell.percent
    return identity_hash(
        {
            "cell": cell.as_dict(),
            "dataset": cfg.dataset,
            "model": cfg.model,
            "method": cfg.method,
            "protocol": protocol,
            "trainer": stage_recipe,
        }
    )


def cell_path(cfg: DictConfig) -> tuple[Cell, str, Path]:
    """The cell, its identity and its directory, computed without touching the data."""
    cell = cell_from_config(cfg)
    trainer = stage_recipe(cfg, cell.protocol) | {"base": stage_recipe(cfg, "base")}
    identity = cell_identity(cfg, cell, trainer)
    return cell, identity, Path(cfg.paths.results) / cell.relative_dir(identity)


def run_cell(cfg: DictConfig, dist: DistInfo | None = None) -> dict:
    """Run one cell unless its result exists; always return its result record.

    A failure inside training (a NaN loss, say) stops this cell only: it is written as ``failed``
    with the error, and a later run retries it. Finished cells are never re-run.
    """
    cell, identity, directory = cell_path(cfg)
    existing = read_result(directory)
    if existing is not None and existing.get("status") == "ok":
        log.info("skip %s: finished (%s)", cell, directory / RESULT_FILE)
        return existing | {"skipped": True}
    dist = dist or setup(str(cfg.device))
    started = time.time()
    record = {
        "cell": cell.as_dict(),
        "cell_id": identity,
        "status": "failed",
        "accuracy": None,
        "error": None,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "git_commit": git_commit(),
        "device": str(dist.device),
        "world_size": dist.world_size,
    }
    # Data and base-model problems are the user's to fix and stop the run with their own message.
    ctx = make_context(cfg, dist)
    base, base_id, base_result = ensure_base_model(ctx)
    record["base_model"] = {"identity": base_id, "accuracy": base_result.get("accuracy")}
    try:
        checkpoint = directory / "checkpoint.pt"
        fraction = cell.percent / 100.0
        method_params = OmegaConf.to_container(cfg.method.get("params", {}), resolve=True) or {}
        if cell.protocol == "layer":
            result = run_layer_cell(
                ctx,
                base,
                str(cfg.method.name),
                method_params,
                cell.layer,
                cell.mode,
                fraction,
                identity,
                checkpoint,
            )
        else:
            ranks = ensure_ranks(ctx, base, base_id)
            result = run_input_cell(ctx, ranks, cell.mode, fraction, identity, checkpoint)
        if math.isnan(result.accuracy):
            raise RuntimeError("evaluation produced no accuracy (empty validation split?)")
        record.update(
            status="ok",
            accuracy=result.accuracy,
            history=result.history,
            resumed_from_epoch=result.resumed_from_epoch,
        )
    except Exception as exc:  # record the failure, keep every other result
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
        log.error("cell %s FAILED: %s", cell, record["error"])
    record["wall_time_s"] = time.time() - started
    if dist.is_main:
        write_json_atomic(directory / RESULT_FILE, record)
        if record["status"] == "ok":
            (directory / "checkpoint.pt").unlink(missing_ok=True)
    return record


def run_base(cfg: DictConfig) -> dict:
    """Train (or find) the base model alone."""
    ctx: Context = make_context(cfg, setup(str(cfg.device)))
    _, base_id, result = ensure_base_model(ctx)
    return {"identity": base_id, "accuracy": result.get("accuracy"), "recipe": recipe(ctx, "base")}
