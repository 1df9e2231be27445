"""roarkar-bench: the CLI on a tiny configuration writes a table with every selected section and
finite values. Performance is measured by the bench, never asserted here."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from roarkar.bench.cli import SECTIONS, parse_args
from roarkar.bench.gpu import peak_tflops
from roarkar.bench.study import precision_rows, run_study
from roarkar.bench.table import COLUMNS, meets
from roarkar.bench.timing import Samples, paired_quartiles, paired_ratio
from roarkar.bench.workload import sizes_for

TINY = tuple(s for s in SECTIONS if s != "study")  # every section but the study, tiny


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[pd.DataFrame, Path, str]:
    """One tiny run in a fresh process (so the bench sets OMP_WAIT_POLICY before torch loads)."""
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "roarkar.bench.cli",
            "--tiny",
            "--out",
            str(out),
            "--only",
            ",".join(TINY),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not list(out.glob("latest*")), "a run of some sections leaves the latest tables alone"
    (path,) = out.glob("bench-*-tiny-only-*.csv")
    return pd.read_csv(path, keep_default_na=False), path, proc.stdout


def test_tiny_run_has_every_section_with_finite_values(tiny_run):
    df, out, stdout = tiny_run
    assert list(df.columns) == list(COLUMNS)
    assert set(df.section) >= set(TINY) | {"smoe_flops"}
    assert "section failed" not in set(df.what)
    measured = df[df.section != "gpu"]
    for _, r in measured.iterrows():
        assert math.isfinite(float(r.value)), (r.section, r.what, r.value)
    timed = measured[measured.unit.isin(["ms/image", "images/s", "ms/batch"])]
    assert (timed.value.astype(float) > 0).all()
    assert timed.cpu_over_wall.astype(float).map(math.isfinite).all()
    assert set(df.meets_target) <= {"", "yes", "no"}
    # the targets of issue 7 are checked in the table itself
    targets = df[df.target != ""]
    assert {"smoe", "captum", "training", "layer"} <= set(targets.section)
    assert set(targets.meets_target) <= {"yes", "no"}
    # issue 12: streaming against a memcpy of the same bytes, conversion with 1 and 2 workers
    loader = df[df.section == "loader"]
    assert loader.what.str.contains("memcpy").any()
    streamed = loader[loader.what.str.contains("streamed") & (loader.target != "")]
    assert len(streamed) == 3 and (streamed.ratio.astype(float) > 0).all()
    convert = loader[loader.what.str.contains("convert") & loader.what.str.contains("workers")]
    assert len(convert) == 3 and convert.target.str.contains(">= 1.5").any()
    # one line names SMOE's overhead over a forward pass
    assert any("SMOE" in line and "forward" in line for line in stdout.splitlines())
    # the paper's Table 6 sits beside our op counts
    flops = df[df.section == "smoe_flops"]
    assert flops.notes.str.contains("paper Table 6").any()
    # CSV and Markdown both written, with the environment
    md = out.with_suffix(".md").read_text()
    assert "torch" in md and "OMP_WAIT_POLICY" in md and "| section |" in md
    assert "glibc malloc" in md
    assert len(list(out.parent.glob("bench-*-tiny-only-*.csv"))) == 1
    gpu = df[df.section == "gpu"]
    assert len(gpu) >= 1


def test_runtime_rows_compare_each_side_in_its_own_process(tiny_run):
    df, _, _ = tiny_run
    rt = df[df.section == "runtime"]
    sides = rt[rt.unit == "ms"]
    assert len(sides) == 4 and (sides.value.astype(float) > 0).all()
    assert sides[sides.what.str.endswith("malloc roarkar")].notes.str.startswith("tuned").all()
    glibc = sides[sides.what.str.endswith("malloc glibc default")]
    assert glibc.notes.str.startswith("glibc defaults").all()
    speedups = rt[rt.unit == "x"]
    assert len(speedups) == 2 and (speedups.ratio.astype(float) > 0).all()


def test_captum_parity_rows_name_the_reference(tiny_run):
    df = tiny_run[0]
    captum = df[df.section == "captum"]
    names = {w.split(":")[0] for w in captum.what}
    assert names == {
        "gradient",
        "guided_backprop",
        "grad_x_input",
        "integrated_gradients",
        "smoothgrad_sq",
    }
    exact = captum[captum.what.str.startswith(("gradient", "guided_backprop", "grad_x_input"))]
    assert exact.notes.str.contains("max |ours - captum|", regex=False).all()


def test_study_section_times_the_command_twice(tmp_path):
    sz = sizes_for("tiny")
    calls = []

    def fake(results, overrides):
        calls.append((results, overrides))
        return [sys.executable, "-c", "print('study')"]

    rows = run_study(sz, cmd_for=fake)
    study = [r for r in rows if r["section"] == "study"]
    assert len(study) == 2 and calls[0] == calls[1]
    assert all(r["value"] >= 0 for r in study)
    assert "debug=smoke" in calls[0][1]
    # the precision runs go through the same command; this one writes no model: named as failed
    precision = [r for r in rows if r["section"] == "precision"]
    assert len(precision) == 2 and all(math.isnan(r["value"]) for r in precision)
    assert all("FAILED" in r["notes"] for r in precision)
    assert any("trainer.amp=bf16" in c[1] for c in calls[2:])
    failing = run_study(sz, cmd_for=lambda r, o: [sys.executable, "-c", "raise SystemExit(3)"])
    failing = [r for r in failing if r["section"] == "study"]  # stops after the failed first run
    assert len(failing) == 1 and math.isnan(failing[0]["value"])
    assert "exit code 3" in failing[0]["notes"]


def test_precision_rows_train_the_embedded_base_model_in_both_precisions():
    """The real `roarkar task=base` (debug=smoke) in float32 and bf16: accuracies read back."""
    rows = precision_rows(sizes_for("tiny"))
    assert [r["what"].rsplit(", ", 1)[1] for r in rows] == ["float32", "bf16 autocast"]
    assert all(0.0 <= r["value"] <= 1.0 for r in rows), rows
    assert math.isnan(rows[0]["ratio"]) and math.isfinite(rows[1]["ratio"])
    assert "x float32's" in rows[1]["notes"]


def test_arguments_and_helpers():
    assert parse_args([]).sections == list(SECTIONS)
    assert parse_args(["--only", "smoe,captum"]).sections == ["smoe", "captum"]
    with pytest.raises(SystemExit):
        parse_args(["--only", "nonsense"])
    assert meets(0.9, "<= 1.0") is True and meets(1.4, ">= 1.5") is False
    assert meets(float("nan"), "<= 1") is None and meets(3.0, None) is None
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("Some GPU") is None
    for mode in ("quick", "full", "tiny"):
        assert sizes_for(mode).repeats >= 1


def test_paired_ratio_and_quartiles_use_only_rounds_both_ran():
    a, b = Samples(), Samples()
    a.wall = {0: 2.0, 1: 3.0, 2: 4.0, 3: 5.0, 9: 100.0}
    b.wall = {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}
    assert paired_ratio(a, b) == 3.5
    assert paired_quartiles(a, b) == (2.75, 4.25)
    b.wall = {0: 1.0}
    assert paired_quartiles(a, b) == (2.0, 2.0)
    b.wall = {}
    assert all(math.isnan(q) for q in paired_quartiles(a, b))


def test_streamed_training_rows_run_on_cpu():
    """The GPU section's streamed-training rows, run with a small model on the CPU (the code a
    session with a GPU runs at 224 px on ResNet-50)."""
    from roarkar.bench.gpu import stream_training_rows
    from roarkar.bench.workload import sizes_for

    rows = stream_training_rows(sizes_for("tiny"), "cpu", "small_resnet", 32, 8, 16, 3)
    assert [r["unit"] for r in rows] == ["images/s", "fraction", "images/s"]
    assert all(math.isfinite(r["value"]) and r["value"] >= 0 for r in rows)
    assert 0 <= rows[1]["value"] < 1 and rows[0]["ratio"] > 0
