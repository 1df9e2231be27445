"""Your own saliency method by import path (method=external): both contracts run through a cell,
bad input is named before any training, the cell identity follows the method's source, the
worked example's study (examples/my_method.py) and a submitit_local multirun with a relative path."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

from roarkar.cli import run
from roarkar.identity import method_identity
from roarkar.models import build_model
from roarkar.protocols.cell import cell_path, run_cell
from roarkar.saliency import create
from roarkar.saliency.configs import pin_targets, result_id
from roarkar.saliency.conformance import ConformanceError, check_before_training
from roarkar.targets import TargetError, absolute_target, load_target

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "examples/my_method.py:smoothed_gradient"
#: the worked example's study, as the README gives it (after `roarkar debug=smoke`)


def _readme_commands() -> list[list[str]]:
    """The commands of the README's "Benchmark your own method" block, as written (continuation
    lines joined, comments dropped), each as its words."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("### 6. Benchmark your own method") :]
    block = section[section.index("```bash\n") + len("```bash\n") : section.index("```\n", 10)]
    return [
        shlex.split(line.split("  #")[0])
        for line in block.replace("\\\n", " ").splitlines()
        if line and not line.startswith("#")
    ]


def _readme_example() -> list[str]:
    """The overrides of the block's first command (the study on synth_objects)."""
    words = _readme_commands()[0]
    assert words[0] == "roarkar" and "dataset=mnist" not in words, words
    return words[1:]


# the README's command at debug=smoke (compose_cfg adds it), at one percent instead of three
EXAMPLE_STUDY = [*_readme_example(), "study.input.percents=[25]"]

GOOD = """
import torch

def grad_map(model, images, targets, scale=1.0):
    x = images.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).gather(1, targets[:, None]).sum(), x)
    return g * scale  # [B, C, H, W]: roarkar reduces it

def tap_max(activation, pre_relu):
    return activation.amax(1)
"""


def _write(tmp_path: Path, body: str, name: str = "mine.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def _method(target: str, **params) -> dict:
    return {"id": "external", "name": "external", "params": {"target": target, **params}}


def _check(target: str, tap: str = "", **params) -> None:
    model = {"name": "small_resnet", "params": {"width": 8, "blocks": 1, "stem": "cifar"}}
    dataset = {"name": "synth_objects", "image_size": 32, "num_classes": 4}
    check_before_training(_method(target, **params), model, dataset, tap)


def test_targets_import_by_module_and_by_file(tmp_path, monkeypatch):
    path = _write(tmp_path, GOOD)
    assert callable(load_target(f"{path}:grad_map"))
    assert load_target("roarkar.blur:gaussian_blur").__name__ == "gaussian_blur"
    monkeypatch.chdir(tmp_path)
    assert absolute_target("mine.py:grad_map") == f"{path}:grad_map"
    assert absolute_target("roarkar.blur:gaussian_blur") == "roarkar.blur:gaussian_blur"
    assert load_target("mine.py:grad_map").__name__ == "grad_map"


def test_both_contracts_pass_the_checks_and_kwargs_pass_through(tmp_path):
    path = _write(tmp_path, GOOD)
    _check(f"{path}:grad_map", kwargs={"scale": 2.0})
    _check(f"{path}:tap_max", tap="L3")
    model = build_model("small_resnet", 4)
    x = torch.randn(2, 3, 32, 32)
    one = create("external", model, target=f"{path}:grad_map").saliency(x, [0, 1])
    two = create("external", model, target=f"{path}:grad_map", kwargs={"scale": 2.0})
    torch.testing.assert_close(two.saliency(x, [0, 1]), 2 * one)


BAD = {
    "does not import": ("import no_such_package_xyz\ndef f(model, images, targets): ...", "f", "", "loads", "ModuleNotFoundError"),
    "missing attribute": (GOOD, "nope", "", "loads", "has no attribute 'nope'"),
    "wrong signature": ("def f(images): return images", "f", "", "signature", "expected f(model, images"),
    "tap signature": ("def f(model, images, targets): ...", "f", "L2", "signature", "expected f(activation"),
    "wrong shape": ("def f(model, images, targets): return images[:, 0, :8]", "f", "", "output shape", "expected (2, 32, 32)"),
    "NaN": ("def f(model, images, targets): return images[:, 0] * float('nan')", "f", "", "finite", "non-finite"),
    "constant": ("def f(model, images, targets): return images[:, 0] * 0 + 1", "f", "", "not constant", "one value"),
    "raises": ("def f(model, images, targets): raise KeyError('oops')", "f", "", "runs", "KeyError"),
    "not deterministic": ("import random\ndef f(model, images, targets): return images[:, 0] * random.random()", "f", "", "deterministic", "differ"),
    "batch": ("def f(model, images, targets): return images[:, 0] / images[:, 0].abs().max()", "f", "", "independent of its batch", "alone"),
    "hook left": ("def f(model, images, targets):\n    model.net.fc.register_forward_hook(lambda *a: None)\n    return images[:, 0]", "f", "", "no hook left", "fc"),
    "mode": ("def f(model, images, targets):\n    model.train()\n    return images[:, 0]", "f", "", "mode restored", "eval mode"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_methods_are_named_before_any_training(tmp_path, case):
    body, attr, tap, check, detail = BAD[case]
    path = _write(tmp_path, body)
    with pytest.raises(ConformanceError) as info:
        _check(f"{path}:{attr}", tap=tap)
    message = str(info.value)
    assert info.value.check == check and f"'{check}'" in message, message
    assert "external" in message and str(path) in message and detail in message, message


def test_missing_file_and_bad_label_are_named(tmp_path):
    with pytest.raises(ConformanceError, match="'loads'.*no file"):
        _check(f"{tmp_path}/absent.py:f")
    with pytest.raises(TargetError, match="expected 'pkg.module:obj'"):
        load_target("just_a_name")
    with pytest.raises(ValueError, match="id of a roarkar method"):
        result_id(_method("x.py:f", label="gradient"))
    assert result_id(_method("examples/my_method.py:smoothed_gradient")) == "smoothed_gradient"
    assert result_id(_method("x.py:f", label="Mine")) == "Mine"
    assert result_id({"id": "mine", "name": "external", "params": {"target": "x.py:f"}}) == "mine"


def test_identity_follows_the_source_not_its_path(tmp_path, monkeypatch):
    path = _write(tmp_path, GOOD)
    monkeypatch.chdir(tmp_path)
    first = method_identity(_method(f"{path}:grad_map"))
    assert method_identity(_method("mine.py:grad_map")) == first  # relative or absolute: one file
    assert first["params"]["target"] == "mine.py:grad_map" and len(first["source_sha256"]) == 64
    path.write_text(GOOD + "\n# edited\n")
    assert method_identity(_method("mine.py:grad_map"))["source_sha256"] != first["source_sha256"]
    builtin = {"id": "gradient", "name": "gradient", "params": {}}
    assert method_identity(builtin) == builtin  # every other method's identity is unchanged


def test_tap_method_runs_a_layer_cell_and_editing_it_reruns(compose_cfg, tmp_path):
    path = _write(tmp_path, GOOD)
    overrides = ["method=external", f"method.params.target={path}:tap_max", "protocol.layer=L3"]
    overrides += ["task=cell", "protocol.mode=kar"]
    cfg = compose_cfg(overrides)
    record = run_cell(cfg)
    assert record["status"] == "ok" and record["cell"]["method"] == "tap_max", record.get("error")
    assert run_cell(cfg).get("skipped")  # unchanged: skipped
    before = cell_path(cfg)[1]
    path.write_text(GOOD + "\n# edited\n")
    assert cell_path(compose_cfg(overrides))[1] != before  # edited: a new cell


def test_cli_names_a_bad_method_before_training(tmp_path):
    bad = _write(tmp_path, "def f(model, images, targets): return images[:, 0, :8]")
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "roarkar.cli", "debug=smoke", "task=cell", "protocol=input"]
    cmd += [f"paths.results={results}", "method=external", f"method.params.target={bad}:f"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode != 0
    assert "roarkar: error: saliency method 'external'" in proc.stderr, proc.stderr[-2000:]
    assert "'output shape'" in proc.stderr
    assert not (results / "models").exists()  # nothing was trained


def test_pin_targets_makes_file_targets_absolute(compose_cfg, monkeypatch):
    monkeypatch.chdir(REPO)
    overrides = ["method=external", f"method.params.target={EXAMPLE}", "x=1"]
    cfg = compose_cfg(overrides[:2])
    pinned = pin_targets(cfg, overrides)
    absolute = f"{REPO / 'examples' / 'my_method.py'}:smoothed_gradient"
    assert pinned == ["method=external", f"method.params.target={absolute}", "x=1"]
    assert cfg.method.params.target == absolute


def test_slurm_array_lines_carry_the_absolute_target(compose_cfg, monkeypatch):
    """The plain-sbatch path (python -m roarkar.cluster.cells, slurm/array.sbatch) and task=sbatch."""
    from roarkar.cluster.cells import cell_override_lines

    monkeypatch.chdir(REPO)
    cfg = compose_cfg(EXAMPLE_STUDY)
    lines = cell_override_lines(cfg, compose_cfg.overrides)
    absolute = f"{REPO / 'examples' / 'my_method.py'}:smoothed_gradient"
    external = [line for line in lines if "method=external" in line]
    assert len(external) == 2 and all(f"++method.params.target={absolute}" in ln for ln in external)


def test_worked_example_study(compose_cfg, tmp_path, monkeypatch):
    """The README's study: examples/my_method.py beside random, ground_truth and smoe_scale."""
    monkeypatch.chdir(REPO)
    cfg = compose_cfg(EXAMPLE_STUDY)
    out = run(cfg, compose_cfg.overrides)
    assert out["cells"] == 4 * 2 and out["failed"] == 0
    long = pd.read_csv(tmp_path / "results" / "tables" / "long.csv")
    assert set(long.method) == {"random", "ground_truth", "smoe_scale", "smoothed_gradient"}
    table2 = pd.read_csv(tmp_path / "results" / "tables" / "table2.csv")
    assert "smoothed_gradient" in set(table2.method)
    record = next((tmp_path / "results" / "cells").rglob("smoothed_gradient/*/result.json"))
    target = json.loads(record.read_text())["config"]["method"]["params"]["target"]
    assert target == f"{REPO / 'examples' / 'my_method.py'}:smoothed_gradient"
    assert all(r.get("skipped") for r in run(cfg, compose_cfg.overrides)["records"])


def test_worked_example_on_mnist_and_on_imagenet_as_the_readme_writes_them(
    compose_cfg, monkeypatch
):
    """The README's other two studies of the example: the MNIST digits (no ground truth there, the
    plain gradient beside its smoothed self) and the ImageNet cells file for SLURM (Table 5's
    percents, 30 lines, each carrying the example's absolute path)."""
    from roarkar.cluster.cells import cell_override_lines
    from roarkar.plan import plan

    monkeypatch.chdir(REPO)
    mnist = next(w for w in _readme_commands() if "dataset=mnist" in w)
    cfg = compose_cfg(mnist[1:])
    cells = plan(cfg)
    assert cfg.dataset.name == "mnist" and len(cells) == 4 * 3 * 2
    methods = {g[0] for g, _ in cells}
    assert methods == {f"method={m}" for m in ("random", "smoe_scale", "gradient", "external")}
    assert {s.get("method.params.target") for g, s in cells if g[0] == "method=external"} == {
        EXAMPLE
    }
    slurm = next(
        w for w in _readme_commands() if w[:3] == ["python", "-m", "roarkar.cluster.cells"]
    )
    overrides = slurm[4:]
    lines = cell_override_lines(compose_cfg(overrides), compose_cfg.overrides)
    sbatch = next(w for w in _readme_commands() if w[0] == "sbatch")
    assert sbatch[1] == f"--array=0-{len(lines) - 1}%16" and len(lines) == 3 * 5 * 2
    absolute = f"{REPO / 'examples' / 'my_method.py'}:smoothed_gradient"
    external = [line for line in lines if "method=external" in line]
    assert len(external) == 10 and all(
        f"++method.params.target={absolute}" in ln for ln in external
    )
    assert all("dataset=imagenet" in line for line in lines)


def test_submitit_local_multirun_imports_a_relative_target(tmp_path):
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "roarkar.cli", "-m", "debug=smoke", f"paths.results={results}"]
    cmd += ["method=external", f"method.params.target={EXAMPLE}", "protocol=input"]
    cmd += ["protocol.percent=50", "protocol.mode=kar,roar", "hydra/launcher=submitit_local"]
    cmd += ["hydra.launcher.timeout_min=10"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    records = [json.loads(p.read_text()) for p in (results / "cells").rglob("result.json")]
    assert sorted(r["cell"]["mode"] for r in records) == ["kar", "roar"]
    assert all(r["status"] == "ok" and r["cell"]["method"] == "smoothed_gradient" for r in records)
    assert list((results / "hydra" / "multirun").rglob("*_log.out"))  # through submitit
