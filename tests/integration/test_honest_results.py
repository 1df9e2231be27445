"""No silent wrong answers: an unfit base model is said and marked, tables never mix runs, every
table says its percents, a study and a multirun make the same cells, and the paper comparison
runs only on the paper's experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from roarkar.cli import run
from roarkar.report.cli import main as tables_main
from roarkar.report.write import write_tables

ROOT = Path(__file__).resolve().parents[2]
ONE_LAYER = [
    "study.layer.methods=[random,smoe_scale]",
    "study.layer.layers=[L1]",
    "study.input=null",
]


def test_an_untrained_base_model_is_said_and_marked_in_cells_and_tables(compose_cfg, tmp_path):
    out = run(compose_cfg([*ONE_LAYER, "trainer.epochs.base=0"]), compose_cfg.overrides)
    assert out["failed"] == 0
    base = next((tmp_path / "results" / "models").rglob("result.json"))
    assert "untrained: trainer.epochs.base=0" in json.loads(base.read_text())["warnings"][0]
    cell = next((tmp_path / "results" / "cells").rglob("result.json"))
    assert json.loads(cell.read_text())["base_model"]["warnings"]
    tables = tmp_path / "results" / "tables"
    assert "Base model unfit, these numbers are meaningless" in (tables / "table1.md").read_text()
    assert "WARNING base model unfit" in out["tables"]
    # the same mark from a results tree, through task=tables
    cfg = compose_cfg([*ONE_LAYER, "trainer.epochs.base=0", "task=tables"])
    again = run(cfg, compose_cfg.overrides)
    assert "untrained: trainer.epochs.base=0" in again["tables"]


def test_a_study_and_a_multirun_make_the_same_cells(compose_cfg):
    """A layer cell without protocol.percent (a multirun's) is the study's cell: same percent and
    the same identity as the one the study runs with the percent set."""
    from roarkar.protocols.cell import cell_path

    for extra, kar in (([], 12.5), (["experiment=table4"], 2.5)):
        multirun = compose_cfg([*extra, "task=cell", "protocol.layer=L2", "protocol.mode=kar"])
        study = compose_cfg([*extra, "task=cell", "protocol.layer=L2", "protocol.mode=kar",
                             f"protocol.percent={kar}"])  # fmt: skip
        cell, identity, _ = cell_path(multirun)
        assert cell.percent == kar and (cell, identity) == cell_path(study)[:2]


def _layer_rows(percents=(12.5, 25)) -> pd.DataFrame:
    rows = []
    for method, (k, r) in (("random", (0.5, 0.8)), ("smoe_scale", (0.7, 0.3))):
        for i in range(1, 6):
            rows.append(("d", "small_resnet", "layer", method, f"L{i}", "kar", percents[0], 0, k))
            rows.append(("d", "small_resnet", "layer", method, f"L{i}", "roar", percents[1], 0, r))
    cols = ["dataset", "model", "protocol", "method", "layer", "mode", "percent", "seed"]
    return pd.DataFrame(rows, columns=[*cols, "accuracy"])


def _input_rows() -> pd.DataFrame:
    rows = [
        ("d", "small_resnet", "input", m, "", mode, p, 0, 0.5 + 0.01 * p / 10)
        for m in ("random", "smoe_scale")
        for mode in ("kar", "roar")
        for p in (10, 50)
    ]
    return pd.DataFrame(rows, columns=_layer_rows().columns)


def test_every_table_states_its_percents(tmp_path):
    both = pd.concat([_layer_rows(), _input_rows()], ignore_index=True)
    written = write_tables(both, tmp_path)
    assert "KAR keeps 12.5 %, ROAR removes 25 %" in written["table4.md"].read_text()
    assert "KAR keeps 12.5 %, ROAR removes 25 %" in written["table1.md"].read_text()
    assert "at 10, 50 % of the pixels" in written["table5.md"].read_text()
    assert "at 10, 50 % of the pixels" in written["table2.md"].read_text()


def test_tables_of_an_earlier_run_are_never_left_beside_new_ones(tmp_path):
    both = pd.concat([_layer_rows(), _input_rows()], ignore_index=True)
    write_tables(both, tmp_path)
    assert (tmp_path / "table5.md").exists()
    (tmp_path / "fig5_accuracy_vs_percent.png").write_bytes(b"old figure")
    (tmp_path / "notes.txt").write_text("the user's own file")
    written = write_tables(_layer_rows(), tmp_path)
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {*written, "notes.txt"}, "a stale table or figure is left, or a user file gone"


def test_the_paper_comparison_runs_only_on_the_papers_experiment(tmp_path, capsys):
    """Our small ResNet on data named imagenet at 12.5/25 % is not the paper's experiment."""
    mine = _layer_rows().assign(dataset="imagenet")
    csv = tmp_path / "mine.csv"
    mine.to_csv(csv, index=False)
    assert tables_main(["--raw", str(csv), "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "not compared with the paper" in out and not (tmp_path / "a" / "comparison.md").exists()
    # asked for explicitly (the bare flag, as the README writes it): compared, with a warning
    assert tables_main(["--raw", str(csv), "--out", str(tmp_path / "b"), "--compare-paper"]) == 0
    out = capsys.readouterr().out
    assert "not a reproduction check" in out and (tmp_path / "b" / "comparison.md").exists()
    # the paper's own numbers are still compared by default
    paper = ROOT / "results" / "paper" / "table4_long.csv"
    assert tables_main(["--raw", str(paper), "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "comparison.md").exists()
