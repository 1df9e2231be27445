"""trainer.logger: per-epoch curves (csv default, tensorboard, none) next to the checkpoint, one row
per epoch after a kill and resume, rank 0 only, never part of an identity."""

from __future__ import annotations

import csv

import pytest
import torch

import roarkar.training.trainer as trainer_module
from roarkar.models import build_model
from roarkar.registry import UnknownName
from roarkar.training import TrainerSettings
from roarkar.training.curves import COLUMNS, CURVE_FILE
from roarkar.training.distributed import DistInfo
from tests.tiny_training import fit_in_process


class _Stop(Exception):
    """A run dying at a chosen point."""


def _fit(directory, logger="csv", epochs=3, dist=None, on_step=None):
    torch.manual_seed(0)
    model = build_model("small_resnet", 4, width=4)
    settings = TrainerSettings.preset(
        batch_size=16, lr=0.05, lr_reference_batch=16, logger=logger, progress=False
    )
    checkpoint = directory / "checkpoint.pt"
    return fit_in_process(
        model, settings, checkpoint, identity="curves", epochs=epochs, dist=dist, on_step=on_step
    )


def _rows(directory) -> list[dict]:
    with (directory / CURVE_FILE).open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        return list(reader)


def _die_after_logging_epoch(monkeypatch, epoch: int) -> None:
    """The run dies between writing epoch ``epoch``'s curves and its checkpoint."""
    save = trainer_module.save_atomic

    def save_or_die(obj, path):
        if obj["epoch"] == epoch:
            raise _Stop
        save(obj, path)

    monkeypatch.setattr(trainer_module, "save_atomic", save_or_die)


def test_csv_is_the_default_one_row_per_epoch(tmp_path):
    assert TrainerSettings.preset().logger == "csv"
    result = _fit(tmp_path)
    rows = _rows(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for row, entry in zip(rows, result.history, strict=True):
        for key in ("train_loss", "train_accuracy", "lr"):
            assert float(row[key]) == entry[key]  # repr round-trips exactly
        assert float(row["images_per_s"]) > 0
    assert all("images_per_s" not in entry for entry in result.history)  # timing is no result


def test_csv_after_a_kill_and_resume_has_each_epoch_once(tmp_path, monkeypatch):
    straight = _fit(tmp_path / "straight")
    with monkeypatch.context() as patch:
        _die_after_logging_epoch(patch, 2)  # epoch 2's row written, its checkpoint not
        with pytest.raises(_Stop):
            _fit(tmp_path / "resumed")
    assert [int(r["epoch"]) for r in _rows(tmp_path / "resumed")] == [1, 2]
    resumed = _fit(tmp_path / "resumed")
    assert resumed.resumed_from_epoch == 1 and resumed.history == straight.history
    rows = _rows(tmp_path / "resumed")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    expected = _rows(tmp_path / "straight")
    for got, want in zip(rows, expected, strict=True):
        assert {k: got[k] for k in COLUMNS[:4]} == {k: want[k] for k in COLUMNS[:4]}


def test_tensorboard_events_one_scalar_per_epoch_after_a_resume(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with monkeypatch.context() as patch:
        _die_after_logging_epoch(patch, 2)
        with pytest.raises(_Stop):
            _fit(tmp_path, logger="tensorboard")
    result = _fit(tmp_path, logger="tensorboard")
    assert result.resumed_from_epoch == 1
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert {f"train/{c}" for c in COLUMNS[1:]} <= set(events.Tags()["scalars"])
    losses = events.Scalars("train/train_loss")
    assert [e.step for e in losses] == [1, 2, 3]  # the dead run's epoch 2 was purged
    assert [e.value for e in losses] == pytest.approx([h["train_loss"] for h in result.history])
    assert not (tmp_path / CURVE_FILE).exists()


def test_none_writes_nothing_and_other_ranks_write_nothing(tmp_path):
    _fit(tmp_path / "none", logger="none", epochs=1)
    assert not (tmp_path / "none" / CURVE_FILE).exists()
    _fit(tmp_path / "rank1", epochs=1, dist=DistInfo(rank=1))
    assert not (tmp_path / "rank1").exists()  # neither a checkpoint nor curves off rank 0


def test_unknown_logger_is_refused_by_name(tmp_path):
    with pytest.raises(UnknownName, match=r"trainer.logger='tensorbord'.*did you mean"):
        _fit(tmp_path, logger="tensorbord", epochs=1)


def test_the_logger_is_never_part_of_an_identity(tmp_path):
    from hydra import compose, initialize_config_dir

    from roarkar.config import register_configs
    from roarkar.protocols.cell import cell_path
    from tests.conftest import CONF_DIR

    register_configs()  # the schema and the method configs, as the entry points do
    identities = set()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for logger in ("csv", "tensorboard", "none"):
            cfg = compose(
                "config", [f"paths.results={tmp_path}", "task=cell", f"trainer.logger={logger}"]
            )
            assert cfg.trainer.logger == logger
            identities.add(cell_path(cfg)[1])
    assert len(identities) == 1
