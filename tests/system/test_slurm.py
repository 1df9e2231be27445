"""SLURM for real: a one-node cluster started by ``slurm/local-cluster.sh`` (slurmctld, slurmd and
munge) runs roarkar's job arrays, requeues, time limits, DDP through srun and the plain sbatch
templates.

The session fixture starts the cluster (idempotent: instant when it is up). Where it cannot start
(not root, no apt-get, a foreign slurm.conf) every test here is skipped with the script's reason.
Jobs inherit this process's environment (sbatch's --export=ALL), so they import the same roarkar and
run the same interpreter; everything they write goes under ``tmp_path``. The cluster has no
accounting database, so ``sacct`` fails and submitit warns about it: expected here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from roarkar.cli import run
from roarkar.cluster.cells import write_cells_file
from roarkar.protocols.cell import cell_path
from roarkar.store import CLAIM_FILE

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "slurm" / "local-cluster.sh"
PARTITION = "local"  # the script's one partition
ENV = os.environ | {"OMP_NUM_THREADS": "1"}
JOB_NAME = f"roarkar-pytest-{os.getpid()}"  # every job of this session: cancelled at its end
# one cell of the requeue tests: several epochs, so there is a checkpoint to resume from
LONG_CELL = ["task=cell", "debug=smoke", "protocol.layer=L3", "dataset.train_size=480"]


@pytest.fixture(scope="session")
def slurm() -> Iterator[str]:
    """A running one-node cluster; its partition. Skips with the reason where none can start."""
    proc = subprocess.run(
        ["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=600
    )
    if proc.returncode == 3:
        pytest.skip(f"no SLURM cluster: {proc.stderr.strip()}")
    assert proc.returncode == 0, f"{CLUSTER} start failed:\n{proc.stdout}{proc.stderr}"
    yield PARTITION
    subprocess.run(["scancel", f"--name={JOB_NAME}"], timeout=30)  # what a failed test left


def _launcher(
    sweep_dir: Path, *, tasks: int = 1, timeout_min: int = 10, parallel: int = 2
) -> list[str]:
    """``hydra/launcher=slurm`` sized for the test node: CPU tasks, no GPUs, 1 GB."""
    return [
        "hydra/launcher=slurm",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.launcher.partition={PARTITION}",
        "hydra.launcher.gpus_per_node=0",
        f"hydra.launcher.tasks_per_node={tasks}",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        f"hydra.launcher.timeout_min={timeout_min}",
        f"hydra.launcher.array_parallelism={parallel}",
        f"hydra.launcher.name={JOB_NAME}",
    ]


def _roarkar(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "roarkar.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _finish(proc: subprocess.Popen, sweep_dir: Path | None = None, timeout: float = 300) -> str:
    """Wait for a roarkar process; on failure show its output and the jobs' logs. (Without
    accounting, submitit cannot tell that a job died without writing its result, so a sweep whose
    job crashed waits forever: the timeout ends it.)"""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running after {timeout} s\n{err[-3000:]}\n{_logs(sweep_dir)[-6000:]}")
    assert proc.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}\n{_logs(sweep_dir)}"
    return out


def _logs(sweep_dir: Path | None) -> str:
    """Every submitit job log of a sweep (stdout and stderr of each rank), concatenated."""
    if sweep_dir is None or not (sweep_dir / ".submitit").exists():
        return ""
    return "\n".join(
        f"==> {p.name}\n{p.read_text(errors='replace')}"
        for p in sorted((sweep_dir / ".submitit").rglob("*_log.*"))
    )


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "cells").rglob("result.json"))]


def _wait_for(predicate, what: str, proc: subprocess.Popen, timeout: float = 240):
    deadline = time.time() + timeout
    while not (value := predicate()):
        assert proc.poll() is None, f"{what}: the run ended first\n{proc.communicate()[1][-3000:]}"
        assert time.time() < deadline, f"{what}: not after {timeout} s"
        time.sleep(0.2)
    return value


def _job(directory: Path) -> str:
    """The SLURM job (``<array id>_<task id>``) holding a cell's claim."""
    return json.loads((directory / CLAIM_FILE).read_text())["job"]


def _span(folder: Path) -> tuple[str, str]:
    """When a submitit task started and ended, from its log's timestamps."""
    text = next(folder.glob("*_0_log.out")).read_text()
    stamp = r"submitit INFO \((\S+ \S+)\) - "
    return (
        re.findall(stamp + "Starting with", text)[0],
        re.findall(stamp + "Exiting after successful completion", text)[-1],
    )


def _wait_jobs(jobs: list[str], timeout: float = 300) -> list[str]:
    """Wait until these jobs (or arrays) have left the queue; the final state of each job or
    array task, from ``scontrol`` (which keeps finished jobs for MinJobAge)."""
    deadline = time.time() + timeout
    while subprocess.run(
        ["squeue", "-h", "-j", ",".join(jobs)], capture_output=True, text=True
    ).stdout.strip():
        assert time.time() < deadline, f"jobs {jobs} still queued after {timeout} s"
        time.sleep(0.5)
    shown = [
        subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
        for job in jobs
    ]
    return re.findall(r"JobState=(\S+)", "\n".join(shown))


def _restarts(job: str) -> int:
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True)
    match = re.search(r"Restarts=(\d+)", shown.stdout)
    assert match, f"scontrol show job {job}: {shown.stdout}{shown.stderr}"
    return int(match.group(1))


BASE_EPOCHS = "trainer.epochs.base=40"


def test_sweep_is_one_job_array_and_status_follows_it(slurm, tmp_path, compose_cfg):
    """Three cells, one array (two tasks at a time on two cores); ``task=status`` sees them
    running while the sweep runs and done after it."""
    results, sweep_dir = tmp_path / "results", tmp_path / "sweep"
    methods = ["random", "smoe_scale", "std"]
    sweep = _roarkar(
        "-m",
        *_launcher(sweep_dir),
        "debug=smoke",
        f"paths.results={results}",
        f"method={','.join(methods)}",
        "protocol.layer=L5",
        "protocol.mode=kar",
        "protocol.percent=12.5",  # the study's KAR percent: the sweep's cells are the study's
        # a base model of some seconds: the task training it and the one waiting on its lock are
        # both claimed (running) long enough for status polls (~1 s apart) to see them; with one
        # epoch (well under a second) status sometimes saw only one running
        BASE_EPOCHS,
        cwd=tmp_path,
    )
    study = [
        BASE_EPOCHS,
        f"study.layer.methods=[{','.join(methods)}]",
        "study.layer.layers=[L5]",
        "study.layer.modes=[kar]",
        "study.input=null",
        "task=status",
    ]
    cfg = compose_cfg(study, results=results)

    def status() -> dict[str, str]:  # what `roarkar task=status <study>` reports, per cell
        return {c["method"]: c["status"] for c in run(cfg, compose_cfg.overrides)["cells"]}

    seen = [status()]
    while sweep.poll() is None:
        seen.append(status())
        time.sleep(0.5)
    _finish(sweep, sweep_dir)
    seen.append(status())
    # each cell goes forward only: to run, running, done (a short one may finish between polls;
    # the first two wait on the base model's lock while claimed, so status sees them running)
    order = ["todo", "running", "done"]
    for method in methods:
        states = [order.index(s[method]) for s in seen]
        assert states == sorted(states) and states[-1] == 2, (method, seen)
    assert len({m for s in seen for m in methods if s[m] == "running"}) >= 2, seen
    records = _records(results)
    assert sorted(r["cell"]["method"] for r in records) == methods
    assert all(r["status"] == "ok" for r in records)
    # one job array: submitit's folders are <array id>_<task id>
    tasks = sorted(p.name for p in (sweep_dir / ".submitit").glob("*_*") if p.is_dir())
    assert len({t.split("_")[0] for t in tasks}) == 1, tasks
    assert sorted(int(t.split("_")[1]) for t in tasks) == [0, 1, 2], tasks
    # array_parallelism=2 on two cores: tasks 0 and 1 ran at the same time
    spans = [_span(sweep_dir / ".submitit" / t) for t in tasks[:2]]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans


def test_requeued_cell_resumes_to_the_uninterrupted_history(slurm, tmp_path, compose_cfg):
    """``scontrol requeue`` in the middle of a cell (what preemption with PreemptMode=REQUEUE
    does): the job is killed (submitit ignores SIGTERM; SIGKILL after KillWait), runs again and
    resumes from its checkpoint, and ends with exactly the history of the same cell run straight
    through, which the same sweep runs in another results tree."""
    settings = [*LONG_CELL, "trainer.epochs.layer=30"]  # still training after KillWait (5 s)
    straight, requeued, sweep_dir = tmp_path / "straight", tmp_path / "requeued", tmp_path / "sweep"
    sweep = _roarkar(
        "-m", *_launcher(sweep_dir), *settings, f"paths.results={straight},{requeued}", cwd=tmp_path
    )
    directory = cell_path(compose_cfg(settings, results=requeued))[2]
    _wait_for((directory / "checkpoint.pt").exists, "first checkpoint", sweep)
    job = _job(directory)
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
    _finish(sweep, sweep_dir)
    (record,), (reference,) = _records(requeued), _records(straight)
    assert _restarts(job) == 1
    assert record["status"] == "ok" and record["resumed_from_epoch"] >= 1, record
    assert reference.get("resumed_from_epoch") == 0
    assert record["history"] == reference["history"]
    assert record["accuracy"] == reference["accuracy"]
    assert "Bypassing signal SIGTERM" in _logs(sweep_dir)


@pytest.mark.slow  # about 2 min of one-minute allocations; requeue itself: the test above
def test_time_limit_checkpoints_on_usr2_and_requeues(slurm, tmp_path, compose_cfg):
    """One-minute allocations with ``signal_delay_s=20``: USR2 comes at slurmctld's first
    time-limit check (every 30 s) that finds the job within 20 + 30 s of its limit, so 10 to 40 s
    into each allocation; submitit checkpoints the cell and requeues it, counting a timeout. The
    cell (about a minute of training on one core) finishes within ``max_num_timeout`` requeues, with
    one result and each epoch once."""
    max_timeouts, epochs = 5, 150
    settings = [*LONG_CELL, f"trainer.epochs.layer={epochs}"]
    results, sweep_dir = tmp_path / "results", tmp_path / "sweep"
    sweep = _roarkar(
        "-m",
        *_launcher(sweep_dir, timeout_min=1),
        "hydra.launcher.signal_delay_s=20",
        f"hydra.launcher.max_num_timeout={max_timeouts}",
        *settings,
        f"paths.results={results}",
        cwd=tmp_path,
    )
    directory = cell_path(compose_cfg(settings, results=results))[2]
    job = _wait_for(lambda: (directory / CLAIM_FILE).exists() and _job(directory), "claim", sweep)
    _finish(sweep, sweep_dir, timeout=400)
    logs = _logs(sweep_dir)
    # submitit's own log lines (Hydra's logger repeats each one in its own format)
    requeues = len(
        re.findall(r"^submitit INFO .* - Requeued job .* remaining timeouts", logs, re.M)
    )
    assert 1 <= requeues <= max_timeouts, logs[-4000:]
    assert "this job is timed-out" in logs and "SIGUSR2" in logs
    assert _restarts(job) == requeues
    (record,) = _records(results)
    assert record["status"] == "ok" and record["resumed_from_epoch"] >= 1
    assert [h["epoch"] for h in record["history"]] == list(range(1, epochs + 1))
    assert logs.count("[ok]") == 1, "the cell ran to its end more than once"


def test_ddp_over_two_srun_tasks_matches_one_process(slurm, tmp_path):
    """``tasks_per_node=2``: srun starts two ranks, submitit's TorchDistributedEnvironment joins
    them on gloo; the same cell (same identity, same global batches) as one process, within the
    tolerance of BatchNorm statistics computed over half batches and a 48-image validation split."""
    common = [
        "task=cell",
        "debug=smoke",
        "protocol.layer=L3",
        "method=smoe_scale",
        "dataset.train_size=256",
        "trainer.epochs.base=3",
        "trainer.epochs.layer=2",
    ]
    sweep_dir = tmp_path / "sweep"
    two = _roarkar(
        "-m",
        *_launcher(sweep_dir, tasks=2),
        f"paths.results={tmp_path / 'two'}",
        *common,
        cwd=tmp_path,
    )
    one = _roarkar(f"paths.results={tmp_path / 'one'}", *common, cwd=tmp_path)
    _finish(one)
    _finish(two, sweep_dir)

    def load(name: str) -> tuple[dict, dict]:
        (cell,) = _records(tmp_path / name)
        base = json.loads(next((tmp_path / name / "models").rglob("result.json")).read_text())
        return cell, base

    (cell2, base2), (cell1, base1) = load("two"), load("one")
    assert (cell2["world_size"], base2["world_size"], cell1["world_size"]) == (2, 2, 1)
    assert cell2["cell_id"] == cell1["cell_id"]
    for h2, h1 in zip(
        base2["history"] + cell2["history"], base1["history"] + cell1["history"], strict=True
    ):
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=0.03)
    assert base2["accuracy"] == pytest.approx(base1["accuracy"], abs=0.1)
    assert cell2["accuracy"] == pytest.approx(cell1["accuracy"], abs=0.2)
    # both ranks ran through srun, rank 1 in its own log
    assert len(list((sweep_dir / ".submitit").rglob("*_1_log.out"))) == 1


def test_plain_sbatch_templates(slurm, tmp_path, compose_cfg):
    """``slurm/array.sbatch`` runs line i of a cells file as array task i, ``slurm/cell.sbatch`` one
    cell; both through srun, with the templates' GPU-node defaults overridden at submission."""
    results = tmp_path / "results"
    study = ["study.layer.methods=[random,std]", "study.layer.layers=[L5]", "study.input=null"]
    study.append("study.layer.modes=[kar]")
    cfg = compose_cfg(study, results=results)
    cells = tmp_path / "cells.txt"
    assert len(write_cells_file(cfg, compose_cfg.overrides, cells)) == 2
    node = [
        "sbatch",
        "--parsable",
        f"--job-name={JOB_NAME}",
        f"--partition={PARTITION}",
        "--gpus-per-node=0",
        "--ntasks-per-node=1",
        "--cpus-per-task=1",
        "--mem=1G",
        "--time=10",
    ]
    env = ENV | {"PYTHON": sys.executable, "ROARKAR_RESULTS": str(results)}
    one = ["debug=smoke", f"paths.results={results}", "method=mean"]
    one += ["protocol.layer=L5", "protocol.mode=kar", "protocol.percent=12.5"]
    submit = [
        [*node, "--array=0-1", f"--output={tmp_path}/%x_%A_%a.out", REPO / "slurm/array.sbatch"]
        + [str(cells)],
        [*node, f"--output={tmp_path}/%x_%j.out", REPO / "slurm/cell.sbatch", *one],
    ]
    jobs = [
        subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        for args in submit
    ]
    states = _wait_jobs(jobs)  # (sbatch --wait returned some 20 s after the jobs had ended)
    outs = {p.name: p.read_text() for p in tmp_path.glob("*.out")}
    assert states == ["COMPLETED"] * 3, (states, outs)
    records = _records(results)
    assert sorted(r["cell"]["method"] for r in records) == ["mean", "random", "std"]
    assert all(r["status"] == "ok" and r["cell"]["percent"] == 12.5 for r in records)
    logs = "\n".join(outs.values())
    assert len(re.findall(r"roarkar array task \d+_[01] ", logs)) == 2, logs
    assert "roarkar cell: job" in logs and logs.count("[ok]") == 3, logs


def test_two_overlapping_sweeps_train_each_cell_once(slurm, tmp_path):
    """Two sweeps over one results tree, submitted together, one task at a time each: both start
    with the same cell; one trains it, the other finds it claimed (or finished)."""
    results = tmp_path / "results"
    sweeps = {"a": "smoe_scale,random", "b": "smoe_scale,std"}
    procs = {
        name: _roarkar(
            "-m",
            *_launcher(tmp_path / name, parallel=1),
            "debug=smoke",
            f"paths.results={results}",
            f"method={methods}",
            "protocol.layer=L5",
            cwd=tmp_path,
        )
        for name, methods in sweeps.items()
    }
    for name, proc in procs.items():
        _finish(proc, tmp_path / name)
    logs = _logs(tmp_path / "a") + _logs(tmp_path / "b")
    records = _records(results)
    assert sorted(r["cell"]["method"] for r in records) == ["random", "smoe_scale", "std"]
    assert all(r["status"] == "ok" for r in records)
    assert logs.count("[ok]") == 3, logs  # each cell trained by exactly one job
    assert logs.count("[running]") + logs.count("[skipped (finished)]") == 1, logs
    assert not list((results / "cells").rglob(CLAIM_FILE))
