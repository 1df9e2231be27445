"""Input protocol (paper Sec 3.2, Tables 2 and 5; Hooker et al. 2019).

1. Precompute (``precompute.py``): the trained base model explains every train and val image once
   (eval preprocessing, argmax class unless configured), and the map is stored as per-pixel ranks
   with ties already broken, one part per image shard in the same container (``roarkar.data.npytar``)
   beside a spec naming the base model and method.
2. Retrain: a fresh model is trained from scratch on masked images; KAR keeps ``percent`` of the
   most salient pixels, ROAR removes them; removed pixels take the dataset's channel mean. Masking
   happens on the device before augmentation, so the augmentation sees the masked image.
"""

from __future__ import annotations

import logging

import torch

from roarkar.masking import apply_keep_mask, keep_mask_from_ranks
from roarkar.protocols.base import new_model
from roarkar.protocols.context import Context
from roarkar.training import FitResult, fit

log = logging.getLogger(__name__)


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
    # protocol.replacement (checked in ProtocolSettings): on normalised images the channel mean
    # is 0; black is (0 - mean) / std per channel.
    black = ctx.spec.replacement == "zero"
    fill = -torch.tensor(ctx.info.mean) / torch.tensor(ctx.info.std) if black else 0.0
    model = new_model(ctx)

    def prepare(batch, train, generator):
        x = ctx.inputs(batch["images"])
        keep = keep_mask_from_ranks(batch["ranks"].to(x.device, non_blocking=True), mode, fraction)
        x = apply_keep_mask(x, keep, fill)
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
