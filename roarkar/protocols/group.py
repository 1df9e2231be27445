"""Layer cells trained together on one shared frozen prefix (roarkar issue 27, item 1).

Cells of the layer protocol that share dataset, model, base model, seed, tap and recipe see the
same batches and the same frozen prefix, so each batch's prefix activation is computed once and
fed to every cell's masker and suffix in turn (each with its own optimizer, generator, global RNG
state, checkpoint and history). One cell steps at a time, so memory holds one suffix's activations
and the one shared prefix activation. Results are bit-identical to training each cell alone: a cell
reuses the activation only when its (augmented) input equals the one it came from, exactly.

Resume: every cell restarts from its own checkpoint; the group runs from the smallest epoch and a
cell that is ahead skips the epochs it has. A cell that fails (e.g. a non-finite loss) leaves the
group and its exception takes its place in the results; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from roarkar.models import TappedNet
from roarkar.protocols.context import Context
from roarkar.protocols.layer import LayerCell, layer_fit_args
from roarkar.training import FitResult
from roarkar.training.trainer import Training

__all__ = ["LayerCell", "SharedPrefix", "group_key", "run_layer_group"]


class SharedPrefix:
    """The last frozen-prefix activation and the input it came from: a call with an equal input
    (same shape, dtype and values) gets that activation back instead of running the prefix."""

    def __init__(self) -> None:
        self.input: Tensor | None = None
        self.output: Tensor | None = None
        self.hits = self.misses = 0

    def __call__(self, prefix: nn.Module, x: Tensor) -> Tensor:
        last = self.input
        if last is not None and last.shape == x.shape and last.dtype == x.dtype:
            if last.device == x.device and torch.equal(last, x):
                self.hits += 1
                return self.output
        self.misses += 1
        self.input, self.output = x, prefix(x).contiguous()
        return self.output


def group_key(ctx: Context, tap: str) -> tuple:
    """What cells must share to train as one group (with the same base model object)."""
    return (
        str(ctx.info.root),
        ctx.spec.seed,
        tap,
        ctx.stage_settings("layer"),
        ctx.epochs("layer"),
        ctx.rank_batch_size,
        ctx.augmentation,
        ctx.dist.device,
        ctx.dist.world_size,
    )


@dataclass
class _Member:
    """One cell's run inside the group and its own global RNG state between its steps."""

    run: Training
    val: object
    rng: Tensor
    cuda_rng: Tensor | None
    error: BaseException | None = None


@contextmanager
def _own_rng(member: _Member, device: torch.device) -> Iterator[None]:
    """The global RNG (dropout, anything not given a generator) as this cell left it."""
    torch.set_rng_state(member.rng)
    if member.cuda_rng is not None:
        torch.cuda.set_rng_state(member.cuda_rng, device)
    try:
        yield
    finally:
        member.rng = torch.get_rng_state()
        if member.cuda_rng is not None:
            member.cuda_rng = torch.cuda.get_rng_state(device)


def _rng_state(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def run_layer_group(
    base: TappedNet, tap: str, cells: Sequence[LayerCell]
) -> list[FitResult | Exception]:
    """Train ``cells`` (one tap of one base model) together and return each cell's result, in
    order: what :func:`roarkar.protocols.layer.run_layer_cell` returns for it alone, or the
    exception that stopped it. Checkpoints are each cell's own, written every epoch."""
    if not cells:
        return []
    keys = [group_key(cell.ctx, tap) for cell in cells]
    if any(key != keys[0] for key in keys):
        raise ValueError(
            "cells of one group must share dataset, seed, tap, recipe and placement; "
            f"got {keys[0]} and {next(k for k in keys if k != keys[0])}"
        )
    device = cells[0].ctx.dist.device
    shared = SharedPrefix()
    members: list[_Member] = []
    for cell in cells:
        args = layer_fit_args(base, tap, cell)
        args["net"].prefix_activation = shared
        val = args.pop("val")
        run = Training(**args)  # seeds the global RNG as fit does: keep that state for this cell
        members.append(_Member(run, val, *_rng_state(device)))
    first = members[0].run
    for epoch in range(min(m.run.start_epoch for m in members), first.epochs):
        live = [m for m in members if m.run.start_epoch <= epoch]
        _each(live, device, Training.begin_epoch, epoch)
        for step, batch in enumerate(first.train.train_epoch(first.seed, epoch)):
            _each(live, device, Training.step, epoch, step, batch)
        _each(live, device, Training.end_epoch, epoch)
    results: list[FitResult | Exception] = []
    for member in members:
        result = _guarded(member, device, Training.finish, member.val)
        results.append(member.error if member.error is not None else result)
    return results


def _each(members: list[_Member], device: torch.device, work: Callable, *args) -> None:
    """``work(run, *args)`` for every member still in the group, in order."""
    for member in members:
        _guarded(member, device, work, *args)


def _guarded(member: _Member, device: torch.device, work: Callable, *args):
    """``work(member.run, *args)`` under the member's own RNG, unless it failed before; a failure
    is kept as the member's result and takes it out of the group."""
    if member.error is not None:
        return None
    try:
        with _own_rng(member, device):
            return work(member.run, *args)
    except Exception as error:  # noqa: BLE001 - one cell's failure is that cell's result
        member.error = error
        return None
