"""`roarkar -m ...` runs each cell as its own job, with the basic launcher and with submitit_local."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _multirun(tmp_path, *extra: str) -> list[dict]:
    results = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "roarkar.cli",
        "-m",
        "debug=smoke",
        f"paths.results={results}",
        "method=random,smoe_scale",
        "protocol.layer=L5",
        *extra,
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env=os.environ | {"OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return [json.loads(p.read_text()) for p in sorted((results / "cells").rglob("result.json"))]


def _check(records):
    assert sorted(r["cell"]["method"] for r in records) == ["random", "smoe_scale"]
    assert all(r["status"] == "ok" and r["cell"]["layer"] == "L5" for r in records)


def test_multirun_basic_launcher(tmp_path):
    _check(_multirun(tmp_path))


@pytest.mark.parametrize("launcher", ["submitit_local"])
def test_multirun_submitit_local(tmp_path, launcher):
    records = _multirun(tmp_path, f"hydra/launcher={launcher}", "hydra.launcher.timeout_min=10")
    _check(records)
    logs = list((tmp_path / "results" / "hydra" / "multirun").rglob("*_log.out"))
    assert logs, "submitit wrote no job logs: the jobs did not go through submitit"


def test_ddp_two_tasks_under_submitit_local_match_one_process(tmp_path):
    """tasks_per_node=2: submitit's TorchDistributedEnvironment -> gloo DDP; the same cell (same
    identity, same global batches) as one process, within the tolerance of BatchNorm statistics
    computed over half batches and a 48-image validation split."""
    common = [
        "task=cell",
        "debug=smoke",
        "protocol.layer=L3",
        "method=smoe_scale",
        "dataset.train_size=256",
        "trainer.epochs.base=3",
        "trainer.epochs.layer=2",
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "roarkar.cli",
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.tasks_per_node=2",
            f"paths.results={tmp_path / 'two'}",
            *common,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [sys.executable, "-m", "roarkar.cli", f"paths.results={tmp_path / 'one'}", *common],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert one.returncode == 0, one.stderr[-3000:]

    def load(name):
        cell = json.loads(next((tmp_path / name / "cells").rglob("result.json")).read_text())
        base = json.loads(next((tmp_path / name / "models").rglob("result.json")).read_text())
        return cell, base

    (cell2, base2), (cell1, base1) = load("two"), load("one")
    assert (cell2["world_size"], base2["world_size"], cell1["world_size"]) == (2, 2, 1)
    assert (
        cell2["cell_id"] == cell1["cell_id"]
    )  # the global batch, not the per-process one, is the identity
    for h2, h1 in zip(
        base2["history"] + cell2["history"], base1["history"] + cell1["history"], strict=True
    ):
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=0.03)
    assert base2["accuracy"] == pytest.approx(base1["accuracy"], abs=0.1)
    assert cell2["accuracy"] == pytest.approx(cell1["accuracy"], abs=0.2)


def test_ddp_streaming_from_uneven_shards_does_not_hang(tmp_path):
    """Two gloo ranks streaming shards of 40, 40 and 16 images, each through a loader worker
    process: rank 0 reads two shards, rank 1 one, and both still take the same number of steps."""
    cmd = [
        sys.executable,
        "-m",
        "roarkar.cli",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.tasks_per_node=2",
        "hydra.launcher.timeout_min=5",
        f"paths.results={tmp_path}",
        "task=cell",
        "debug=smoke",
        "loader.in_memory=false",
        "loader.workers=1",
        "dataset.shard_size=40",
        "protocol=input",
        "method=smoe_scale",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=400, env=os.environ | {"OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = [json.loads(p.read_text()) for p in (tmp_path / "cells").rglob("result.json")]
    assert result["status"] == "ok" and result["world_size"] == 2
