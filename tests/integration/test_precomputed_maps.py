"""Maps computed elsewhere: ``task=export_maps`` writes any method's maps, ``method=precomputed``
runs them back bit-identically, and a bad file is refused by name before any training."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from roarkar.cli import run
from roarkar.config import resolve
from roarkar.protocols.base import MODEL_FILE, base_dir, ensure_base_model
from roarkar.protocols.cell import cell_path, run_cell
from roarkar.protocols.context import make_context
from roarkar.protocols.maps_file import dataset_meta, maps_path, write_maps, write_meta
from roarkar.protocols.precompute import ensure_ranks
from roarkar.training import DistInfo

INPUT = ["protocol=input", "trainer.eval_batch_size=16"]


def _precomputed(path) -> list[str]:
    return [*INPUT, "method=precomputed", f"method.params.path={path}"]


def test_exported_gradient_maps_run_back_bit_identical(compose_cfg, tmp_path):
    out = run(compose_cfg([*INPUT, "task=export_maps", "method=gradient"]), [])
    directory = tmp_path / "results" / "maps"
    assert out["directory"].startswith(str(directory / "gradient-"))
    assert out["counts"] == {"train": 96, "val": 48}
    meta = json.loads((directory / out["directory"].rsplit("/", 1)[1] / "meta.json").read_text())
    assert meta["dataset"] == "synth_objects" and meta["method"]["name"] == "gradient"
    with np.load(maps_path(out["directory"], "train"), allow_pickle=False) as held:
        assert held["maps"].dtype == np.float32 and held["maps"].shape == (96, 32, 32)
    # the same ranks, then the same cells
    ctx = make_context(resolve(compose_cfg([*INPUT, "method=gradient"])), DistInfo())
    base, base_id, _ = ensure_base_model(ctx)
    weights = base_dir(ctx, base_id) / MODEL_FILE
    theirs = ensure_ranks(ctx, base, base_id, weights)
    ours = ensure_ranks(
        ctx.for_config(resolve(compose_cfg(_precomputed(out["directory"])))), base, base_id, weights
    )
    for split in ("train", "val"):
        assert torch.equal(ours[split], theirs[split])
    # streamed shard by shard: the same ranks
    streamed_cfg = compose_cfg(
        [*_precomputed(out["directory"]), "loader.in_memory=false"], results=tmp_path / "streamed"
    )
    streamed = make_context(resolve(streamed_cfg), DistInfo())
    sbase, sbase_id, _ = ensure_base_model(streamed)
    attach = ensure_ranks(streamed, sbase, sbase_id, base_dir(streamed, sbase_id) / MODEL_FILE)
    for split in ("train", "val"):
        offsets = streamed.info.shard_offsets(split)
        for index, first in enumerate(offsets):
            part = torch.from_numpy(attach[split](index)["ranks"].astype(np.int64))
            assert torch.equal(part, theirs[split][first : first + len(part)].long())
    for mode in ("kar", "roar"):
        cell = [f"protocol.mode={mode}", "protocol.percent=30"]
        gradient = run_cell(compose_cfg([*INPUT, "method=gradient", *cell]))
        precomputed = run_cell(compose_cfg([*_precomputed(out["directory"]), *cell]))
        assert gradient["status"] == precomputed["status"] == "ok"
        assert precomputed["accuracy"] == gradient["accuracy"]
        assert precomputed["true_class_score"] == gradient["true_class_score"]


def _valid_maps(compose_cfg, directory):
    """A whole, valid directory of maps for the smoke dataset (no model trained)."""
    ctx = make_context(resolve(compose_cfg(INPUT)), DistInfo())
    info = ctx.info
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        keys = [k for i in range(len(info.shard_counts(split))) for k in info.shard_keys(split, i)]
        write_maps(directory, split, keys, rng.random((len(keys), 32, 32), dtype=np.float32))
    write_meta(directory, dataset_meta(info) | {"method": {"name": "elsewhere"}})
    return keys


def _resave(path, **arrays):
    with np.load(path, allow_pickle=False) as held:
        content = {name: held[name] for name in held.files}
    np.savez(path, **(content | arrays))


def _refused(compose_cfg, tmp_path, directory, match, extra=()):
    results = tmp_path / "fresh"
    cfg = compose_cfg([*_precomputed(directory), "task=cell", *extra], results=results)
    with pytest.raises((ValueError, OSError), match=match):
        run(cfg, [])
    assert not list(results.rglob(MODEL_FILE)), "a model was trained before the file was checked"


def test_bad_precomputed_files_are_refused_by_name_before_training(compose_cfg, tmp_path):
    good = tmp_path / "good"
    _valid_maps(compose_cfg, good)
    ok = make_context(resolve(compose_cfg(_precomputed(good))), DistInfo())
    from roarkar.protocols.precompute import stored_maps

    assert set(stored_maps(ok)) == {"train", "val"}

    def variant(name):
        directory = tmp_path / name
        shutil.copytree(good, directory)
        return directory

    missing = variant("missing")
    with np.load(maps_path(missing, "train"), allow_pickle=False) as held:
        keys, maps = held["keys"], held["maps"]
    _resave(maps_path(missing, "train"), keys=keys[1:], maps=maps[1:])
    _refused(
        compose_cfg, tmp_path, missing, rf"{missing}/train.npz: no map for sample key '{keys[0]}'"
    )

    misshapen = variant("misshapen")
    _resave(maps_path(misshapen, "val"), maps=np.zeros((48, 16, 16), np.float32))
    _refused(
        compose_cfg,
        tmp_path,
        misshapen,
        r"val.npz: the map of key .* has shape \(16, 16\), expected \(32, 32\)",
    )

    other_split = variant("other_split")
    shutil.copy(maps_path(other_split, "val"), maps_path(other_split, "train"))
    _refused(
        compose_cfg,
        tmp_path,
        other_split,
        r"train.npz holds the maps of split 'val', expected 'train'",
    )

    other_dataset = variant("other_dataset")
    meta = json.loads((other_dataset / "meta.json").read_text())
    (other_dataset / "meta.json").write_text(json.dumps(meta | {"dataset": "synth_cars"}))
    _refused(
        compose_cfg,
        tmp_path,
        other_dataset,
        r"meta.json: dataset='synth_cars', this run's is 'synth_objects'",
    )
    # the same name, other content (other sizes): refused too
    _refused(
        compose_cfg,
        tmp_path,
        good,
        r"meta.json: content=.*another dataset",
        ["dataset.val_size=40"],
    )

    pickled = variant("pickled")
    _resave(maps_path(pickled, "train"), keys=np.asarray(list(keys), dtype=object))
    _refused(compose_cfg, tmp_path, pickled, r"train.npz: refused: the file would run code")

    with pytest.raises(FileNotFoundError, match="method.params.path=.*absent is not a directory"):
        cell_path(compose_cfg(_precomputed(tmp_path / "absent")))
    with pytest.raises(ValueError, match="cannot run in the layer protocol"):
        cell_path(compose_cfg(["method=precomputed", f"method.params.path={good}"]))


def test_changed_files_change_the_cell_identity_and_a_copy_does_not(compose_cfg, tmp_path):
    good = tmp_path / "good"
    _valid_maps(compose_cfg, good)
    _, before, _ = cell_path(compose_cfg(_precomputed(good)))
    shutil.copytree(good, tmp_path / "copy")
    assert cell_path(compose_cfg(_precomputed(tmp_path / "copy")))[1] == before
    with np.load(maps_path(good, "val"), allow_pickle=False) as held:
        _resave(maps_path(good, "val"), maps=held["maps"] * 2)
    assert cell_path(compose_cfg(_precomputed(good)))[1] != before
