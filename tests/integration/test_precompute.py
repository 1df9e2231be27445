"""Saliency precompute: shared out over workers, resumable, verified, never stale."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import torch
import webdataset as wds

from roarkar.cli import run
from roarkar.config import resolve
from roarkar.data.shards import sample_key
from roarkar.protocols.base import MODEL_FILE, base_dir, ensure_base_model
from roarkar.protocols.cell import run_cell
from roarkar.protocols.context import make_context
from roarkar.protocols.precompute import (
    SPEC,
    compute_parts,
    ensure_ranks,
    precompute_artifact,
    precompute_dir,
    read_part,
    write_part,
)
from roarkar.removal import saliency_ranks
from roarkar.training import DistInfo

SMALL = [
    "protocol=input",
    "method=smoe_scale",
    "trainer.eval_batch_size=16",
    "dataset.shard_size=32",
]


def _ctx(compose_cfg, extra=(), results=None):
    cfg = compose_cfg([*SMALL, *extra], results=results)
    ctx = make_context(resolve(cfg), DistInfo())
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


def _computed_ranks(count: int, size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return saliency_ranks(torch.rand(count, size, size, generator=generator), generator)


def test_rank_parts_read_back_equal_and_memory_mapped(tmp_path):
    keys = [sample_key("train", 32 + j) for j in range(5)]
    ranks = _computed_ranks(5, 8)
    path = tmp_path / "train-000001.tar"
    write_part(path, keys, ranks)
    got = read_part(path, keys, 8)
    mapped = got if isinstance(got, np.memmap) else got.base
    assert isinstance(mapped, np.memmap) and mapped.filename == path.resolve()
    assert got.dtype == np.uint16 and (got == ranks.numpy()).all()
    # webdataset reads the part as one sample per member stem, like an image shard
    samples = {s["__key__"]: s for s in wds.WebDataset(str(path), shardshuffle=False)}
    assert set(samples) == {"ranks", "keys"}
    assert (np.load(io.BytesIO(samples["ranks"]["npy"])) == ranks.numpy()).all()
    assert json.loads(samples["keys"]["json"]) == keys


def test_truncated_or_mismatched_rank_parts_are_errors_naming_the_file(tmp_path):
    keys = [sample_key("val", j) for j in range(4)]
    path = tmp_path / "val-000000.tar"
    write_part(path, keys, _computed_ranks(4, 8))
    others = [sample_key("val", 4 + j) for j in range(4)]
    with pytest.raises(RuntimeError, match=f"saliency part {path} holds the maps of other samples"):
        read_part(path, others, 8)  # another image shard's part
    with pytest.raises(RuntimeError, match=f"saliency part {path} is unreadable.*ranks.npy is"):
        read_part(path, keys[:3], 8)  # the image shard has fewer samples
    with pytest.raises(RuntimeError, match=f"saliency part {path} is unreadable.*ranks.npy is"):
        read_part(path, keys, 16)  # maps of another size
    whole = path.read_bytes()
    with tarfile.open(path) as tar:
        end = max(m.offset_data + m.size for m in tar.getmembers())
    for cut in range(0, end, 61):  # cut anywhere before the last member's end
        path.write_bytes(whole[:cut])
        with pytest.raises(RuntimeError, match=f"saliency part {path} is unreadable"):
            read_part(path, keys, 8)
    shuffled = _computed_ranks(4, 8)
    shuffled[1, 0, :2] = shuffled[1, 0, 0]  # a repeated rank: not a permutation
    write_part(path, keys, shuffled)
    with pytest.raises(RuntimeError, match=f"saliency part {path}: some maps are not a perm"):
        read_part(path, keys, 8)


def test_streamed_ranks_are_mapped_and_equal_the_in_memory_ones(compose_cfg, tmp_path):
    _, ctx, base, base_id, weights = _ctx(compose_cfg)
    held = ensure_ranks(ctx, base, base_id, weights)
    _, streamed, sbase, sbase_id, sweights = _ctx(compose_cfg, ["loader.in_memory=false"])
    assert sbase_id == base_id and streamed.train is None
    attach = ensure_ranks(streamed, sbase, sbase_id, sweights)
    for split in ("train", "val"):
        parts = [attach[split](i)["ranks"] for i in range(len(ctx.info.shard_counts(split)))]
        assert all(isinstance(p, np.memmap) or isinstance(p.base, np.memmap) for p in parts)
        assert held[split].dtype == torch.int32
        assert (np.concatenate(parts) == held[split].numpy()).all()
    batch = next(iter(streamed.batches("train", 16, ranks=attach["train"]).eval_batches()))
    assert batch["ranks"].dtype == torch.int32
    assert torch.equal(batch["ranks"], held["train"][batch["index"]])


def test_maps_of_an_older_parts_format_are_recomputed(compose_cfg):
    """Format 1 (per-sample webdataset tars, no parts_format in the spec) is never misread."""
    _, ctx, base, base_id, weights = _ctx(compose_cfg)
    directory = compute_parts(ctx, base, base_id, weights)
    spec = json.loads((directory / SPEC).read_text())
    old = {k: v for k, v in spec.items() if k != "parts_format"}
    (directory / SPEC).write_text(json.dumps(old))
    ensure_ranks(ctx, base, base_id, weights)
    assert json.loads((directory / SPEC).read_text()) == spec
    (stale,) = directory.parent.glob(f"{directory.name}.stale-*")
    assert json.loads((stale / SPEC).read_text()) == old
    assert precompute_artifact(ctx, base_id).finished()["verified"]
