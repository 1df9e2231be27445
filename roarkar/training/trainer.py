"""One trainer for base models, layer fine-tuning and from-scratch retraining.

He et al. (2016) SGD recipe by default; learning rate as a pure function of (epoch, step) so a
resumed run needs no scheduler state; a checkpoint after every epoch; DDP when the process group is
up; bf16 autocast and channels-last memory on CUDA (fp16 with a gradient scaler); training curves
(:mod:`roarkar.training.curves`) next to the checkpoint; evaluation on the held-out split at the final
epoch only (no best-epoch selection on it; docs/ARCHITECTURE.md, "Pitfalls"). The recipe is
:mod:`roarkar.training.settings`, checkpoints :mod:`roarkar.training.checkpoint`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from roarkar.training.batches import ArrayBatches, epoch_generator
from roarkar.training.checkpoint import load_checkpoint, save_atomic
from roarkar.training.curves import open_logger
from roarkar.training.distributed import DistInfo, all_reduce_sum
from roarkar.training.settings import TrainerSettings, autocast, grad_scaler, use_channels_last

__all__ = [
    "Evaluation",
    "FitResult",
    "NonFiniteLossError",
    "PrepareFn",
    "evaluate",
    "fit",
]

log = logging.getLogger(__name__)

# prepare(batch, train, generator) -> (inputs, targets, forward kwargs), all on the device
PrepareFn = Callable[
    [dict[str, Tensor], bool, torch.Generator], tuple[Tensor, Tensor, dict[str, Any]]
]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the cell is stopped and recorded as failed."""


@dataclass(frozen=True)
class Evaluation:
    """One pass over the held-out split: top-1 accuracy and the true-class score (the mean
    softmax probability of each sample's true class), both in [0, 1]; NaN when it was empty."""

    accuracy: float
    true_class_score: float


@dataclass
class FitResult:
    """What a training run measured: final held-out accuracy and true-class score (one pass,
    see :class:`Evaluation`) and per-epoch history."""

    accuracy: float
    true_class_score: float = math.nan
    history: list[dict] = field(default_factory=list)
    resumed_from_epoch: int = 0


def _check_finite(
    totals: list[float], desc: str, epoch: int, first: int, step: int, lr: float
) -> None:
    """Raise if any loss of steps ``first..step`` of ``epoch`` was NaN or infinite (before the
    epoch's checkpoint is written, so no checkpoint ever holds weights trained on such a step)."""
    if totals[3] > 0:
        where = f"step {step + 1}" if first == step else f"steps {first + 1}-{step + 1}"
        value = "nan" if math.isnan(totals[0]) else totals[0]
        raise NonFiniteLossError(
            f"{desc}: loss is {value} at epoch {epoch + 1}, {where} (lr {lr:.3g}; the loss is "
            "read from the device every trainer.log_every steps)"
        )


def _curve_row(row: dict, images_per_s: float) -> dict:
    """One epoch of the training curves: its history entry and its throughput."""
    return {**row, "images_per_s": images_per_s}


def evaluate(
    net: nn.Module,
    batches: ArrayBatches,
    prepare: PrepareFn,
    dist: DistInfo,
    settings: TrainerSettings,
    seed: int = 0,
) -> Evaluation:
    """Top-1 accuracy and true-class score on every sample of ``batches`` (summed over ranks).

    Both come from the same logits: the score is the softmax probability of the true class,
    taken in float32 from the (possibly bf16) logits and summed in float64, like the counts.
    """
    net.eval()
    # correct, seen, summed true-class probability: on the device, read once at the end
    totals = torch.zeros(3, dtype=torch.float64, device=dist.device)
    generator = epoch_generator(seed, -1, salt=2)
    with torch.no_grad(), autocast(settings, dist.device):
        for batch in batches.eval_batches():
            inputs, targets, kwargs = prepare(batch, False, generator)
            logits = net(inputs, **kwargs)
            totals[0] += (logits.argmax(1) == targets).sum()
            totals[1] += len(targets)
            log_p = torch.log_softmax(logits.float(), 1).gather(1, targets[:, None])
            totals[2] += log_p.double().exp().sum()
    correct, seen, score = totals.tolist()
    if dist.enabled:
        correct, seen, score = all_reduce_sum(
            torch.tensor([correct, seen, score], dtype=torch.float64), dist
        ).tolist()
    if not seen:
        return Evaluation(math.nan, math.nan)
    return Evaluation(accuracy=correct / seen, true_class_score=score / seen)


def fit(
    net: nn.Module,
    parameters: list[nn.Parameter],
    prepare: PrepareFn,
    train: ArrayBatches,
    val: ArrayBatches,
    settings: TrainerSettings,
    *,
    epochs: int,
    seed: int,
    checkpoint: Path | None,
    identity: str,
    dist: DistInfo | None = None,
    desc: str = "train",
    on_train_mode: Callable[[], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> FitResult:
    """Train ``parameters`` of ``net`` for ``epochs`` epochs, resuming from ``checkpoint`` if it
    exists, then return the final-epoch accuracy and true-class score on ``val``.

    ``net(inputs, **kwargs)`` gives logits; ``prepare`` moves, masks and augments a batch.
    ``on_train_mode`` runs after ``net.train()`` each epoch (the layer protocol puts its frozen
    prefix back in eval mode there). ``on_step(global_step)`` runs before every training step,
    counted from 0 over all epochs (``epoch * steps_per_epoch + step``): the one hook into the
    loop (a cell keeps its claim alive with it; the resume test kills the run at a given step).
    """
    dist = dist or DistInfo()
    device = dist.device
    torch.manual_seed(seed)
    net.to(device)
    if use_channels_last(settings, device):
        net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        parameters,
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        nesterov=settings.nesterov,
    )
    scaler = grad_scaler(settings, device)
    history: list[dict] = []
    throughput: list[float] = []  # images/s per epoch: for the curves only, never in the history
    start_epoch = 0
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, identity)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = list(state["history"])
        throughput = list(state.get("throughput") or [math.nan] * len(history))
        start_epoch = int(state["epoch"])
        log.info("resuming %s from %s at epoch %d", desc, checkpoint, start_epoch)
    curves = open_logger(
        settings.logger,
        checkpoint.parent if checkpoint is not None and dist.is_main else None,
        [_curve_row(row, speed) for row, speed in zip(history, throughput, strict=True)],
    )

    model = net
    if dist.enabled:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[device] if device.type == "cuda" else None
        )
    criterion = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    steps = train.steps_per_epoch()
    if steps == 0:
        raise ValueError(
            f"{desc}: no training batch (train split of {train.size} images, batch {train.batch_size})"
        )
    global_batch = train.batch_size * dist.world_size
    bar = tqdm(
        total=epochs * steps,
        initial=start_epoch * steps,
        desc=desc,
        leave=False,
        disable=not (settings.progress and dist.is_main),
        dynamic_ncols=True,
    )
    for epoch in range(start_epoch, epochs):
        model.train()
        if on_train_mode is not None:
            on_train_mode()
        generator = epoch_generator(seed, epoch)
        # loss sum, correct, seen, non-finite losses: kept on the device and read every
        # log_every steps, so a step never waits for the GPU (one sync per interval)
        totals = torch.zeros(4, dtype=torch.float64, device=device)
        checked = [0.0] * 4
        first_unchecked = 0
        started = time.perf_counter()
        for step, batch in enumerate(train.train_epoch(seed, epoch)):
            if on_step is not None:
                on_step(epoch * steps + step)
            lr = settings.lr_at(epoch + step / steps, epochs, global_batch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            inputs, targets, kwargs = prepare(batch, True, generator)
            with autocast(settings, device):
                logits = model(inputs, **kwargs)
                loss = criterion(logits.float(), targets)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:  # fp16: the step is skipped (and the scale lowered) when a gradient overflowed
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            with torch.no_grad():
                loss = loss.detach()
                totals[0] += loss.double() * len(targets)
                totals[1] += (logits.argmax(1) == targets).sum()
                totals[2] += len(targets)
                totals[3] += ~torch.isfinite(loss)
            if (step + 1) % settings.log_every == 0 or step + 1 == steps:
                checked = totals.tolist()
                _check_finite(checked, desc, epoch, first_unchecked, step, lr)
                first_unchecked = step + 1
                bar.set_postfix(epoch=epoch + 1, loss=f"{checked[0] / max(checked[2], 1):.3f}")
            bar.update(1)
        totals = checked
        if dist.enabled:
            totals = all_reduce_sum(torch.tensor(checked, dtype=torch.float64), dist).tolist()
        throughput.append(totals[2] / max(time.perf_counter() - started, 1e-9))
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": float(totals[0] / totals[2]),
                "train_accuracy": float(totals[1] / totals[2]),
                "lr": lr,
            }
        )
        # curves first: a kill before the checkpoint redoes the epoch, and the logger drops the
        # row it wrote for it (csv rewritten from the checkpoint's rows, tensorboard purge_step)
        curves.log(_curve_row(history[-1], throughput[-1]))
        if checkpoint is not None and dist.is_main:
            save_atomic(
                {
                    "identity": identity,
                    "epoch": epoch + 1,
                    "net": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "history": history,
                    "throughput": throughput,
                },
                checkpoint,
            )
    bar.close()
    curves.close()
    if dist.enabled:  # BatchNorm statistics drift per rank after the last step: use rank 0's
        for buffer in net.buffers():
            torch.distributed.broadcast(buffer, 0)
    held_out = evaluate(net, val, prepare, dist, settings, seed)
    return FitResult(
        accuracy=held_out.accuracy,
        true_class_score=held_out.true_class_score,
        history=history,
        resumed_from_epoch=start_epoch,
    )
