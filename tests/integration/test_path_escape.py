"""A name that would put an artifact outside the results tree is refused before anything is
written, by every task that makes one folder from names: a cell (cells/, models/, saliency/), the
maps export (maps/) and the perturbation metrics (perturbation/)."""

from __future__ import annotations

import pytest

from roarkar.cli import run

TASKS = [
    ["task=cell"],
    ["task=cell", "protocol=input"],
    ["task=export_maps", "protocol=input", "method=gradient"],
    ["experiment=perturbation"],
]
ESCAPES = [("dataset.name", "../../escaped"), ("method.id", "../escaped"), ("dataset.name", "/tmp")]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: " ".join(t))
@pytest.mark.parametrize(("key", "name"), ESCAPES, ids=lambda v: str(v))
def test_an_escaping_name_is_refused_and_nothing_is_written(compose_cfg, tmp_path, task, key, name):
    tree = tmp_path / "tree"
    before = set(tmp_path.parent.iterdir())
    cfg = compose_cfg([*task, f"{key}={name}"], results=tree / "results")
    with pytest.raises(ValueError, match=rf"{key}='{name}': expected one path component"):
        run(cfg, compose_cfg.overrides)
    assert set(tmp_path.parent.iterdir()) == before  # nothing beside this test's folder
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], written  # and nothing inside it: refused before any work
