"""Two sweeps on one results tree, crashed and preempted cells: no result lost, none duplicated."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import submitit

from roarkar.protocols.cell import CellJob, cell_path, run_base, run_cell
from roarkar.store import CLAIM_FILE, Claim

STUDY = [
    "study.layer.methods=[random,smoe_scale]",
    "study.layer.layers=[L1,L3,L5]",
    "study.input=null",
]


def test_two_sweeps_racing_train_each_cell_once(tmp_path):
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "roarkar.cli", "debug=smoke", f"paths.results={results}", *STUDY]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][1][-2000:] + outs[1][1][-2000:]
    trained = sum(line.endswith("(ok)") for out, _ in outs for line in out.splitlines())
    records = [json.loads(p.read_text()) for p in (results / "cells").rglob("result.json")]
    assert len(records) == 2 * 3 * 2 and all(r["status"] == "ok" for r in records)
    assert trained == len(records)  # every cell trained by exactly one of the two sweeps
    assert not list((results / "cells").rglob(CLAIM_FILE))  # every claim released


def test_live_claim_is_respected_and_dead_one_taken_over(compose_cfg):
    cfg = compose_cfg(["task=cell", "protocol.layer=L5"])
    _, _, directory = cell_path(cfg)
    directory.mkdir(parents=True)
    live = {
        "host": "another-host",
        "pid": 1,
        "job": "",
        "token": "x",
        "claimed_at": time.time(),
        "expires_at": time.time() + 600,
    }
    (directory / CLAIM_FILE).write_text(json.dumps(live))
    record = run_cell(cfg)
    assert record["status"] == "running" and record["claimed_by"]["host"] == "another-host"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: its owner crashed
    crashed = live | {"host": socket.gethostname(), "pid": dead.pid}
    (directory / CLAIM_FILE).write_text(json.dumps(crashed))
    assert run_cell(cfg)["status"] == "ok"
    expired = live | {"expires_at": time.time() - 1}
    claim = Claim(directory, 60)
    (directory / CLAIM_FILE).write_text(json.dumps(expired))
    assert claim.acquire() and claim.holder()["token"] == claim.token
    claim.release()
    assert not (directory / CLAIM_FILE).exists()


def test_preempted_cell_requeues_and_resumes_to_the_same_result(compose_cfg, tmp_path):
    settings = [
        "task=cell",
        "protocol.layer=L3",
        "dataset.train_size=480",
        "trainer.epochs.layer=4",
    ]
    straight_cfg = compose_cfg(settings, results=tmp_path / "straight")
    run_base(straight_cfg)
    straight = run_cell(straight_cfg)
    cfg = compose_cfg(settings, results=tmp_path / "preempted")
    run_base(cfg)  # the job goes straight to the cell
    _, _, directory = cell_path(cfg)
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="local")
    executor.update_parameters(timeout_min=10, local_setup=["export OMP_NUM_THREADS=1"])
    job = executor.submit(CellJob(), cfg)
    deadline = time.time() + 300
    while not (directory / "checkpoint.pt").exists():  # epoch 1 is done, epoch 2 running
        assert time.time() < deadline and not job.done(), job.stderr()
        time.sleep(0.05)
    # SIGUSR2 to the task running the cell (its pid is in the claim), as SLURM's --signal=USR2@t does
    # before preemption or the time limit; submitit checkpoints, requeues and restarts the task.
    task_pid = json.loads((directory / CLAIM_FILE).read_text())["pid"]
    os.kill(task_pid, signal.SIGUSR2)
    record = job.result()
    assert "Requeued" in (job.stdout() or "") + (job.stderr() or ""), (job.stderr() or "")[-2000:]
    assert record["status"] == "ok" and record["resumed_from_epoch"] >= 1
    assert record["accuracy"] == pytest.approx(straight["accuracy"], abs=1e-9)
    for a, b in zip(record["history"], straight["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
