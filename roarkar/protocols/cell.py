"""One cell = one trained model: resolve it from config, skip it when finished, run it, record it."""

from __future__ import annotations

import logging
import math
import platform
import time
import traceback
from pathlib import Path

import submitit
import torch
from omegaconf import DictConfig

from roarkar.config import Config, resolve
from roarkar.identity import cell_identity
from roarkar.protocols.base import MODEL_FILE, base_dir, ensure_base_model, recipe
from roarkar.protocols.context import Context, make_context
from roarkar.protocols.precompute import compute_parts, stored_maps
from roarkar.protocols.protocol import PROTOCOLS, CellRun, get_protocol
from roarkar.protocols.settings import ProtocolSettings
from roarkar.removal import MODES
from roarkar.saliency import available
from roarkar.saliency.conformance import check_before_training
from roarkar.store import Artifact, Cell, Claim, git_commit
from roarkar.training import DistInfo, setup
from roarkar.training.distributed import broadcast_object

log = logging.getLogger(__name__)


def cell_from_config(cfg: DictConfig | Config) -> Cell:
    """The cell a config describes, validated: every bad value is named (an edge: a composed
    config is resolved here)."""
    config = resolve(cfg)
    protocol = get_protocol(config.protocol.name)
    mode = str(config.protocol.mode)
    if mode not in MODES:
        raise ValueError(f"protocol.mode={mode!r}: expected one of {', '.join(MODES)}")
    method = config.method
    if method.name not in available():
        raise ValueError(
            f"method.name={method.name!r} is not a known saliency method; available: {', '.join(available())}"
        )
    layer, percent = protocol.cell_fields(config)
    spec = ProtocolSettings.from_config(config)  # checked here, before any data or model
    # an external or library method's conformance checks, before any data or training
    check_before_training(config.method.node, config.model.node, config.dataset.node, layer)
    return Cell(
        dataset=spec.dataset,
        model=spec.model,
        protocol=protocol.name,
        method=spec.method_id,
        layer=layer,
        mode=mode,
        percent=percent,
        seed=spec.seed,
    )


def cell_path(cfg: DictConfig | Config) -> tuple[Cell, str, Path]:
    """The cell, its identity and its directory, computed without touching the data (an edge:
    a composed config is resolved here)."""
    config = resolve(cfg)
    cell = cell_from_config(config)
    trainer = config.trainer
    recipes = trainer.stage(cell.protocol).recipe | {"base": trainer.stage("base").recipe}
    protocol = config.protocol.node | {"percent": cell.percent}
    identity = cell_identity(
        cell.as_dict(),
        config.dataset.node,
        config.model.node,
        config.method.node,
        protocol,
        recipes,
    )
    return cell, identity, Path(config.paths.results) / cell.relative_dir(identity)


def cost_fields(dist: DistInfo, wall_time_s: float) -> dict:
    """What a run cost: device, GPU count, wall time and GPU-hours (0 on CPU)."""
    gpus = dist.world_size if dist.device.type == "cuda" else 0
    name = torch.cuda.get_device_name(dist.device) if gpus else platform.processor() or "cpu"
    return {
        "device": str(dist.device),
        "device_name": name,
        "world_size": dist.world_size,
        "gpus": gpus,
        "wall_time_s": wall_time_s,
        "gpu_hours": gpus * wall_time_s / 3600.0,
    }


def run_cell(cfg: DictConfig | Config, dist: DistInfo | None = None) -> dict:
    """Run one cell unless its result exists; always return its result record.

    A failure inside training (a NaN loss, say) stops this cell only: it is written as ``failed``
    with the error, and a later run retries it. Finished cells are never re-run. A cell another
    live process has claimed is left to it (``status: running``): two sweeps over the same results
    tree never train one cell twice. The edge of a cell: a composed config is resolved here.
    """
    config = resolve(cfg)
    cell, identity, directory = cell_path(config)
    artifact = Artifact("cell", identity, directory)
    existing = artifact.finished()
    if existing is not None:
        log.info("skip %s: finished (%s)", cell, artifact.record_path)
        return existing | {"skipped": True}
    dist = dist or setup(str(config.device))
    claim = artifact.claim(float(config.claim_ttl_s))
    claimed = broadcast_object(claim.acquire() if dist.is_main else None, dist)
    if not claimed:
        holder = claim.holder() or {}
        log.info("skip %s: claimed by %s", cell, holder)
        return {
            "cell": cell.as_dict(),
            "cell_id": identity,
            "status": "running",
            "accuracy": None,
            "true_class_score": None,
            "claimed_by": holder,
            "skipped": True,
        }
    try:
        existing = artifact.finished()  # finished while we were acquiring the claim?
        if existing is not None:
            return existing | {"skipped": True}
        return _run_claimed(config, cell, artifact, dist, claim)
    except Exception:
        if dist.is_main:
            claim.release()
        raise


def _run_claimed(
    config: Config, cell: Cell, artifact: Artifact, dist: DistInfo, claim: Claim
) -> dict:
    identity, directory = artifact.identity, artifact.directory
    started = time.time()
    record = {
        "cell": cell.as_dict(),
        "cell_id": identity,
        "status": "failed",
        "accuracy": None,
        "true_class_score": None,
        "error": None,
        "config": config.plain,
        "git_commit": git_commit(),
    }
    # Data and base-model problems are the user's to fix and stop the run with their own message.
    ctx = make_context(config, dist)
    stored_maps(ctx)  # method=precomputed: its files checked before any training
    base, base_id, base_result = ensure_base_model(ctx)
    record["base_model"] = {
        "identity": base_id,
        "accuracy": base_result.get("accuracy"),
        "true_class_score": base_result.get("true_class_score"),
        "gpu_hours": base_result.get("gpu_hours", 0.0),
        "warnings": base_result.get("warnings", []),
    }

    def keep_claim(_step: int) -> None:
        claim.heartbeat()

    on_step = keep_claim if dist.is_main else None
    try:
        checkpoint = directory / "checkpoint.pt"
        run = CellRun(ctx, base, base_id, cell, identity, checkpoint, on_step)
        result = get_protocol(cell.protocol).train(run)
        if math.isnan(result.accuracy):
            raise RuntimeError("evaluation produced no accuracy (empty validation split?)")
        record.update(
            status="ok",
            accuracy=result.accuracy,
            true_class_score=result.true_class_score,
            history=result.history,
            resumed_from_epoch=result.resumed_from_epoch,
        )
    except Exception as exc:  # record the failure, keep every other result
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
        log.error("cell %s FAILED: %s", cell, record["error"])
    record.update(cost_fields(dist, time.time() - started))
    if dist.is_main:
        record = artifact.write_record(record)
        if record["status"] == "ok":
            (directory / "checkpoint.pt").unlink(missing_ok=True)
        claim.release()
    return record


def run_base(cfg: DictConfig | Config) -> dict:
    """Train (or find) the base model alone (an edge: a composed config is resolved here)."""
    config = resolve(cfg)
    ctx: Context = make_context(config, setup(str(config.device)))
    _, base_id, result = ensure_base_model(ctx)
    return {
        "identity": base_id,
        "accuracy": result.get("accuracy"),
        "true_class_score": result.get("true_class_score"),
        "recipe": recipe(ctx, "base"),
    }


class CellJob(submitit.helpers.Checkpointable):
    """A cell as a submitit job: on preemption or timeout (SIGUSR2) submitit calls ``checkpoint``,
    which requeues the same call; the requeued job takes over its own claim and resumes from the
    cell's last epoch checkpoint. Hydra's submitit launcher does the same for multirun jobs."""

    def __call__(self, cfg: DictConfig) -> dict:
        return run_cell(cfg)


def run_precompute(cfg: DictConfig | Config) -> dict:
    """Compute this worker's share of the saliency maps of the input protocol
    (``precompute.part`` of ``precompute.parts``); cells then find them ready. An edge: a composed
    config is resolved here."""
    config = resolve(cfg)
    cell_from_config(config)  # validates method, protocol and percent
    if not get_protocol(config.protocol.name).precomputes:
        takes = [n for n, p in PROTOCOLS.items() if p.precomputes]
        raise ValueError(
            f"task=precompute is for the {', '.join(takes)} protocol: add protocol={takes[0]}"
        )
    ctx = make_context(config, setup(str(config.device)))
    stored_maps(ctx)  # method=precomputed: its files checked before any training
    part, parts = int(config.precompute.part), int(config.precompute.parts)
    base, base_id, _ = ensure_base_model(ctx)
    directory = compute_parts(
        ctx,
        base,
        base_id,
        base_dir(ctx, base_id) / MODEL_FILE,
        part,
        parts,
    )
    return {"directory": str(directory), "part": part, "parts": parts}
