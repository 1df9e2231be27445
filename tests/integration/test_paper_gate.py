"""The paper comparison is printed, or the reason it is not (roarkar.report.paper_gate): cells
are compared automatically only when they are the paper's cells, trained by its recipe on the
full datasets from a fit base model; task=tables prints the comparison or one line saying why."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from roarkar.cli import run
from roarkar.report.paper import load_paper
from roarkar.report.paper_gate import paper_epochs, why_not_compared

PAPER = Path(__file__).resolve().parents[2] / "results" / "paper"


@pytest.fixture(scope="module")
def paper() -> dict[str, pd.DataFrame]:
    return load_paper(PAPER)


def _records(long: pd.DataFrame, input_epochs: int = 90, train_size=None) -> list[dict]:
    """result.json contents of ``long``'s cells, trained by ``input_epochs`` on ``train_size``."""
    epochs = paper_epochs() | {"input": input_epochs}
    return [
        {
            "cell": {k: row[k] for k in ("dataset", "model", "protocol", "method", "mode", "seed")}
            | {"layer": "" if pd.isna(row["layer"]) else row["layer"], "percent": row["percent"]},
            "status": "ok",
            "accuracy": row["accuracy"],
            "base_model": {"warnings": []},
            "config": {
                "trainer": {"epochs": epochs},
                "dataset": {"train_size": train_size, "val_size": None},
            },
        }
        for _, row in long.iterrows()
    ]


def test_the_papers_cells_by_its_recipe_are_compared(paper):
    t5 = paper["t5_long"]
    assert paper_epochs() == {"base": 90, "layer": 25, "input": 90}  # conf/trainer/he2016.yaml
    assert why_not_compared(t5, _records(t5), paper) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"input_epochs": 5},
            "the cells trained 5 input epochs, the paper's recipe 90 (trainer=he2016)",
        ),
        ({"train_size": 1000}, "the cells trained on a subset (dataset.train_size=1000)"),
    ],
)
def test_another_recipe_or_a_subset_is_not_compared_and_says_why(paper, change, reason):
    t5 = paper["t5_long"]
    assert why_not_compared(t5, _records(t5, **change), paper) == reason


def test_an_unfit_base_model_or_other_cells_are_not_compared(paper):
    t5 = paper["t5_long"].assign(base_warning="untrained: trainer.epochs.base=0")
    assert why_not_compared(t5, (), paper).startswith("the base model is unfit (untrained")
    embedded = paper["t5_long"].assign(dataset="synth_objects")
    assert why_not_compared(embedded, (), paper).startswith("no cell is one of the paper's")
    small = paper["t5_long"].assign(model="small_resnet")
    assert "share the paper's dataset and method names but not its model" in why_not_compared(
        small, (), paper
    )


def _tree(root: Path, records: list[dict]) -> None:
    for i, record in enumerate(records):
        folder = root / "cells" / "imagenet" / "resnet50" / "input" / record["cell"]["method"]
        path = folder / f"input-{record['cell']['mode']}-{i:04d}" / "result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))


def test_task_tables_prints_the_comparison_or_the_one_line_why_not(compose_cfg, tmp_path, paper):
    t5 = paper["t5_long"]
    ours, other = tmp_path / "ours", tmp_path / "other"
    _tree(ours, _records(t5))
    _tree(other, _records(t5, input_epochs=5))
    out = run(compose_cfg(["task=tables"], results=ours), compose_cfg.overrides)
    assert "not compared with the paper" not in out["tables"]
    assert "ARE the paper's own" in out["tables"]  # these cells are the published ones
    assert (ours / "tables" / "compare_table5.csv").is_file()
    again = run(compose_cfg(["task=tables"], results=other), compose_cfg.overrides)
    assert (
        "not compared with the paper: the cells trained 5 input epochs, the paper's recipe 90 "
        "(trainer=he2016)" in again["tables"]
    )
    assert not (other / "tables" / "compare_table5.csv").exists()
