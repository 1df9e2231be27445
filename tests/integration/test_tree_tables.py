"""The tables of a tree are the whole tree: a study run into a tree that holds another study's
cells tabulates every finished cell (and says so), so an input-only study never leaves a tables
folder that silently lost the layer protocol's Tables 1 and 4; where the tree's cells conflict
with the study's, it tabulates its own and says why."""

from __future__ import annotations

import pandas as pd

from roarkar.cli import run

LAYER = ["study.input=null", "study.layer.methods=[random,smoe_scale]", "study.layer.layers=[L1]"]
INPUT = ["study.layer=null", "study.input.methods=[random,gradient]", "study.input.percents=[10]"]


def test_a_second_study_tabulates_the_whole_tree_and_says_so(compose_cfg, tmp_path):
    tables = tmp_path / "results" / "tables"
    first = run(compose_cfg(LAYER), compose_cfg.overrides)
    assert "tables of every finished cell" not in first["tables"]  # its tree is its own cells
    assert (tables / "table4.csv").exists() and not (tables / "table5.csv").exists()

    second = run(compose_cfg(INPUT), compose_cfg.overrides)
    cells = tmp_path / "results" / "cells"
    assert (
        f"tables of every finished cell under {cells}: 8 cells, 4 of them this study's"
        in (second["tables"])
    )
    for name in ("table1", "table2", "table4", "table5"):  # the layer tables kept, not lost
        assert (tables / f"{name}.csv").exists(), name
    long = pd.read_csv(tables / "long.csv")
    assert sorted(long.protocol.value_counts().items()) == [("input", 4), ("layer", 4)]


def test_conflicting_cells_in_the_tree_leave_the_study_its_own_tables_with_the_reason(
    compose_cfg, tmp_path
):
    run(compose_cfg(INPUT), compose_cfg.overrides)
    other = run(compose_cfg([*INPUT, "trainer.epochs.input=2"]), compose_cfg.overrides)
    assert "tables of this study's 4 cells only, not of every finished cell" in other["tables"]
    assert "appear more than once" in other["tables"]
    long = pd.read_csv(tmp_path / "results" / "tables" / "long.csv")
    assert len(long) == 4  # this study's cells: the 2-epoch ones
