"""Every per-tap statistic runs through the layer protocol; every method precomputes for the input
protocol (with cheap sample/step counts: this checks the plumbing, not the paper's settings)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from roarkar.config import resolve
from roarkar.protocols.base import MODEL_FILE, base_dir, ensure_base_model
from roarkar.protocols.cell import run_cell
from roarkar.protocols.context import make_context
from roarkar.protocols.precompute import ensure_ranks
from roarkar.saliency import available, describe
from roarkar.saliency.methods.precomputed import PRECOMPUTED
from roarkar.saliency.registry import cheap_params
from roarkar.training import DistInfo

LAYER_METHODS = [n for n in available() if describe(n).supports_layer]


def _with_method(cfg, name):
    OmegaConf.update(
        cfg, "method", {"id": name, "name": name, "params": cheap_params(name)}, merge=False
    )
    return cfg


@pytest.mark.parametrize("name", LAYER_METHODS)
def test_layer_protocol_accepts_every_per_tap_statistic(compose_cfg, name):
    """Each statistic trains its cell: an accuracy in [0, 1], one history entry per configured
    epoch (two, one step each), and the recorded config is this case's method and tap."""
    cfg = _with_method(
        compose_cfg(
            ["task=cell", "protocol.layer=L2", "dataset.train_size=32", "trainer.batch_size=32",
             "trainer.epochs.layer=2"]
        ),
        name,
    )  # fmt: skip
    record = run_cell(cfg)
    assert record["status"] == "ok", record.get("error")
    accuracy = record["accuracy"]
    assert isinstance(accuracy, float) and 0.0 <= accuracy <= 1.0, accuracy
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    recorded = record["config"]
    assert recorded["method"] == {"id": name, "name": name, "params": cheap_params(name)}
    assert recorded["protocol"]["layer"] == "L2" and recorded["trainer"]["epochs"]["layer"] == 2
    assert record["cell"]["method"] == name and record["cell"]["layer"] == "L2"


def test_input_protocol_accepts_every_method(compose_cfg):
    cfg = compose_cfg(
        [
            "protocol=input",
            "dataset.train_size=16",
            "dataset.val_size=8",
            "trainer.eval_batch_size=8",
        ]
    )
    ctx = make_context(resolve(cfg), DistInfo())
    base, base_id, _ = ensure_base_model(ctx)
    failures = {}
    for name in available():
        if (
            name == PRECOMPUTED
        ):  # its maps come from files: tests/integration/test_precomputed_maps.py
            continue
        ctx = ctx.for_config(resolve(_with_method(cfg.copy(), name)))
        try:
            ranks = ensure_ranks(ctx, base, base_id, base_dir(ctx, base_id) / MODEL_FILE)
            assert ranks["train"].shape == (16, 32, 32) and ranks["val"].shape == (8, 32, 32)
        except Exception as exc:  # collect them all, report at once
            failures[name] = f"{type(exc).__name__}: {exc}"
    assert not failures, failures
