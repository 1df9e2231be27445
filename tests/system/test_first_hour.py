"""What a new user meets in the first hour: help that lists the tasks, tools that write only where
they are told, their own class-folder dataset, and the README's examples as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from roarkar.cli import TASKS, run

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "roarkar.cli", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )  # fmt: skip


def test_help_lists_every_task():
    res = _cli("--help")
    assert res.returncode == 0, res.stderr
    listed = re.findall(r"^  (\w+) {2,}", res.stdout.split("== Tasks")[1], re.M)
    assert set(TASKS) <= set(listed), f"missing from --help: {set(TASKS) - set(listed)}"
    assert "== Configuration groups" in res.stdout and "synth_cars" in res.stdout


def test_gallery_writes_only_under_its_out(tmp_path, monkeypatch):
    from roarkar.gallery import make_gallery

    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("ROARKAR_DATA", raising=False)
    out = tmp_path / "gallery"
    make_gallery(out, images=2, methods=["smoe_scale"], overrides=["train_size=16", "val_size=8"])
    assert list(work.iterdir()) == [], "the gallery wrote into the current folder"
    assert (out / "data").is_dir() and any(out.glob("*.png"))


def _folder_tree(root: Path, classes: int = 3, per_class: int = 12) -> Path:
    """A class-folder tree of real JPEG and PNG files of mixed sizes (not square, not 32 px)."""
    for split, n in (("train", per_class), ("val", per_class // 2)):
        for c in range(classes):
            d = root / split / f"class_{c}"
            d.mkdir(parents=True)
            for i in range(n):
                colour = (80 * c, 255 - 60 * c, (37 * i) % 255)
                im = Image.new("RGB", (40 + 3 * i, 48), colour)
                im.save(d / f"{i}.{'jpg' if i % 2 else 'png'}")
    return root


def test_your_own_dataset_runs_as_the_readme_says(tmp_path, compose_cfg, capsys):
    """README workflow 3 / docs/datasets.md 'Your own dataset': the folder preset on a class-folder tree, ground_truth left out
    of the default study (no relevance maps), the tables written and their folder printed."""
    tree = _folder_tree(tmp_path / "my_images")
    cfg = compose_cfg([
        "dataset=folder", f"dataset.root={tree}", "dataset.name=my_images",
        "study.layer.layers=[L1]", "study.input.percents=[50]",
    ])  # fmt: skip
    out = run(cfg, compose_cfg.overrides)
    assert out["failed"] == 0
    methods = {r["cell"]["method"] for r in out["records"]}
    assert "ground_truth" not in methods and {"random", "smoe_scale"} <= methods
    tables = tmp_path / "results" / "tables"
    long = pd.read_csv(tables / "long.csv")
    assert set(long.dataset) == {"my_images"}
    assert f"tables: {tables}" in capsys.readouterr().out


CONFIG_HEADING = re.compile(r"^#+ Configuration \(Hydra only\)[ \t]*$", re.M)


def _config_examples(path: Path) -> list[str]:
    """The `roarkar ...` lines of a Markdown file's configuration block (the first bash block
    under a "Configuration (Hydra only)" heading of any level), comments dropped; none without one."""
    parts = CONFIG_HEADING.split(path.read_text(), maxsplit=1)
    if len(parts) < 2:
        return []
    block = parts[1].split("```bash")[1].split("```")[0]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("roarkar")]


def _readme_examples() -> list[tuple[str, str]]:
    """(file, line) for the configuration examples of README.md and of every docs/*.md."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [(str(f.relative_to(ROOT)), line) for f in files for line in _config_examples(f)]


def test_readme_and_docs_configuration_examples_are_collected():
    """The examples test below runs something from the README and from docs/configuration.md (a
    renamed heading or a moved block would otherwise leave it running nothing)."""
    sources = {source for source, _ in _readme_examples()}
    assert {"README.md", "docs/configuration.md"} <= sources, sources


@pytest.mark.slow
@pytest.mark.parametrize(("source", "line"), _readme_examples(), ids=lambda v: v)
def test_readme_examples_run_as_written(tmp_path, source, line):
    """Each example of the configuration section of the README and of docs/*.md, at debug=smoke
    in a fresh results tree (one results tree per line; `task=tables` gets one finished cell first)."""
    args = shlex.split(line)
    results = f"paths.results={tmp_path / 'results'}"
    if args[0] == "roarkar-tables":
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "roarkar.report.cli", *args[1:]]
        cmd = [a.replace("/tmp/paper", str(tmp_path / "paper")) for a in cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        assert res.returncode == 0, res.stderr[-3000:]
        return
    if "task=tables" in args:
        first = _cli("task=cell", "debug=smoke", results)
        assert first.returncode == 0, first.stderr[-3000:]
    extra = [] if "debug=smoke" in args else ["debug=smoke"]
    res = _cli(*args[1:], *extra, results)
    assert res.returncode == 0, res.stderr[-3000:]
