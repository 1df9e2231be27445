"""The bad-input table: each row is an input a user can give and the message it must get.

Every message names the thing at fault (file, key or value) and what was expected. None of these
trains a model, so the whole table runs in seconds; the few rows that need a process of their own
(the CLI's one-line error, a read-only results tree) are separate tests below.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from roarkar.data.materialize import prepare
from roarkar.data.real import load_image
from roarkar.data.synthetic import generate
from roarkar.report.aggregate import collect_results
from roarkar.report.cli import main as tables_main
from roarkar.report.long import normalize_long, read_long
from roarkar.report.scores import parse_log_base

ROOT = Path(__file__).resolve().parents[2]
GOOD = dict(
    dataset="d", model="m", protocol="layer", method="smoe_scale", layer="L1", mode="kar",
    percent=12.5, seed=0, accuracy=0.5,
)  # fmt: skip


def _long(**change) -> pd.DataFrame:
    rows = change.pop("rows", None) or [GOOD | change]
    return pd.DataFrame(rows)


def _csv(tmp: Path, text: str | bytes) -> Path:
    path = tmp / "long.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _cell_result(tmp: Path, **record) -> Path:
    d = tmp / "cells" / "c1"
    d.mkdir(parents=True)
    cell = {k: GOOD[k] for k in GOOD if k != "accuracy"}
    (d / "result.json").write_text(json.dumps({"cell": cell, "status": "ok"} | record))
    return tmp / "cells"


def _corrupt(tmp: Path) -> Path:
    cells = _cell_result(tmp)
    (cells / "c1" / "result.json").write_text("{oops")
    return cells


def _run(compose_cfg, *overrides: str):
    from roarkar.cli import run

    return run(compose_cfg(list(overrides)), compose_cfg.overrides)


def _plan(compose_cfg, *overrides: str):
    return _run(compose_cfg, "task=plan", *overrides)


def _tables_cli(tmp: Path, *argv: str) -> None:
    """roarkar-tables returns 2 and prints the error: re-raise it as the error the table checks."""
    err = io.StringIO()
    old, sys.stderr = sys.stderr, err
    try:
        code = tables_main(list(argv) + ["--out", str(tmp / "out")])
    finally:
        sys.stderr = old
    if code != 0:
        raise ValueError(err.getvalue())


def _model_file(tmp: Path, payload: bytes | object) -> Path:
    path = tmp / "model.pt"
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        torch.save(payload, path)
    return path


def _load_base(path: Path) -> None:
    from roarkar.models import build_model
    from roarkar.protocols.base import load_model_file

    load_model_file(path, "abc123", build_model("small_resnet", 4))


def _gallery_model(path: Path) -> None:
    from roarkar.gallery import load_model

    load_model(str(path), "small_resnet", 4)


def _image_tree(tmp: Path, data: bytes, name: str = "a.jpg") -> Path:
    path = tmp / "train" / "cat" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


def _jpeg(size: tuple[int, int] = (40, 48)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format="JPEG")
    return buf.getvalue()


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


SYNTH = dict(name="t", kind="synthetic", generator="synth_objects", image_size=16, train_size=8,
             val_size=4, seed=0, shard_size=8)  # fmt: skip

# (id, what the user does, the message it must get)
CASES: list[tuple[str, Callable[[Path, object], object], str]] = [
    # --- the long table (roarkar-tables --raw, results trees) ---
    ("long: missing column", lambda t, c: normalize_long(_long().drop(columns="mode")),
     r"missing column\(s\) mode"),
    ("long: unknown protocol", lambda t, c: normalize_long(_long(protocol="pixel")),
     r"protocol must be 'layer' or 'input'.*protocol='pixel'"),
    ("long: unknown mode", lambda t, c: normalize_long(_long(mode="keep")),
     r"mode must be 'kar' or 'roar'.*mode='keep'"),
    ("long: layer L7", lambda t, c: normalize_long(_long(layer="L7")), r"layer must be L1..L5"),
    ("long: input row with a layer", lambda t, c: normalize_long(_long(protocol="input")),
     r"input-protocol layer must be ''"),
    ("long: empty method", lambda t, c: normalize_long(_long(method="")), r"method is empty"),
    ("long: accuracy in percent", lambda t, c: normalize_long(_long(accuracy=71.3)),
     r"accuracy must be in \[0, 1\] — percent\? e.g. got 71.3"),
    ("long: negative accuracy", lambda t, c: normalize_long(_long(accuracy=-0.1)),
     r"accuracy must be in \[0, 1\]"),
    ("long: text percent", lambda t, c: normalize_long(_long(percent="ten")),
     r"column 'percent' must hold numbers; row 0 has 'ten'"),
    ("long: fractional seed", lambda t, c: normalize_long(_long(seed=1.5)),
     r"column 'seed' must hold integers; row 0 has 1.5"),
    ("long: empty accuracy", lambda t, c: normalize_long(_long(accuracy=None)),
     r"column 'accuracy' must hold numbers; row 0 has None"),
    ("long: conflicting duplicate",
     lambda t, c: normalize_long(_long(rows=[GOOD, GOOD | {"accuracy": 0.9}])),
     r"1 cell\(s\) appear more than once \(1 with different accuracies\); first, conflicting: "
     r"dataset='d'.*seed=0 with accuracies \[0.5, 0.9\]"),
    ("long: exact duplicate", lambda t, c: normalize_long(_long(rows=[GOOD, GOOD])),
     r"first, repeated: dataset='d'.*--allow-exact-duplicates"),
    ("csv: not found", lambda t, c: read_long(t / "nope.csv"), r"long table not found: .*nope.csv"),
    ("csv: empty file", lambda t, c: read_long(_csv(t, "")),
     r"long.csv: not a long-format CSV"),
    ("csv: binary garbage", lambda t, c: read_long(_csv(t, b"\xff\xfe\x00\x81" * 50)),
     r"long.csv: not a long-format CSV"),
    ("csv: header only", lambda t, c: _tables_cli(t, "--raw", str(_csv(t, ",".join(GOOD)))),
     r"long.csv: no results to tabulate"),
    ("csv: non-numeric accuracy",
     lambda t, c: read_long(_csv(t, ",".join(GOOD) + "\nd,m,layer,x,L1,kar,12.5,0,high\n")),
     r"long.csv: column 'accuracy' must hold numbers; row 0 has 'high'"),
    # --- results trees (roarkar-tables --runs, task=tables) ---
    ("runs: missing folder", lambda t, c: collect_results(t / "none"),
     r"results directory not found: .*none"),
    ("runs: accuracy 2", lambda t, c: collect_results(_cell_result(t, accuracy=2)),
     r"c1/result.json: accuracy must be in \[0, 1\]; got 2"),
    ("runs: a failed cell", lambda t, c: _tables_cli(t, "--runs", str(_cell_result(
        t, status="failed", accuracy=None))),
     r"1 failed and 0 unreadable cell result\(s\); first: .*c1/result.json; nothing written"),
    ("runs: a corrupt result.json", lambda t, c: _tables_cli(t, "--runs", str(_corrupt(t))),
     r"0 failed and 1 unreadable .*c1/result.json"),
    ("tables: --paper-dataset without =",
     lambda t, c: _tables_cli(t, "--raw", str(ROOT / "results/paper/table5_long.csv"),
                              "--paper-dataset", "mine"),
     r"--paper-dataset wants OURS=PAPER, got 'mine'"),
    ("tables: --compare-paper on, nothing matches",
     lambda t, c: _tables_cli(t, "--raw", str(_csv(t, pd.DataFrame(
         [GOOD | {"method": m, "mode": mo, "percent": p, "accuracy": a}
          for m in ("random", "mine") for mo, p, a in (("kar", 12.5, .6), ("roar", 25, .4))]
     ).to_csv(index=False))), "--compare-paper"),
     r"--compare-paper on: no dataset/method of these results is in the paper's tables"),
    ("tables: log base 1", lambda t, c: parse_log_base("1"), r"log base"),
    ("tables: log base 'ten'", lambda t, c: parse_log_base("ten"),
     r"log base must be 'e' or '2'; got 'ten'"),
    # --- model files (a results tree's model.pt, roarkar-gallery --checkpoint) ---
    ("model: empty file", lambda t, c: _load_base(_model_file(t, b"")),
     r"cannot read model file .*model.pt"),
    ("model: garbage", lambda t, c: _load_base(_model_file(t, b"not a checkpoint" * 10)),
     r"cannot read model file .*model.pt"),
    ("model: crafted pickle is refused", lambda t, c: _load_base(_model_file(
        t, pickle.dumps(_Boom()))), r"cannot read model file .*model.pt.*Weights only load"),
    ("model: another run's file", lambda t, c: _load_base(_model_file(
        t, {"identity": "zzz", "model": "small_resnet", "state_dict": {}})),
     r"model.pt holds model/run \('small_resnet', 'zzz'\), expected \('small_resnet', 'abc123'\)"),
    ("model: a tensor, not a dict", lambda t, c: _load_base(_model_file(t, torch.zeros(2))),
     r"model.pt holds model/run Tensor"),
    ("gallery: missing checkpoint", lambda t, c: _gallery_model(t / "none.pt"),
     r"--checkpoint .*none.pt does not exist"),
    ("gallery: garbage checkpoint", lambda t, c: _gallery_model(_model_file(t, b"\x80\x02junk")),
     r"--checkpoint .*model.pt cannot be read as a model file"),
    ("gallery: crafted checkpoint", lambda t, c: _gallery_model(_model_file(
        t, pickle.dumps(_Boom()))), r"--checkpoint .*model.pt cannot be read"),
    # --- datasets ---
    ("synthetic: unknown generator", lambda t, c: generate("nope", "train", 4, 16, 0),
     r"'nope'.*synth_cars.*synth_objects.*synth_scenes"),
    ("synthetic: unknown parameter", lambda t, c: prepare(SYNTH | {"bogus": 1}, t), r"bogus"),
    ("synthetic: unknown kind", lambda t, c: prepare({"name": "x", "kind": "imagenet"}, t),
     r"dataset.kind='imagenet'.*synthetic.*imagefolder"),
    ("cars: more cars than vehicles", lambda t, c: generate(
        "synth_cars", "train", 4, 32, 0, buckets=[[0, 0], [1, 4]], num_classes=2),
     r"buckets=\[\(0, 0\), \(1, 4\)\] count up to 4 cars but vehicles=3"),
    ("cars: classes and buckets disagree", lambda t, c: generate(
        "synth_cars", "train", 4, 32, 0, num_classes=3), r"num_classes=3 but buckets"),
    ("imagefolder: root missing", lambda t, c: prepare(
        {"name": "f", "kind": "imagefolder", "root": str(t / "none"), "image_size": 16}, t),
     r"dataset.root=.*none"),
    ("imagefolder: root is a file", lambda t, c: prepare(
        {"name": "f", "kind": "imagefolder", "root": str(_csv(t, "x")), "image_size": 16}, t),
     r"long.csv is a file, not a folder"),
    ("image: truncated jpeg", lambda t, c: load_image(
        _image_tree(t, _jpeg()[:200]), 16, None),
     r"image .*train/cat/a.jpg cannot be decoded .*dataset.skip_corrupt=true"),
    ("image: not an image", lambda t, c: load_image(_image_tree(t, b"hello", "b.png"), 16, None),
     r"image .*b.png cannot be decoded"),
    ("image: resize below size", lambda t, c: load_image(_image_tree(t, _jpeg()), 32, 16),
     r"dataset.resize=16 must be >= dataset.image_size=32"),
    # --- the study's config ---
    ("study: no seeds", lambda t, c: _plan(c, "study.seeds=[]"),
     r"study.seeds=\[\] is empty: give at least one seed"),
    ("study: no percents", lambda t, c: _plan(c, "study.input.percents=[]"),
     r"study.input.percents=\[\] is empty.*study.input=null"),
    ("study: no layers", lambda t, c: _plan(c, "study.layer.layers=[]"),
     r"study.layer.layers=\[\] is empty"),
    ("task: unknown", lambda t, c: _run(c, "task=nope"),
     r"task='nope': expected one of auto, study"),
    ("protocol: unknown target", lambda t, c: _plan(c, "protocol=input", "protocol.target=logit"),
     r"protocol.target='logit': expected one of predicted, label"),
    ("protocol: unknown replacement", lambda t, c: _run(
        c, "task=cell", "protocol=input", "protocol.replacement=blurred"),
     r"protocol.replacement='blurred' is not a known replacement \(did you mean 'blur'\?\); "
     r"registered: mean, zero, blur, linear"),
    # --- names that become folders (one path component each) ---
    ("path: dataset name climbs out", lambda t, c: _run(c, "task=cell", "dataset.name=.."),
     r"dataset.name='..': expected one path component"),
    ("path: dataset name with a separator", lambda t, c: _run(c, "task=cell", "dataset.name=a/b"),
     r"dataset.name='a/b': expected one path component"),
    ("path: absolute method id", lambda t, c: _run(c, "task=cell", "method.id=/tmp/x"),
     r"method.id='/tmp/x': expected one path component"),
    ("path: method id '.'", lambda t, c: _run(c, "task=cell", "method.id=."),
     r"method.id='.': expected one path component"),
    ("path: empty dataset name", lambda t, c: _run(c, "task=cell", "dataset.name=''"),
     r"dataset.name='': expected one path component"),
    # --- settings whose result would be meaningless, refused before any training ---
    ("epochs: an input cell of no epoch", lambda t, c: _run(
        c, "task=cell", "protocol=input", "trainer.epochs.input=0"),
     r"trainer.epochs.input=0: expected at least 1"),
    ("epochs: negative base epochs", lambda t, c: _run(c, "task=cell", "trainer.epochs.base=-1"),
     r"trainer.epochs.base=-1: expected at least 0 \(an untrained base model"),
    ("study: a percent twice", lambda t, c: _plan(c, "study.input.percents=[10,10]"),
     r"study.input.percents=\[10, 10\] lists 10 more than once"),
    ("study: a method twice", lambda t, c: _plan(c, "study.layer.methods=[random,random]"),
     r"study.layer.methods=\['random', 'random'\] lists random more than once"),
    ("layer: a percent that keeps no location", lambda t, c: _run(
        c, "task=cell", "protocol.layer=L5", "protocol.percent=2.5"),
     r"protocol.percent=2.5 at tap L5 \(16 locations\): 2.5 % of its 16 locations rounds to 0"),
    ("device: cuda without a GPU", lambda t, c: _run(c, "task=cell", "device=cuda")
     if not torch.cuda.is_available() else pytest.skip("this machine has a GPU"),
     r"device=cuda: torch sees no CUDA device on this machine; use device=cpu"),
    ("dataset: an empty train split", lambda t, c: _run(c, "task=cell", "dataset.train_size=0"),
     r"dataset.train_size=0: expected null \(every image\) or a whole number of images >= 1"),
    ("input: a percent that removes every pixel", lambda t, c: _run(
        c, "task=cell", "protocol=input", "protocol.mode=roar", "protocol.percent=99.99"),
     r"protocol.percent=99.99 at 32x32 px: .* rounds to 1024, so a cell would keep or remove "
     r"every location"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "make"), [(c[2], c[1]) for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_gets_a_message_naming_it(tmp_path, compose_cfg, what, make):
    """The message names the input, and the error is one the entry points end in one line
    (ValueError or OSError, roarkar/entry.py): any other type would show the user a traceback."""
    with pytest.raises(Exception) as info:  # noqa: PT011 - the message is what is checked
        make(tmp_path, compose_cfg)
    assert re.search(what, str(info.value), re.S), f"message was: {info.value}"
    assert isinstance(info.value, ValueError | OSError), type(info.value).__mro__


def test_a_crafted_pickle_never_runs(tmp_path):
    """The payload would create a file; no reader roarkar has may run it."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = _model_file(tmp_path, pickle.dumps(Payload()))
    for reader in (_load_base, _gallery_model):
        with pytest.raises(ValueError):
            reader(path)
    from roarkar.training.checkpoint import load_checkpoint

    with pytest.raises(ValueError, match=r"cannot read checkpoint .*model.pt"):
        load_checkpoint(path, "abc123")
    assert not marker.exists()


def _cli(*args: str, env: dict | None = None, user: str | None = None):
    cmd = [sys.executable, "-m", "roarkar.cli", *args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    full = os.environ | {"PYTHONPATH": str(ROOT)} | (env or {})
    full.pop("HYDRA_FULL_ERROR", None) if not env else None
    return subprocess.run(cmd, capture_output=True, text=True, env=full, cwd=ROOT, timeout=120)


def test_a_known_error_is_one_last_line_without_a_traceback(tmp_path):
    res = _cli("study.seeds=[]", "task=plan", f"paths.results={tmp_path}")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert lines[-1] == (
        "roarkar: error: study.seeds=[] is empty: give at least one seed, e.g. study.seeds=[0]"
    )
    assert "Traceback" not in res.stderr
    full = _cli("study.seeds=[]", "task=plan", f"paths.results={tmp_path}",
                env={"HYDRA_FULL_ERROR": "1"})  # fmt: skip
    assert "Traceback" in full.stderr and full.returncode != 0


def test_a_read_only_results_tree_can_be_inspected():
    """task=status on a tree nobody may write: Hydra's run folder goes to a temp dir."""
    import shutil
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="roarkar-ro-"))  # not under pytest's 0700 tmp folders
    os.chmod(top, 0o755)
    results = top / "ro"
    results.mkdir()
    os.chmod(results, 0o555)
    user = None
    if os.geteuid() == 0:  # root writes anywhere: run the CLI as nobody instead
        user = "65534"
    try:
        res = _cli("task=status", f"paths.results={results}", user=user)
        assert res.returncode == 0, res.stderr[-2000:]
        assert "todo" in res.stdout and not (results / "hydra").exists()
    finally:
        os.chmod(results, 0o755)
        shutil.rmtree(top)


def test_an_image_smaller_than_its_conversion_size_is_reported(tmp_path, monkeypatch):
    from roarkar.data import real

    real.reset_warnings()
    path = _image_tree(tmp_path, _jpeg((40, 48)))
    with pytest.warns(real.UpscaledImageWarning, match=r"a.jpg is 40x48 px, smaller than "):
        load_image(path, 224, 256)


def test_the_other_commands_end_a_known_error_in_one_line_too(tmp_path):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    env.pop("HYDRA_FULL_ERROR", None)
    missing = tmp_path / "none.pt"
    res = subprocess.run(
        [sys.executable, "-m", "roarkar.gallery", "--checkpoint", str(missing), "--out",
         str(tmp_path / "g")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        f"roarkar-gallery: error: --checkpoint {missing} does not exist (expected a model.pt)"
    )
