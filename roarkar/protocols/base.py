"""The base model of a (dataset, model, recipe, seed): trained once, reused by every cell."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from roarkar.files import atomic_write, child_path, path_component
from roarkar.identity import base_identity, file_sha256
from roarkar.models import TappedNet, build_model
from roarkar.models.weights import (
    classes_in,
    link_model_file,
    load_into,
    read_state_dict,
    shared_model_file,
    weights_identity,
)
from roarkar.protocols.context import Context
from roarkar.store import Artifact, file_lock, git_commit
from roarkar.training import CheckpointMismatchError, evaluate, fit
from roarkar.training.distributed import barrier, broadcast_object

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
SHARED_WEIGHTS = "_weights"  # models/_weights/<sha256>-<model>.pt: one per weights file and model


def new_model(ctx: Context) -> TappedNet:
    """A freshly initialised model of the configured architecture for this dataset."""
    torch.manual_seed(ctx.spec.seed)
    return build_model(
        ctx.spec.model, ctx.info.num_classes, taps=ctx.spec.model_taps, **ctx.spec.model_params
    )


def recipe(ctx: Context, stage: str) -> dict:
    """The result-relevant part of the trainer config for one stage."""
    return ctx.config.trainer.stage(stage).recipe


def base_dir(ctx: Context, base_id: str) -> Path:
    """``models/<dataset>/<model>-s<seed>-<id>``; from a weights file ``<model>-weights-<id>``
    (the seed plays no part in a model nobody trained)."""
    made = "weights" if ctx.spec.weights else f"s{ctx.spec.seed}"
    name = f"{path_component(ctx.spec.model, 'model.name')}-{made}-{base_id[:8]}"
    return child_path(ctx.results, "models", (ctx.spec.dataset, "dataset.name"), name)


def plain_prepare(ctx: Context):
    """Normalise, augment when training; no masking."""

    def prepare(batch, train, generator):
        x = ctx.inputs(batch["images"])
        if train:
            x = ctx.augment(x, generator)
        return x, batch["labels"].to(ctx.dist.device, non_blocking=True), {}

    return prepare


def load_model_file(
    path: Path, identity: str, model: TappedNet, shared: str | None = None
) -> TappedNet:
    """Load weights saved by :func:`ensure_base_model`, refusing another run's or model's file
    (``shared``: the identity of the shared copy of a weights file, accepted too)."""
    try:  # weights_only: a file that would run code when unpickled is refused, not executed
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, foreign or crafted file
        raise CheckpointMismatchError(f"cannot read model file {path}: {exc}") from exc
    if (
        not isinstance(state, dict)
        or state.get("identity") not in (identity, shared)
        or state.get("model") != model.name
    ):
        found = (
            (state.get("model"), state.get("identity"))
            if isinstance(state, dict)
            else type(state).__name__
        )
        raise CheckpointMismatchError(
            f"{path} holds model/run {found}, expected ({model.name!r}, {identity!r})"
        )
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as exc:
        raise CheckpointMismatchError(f"{path} does not fit model {model.name!r}: {exc}") from exc
    return model


def base_warnings(ctx: Context, accuracy: float | None, pretrained: bool = False) -> list[str]:
    """What makes a base model meaningless to build a study on (empty when it is fine): no
    training, fewer training images than classes, held-out accuracy at or below chance."""
    out = []
    classes = int(ctx.info.num_classes)
    if ctx.epochs("base") <= 0 and not pretrained:
        out.append(f"untrained: trainer.epochs.base={ctx.epochs('base')}")
    train = int(ctx.info.counts.get("train", 0))
    if train < classes:
        out.append(
            f"dataset {ctx.spec.dataset!r} has {train} training image(s) for {classes} classes"
        )
    if accuracy is not None and classes > 1 and accuracy <= 1.0 / classes + 1e-9:
        out.append(
            f"held-out accuracy {accuracy:.3f} is at or below chance (1/{classes} = "
            f"{1.0 / classes:.3f})"
        )
    return out


def base_artifact(ctx: Context, base_id: str) -> Artifact:
    """The base model in the store: finished when its ``result.json`` says ok (written after
    ``model.pt``)."""
    return Artifact("base_model", base_id, base_dir(ctx, base_id))


def _save_base(
    ctx: Context,
    artifact: Artifact,
    model: TappedNet,
    *,
    accuracy: float,
    true_class_score: float,
    warnings: list[str],
    started: float,
    shared: Path | None = None,
    **how: object,
) -> None:
    """Write a finished base model: ``model.pt`` (atomic; a link to ``shared``, the one copy
    of a weights file, when given), then its ``result.json`` record; ``how`` says how it was made
    (seed and history when trained, the weights file when loaded)."""
    if shared is not None:
        link_model_file(shared, artifact.directory / MODEL_FILE)
    else:
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        with atomic_write(artifact.directory / MODEL_FILE) as tmp:
            torch.save(
                {"identity": artifact.identity, "model": model.name, "state_dict": state}, tmp
            )
    artifact.write_record(
        {
            "status": "ok",
            "accuracy": accuracy,
            "true_class_score": true_class_score,
            "warnings": warnings,
            "dataset": ctx.spec.dataset,
            "model": model.name,
            **how,
            "config": ctx.config.plain,
            "git_commit": git_commit(),
            "device": str(ctx.dist.device),
            "world_size": ctx.dist.world_size,
            "wall_time_s": time.time() - started,
        },
    )


def _from_weights_file(ctx: Context, artifact: Artifact) -> None:
    """The base model from ``model.weights``: loaded (never trained), checked against the dataset,
    evaluated on its held-out split and saved like a trained one, so every later stage is the same."""
    source = Path(str(ctx.spec.weights)).expanduser()
    state = read_state_dict(source)
    classes = classes_in(state, source)
    if classes != int(ctx.info.num_classes):
        raise ValueError(
            f"model.weights={source} classifies {classes} classes but dataset "
            f"{ctx.spec.dataset!r} has {ctx.info.num_classes}"
        )
    model = new_model(ctx)
    load_into(model.net, state, source)
    model.to(ctx.dist.device)
    started = time.time()
    held_out = evaluate(
        model,
        ctx.batches("val", ctx.settings.eval_batch_size),
        plain_prepare(ctx),
        ctx.dist,
        ctx.stage_settings("base"),
    )
    accuracy = held_out.accuracy
    warnings = base_warnings(ctx, accuracy, pretrained=True)
    for w in warnings:
        log.warning("BASE MODEL UNFIT for a study (weights %s): %s", source, w)
    if not ctx.dist.is_main:
        return
    sha256 = file_sha256(source, "model.weights", "a weights file")
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    shared = shared_model_file(ctx.results / "models" / SHARED_WEIGHTS, sha256, model.name, state)
    _save_base(
        ctx,
        artifact,
        model,
        accuracy=accuracy,
        true_class_score=held_out.true_class_score,
        warnings=warnings,
        started=started,
        shared=shared,
        weights_file=str(source),
        weights_sha256=sha256,
        shared_model_file=str(shared),
        history=[],
    )
    log.info("base model from %s: held-out accuracy %.4f", source, accuracy)


def base_model_id(ctx: Context) -> str:
    """The identity of the context's base model (nothing built, loaded or trained)."""
    config = ctx.config
    return base_identity(config.dataset.node, config.model.node, recipe(ctx, "base"), ctx.spec.seed)


def ensure_base_model(ctx: Context) -> tuple[TappedNet, str, dict]:
    """Return the trained base model, training it first if no finished copy exists."""
    base_id = base_model_id(ctx)
    artifact = base_artifact(ctx, base_id)
    directory = artifact.directory
    lock = file_lock(directory / ".lock") if ctx.dist.is_main else None
    if lock:
        lock.__enter__()
    try:
        must_train = broadcast_object(artifact.finished() is None, ctx.dist)
        if must_train and ctx.spec.weights:
            _from_weights_file(ctx, artifact)
            barrier(ctx.dist)
        elif must_train:
            model = new_model(ctx)
            started = time.time()
            result = fit(
                model,
                list(model.parameters()),
                plain_prepare(ctx),
                ctx.batches("train", ctx.rank_batch_size),
                ctx.batches("val", ctx.settings.eval_batch_size),
                ctx.stage_settings("base"),
                epochs=ctx.epochs("base"),
                seed=ctx.spec.seed,
                checkpoint=directory / "checkpoint.pt",
                identity=base_id,
                dist=ctx.dist,
                desc=f"base {ctx.spec.model} on {ctx.spec.dataset}",
            )
            warnings = base_warnings(ctx, result.accuracy)
            for w in warnings:
                log.warning(
                    "BASE MODEL UNFIT for a study (%s on %s): %s; every cell built on it is "
                    "marked, and its tables say so",
                    ctx.spec.model,
                    ctx.spec.dataset,
                    w,
                )
            if ctx.dist.is_main:
                _save_base(
                    ctx,
                    artifact,
                    model,
                    accuracy=result.accuracy,
                    true_class_score=result.true_class_score,
                    warnings=warnings,
                    started=started,
                    seed=ctx.spec.seed,
                    history=result.history,
                )
                (directory / "checkpoint.pt").unlink(missing_ok=True)
            barrier(ctx.dist)
        shared = (
            weights_identity(file_sha256(Path(str(ctx.spec.weights)).expanduser(), "model.weights"))
            if ctx.spec.weights
            else None
        )
        model = load_model_file(directory / MODEL_FILE, base_id, new_model(ctx), shared)
    finally:
        if lock:
            lock.__exit__(None, None, None)
    return model.to(ctx.dist.device), base_id, artifact.read() or {}
