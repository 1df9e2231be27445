"""The true-class score beside accuracy (issue 17, item 2): a real cell and its base model record
it, and ``roarkar-tables --metric true_class_score`` computes, labels and files its own tables
without touching the accuracy outputs; results without it load, but its tables refuse them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from roarkar.report.aggregate import collect_results
from roarkar.report.cli import main as tables_main
from roarkar.report.long import normalize_long, read_long
from roarkar.report.metric import MissingMetricError, select_metric
from roarkar.report.write import write_tables
from tests.conftest import cell_record

PAPER = Path(__file__).resolve().parents[2] / "results" / "paper"
SCORE = "true_class_score"

# (method, mode) -> (accuracy, true-class score); layer cells at L2 and L4, one seed
LAYER = {
    ("random", "kar"): (0.5, 0.4),
    ("random", "roar"): (0.6, 0.5),
    ("smoe_scale", "kar"): (0.7, 0.65),
    ("smoe_scale", "roar"): (0.3, 0.2),
}
# input cells at 50 %
INPUT = {
    ("random", "kar"): (0.4, 0.35),
    ("random", "roar"): (0.45, 0.4),
    ("smoe_scale", "kar"): (0.6, 0.55),
    ("smoe_scale", "roar"): (0.2, 0.1),
}


def _result(root: Path, name: str, cell: dict, accuracy: float, score: float | None) -> Path:
    path = root / name / "result.json"
    path.parent.mkdir(parents=True)
    rec = {"cell": cell, "status": "ok", "accuracy": accuracy, "cell_id": name}
    if score is not None:  # an old result has no field at all
        rec[SCORE] = score
    path.write_text(json.dumps(rec))
    return path


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for (method, mode), (acc, score) in LAYER.items():
        for layer in ("L2", "L4"):
            _result(root, f"{method}-{mode}-{layer}", cell_record(method, mode, layer), acc, score)
    for (method, mode), (acc, score) in INPUT.items():
        _result(root, f"{method}-{mode}-input", cell_record(method, mode, percent=50.0), acc, score)
    return root


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_score_tables_are_computed_from_the_score_labelled_and_filed_apart(
    tmp_path: Path, runs: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "tables"
    assert tables_main(["--runs", str(runs), "--out", str(out), "--bootstrap", "0"]) == 0
    accuracy_files = _files(out)
    assert "table1.csv" in accuracy_files and "table5.md" in accuracy_files
    capsys.readouterr()

    argv = ["--runs", str(runs), "--out", str(out), "--metric", SCORE, "--figures"]
    assert tables_main(argv) == 0
    printed = capsys.readouterr().out
    assert "Metric: true-class score" in printed and "not compared with the paper" in printed
    assert _files(out) == accuracy_files  # the accuracy outputs are untouched
    sub = out / SCORE
    assert set(_files(sub)) == {
        "long.csv",
        *(f"table{n}.{ext}" for n in (1, 2, 4, 5) for ext in ("csv", "md", "tex")),
        "fig4_layer_scores.png",
        f"fig5_{SCORE}_vs_percent.png",
        f"fig_seed002_{SCORE}_vs_t.png",  # input ROAR cells: seed 002's figure too
    }

    # Eq 8 from the scores: 2 * (0.5 - 0.2) + 2 * (0.65 - 0.4) = 1.1; from accuracies 1.0
    t1, a1 = pd.read_csv(sub / "table1.csv"), pd.read_csv(out / "table1.csv")
    assert t1.loc[t1["dataset"] == "synth", "difference"].item() == pytest.approx(1.1)
    assert a1.loc[a1["dataset"] == "synth", "difference"].item() == pytest.approx(1.0)
    # Table 2 SUM of smoe_scale: 0.55 - 0.1 from the scores, 0.6 - 0.2 from accuracies
    t2, a2 = pd.read_csv(sub / "table2.csv"), pd.read_csv(out / "table2.csv")
    assert t2.set_index("method").loc["smoe_scale", "sum"] == pytest.approx(0.45)
    assert a2.set_index("method").loc["smoe_scale", "sum"] == pytest.approx(0.4)
    t4 = pd.read_csv(sub / "table4.csv")
    assert SCORE in t4.columns and "accuracy" not in t4.columns
    kar = t4[(t4["method"] == "smoe_scale") & (t4["mode"] == "kar")]
    assert kar[SCORE].tolist() == pytest.approx([65.0, 65.0])
    assert "accuracy" in pd.read_csv(out / "table4.csv").columns

    for n in (1, 2, 4, 5):
        md = (sub / f"table{n}.md").read_text()
        assert f"Table {n} [true-class score]" in md and "Metric: true-class score" in md
        assert "[true-class score]" not in (out / f"table{n}.md").read_text()
    assert "true-class score (%) per layer" in (sub / "table4.md").read_text()
    assert "[true-class score]" in (sub / "table1.tex").read_text()

    long = pd.read_csv(sub / "long.csv")
    assert {"accuracy", SCORE} <= set(long.columns)
    assert long[SCORE].notna().all() and (long[SCORE] != long["accuracy"]).all()

    # a later accuracy run leaves the score outputs alone
    score_files = _files(sub)
    assert tables_main(["--runs", str(runs), "--out", str(out), "--bootstrap", "0"]) == 0
    assert _files(sub) == score_files


def test_old_results_load_and_score_tables_name_the_cells_lacking_it(
    tmp_path: Path, runs: Path, capsys: pytest.CaptureFixture
) -> None:
    for (method, mode), (acc, _) in LAYER.items():  # a layer run before the score existed
        old = _result(runs, f"old-{method}-{mode}", cell_record(method, mode, "L3"), acc, None)
    df = collect_results(runs)
    assert SCORE in df.columns and df[SCORE].isna().sum() == 4
    with pytest.raises(MissingMetricError, match=r"4 of 16 cell result\(s\)") as err:
        select_metric(df, SCORE)
    assert str(old) in str(err.value)
    assert select_metric(df, "accuracy") is df

    out = tmp_path / "tables"
    (out / SCORE).mkdir(parents=True)
    (out / SCORE / "table1.csv").write_text("an earlier run's table\n")
    argv = ["--runs", str(runs), "--out", str(out), "--metric", SCORE]
    assert tables_main(argv) == 2
    message = capsys.readouterr().err
    assert "true_class_score" in message and str(old) in message
    # all or nothing: nothing written, nothing of an earlier run removed
    assert _files(out / SCORE) == {"table1.csv": b"an earlier run's table\n"}
    with pytest.raises(MissingMetricError):
        write_tables(df, out, metric=SCORE)
    from roarkar.report.figures import write_figures

    with pytest.raises(MissingMetricError):
        write_figures(df, out, metric=SCORE)
    # the accuracy tables still take the old results
    assert tables_main(["--runs", str(runs), "--out", str(out), "--bootstrap", "0"]) == 0


def test_a_long_csv_without_the_column_names_its_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    raw = PAPER / "table4_long.csv"
    assert SCORE not in read_long(raw).columns
    assert tables_main(["--raw", str(raw), "--out", str(tmp_path), "--metric", SCORE]) == 2
    message = capsys.readouterr().err
    assert "300 of 300 cell result(s) do not record it" in message
    assert "no 'true_class_score' column" in message and "row 'Random'" in message
    assert "more" in message  # the paper's table has far more than ten cells: not all listed
    assert not any(tmp_path.iterdir())


def test_bad_scores_and_metrics_are_named(tmp_path: Path, runs: Path) -> None:
    df = collect_results(runs)
    with pytest.raises(ValueError, match=r"true_class_score must be in \[0, 1\]"):
        normalize_long(df.assign(**{SCORE: 1.5}))
    with pytest.raises(ValueError, match="true_class_score must be a number"):
        normalize_long(df.astype({SCORE: object}).assign(**{SCORE: "high"}))
    with pytest.raises(ValueError, match="unknown metric 'loss'"):
        select_metric(df, "loss")
    _result(runs, "bad", cell_record("random", "kar", "L1"), 0.5, 2.0)
    with pytest.raises(ValueError, match=r"bad/result.json: true_class_score must be in \[0, 1\]"):
        collect_results(runs)
    argv = ["--runs", str(runs), "--out", str(tmp_path), "--metric", SCORE]
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        tables_main([*argv[:-1], "loss"])
    (runs / "bad" / "result.json").unlink()
    assert tables_main([*argv, "--compare-paper", "on"]) == 2


def test_a_long_csv_round_trips_the_score_with_gaps(tmp_path: Path, runs: Path) -> None:
    df = collect_results(runs)
    df.loc[0, SCORE] = math.nan  # one cell from before the score was recorded
    path = tmp_path / "long.csv"
    df.drop(columns=["source"]).to_csv(path, index=False)
    back = read_long(path)
    assert back[SCORE].isna().tolist() == df[SCORE].isna().tolist()
    assert back[SCORE].dropna().tolist() == pytest.approx(df[SCORE].dropna().tolist())
    with pytest.raises(MissingMetricError, match="1 of 12") as err:
        select_metric(back, SCORE)
    first = df.iloc[0]
    assert f"method={first['method']!r}, layer={first['layer']!r}" in str(err.value)


def test_a_real_cell_and_its_base_model_record_the_score(compose_cfg, tmp_path: Path) -> None:
    """A smoke cell trains for real; the base model's score is recomputed here, independently of
    the trainer, from its saved weights on the val split."""
    from roarkar.config import resolve
    from roarkar.data import normalize
    from roarkar.models import build_model
    from roarkar.protocols.cell import cell_path, run_cell
    from roarkar.protocols.context import make_context
    from roarkar.store import read_result
    from roarkar.training import DistInfo

    cfg = compose_cfg(["task=cell", "protocol.layer=L5"])
    record = run_cell(cfg)
    assert record["status"] == "ok", record.get("error")
    stored = read_result(cell_path(cfg)[2])
    assert 0.0 < stored[SCORE] <= 1.0 and stored[SCORE] == record[SCORE]
    assert stored[SCORE] != stored["accuracy"]

    (base_json,) = (tmp_path / "results" / "models").rglob("result.json")
    base = json.loads(base_json.read_text())
    assert record["base_model"][SCORE] == base[SCORE]
    ctx = make_context(resolve(cfg), DistInfo())
    saved = torch.load(base_json.with_name("model.pt"), map_location="cpu", weights_only=True)
    model = build_model(str(cfg.model.name), ctx.info.num_classes, **dict(cfg.model.params or {}))
    model.load_state_dict(saved["state_dict"])
    with torch.no_grad():
        logits = model.eval()(normalize(ctx.val.images, ctx.info)).double()
    labels = ctx.val.labels
    probs = torch.softmax(logits, 1)[torch.arange(len(labels)), labels]
    assert base[SCORE] == pytest.approx(float(probs.mean()), abs=1e-6)
    assert base["accuracy"] == pytest.approx(float((logits.argmax(1) == labels).double().mean()))
    assert 0.0 < base[SCORE] <= 1.0
