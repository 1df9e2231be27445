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
    "Training",
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


class Training:
    """One run of :func:`fit` held between steps: the optimizer, resumed state, epoch totals and
    history. :func:`fit` drives one; a cell group (:mod:`roarkar.protocols.group`) drives several
    in lockstep over the same batches, each exactly as :func:`fit` would alone."""

    def __init__(
        self,
        net: nn.Module,
        parameters: list[nn.Parameter],
        prepare: PrepareFn,
        train: ArrayBatches,
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
    ):
        self.dist = dist = dist or DistInfo()
        self.net, self.prepare, self.train, self.settings = net, prepare, train, settings
        self.epochs, self.seed, self.checkpoint, self.identity = epochs, seed, checkpoint, identity
        self.desc, self.on_train_mode, self.on_step = desc, on_train_mode, on_step
        device = dist.device
        torch.manual_seed(seed)
        net.to(device)
        if use_channels_last(settings, device):
            net.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(
            parameters,
            lr=settings.lr,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
            nesterov=settings.nesterov,
        )
        self.scaler = grad_scaler(settings, device)
        self.history: list[dict] = []
        self.throughput: list[float] = []  # images/s per epoch: the curves only, never the history
        self.start_epoch = 0
        if checkpoint is not None and checkpoint.exists():
            state = load_checkpoint(checkpoint, identity)
            net.load_state_dict(state["net"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.history = list(state["history"])
            self.throughput = list(state.get("throughput") or [math.nan] * len(self.history))
            self.start_epoch = int(state["epoch"])
            log.info("resuming %s from %s at epoch %d", desc, checkpoint, self.start_epoch)
        self.curves = open_logger(
            settings.logger,
            checkpoint.parent if checkpoint is not None and dist.is_main else None,
            [_curve_row(r, s) for r, s in zip(self.history, self.throughput, strict=True)],
        )
        self.model = net
        if dist.enabled:
            self.model = nn.parallel.DistributedDataParallel(
                net, device_ids=[device] if device.type == "cuda" else None
            )
        self.criterion = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
        self.steps = train.steps_per_epoch()
        if self.steps == 0:
            raise ValueError(
                f"{desc}: no training batch (train split of {train.size} images, batch {train.batch_size})"
            )
        self.global_batch = train.batch_size * dist.world_size
        self.bar = tqdm(
            total=epochs * self.steps,
            initial=self.start_epoch * self.steps,
            desc=desc,
            leave=False,
            disable=not (settings.progress and dist.is_main),
            dynamic_ncols=True,
        )

    def begin_epoch(self, epoch: int) -> None:
        """Train mode, this epoch's generator (augmentation, a method's draws) and zero totals."""
        self.model.train()
        if self.on_train_mode is not None:
            self.on_train_mode()
        self.generator = epoch_generator(self.seed, epoch)
        # loss sum, correct, seen, non-finite losses: kept on the device and read every
        # log_every steps, so a step never waits for the GPU (one sync per interval)
        self.totals = torch.zeros(4, dtype=torch.float64, device=self.dist.device)
        self.checked = [0.0] * 4
        self.first_unchecked = 0
        self.started = time.perf_counter()

    def step(self, epoch: int, step: int, batch: dict[str, Tensor]) -> None:
        """One training step on ``batch`` (step ``step`` of ``epoch``)."""
        steps, settings, device, totals = self.steps, self.settings, self.dist.device, self.totals
        if self.on_step is not None:
            self.on_step(epoch * steps + step)
        self.lr = lr = settings.lr_at(epoch + step / steps, self.epochs, self.global_batch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        inputs, targets, kwargs = self.prepare(batch, True, self.generator)
        with autocast(settings, device):
            logits = self.model(inputs, **kwargs)
            loss = self.criterion(logits.float(), targets)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:  # fp16: the step is skipped (and the scale lowered) when a gradient overflowed
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        with torch.no_grad():
            loss = loss.detach()
            totals[0] += loss.double() * len(targets)
            totals[1] += (logits.argmax(1) == targets).sum()
            totals[2] += len(targets)
            totals[3] += ~torch.isfinite(loss)
        if (step + 1) % settings.log_every == 0 or step + 1 == steps:
            self.checked = checked = totals.tolist()
            _check_finite(checked, self.desc, epoch, self.first_unchecked, step, lr)
            self.first_unchecked = step + 1
            self.bar.set_postfix(epoch=epoch + 1, loss=f"{checked[0] / max(checked[2], 1):.3f}")
        self.bar.update(1)

    def end_epoch(self, epoch: int) -> None:
        """The epoch's history entry and checkpoint (rank 0)."""
        totals = self.checked
        if self.dist.enabled:
            totals = all_reduce_sum(torch.tensor(totals, dtype=torch.float64), self.dist).tolist()
        self.throughput.append(totals[2] / max(time.perf_counter() - self.started, 1e-9))
        self.history.append(
            {
                "epoch": epoch + 1,
                "train_loss": float(totals[0] / totals[2]),
                "train_accuracy": float(totals[1] / totals[2]),
                "lr": self.lr,
            }
        )
        # curves first: a kill before the checkpoint redoes the epoch, and the logger drops the
        # row it wrote for it (csv rewritten from the checkpoint's rows, tensorboard purge_step)
        self.curves.log(_curve_row(self.history[-1], self.throughput[-1]))
        if self.checkpoint is not None and self.dist.is_main:
            save_atomic(
                {
                    "identity": self.identity,
                    "epoch": epoch + 1,
                    "net": self.net.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                    "history": self.history,
                    "throughput": self.throughput,
                },
                self.checkpoint,
            )

    def finish(self, val: ArrayBatches) -> FitResult:
        """The final-epoch accuracy and true-class score on ``val``, with the history."""
        self.bar.close()
        self.curves.close()
        if (
            self.dist.enabled
        ):  # BatchNorm statistics drift per rank after the last step: use rank 0's
            for buffer in self.net.buffers():
                torch.distributed.broadcast(buffer, 0)
        held_out = evaluate(self.net, val, self.prepare, self.dist, self.settings, self.seed)
        return FitResult(
            accuracy=held_out.accuracy,
            true_class_score=held_out.true_class_score,
            history=self.history,
            resumed_from_epoch=self.start_epoch,
        )


def fit(
    net: nn.Module,
    parameters: list[nn.Parameter],
    prepare: PrepareFn,
    train: ArrayBatches,
    val: ArrayBatches,
    settings: TrainerSettings,
    **options: Any,
) -> FitResult:
    """Train ``parameters`` of ``net`` for ``epochs`` epochs, resuming from ``checkpoint`` if it
    exists, then return the final-epoch accuracy and true-class score on ``val``.

    ``options``: :class:`Training`'s keywords (``epochs``, ``seed``, ``checkpoint`` and
    ``identity`` required; ``dist``, ``desc``, ``on_train_mode``, ``on_step``).
    ``net(inputs, **kwargs)`` gives logits; ``prepare`` moves, masks and augments a batch.
    ``on_train_mode`` runs after ``net.train()`` each epoch (the layer protocol puts its frozen
    prefix back in eval mode there). ``on_step(global_step)`` runs before every training step,
    counted from 0 over all epochs (``epoch * steps_per_epoch + step``): the one hook into the
    loop (a cell keeps its claim alive with it; the resume test kills the run at a given step).
    """
    run = Training(net, parameters, prepare, train, settings, **options)
    for epoch in range(run.start_epoch, run.epochs):
        run.begin_epoch(epoch)
        for step, batch in enumerate(train.train_epoch(run.seed, epoch)):
            run.step(epoch, step, batch)
        run.end_epoch(epoch)
    return run.finish(val)
