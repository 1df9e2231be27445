"""Saliency precompute: shared out over workers, resumable, verified, never stale."""

from __future__ import annotations

import json

import pytest
import torch

from roarkar.cli import run
from roarkar.protocols.base import MODEL_FILE, base_dir, ensure_base_model
from roarkar.protocols.cell import run_cell
from roarkar.protocols.context import make_context
from roarkar.protocols.precompute import SPEC, compute_parts, ensure_ranks, precompute_dir
from roarkar.training import DistInfo

SMALL = [
    "protocol=input",
    "method=smoe_scale",
    "trainer.eval_batch_size=16",
    "dataset.shard_size=32",
]


def _ctx(compose_cfg, extra=(), results=None):
    cfg = compose_cfg([*SMALL, *extra], results=results)
    ctx = make_context(cfg, DistInfo())
    base, base_id, _ = ensure_base_model(ctx)
    return cfg, ctx, base, base_id, base_dir(ctx, base_id) / MODEL_FILE


def test_two_workers_share_the_parts_and_match_one_worker(compose_cfg, tmp_path):
    for part in (0, 1):
        out = run(
            compose_cfg(
                [*SMALL, "task=precompute", f"precompute.part={part}", "precompute.parts=2"]
            ),
            [],
        )
        assert out["parts"] == 2
    cfg, ctx, base, base_id, weights = _ctx(compose_cfg)
    directory = precompute_dir(ctx, base_id)
    parts = sorted(p.name for p in directory.glob("*.tar"))
    assert parts == [
        "train-000000.tar",
        "train-000001.tar",
        "train-000002.tar",
        "val-000000.tar",
        "val-000001.tar",
    ]
    stamps = {p: p.stat().st_mtime_ns for p in directory.glob("*.tar")}
    shared = ensure_ranks(ctx, base, base_id, weights)
    assert {
        p: p.stat().st_mtime_ns for p in directory.glob("*.tar")
    } == stamps  # nothing recomputed
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 96, "val": 48} and manifest["verified"]
    assert manifest["weights_sha256"] and manifest["method"]["name"] == "smoe_scale"
    # one worker, other results tree, other part size: the same maps
    _, ctx1, base1, base_id1, weights1 = _ctx(
        compose_cfg, ["dataset.shard_size=1000"], results=tmp_path / "one"
    )
    alone = ensure_ranks(ctx1, base1, base_id1, weights1)
    for split in ("train", "val"):
        assert torch.equal(shared[split], alone[split])
    assert run_cell(compose_cfg([*SMALL, "task=cell", "protocol.percent=30"]))["status"] == "ok"


def test_stale_maps_are_moved_aside_and_recomputed(compose_cfg):
    cfg, ctx, base, base_id, weights = _ctx(compose_cfg)
    directory = compute_parts(ctx, base, base_id, weights)
    spec = json.loads((directory / SPEC).read_text())
    (directory / SPEC).write_text(json.dumps(spec | {"weights_sha256": "an older base model"}))
    ensure_ranks(ctx, base, base_id, weights)
    assert json.loads((directory / SPEC).read_text()) == spec
    assert list(directory.parent.glob(f"{directory.name}.stale-*"))


def test_missing_and_corrupt_parts_are_named(compose_cfg):
    cfg, ctx, base, base_id, weights = _ctx(compose_cfg)
    directory = compute_parts(ctx, base, base_id, weights)
    (directory / "val-000001.tar").write_bytes(b"not a tar file")
    with pytest.raises(RuntimeError, match="saliency part .*val-000001.tar is unreadable"):
        ensure_ranks(ctx, base, base_id, weights)  # an existing part is trusted, read and verified
    (directory / "val-000001.tar").unlink()
    assert (
        ensure_ranks(ctx, base, base_id, weights)["val"].shape[0] == 48
    )  # a missing part is recomputed


def test_precompute_refuses_the_layer_protocol(compose_cfg):
    with pytest.raises(ValueError, match="task=precompute is for the input protocol"):
        run(compose_cfg(["task=precompute"]), [])
