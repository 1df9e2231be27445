"""Two studies on one results tree, crashed cells: no result lost, none duplicated. (Preempted and
timed-out cells, and overlapping SLURM sweeps, are tested on a real scheduler in test_slurm.py.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from roarkar.protocols.cell import cell_path, run_cell
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


def test_a_training_cell_keeps_its_claim_alive_every_step(compose_cfg, monkeypatch):
    """The trainer's one per-step hook carries the claim's heartbeat: a long cell is not taken
    over by another sweep while it trains (the heartbeat itself rate-limits its writes). Every
    training step, over two epochs, beats exactly once, in step order."""
    from roarkar.protocols import layer

    events = []
    heartbeat = Claim.heartbeat
    monkeypatch.setattr(Claim, "heartbeat", lambda self: events.append("beat") or heartbeat(self))
    fit = layer.fit

    def fit_seeing_steps(*args, on_step=None, **kwargs):
        assert on_step is not None, "the cell gave the trainer no per-step hook"
        return fit(*args, on_step=lambda s: events.append(s) or on_step(s), **kwargs)

    monkeypatch.setattr(layer, "fit", fit_seeing_steps)
    cfg = compose_cfg(["task=cell", "protocol.layer=L5", "trainer.epochs.layer=2"])
    record = run_cell(cfg)
    assert record["status"] == "ok", record.get("error")
    steps = cfg.trainer.epochs.layer * (cfg.dataset.train_size // cfg.trainer.batch_size)
    assert steps == 6  # 2 epochs of 96 images in batches of 32 (debug=smoke)
    assert len(record["history"]) == 2
    assert events == [e for s in range(steps) for e in (s, "beat")]
