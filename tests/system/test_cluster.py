"""Cluster scale without a cluster: the SLURM launcher presets compose, the sbatch script submitit
would submit renders, the cells file of a study composes back to the same cells, and the plain
sbatch templates parse and their USR2 trap requeues (stand-in srun and scontrol: a real USR2 to the
batch shell needs a time limit). Real SLURM runs of all of this are in test_slurm.py."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hydra import compose

from roarkar.cluster.cells import cell_override_lines, main, write_cells_file
from roarkar.cluster.sbatch import render, run_sbatch_dry_run
from roarkar.plan import cell_configs, plan
from roarkar.protocols.cell import cell_path

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((REPO / "slurm").glob("*.sbatch"))
# a small plan mixing both protocols: 2 methods x 2 taps x 2 modes + 1 method x 2 percents x 2 modes
SMALL = [
    "study.layer.methods=[random,std]",
    "study.layer.layers=[L1,L5]",
    "study.input.methods=[random]",
    "study.input.percents=[10,90]",
    "protocol=input",
    "protocol.target=label",  # an input-protocol key: kept for input cells only
    "trainer.lr=0.02",
]


def _launcher(compose_cfg, *overrides):
    compose_cfg([])  # initialise Hydra with the repository's conf/
    return compose(
        config_name="config", overrides=["debug=smoke", *overrides], return_hydra_config=True
    )


def test_slurm_launcher_preset_composes(compose_cfg, monkeypatch):
    monkeypatch.delenv("ROARKAR_SLURM_GPUS_PER_NODE", raising=False)
    launcher = _launcher(compose_cfg, "hydra/launcher=slurm").hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.gpus_per_node == 4 and launcher.tasks_per_node == 4  # one rank per GPU
    assert launcher.nodes == 1 and launcher.max_num_timeout > 0
    assert launcher.additional_parameters.requeue is True
    assert launcher.submitit_folder.endswith("/.submitit/%j")
    # site values come from the environment, converted to the schema's types
    monkeypatch.setenv("ROARKAR_SLURM_GPUS_PER_NODE", "8")
    monkeypatch.setenv("ROARKAR_SLURM_PARTITION", "a100")
    launcher = _launcher(compose_cfg, "hydra/launcher=slurm_multinode").hydra.launcher
    assert (launcher.gpus_per_node, launcher.tasks_per_node) == (8, 8)
    assert launcher.partition == "a100" and launcher.nodes == 2
    assert launcher.additional_parameters.exclusive is True


def test_render_gives_submitits_array_script(compose_cfg, monkeypatch):
    for var in ("ROARKAR_SLURM_GPUS_PER_NODE", "ROARKAR_SLURM_ARRAY_PARALLELISM", "IMAGENET_ROOT"):
        monkeypatch.delenv(var, raising=False)
    launcher = _launcher(compose_cfg, "hydra/launcher=slurm").hydra.launcher
    script = render(launcher, "roarkar-t4", "/scratch/logs/%j", num_tasks=300)
    lines = script.splitlines()
    for expected in (
        "#SBATCH --array=0-299%32",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=128GB",
        "#SBATCH --time=1440",
        "#SBATCH --signal=USR2@120",
        "#SBATCH --requeue",
        "#SBATCH --job-name=roarkar-t4",
        "#SBATCH --output=/scratch/logs/%A_%a/%A_%a_0_log.out",
        "export IMAGENET_ROOT=/path/to/imagenet",
        "export SUBMITIT_EXECUTOR=slurm",
    ):
        assert expected in lines, f"{expected!r} not in\n{script}"
    assert any(line.startswith("# no module loads") for line in lines)
    assert lines[-1].startswith("srun --unbuffered") and "-m submitit.core._submit" in lines[-1]
    # one task: a plain job, as submitit submits it; a plain dict works too
    single = render({**dict(launcher), "array_parallelism": 5}, num_tasks=1)
    assert "--array" not in single and "--ntasks-per-node=4" in single
    assert "#SBATCH --array=0-9%5" in render(
        {**dict(launcher), "array_parallelism": 5}, num_tasks=10
    )


def test_sbatch_dry_run_lists_one_task_per_cell(compose_cfg, capsys):
    cfg = compose_cfg(["experiment=table4"])  # no hydra config: the slurm.yaml preset is used
    out = run_sbatch_dry_run(cfg, compose_cfg.overrides)
    text = capsys.readouterr().out
    assert out["tasks"] == 300 == len(out["lines"])
    assert text.startswith("300 array tasks (one cell each), at most 32 running at once")
    assert "conf/hydra/launcher/slurm.yaml" in text.splitlines()[0]
    assert "#SBATCH --array=0-299%32" in out["script"]
    first = shlex.split(out["lines"][0])
    assert first[-1] == "task=cell" and "dataset=imagenet" in first and "method=random" in first
    assert f"  0: {out['lines'][0]}" in text and f"299: {out['lines'][299]}" in text

    ov = ["experiment=table4", "hydra/launcher=slurm", "hydra.launcher.array_parallelism=7"]
    cfg = _launcher(compose_cfg, *ov)
    out = run_sbatch_dry_run(cfg, ov)
    assert "#SBATCH --array=0-299%7" in out["script"]
    assert not any("hydra" in o for line in out["lines"] for o in shlex.split(line))


def test_cells_file_lines_compose_back_to_the_same_cells(compose_cfg, tmp_path):
    overrides = [*SMALL, "hydra/launcher=slurm"]
    cfg = compose_cfg(overrides)
    overrides = compose_cfg.overrides
    out = tmp_path / "cells.txt"
    written = write_cells_file(cfg, overrides, out)
    lines = out.read_text().splitlines()
    assert lines == written and len(lines) == len(plan(cfg)) == 2 * 2 * 2 + 2 * 2
    expected = [cell_path(c)[1] for c in cell_configs(cfg, overrides)]
    for line, identity in zip(lines, expected, strict=True):
        args = shlex.split(line)
        assert args[-1] == "task=cell" and not any(a.startswith("hydra") for a in args)
        assert ("protocol.target=label" in args) == ("protocol=input" in args)
        cell_cfg = compose(config_name="config", overrides=args)
        assert cell_cfg.trainer.lr == 0.02
        assert cell_path(cell_cfg)[1] == identity, line
    # --todo: a finished cell drops out, a failed one stays
    configs = cell_configs(cfg, overrides)
    for cell_cfg, status in ((configs[0], "ok"), (configs[1], "failed")):
        directory = cell_path(cell_cfg)[2]
        directory.mkdir(parents=True)
        (directory / "result.json").write_text(json.dumps({"status": status}))
    todo = write_cells_file(cfg, overrides, out, todo=True)
    assert todo == lines[1:] and out.read_text().splitlines() == lines[1:]


def test_cells_command_line(tmp_path, capsys):
    out = tmp_path / "t4" / "cells.txt"
    assert main([str(out), "experiment=table4", f"paths.results={tmp_path}"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 300 and len(set(lines)) == 300
    assert "sbatch --array=0-299%32 slurm/array.sbatch" in capsys.readouterr().err


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_sbatch_template_syntax(template):
    assert subprocess.run(["bash", "-n", str(template)], capture_output=True).returncode == 0
    text = template.read_text()
    assert "#SBATCH --requeue" in text and "#SBATCH --signal=B:USR2@" in text
    assert "--ntasks-per-node=4" in text and "--gpus-per-node=4" in text


def _fake_slurm(tmp_path: Path, sleep: float = 0) -> dict:
    """srun and scontrol stand-ins that record their arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(
        f'#!/bin/bash\nprintf "%s\\n" "$@" > "{tmp_path}/srun.args"\nsleep {sleep}\n'
    )
    (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> "{tmp_path}/scontrol.args"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return os.environ | {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "78",
        "SLURM_JOB_NODELIST": "node01",
        "SLURM_SUBMIT_DIR": str(REPO),
    }


def test_cell_template_requeues_on_usr2(tmp_path):
    env = _fake_slurm(tmp_path, sleep=2) | {"SLURM_RESTART_COUNT": "1", "MAX_REQUEUES": "3"}
    proc = subprocess.Popen(
        ["bash", str(REPO / "slurm" / "cell.sbatch"), "method=std"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 10
    while not (tmp_path / "srun.args").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR2)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0  # waited for srun after the trap
    assert (tmp_path / "scontrol.args").read_text().split() == ["requeue", "78"]
    assert "requeueing job 78 (restart 2 of 3)" in out
    args = (tmp_path / "srun.args").read_text().splitlines()
    assert args[args.index("roarkar.cli") + 1 :] == ["task=cell", "method=std"]


def test_a_hydra_sweep_job_is_the_same_cell_as_its_cells_file_line(compose_cfg):
    cfg = compose_cfg(["experiment=table4"])
    lines = cell_override_lines(cfg, ["experiment=table4"])
    line = next(
        line
        for line in lines
        if {"dataset=places365", "method=std", "protocol.layer=L3", "protocol.mode=roar"}
        <= set(line)
    )
    # what `roarkar -m hydra/launcher=slurm experiment=table4 dataset=...,places365,... ...` gives a job
    sweep = "experiment=table4 dataset=places365 method=std protocol.layer=L3 protocol.mode=roar"
    job = compose(config_name="config", overrides=[*sweep.split(), "task=cell"])
    assert cell_path(job)[1] == cell_path(compose(config_name="config", overrides=line))[1]
