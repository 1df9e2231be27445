"""A tiny but real training run, used by the resume and DDP tests as a subprocess.

python tests/tiny_training.py OUT_DIR [--epochs N] [--batch B] [--kill-at-step S]; under torchrun
each rank joins the group. ``--kill-at-step S`` SIGKILLs the process just before global training
step S (through the trainer's ``on_step`` hook): the resume test's fault injection.
Writes OUT_DIR/final-rank{R}.pt (the weights) and OUT_DIR/accuracy-rank{R}.txt (accuracy, the
epoch it resumed from, true-class score: one a line).
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import torch

from roarkar.models import build_model
from roarkar.training import ArrayBatches, DistInfo, FitResult, TrainerSettings, fit, setup


def tiny_data(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Images whose label is which quadrant is bright: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    images = torch.randn(n, 3, 16, 16, generator=g) * 0.3
    for i, label in enumerate(labels.tolist()):
        r, c = divmod(label, 2)
        images[i, :, r * 8 : r * 8 + 8, c * 8 : c * 8 + 8] += 1.5
    return {"images": images, "labels": labels}


def fit_in_process(
    model: torch.nn.Module,
    settings: TrainerSettings,
    checkpoint: Path,
    *,
    identity: str,
    epochs: int,
    train_size: int = 32,
    seed: int = 0,
    dist: DistInfo | None = None,
    on_step=None,
) -> FitResult:
    """``fit`` every parameter of ``model`` on ``train_size`` tiny images (16 held out) in this
    process: the in-process tests' run."""
    return fit(
        model,
        list(model.parameters()),
        lambda b, t, g: (b["images"], b["labels"], {}),
        ArrayBatches(tiny_data(train_size), settings.batch_size),
        ArrayBatches(tiny_data(16, seed=1), 16),
        settings,
        epochs=epochs,
        seed=seed,
        checkpoint=checkpoint,
        identity=identity,
        dist=dist,
        on_step=on_step,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--kill-at-step", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dist = setup("cpu")
    torch.manual_seed(0)
    model = build_model("small_resnet", 4, width=4)
    settings = TrainerSettings.preset(
        batch_size=args.batch,
        lr=0.05,
        lr_reference_batch=args.batch * dist.world_size,
        schedule="cosine",
        weight_decay=0.0,
        progress=False,
    )

    def prepare(batch, train, generator):
        return batch["images"], batch["labels"], {}

    def kill_at(step: int) -> None:
        if step == args.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)

    result = fit(
        model,
        list(model.parameters()),
        prepare,
        ArrayBatches(tiny_data(128), args.batch, dist),
        ArrayBatches(tiny_data(64, seed=1), 64, dist),
        settings,
        epochs=args.epochs,
        seed=7,
        checkpoint=args.out / "checkpoint.pt",
        identity="tiny",
        dist=dist,
        desc="tiny",
        on_step=kill_at if args.kill_at_step is not None else None,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / f"final-rank{dist.rank}.pt")
    (args.out / f"accuracy-rank{dist.rank}.txt").write_text(
        f"{result.accuracy!r}\n{result.resumed_from_epoch}\n{result.true_class_score!r}\n"
    )


if __name__ == "__main__":
    main()
