"""`roarkar -m ...` runs each cell as its own job, with the basic launcher and with submitit_local
(DDP over srun on a real SLURM cluster, compared with one process, is in test_slurm.py)."""

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
