"""The trainer: resume after a real kill mid-epoch, 2-process DDP on gloo, NaN loss, schedules."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from roarkar.models import build_model
from roarkar.training import (
    ArrayBatches,
    CheckpointMismatchError,
    NonFiniteLossError,
    TrainerSettings,
    load_checkpoint,
)
from roarkar.training.distributed import DistInfo

SCRIPT = Path(__file__).resolve().parents[1] / "tiny_training.py"


def _run(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(out), *args],
        env=os.environ | {"OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu")


def _held_out_by_hand(weights: Path) -> tuple[float, float]:
    """Accuracy and mean true-class softmax probability of the saved tiny model on its val split,
    computed here in float64 from one forward pass over all 64 images (not by the trainer)."""
    from tests.tiny_training import tiny_data

    model = build_model("small_resnet", 4, width=4)
    model.load_state_dict(_weights(weights))
    val = tiny_data(64, seed=1)
    with torch.no_grad():
        logits = model.eval()(val["images"]).double()
    probs = torch.softmax(logits, 1)[torch.arange(64), val["labels"]]
    correct = (logits.argmax(1) == val["labels"]).double()
    return float(correct.mean()), float(probs.mean())


def _measured(out: Path, rank: int = 0) -> tuple[float, int, float]:
    """(accuracy, resumed-from epoch, true-class score) that tiny_training.py wrote."""
    acc, resumed, score = (out / f"accuracy-rank{rank}.txt").read_text().split()
    return float(acc), int(resumed), float(score)


def test_resume_after_kill_mid_epoch_matches_uninterrupted(tmp_path):
    straight = _run(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    # 8 steps per epoch (128 images, batch 16): step 13 is in the middle of epoch 2
    killed = _run(tmp_path / "resumed", "--kill-at-step", "13")
    assert killed.returncode == -9, killed.stderr  # really killed by SIGKILL
    assert (tmp_path / "resumed" / "checkpoint.pt").exists()
    assert not (tmp_path / "resumed" / "final-rank0.pt").exists()
    resumed = _run(tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "resumed" / "accuracy-rank0.txt").read_text().split()[
        1
    ] == "1"  # resumed at epoch 1
    a, b = (
        _weights(tmp_path / "straight" / "final-rank0.pt"),
        _weights(tmp_path / "resumed" / "final-rank0.pt"),
    )
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    accuracy, _, score = _measured(tmp_path / "straight")
    assert accuracy > 0.5  # the tiny task is learnable: 4 classes, chance 0.25
    assert (accuracy, score) == pytest.approx(
        _held_out_by_hand(tmp_path / "straight" / "final-rank0.pt"), abs=1e-6
    )
    assert 0.25 < score <= 1.0


def test_two_process_ddp_on_gloo(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        str(SCRIPT),
        str(tmp_path),
        "--batch",
        "8",
    ]
    proc = subprocess.run(
        cmd, env=os.environ | {"OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0, w1 = _weights(tmp_path / "final-rank0.pt"), _weights(tmp_path / "final-rank1.pt")
    for key in w0:
        assert torch.equal(w0[key], w1[key]), f"{key} differs across ranks"
    acc0, _, score0 = _measured(tmp_path, 0)
    acc1, _, score1 = _measured(tmp_path, 1)
    assert (acc0, score0) == (acc1, score1)  # evaluation is all-reduced over both ranks
    assert acc0 > 0.5
    # each rank saw half the val split: the reduced score is the mean over all of it
    assert (acc0, score0) == pytest.approx(_held_out_by_hand(tmp_path / "final-rank0.pt"), abs=1e-6)


def _tiny_fit(tmp_path, lr=0.05, identity="x", epochs=1, model=None):
    from tests.tiny_training import fit_in_process

    model = model or build_model("small_resnet", 4, width=4)
    settings = TrainerSettings.preset(batch_size=16, lr=lr, lr_reference_batch=16, progress=False)
    return fit_in_process(model, settings, tmp_path / "ckpt.pt", identity=identity, epochs=epochs)


class _FixedLogits(torch.nn.Module):
    """Logits chosen per sample (by its index), so the expected score is known in closed form."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.table = logits

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.table[index]


def test_evaluate_reports_the_mean_true_class_probability():
    from roarkar.training import evaluate

    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0], [0.5, 0.5, 0.5], [0.0, 4.0, 1.0]])
    labels = torch.tensor([0, 1, 2, 1])
    # true-class probabilities, written out: e^2/(e^2+2), e/(1+e+e^3), 1/3, e^4/(1+e^4+e)
    e = torch.e
    expected = (e**2 / (e**2 + 2) + e / (1 + e + e**3) + 1 / 3 + e**4 / (1 + e**4 + e)) / 4
    batches = ArrayBatches({"index": torch.arange(4), "labels": labels}, batch_size=3)
    got = evaluate(
        _FixedLogits(logits),
        batches,
        lambda b, t, g: (b["index"], b["labels"], {}),
        DistInfo(),
        TrainerSettings.preset(progress=False),
    )
    # argmax: 0, 2, 0 (first of a tie), 1 -> two of four right
    assert got.accuracy == 0.5
    assert got.true_class_score == pytest.approx(expected, abs=1e-7)
    empty = ArrayBatches({"index": torch.arange(0), "labels": labels[:0]}, batch_size=3)
    nothing = evaluate(
        _FixedLogits(logits), empty, lambda b, t, g: (b["index"], b["labels"], {}), DistInfo(),
        TrainerSettings.preset(progress=False),
    )  # fmt: skip
    assert math.isnan(nothing.accuracy) and math.isnan(nothing.true_class_score)


def test_fit_returns_the_true_class_score_beside_accuracy(tmp_path):
    """fit's score is the mean softmax probability of the true class on its val split, and its
    accuracy the top-1 rate, both recomputed here in float64 on the trained model."""
    from tests.tiny_training import tiny_data

    model = build_model("small_resnet", 4, width=4)
    result = _tiny_fit(tmp_path, epochs=2, model=model)
    val = tiny_data(16, 1)
    with torch.no_grad():
        logits = model.eval()(val["images"]).double()
    true_class = torch.softmax(logits, 1)[torch.arange(16), val["labels"]]
    correct = (logits.argmax(1) == val["labels"]).double()
    assert result.true_class_score == pytest.approx(float(true_class.mean()), abs=1e-6)
    assert result.accuracy == pytest.approx(float(correct.mean()), abs=1e-12)
    assert 0.0 < result.true_class_score <= 1.0
    assert result.true_class_score != result.accuracy


def test_nan_loss_stops_with_a_clear_error(tmp_path):
    with pytest.raises(NonFiniteLossError, match="loss is nan at epoch 1"):
        _tiny_fit(tmp_path, lr=float("nan"))


def test_checkpoint_of_another_run_is_refused(tmp_path):
    _tiny_fit(tmp_path, identity="run-a")
    with pytest.raises(CheckpointMismatchError, match="belongs to run 'run-a'"):
        load_checkpoint(tmp_path / "ckpt.pt", "run-b")
    with pytest.raises(CheckpointMismatchError, match="ckpt.pt"):
        _tiny_fit(tmp_path, identity="run-b")


def test_learning_rate_schedules():
    step = TrainerSettings.preset(
        lr=0.1, lr_reference_batch=256, schedule="step", milestones=(0.5,)
    )
    assert step.lr_at(0, 10, 512) == pytest.approx(0.2)  # linear scaling with the global batch
    assert step.lr_at(5, 10, 256) == pytest.approx(0.01)
    cosine = TrainerSettings.preset(lr=0.1, lr_reference_batch=256, schedule="cosine")
    assert cosine.lr_at(10, 10, 256) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="unknown trainer settings"):
        TrainerSettings.from_config({"lr": 0.1, "learning_rate": 0.2})


def test_batches_split_evenly_across_ranks():
    arrays = {"x": torch.arange(103)}
    ranks = [ArrayBatches(arrays, 10, DistInfo(rank=r, world_size=2)) for r in range(2)]
    seen = [torch.cat([b["x"] for b in rb.train_epoch(0, 0)]) for rb in ranks]
    assert len(seen[0]) == len(seen[1]) == 50  # equal step counts: DDP never waits on one rank
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    evaluated = torch.cat([b["x"] for rb in ranks for b in rb.eval_batches()])
    assert sorted(evaluated.tolist()) == list(range(103))  # evaluation sees every sample once


class _Payload:
    """A pickle that would create ``marker`` when unpickled with an unrestricted loader."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_crafted_checkpoint_is_refused_not_executed(tmp_path):
    from roarkar.protocols.base import load_model_file

    marker = tmp_path / "code-ran"
    crafted = tmp_path / "ckpt.pt"
    torch.save({"identity": "x", "payload": _Payload(marker)}, crafted)
    with pytest.raises(CheckpointMismatchError, match=r"ckpt\.pt"):
        load_checkpoint(crafted, "x")
    with pytest.raises(CheckpointMismatchError, match=r"ckpt\.pt"):
        load_model_file(crafted, "x", build_model("small_resnet", 4))
    assert not marker.exists(), "unpickling ran the payload"
