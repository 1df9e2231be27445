"""trainer.amp=fp16: a real GradScaler on CPU (torch supports fp16 autocast and GradScaler("cpu")),
its state resumed bit for bit, overflowing steps skipped; bf16 stays the CUDA default."""

from __future__ import annotations

import pytest
import torch

import roarkar.training.trainer as trainer_module
from roarkar.models import build_model
from roarkar.training import TrainerSettings, load_checkpoint
from roarkar.training.settings import amp_dtype, grad_scaler
from tests.tiny_training import fit_in_process


class _Stop(Exception):
    """Raised from on_step: the run stops mid-epoch, as after a kill."""


def _fit(checkpoint, epochs=3, on_step=None, amp="fp16"):
    torch.manual_seed(0)
    model = build_model("small_resnet", 4, width=4)
    settings = TrainerSettings.preset(
        batch_size=16, lr=0.05, lr_reference_batch=16, schedule="cosine", amp=amp, progress=False
    )
    result = fit_in_process(
        model,
        settings,
        checkpoint,
        identity="fp16",
        epochs=epochs,
        train_size=64,
        seed=3,
        on_step=on_step,
    )
    return model, result


def test_amp_dtypes_and_scaler_only_for_fp16():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert (
        amp_dtype(TrainerSettings.preset(), cuda) is torch.bfloat16
    )  # the CUDA default stays bf16
    assert amp_dtype(TrainerSettings.preset(), cpu) is None
    assert amp_dtype(TrainerSettings.preset(amp="fp16"), cuda) is torch.float16
    assert grad_scaler(TrainerSettings.preset(), cpu) is None
    assert grad_scaler(TrainerSettings.preset(amp="bf16"), cpu) is None
    scaler = grad_scaler(TrainerSettings.preset(amp="fp16"), cpu)
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()
    with pytest.raises(ValueError, match="trainer.amp"):
        amp_dtype(TrainerSettings.preset(amp="fp8"), cpu)


def test_fp16_stopped_mid_epoch_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    # a scale that overflows at first and grows every 3 steps: the scaler's state changes all
    # along, so a resume that did not restore it would train differently
    def busy_scaler(settings, device):
        if amp_dtype(settings, device) != torch.float16:
            return None
        return torch.amp.GradScaler("cpu", init_scale=2.0**24, growth_interval=3)

    monkeypatch.setattr(trainer_module, "grad_scaler", busy_scaler)
    straight, whole = _fit(tmp_path / "straight.pt")

    def stop_at(step: int) -> None:
        if step == 6:  # 4 steps per epoch: in the middle of epoch 2
            raise _Stop

    with pytest.raises(_Stop):
        _fit(tmp_path / "resumed.pt", on_step=stop_at)
    saved = load_checkpoint(tmp_path / "resumed.pt", "fp16")
    assert saved["epoch"] == 1 and saved["scaler"]["scale"] != 2.0**24
    resumed, result = _fit(tmp_path / "resumed.pt")
    assert result.resumed_from_epoch == 1
    assert result.history == whole.history
    assert (result.accuracy, result.true_class_score) == (whole.accuracy, whole.true_class_score)
    a, b = straight.state_dict(), resumed.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (
        load_checkpoint(tmp_path / "resumed.pt", "fp16")["scaler"]
        == (load_checkpoint(tmp_path / "straight.pt", "fp16")["scaler"])
    )


def test_fp16_skips_the_step_of_an_overflowing_gradient(tmp_path):
    torch.manual_seed(0)
    model = build_model("small_resnet", 4, width=4)
    weight = next(model.parameters())
    seen: list[torch.Tensor] = []
    plant = {"on": False}
    weight.register_hook(lambda g: g * float("inf") if plant["on"] else g)

    def on_step(step: int) -> None:
        seen.append(weight.detach().clone())
        plant["on"] = step == 2  # step 2's gradient overflows

    settings = TrainerSettings.preset(
        batch_size=16, lr=0.05, lr_reference_batch=16, amp="fp16", progress=False
    )
    fit_in_process(
        model,
        settings,
        tmp_path / "ckpt.pt",
        identity="inf",
        epochs=1,
        train_size=64,
        on_step=on_step,
    )
    assert not torch.equal(seen[1], seen[2])  # an ordinary step moves the weights
    assert torch.equal(seen[2], seen[3])  # the overflowing one is skipped (momentum and decay too)
    scale = load_checkpoint(tmp_path / "ckpt.pt", "inf")["scaler"]["scale"]
    assert scale == 2.0**16 * 0.5  # the default scale, backed off once


def test_fp16_learns_and_checkpoints_its_scaler_float32_none(tmp_path):
    _, result = _fit(tmp_path / "fp16.pt")
    assert result.history[-1]["train_accuracy"] > 0.6 and result.accuracy > 0.6  # chance 0.25
    assert load_checkpoint(tmp_path / "fp16.pt", "fp16")["scaler"]["scale"] == 2.0**16
    _fit(tmp_path / "off.pt", epochs=1, amp="off")
    assert load_checkpoint(tmp_path / "off.pt", "fp16")["scaler"] is None
