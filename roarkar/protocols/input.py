"""Input protocol (paper Sec 3.2, Tables 2 and 5; Hooker et al. 2019).

1. Precompute (``precompute.py``): the trained base model explains every train and val image once
   (eval preprocessing, argmax class unless configured), and the map is stored as per-pixel ranks
   with ties already broken, one part per image shard in the same container (``roarkar.data.npytar``)
   beside a spec naming the base model and method.
2. Retrain: a fresh model is trained from scratch on masked images; KAR keeps ``percent`` of the
   most salient pixels, ROAR removes them; removed pixels take ``protocol.replacement``: the
   dataset's channel mean (Hooker), black, a blurred copy or ROAD's noisy linear imputation, by the
   metrics' own function (:func:`roarkar.removal.replace`). Masking happens on the device before
   augmentation, so the augmentation sees the masked image. The imputation's noise is drawn per
   image from (epoch seed, image index) (:func:`roarkar.removal.image_draws`): the same batch after
   a resume, on any number of processes.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from roarkar.config import Config, InputProtocolConfig
from roarkar.protocols.base import MODEL_FILE, base_dir, new_model
from roarkar.protocols.context import Context
from roarkar.protocols.precompute import ensure_ranks
from roarkar.protocols.protocol import CellRun, Protocol, StudyPart, register_protocol
from roarkar.removal import check_percent, check_selects, image_draws, keep_mask_from_ranks, replace
from roarkar.training import FitResult, fit

log = logging.getLogger(__name__)


def masked_inputs(
    ctx: Context,
    x: Tensor,
    ranks: Tensor,
    mode: str,
    fraction: float,
    draw: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Normalised images ``x`` as an input cell trains on them: KAR keeps / ROAR removes the
    ``fraction`` most salient pixels by ``ranks``, removed ones replaced by
    ``protocol.replacement`` (noise from ``draw`` or ``generator`` where it draws any)."""
    keep = keep_mask_from_ranks(ranks, mode, fraction)
    return replace(
        x,
        ~keep,
        ctx.spec.replacement or "mean",  # checked in ProtocolSettings
        key="protocol.replacement",
        pixel_mean=ctx.info.mean,
        pixel_std=ctx.info.std,
        draw=draw,
        generator=generator,
    )


def run_input_cell(
    ctx: Context,
    ranks: dict,
    mode: str,
    fraction: float,
    identity: str,
    checkpoint,
    on_step=None,
) -> FitResult:
    """Train a fresh model on masked images and return its final held-out accuracy and
    true-class score."""
    kind = ctx.spec.replacement or "mean"  # checked in ProtocolSettings
    model = new_model(ctx)

    def prepare(batch, train, generator):
        x = ctx.inputs(batch["images"])
        draw = None
        if kind == "linear":  # seeded by the epoch's seed, not drawn from the generator's stream
            draw = image_draws(x.shape, batch["index"], generator.initial_seed())
        ranks = batch["ranks"].to(x.device, non_blocking=True)
        x = masked_inputs(ctx, x, ranks, mode, fraction, draw=draw)
        if train:
            x = ctx.augment(x, generator)
        return x, batch["labels"].to(ctx.dist.device, non_blocking=True), {}

    return fit(
        model,
        list(model.parameters()),
        prepare,
        ctx.batches("train", ctx.rank_batch_size, ranks=ranks["train"]),
        ctx.batches("val", ctx.settings.eval_batch_size, ranks=ranks["val"]),
        ctx.stage_settings("input"),
        epochs=ctx.epochs("input"),
        seed=ctx.spec.seed,
        checkpoint=checkpoint,
        identity=identity,
        dist=ctx.dist,
        desc=f"input {mode} {fraction:.0%} {ctx.spec.method_id}",
        on_step=on_step,
    )


@register_protocol
class InputProtocol(Protocol):
    """Precompute the maps once, train a fresh model on the masked images (Tables 2, 5)."""

    name = "input"
    config = InputProtocolConfig
    study_lists = ("methods", "percents", "modes")
    tables = ("table2", "table5")
    precomputes = True

    def cell_fields(self, config: Config) -> tuple[str, float]:
        percent = config.protocol.percent
        fraction = check_percent(percent, "protocol.percent")
        size = int(config.dataset.image_size)
        check_selects(fraction, size * size, f"protocol.percent={percent:g} at {size}x{size} px")
        return "", float(percent)

    def study_cells(self, part: StudyPart) -> list[tuple[str, dict[str, object]]]:
        return [
            (str(method), {"protocol.mode": mode, "protocol.percent": percent})
            for method in part.node["methods"]
            for percent in part.node["percents"]
            for mode in part.node["modes"]
        ]

    def train(self, run: CellRun) -> FitResult:
        ctx = run.ctx
        ranks = ensure_ranks(ctx, run.base, run.base_id, base_dir(ctx, run.base_id) / MODEL_FILE)
        fraction = run.cell.percent / 100.0
        return run_input_cell(
            ctx, ranks, run.cell.mode, fraction, run.identity, run.checkpoint, on_step=run.on_step
        )
