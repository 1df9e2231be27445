"""The artifact store: one rule of "finished" for cells, base models, precomputes and metric runs."""

from __future__ import annotations

import json

import pytest

from roarkar.cli import run
from roarkar.store import Artifact, is_finished


def test_finished_is_a_record_with_status_ok_naming_no_other_identity(tmp_path):
    artifact = Artifact("metric_run", "abc123", tmp_path / "run", record="run.json")
    assert artifact.read() is None and artifact.finished() is None
    with pytest.raises(ValueError, match="needs a status"):
        artifact.write_record({"accuracy": 0.5})
    artifact.write_record({"status": "failed"})
    assert artifact.read()["status"] == "failed" and artifact.finished() is None
    written = artifact.write_record({"status": "ok", "value": 1})
    assert written == {"kind": "metric_run", "identity": "abc123", "status": "ok", "value": 1}
    assert artifact.finished() == written == json.loads(artifact.record_path.read_text())
    assert not list(artifact.directory.glob(".*tmp"))  # written through a renamed temp file
    other = Artifact("metric_run", "def456", artifact.directory, record="run.json")
    assert other.finished() is None  # same directory, another run's record
    (tmp_path / "old").mkdir()  # a cell recorded before records named their identity
    (tmp_path / "old" / "result.json").write_text(json.dumps({"status": "ok"}))
    assert Artifact("cell", "abc123", tmp_path / "old").finished() and is_finished(tmp_path / "old")
    (tmp_path / "old" / "result.json").write_text("{oops")
    with pytest.raises(ValueError, match="old/result.json is not valid JSON"):
        Artifact("cell", "abc123", tmp_path / "old").finished()


def test_a_base_model_without_its_record_is_made_again(compose_cfg, tmp_path):
    first = run(compose_cfg(["task=base"]), [])
    (record,) = (tmp_path / "results" / "models").rglob("result.json")
    model = record.with_name("model.pt")
    saved = json.loads(record.read_text())
    assert saved["kind"] == "base_model" and saved["identity"] == first["identity"]
    stamp = model.stat().st_mtime_ns
    assert run(compose_cfg(["task=base"]), [])["identity"] == first["identity"]
    assert model.stat().st_mtime_ns == stamp  # finished: reused
    record.unlink()  # killed between model.pt and its record: not finished
    assert run(compose_cfg(["task=base"]), [])["accuracy"] == first["accuracy"]
    assert model.stat().st_mtime_ns != stamp and record.is_file()
