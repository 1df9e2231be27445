"""A base model from a weights file (``model.weights=<path>``): loaded, never trained, identified by
the file's content, checked against the dataset, and used by the study's cells like a trained one."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch

from roarkar.cli import run
from roarkar.models import build_model

ONE_CELL = [
    "study.layer.methods=[smoe_scale]",
    "study.layer.layers=[L2]",
    "study.layer.modes=[kar]",
    "study.input=null",
]


def _weights(path, classes=8, seed=0, wrap=None):
    torch.manual_seed(seed)
    state = build_model("small_resnet", classes).net.state_dict()
    torch.save(wrap(state) if wrap else state, path)
    return path


def _base_results(root):
    return [json.loads(p.read_text()) for p in (root / "models").rglob("result.json")]


def test_a_weights_file_is_the_base_model_of_a_study(compose_cfg, tmp_path):
    weights = _weights(tmp_path / "mine.pth")
    out = run(compose_cfg([*ONE_CELL, f"model.weights={weights}"]), compose_cfg.overrides)
    assert out["failed"] == 0 and len(out["records"]) == 1
    (base,) = _base_results(tmp_path / "results")
    assert base["history"] == [] and base["weights_file"] == str(weights)
    assert base["weights_sha256"] and 0 <= base["accuracy"] <= 1
    # evaluated like a trained one: the true-class score in its record and in the cell's
    assert 0 < base["true_class_score"] <= 1
    assert out["records"][0]["base_model"]["true_class_score"] == base["true_class_score"]
    # the same weights elsewhere, another seed or recipe: the same base model (nothing re-made)
    moved = shutil.copy(weights, tmp_path / "copy.pth")
    cfg = compose_cfg(["task=base", f"model.weights={moved}", "seed=3", "trainer.epochs.base=7"])
    again = run(cfg, compose_cfg.overrides)
    assert again["identity"] == base["identity"] and len(_base_results(tmp_path / "results")) == 1
    # other weights: another base model
    other = _weights(tmp_path / "other.pth", seed=1)
    third = run(compose_cfg(["task=base", f"model.weights={other}"]), compose_cfg.overrides)
    assert third["identity"] != base["identity"]


@pytest.mark.parametrize(
    "wrap", [lambda s: {"state_dict": s}, lambda s: {f"module.{k}": v for k, v in s.items()}]
)
def test_wrapped_state_dicts_are_read(compose_cfg, tmp_path, wrap):
    weights = _weights(tmp_path / "w.pt", wrap=wrap)
    out = run(compose_cfg(["task=base", f"model.weights={weights}"]), compose_cfg.overrides)
    assert 0 <= out["accuracy"] <= 1 and 0 < out["true_class_score"] <= 1


def test_weights_for_another_number_of_classes_name_both(compose_cfg, tmp_path):
    weights = _weights(tmp_path / "ten.pth", classes=10)
    with pytest.raises(ValueError, match=r"ten.pth classifies 10 classes but dataset "
                       r"'synth_objects' has 8"):  # fmt: skip
        run(compose_cfg(["task=base", f"model.weights={weights}"]), compose_cfg.overrides)


def test_weights_of_another_architecture_name_the_keys(compose_cfg, tmp_path):
    torch.manual_seed(0)
    state = build_model("small_resnet", 8, width=8).net.state_dict()
    torch.save(state, tmp_path / "narrow.pth")
    with pytest.raises(
        ValueError, match=r"narrow.pth does not fit the model .*shape: conv1.weight"
    ):
        run(
            compose_cfg(["task=base", f"model.weights={tmp_path / 'narrow.pth'}"]),
            compose_cfg.overrides,
        )


def test_a_crafted_weights_file_is_refused_not_run(compose_cfg, tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ValueError, match=r"evil.pth cannot be read as weights"):
        run(compose_cfg(["task=base", f"model.weights={path}"]), compose_cfg.overrides)
    assert not marker.exists()


def test_file_hash_follows_the_content_when_a_file_is_rewritten(tmp_path):
    """``file_sha256`` is remembered per path, size and modification time: a rewritten file (even
    of the same size) gets its new content's hash, never the remembered one."""
    import hashlib
    import os

    from roarkar.identity import file_sha256

    path = tmp_path / "weights.pt"
    path.write_bytes(b"a" * 1000)
    first = file_sha256(path)
    assert first == hashlib.sha256(b"a" * 1000).hexdigest() == file_sha256(path)
    stat = path.stat()
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert file_sha256(path) == hashlib.sha256(b"b" * 1000).hexdigest()
    path.write_bytes(b"c" * 10)
    assert file_sha256(path) == hashlib.sha256(b"c" * 10).hexdigest()
