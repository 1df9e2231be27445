"""roarkar.data: synthetic generators, shards, prepare-once, locking, corruption, streaming."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from omegaconf import OmegaConf

from roarkar.data import (
    GENERATORS,
    KINDS,
    CorruptShardError,
    ShardArrays,
    content_hash,
    dataset_dir,
    denormalize,
    generate,
    load_split,
    normalize,
    prepare,
)
from roarkar.registry import UnknownName

CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"


def tiny(generator: str = "synth_objects", **over) -> dict:
    cfg = {
        "name": f"tiny_{generator}",
        "kind": "synthetic",
        "generator": generator,
        "image_size": 16,
        "train_size": 64,
        "val_size": 24,
        "seed": 3,
        "shard_size": 20,
    }
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return prepare(tiny(), root)


# ---------------------------------------------------------------------------------------------
# generators


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_generate_is_deterministic_and_well_formed(generator):
    a = generate(generator, "train", 40, 16, seed=7)
    b = generate(generator, "train", 40, 16, seed=7)
    for x, y in zip(a, b, strict=True):
        assert x.numpy().tobytes() == y.numpy().tobytes()
    images, labels, rel = a
    assert images.dtype == torch.uint8 and images.shape == (40, 3, 16, 16)
    assert labels.dtype == torch.int64 and labels.shape == (40,)
    assert rel.dtype == torch.float32 and rel.shape == (40, 16, 16)
    assert rel.min() >= 0 and rel.max() <= 1
    val = generate(generator, "train", 40, 16, seed=8)[0]
    assert not torch.equal(images, val), "a different seed must give different images"
    assert not torch.equal(images, generate(generator, "val", 40, 16, seed=7)[0]), (
        "train and val must use different streams"
    )
    assert len(labels.unique()) > 1


def test_objects_footprint_does_not_depend_on_class():
    _, labels, rel = generate("synth_objects", "train", 200, 32, seed=0)
    area = rel.sum((1, 2))
    assert torch.all(area == 64), "every object is the same 8x8 square (no silhouette leak)"
    assert len(labels.unique()) == 8


def test_cars_every_image_has_the_same_vehicles_and_the_count_is_in_their_marks():
    """Three same-sized vehicles in every image (so ROAR's holes cannot count anything); the class
    is how many carry a car's straight bar rather than a look-alike's diagonal one."""
    x, labels, rel = generate("synth_cars", "train", 100, 32, seed=0)
    assert torch.all(rel.sum((1, 2)) == 27), "three 3x3 vehicles in every image"
    assert len(labels.unique()) == 4
    dark = (x.float().amax(1) < 60) & (rel > 0)  # the vehicles' dark marks
    up = torch.nn.functional.pad(rel, (0, 0, 1, 0))[:, :-1]
    left = torch.nn.functional.pad(rel, (1, 0, 0, 0))[:, :, :-1]
    corners = (rel > 0) & (up == 0) & (left == 0)  # each vehicle's top-left pixel
    assert torch.all(corners.sum((1, 2)) == 3)
    for i, y, x0 in torch.nonzero(corners).tolist():
        block = dark[i, y : y + 3, x0 : x0 + 3]
        labels[i] -= int(bool(block[1].all() or block[:, 1].all()))  # a car's straight bar
    assert torch.all(labels == 0), "the class is the number of straight-barred vehicles"


def test_cars_colour_and_dark_amount_do_not_name_the_class():
    x, labels, rel = generate("synth_cars", "train", 400, 32, seed=1)
    dark = ((x.float().amax(1) < 60) & (rel > 0)).sum((1, 2)).float()
    assert torch.all(dark == 9), "every vehicle has a 3-pixel bar, car or not"


def test_unknown_generator_and_param_errors(tmp_path):
    with pytest.raises(ValueError, match=r"'nope'.*synth_cars.*synth_objects.*synth_scenes"):
        generate("nope", "train", 4, 16, 0)
    with pytest.raises(ValueError, match=r"'nope'.*synth_objects"):
        prepare(tiny(generator="nope"), tmp_path)
    with pytest.raises(ValueError, match=r"bogus"):
        prepare(tiny(bogus=1), tmp_path)
    with pytest.raises(ValueError, match=r"dataset.kind='imagenet'.*synthetic.*imagefolder"):
        prepare({"name": "x", "kind": "imagenet"}, tmp_path)
    assert set(KINDS) == {
        "synthetic", "imagefolder", "places365", "cowc", "tiny_imagenet", "cifar10", "mnist", "shards"
    }  # fmt: skip
    with pytest.raises(UnknownName, match=r"dataset.kind='mnits' .*did you mean 'mnist'"):
        prepare({"name": "x", "kind": "mnits"}, tmp_path)
    with pytest.raises(
        UnknownName, match=r"dataset.generator='synth_car' .*did you mean 'synth_cars'"
    ):
        prepare(tiny(generator="synth_car"), tmp_path)
    for name, kind in KINDS.items():  # each kind registered once, with what materialising it takes
        assert kind.name == name and kind.source in ("generated", "files", "arrays", "shards")
        assert (kind.read is not None) == (kind.source in ("files", "arrays")), name


# ---------------------------------------------------------------------------------------------
# prepare / load_split


def test_prepare_and_load_split(prepared):
    info = prepared
    assert info.root.name == f"tiny_synth_objects-{content_hash(tiny())}"
    assert info.counts == {"train": 64, "val": 24} and info.has_relevance
    assert info.num_classes == 8 == len(info.class_names)
    files = sorted(p.name for p in info.root.glob("*.tar"))
    assert files == [f"train-{i:06d}.tar" for i in range(4)] + ["val-000000.tar", "val-000001.tar"]
    doc = json.loads((info.root / "dataset.json").read_text())
    assert doc["config"]["generator"] == "synth_objects" and doc["shards"]["train"][3]["count"] == 4
    train = load_split(info, "train")
    ref = generate("synth_objects", "train", 64, 16, seed=3)
    assert torch.equal(train.images, ref[0]) and torch.equal(train.labels, ref[1])
    assert torch.allclose(train.relevance, ref[2])
    assert train.keys[:2] == ["train_00000000", "train_00000001"] and "." not in train.keys[5]
    x = train.images.float() / 255
    assert torch.allclose(torch.tensor(info.mean), x.mean((0, 2, 3)).double().float(), atol=1e-4)
    assert torch.allclose(torch.tensor(info.std), x.std((0, 2, 3)).float(), atol=1e-3)
    assert len(load_split(info, "val")) == 24
    with pytest.raises(ValueError, match="test"):
        load_split(info, "test")


def test_prepare_is_byte_deterministic(prepared, tmp_path):
    again = prepare(tiny(), tmp_path)
    assert again.root.name == prepared.root.name
    for f in prepared.root.glob("*.tar"):
        assert f.read_bytes() == (again.root / f.name).read_bytes()


def test_prepare_runs_once(prepared):
    files = sorted(prepared.root.iterdir())
    before = {f: f.stat().st_mtime_ns for f in files}
    time.sleep(0.02)
    again = prepare(tiny(), prepared.root.parent)
    assert again.root == prepared.root
    assert sorted(prepared.root.iterdir()) == files
    assert {f: f.stat().st_mtime_ns for f in files} == before


def test_hash_ignores_paths_not_content(tmp_path):
    base = tiny()
    assert content_hash(base) == content_hash({**base, "root": "/else/where", "name": "other"})
    assert content_hash(base) != content_hash({**base, "seed": 4})
    assert content_hash(base) != content_hash({**base, "image_size": 24})
    assert dataset_dir(base, tmp_path).parent == tmp_path


def test_incomplete_directory_is_rebuilt(tmp_path):
    cfg = tiny(train_size=20, val_size=8)
    out = dataset_dir(cfg, tmp_path)
    out.mkdir(parents=True)
    (out / "train-000000.tar").write_bytes(b"junk")  # a crashed earlier attempt, no dataset.json
    info = prepare(cfg, tmp_path)
    assert len(load_split(info, "train")) == 20


def test_concurrent_prepare_generates_once(tmp_path):
    script = textwrap.dedent(
        """
        import pathlib, sys, time
        import roarkar.data.materialize as p
        calls = []
        write_info = p.write_info  # once per build, its last step, under the lock
        def slow_write_info(*a, **k):
            calls.append(1)
            time.sleep(1.0)  # keep the lock long enough for the other process to collide
            return write_info(*a, **k)
        p.write_info = slow_write_info
        root = pathlib.Path(sys.argv[1])
        (root / f"ready-{sys.argv[2]}").touch()  # barrier: both interpreters have imported torch
        while len(list(root.glob("ready-*"))) < 2:
            time.sleep(0.01)
        t0 = time.time()
        cfg = dict(name="conc", kind="synthetic", generator="synth_cars", image_size=16,
                   train_size=30, val_size=10, seed=1, shard_size=16)
        info = p.prepare(cfg, sys.argv[1])
        print("BUILDS", len(calls), info.root, time.time() - t0, flush=True)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    lines = [next(ln for ln in o[0].splitlines() if ln.startswith("BUILDS")) for o in outs]
    assert sorted(int(ln.split()[1]) for ln in lines) == [0, 1], lines
    assert len({ln.split()[2] for ln in lines}) == 1
    assert min(float(ln.split()[3]) for ln in lines) > 0.5, (
        "the waiting process must block on the lock"
    )
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


# ---------------------------------------------------------------------------------------------
# corruption


def _copy(info, tmp_path):
    import shutil

    dst = tmp_path / info.root.name
    shutil.copytree(info.root, dst)
    return prepare({"name": "s", "kind": "shards", "root": str(dst)}, tmp_path)


def test_truncated_shard_names_the_file(prepared, tmp_path):
    info = _copy(prepared, tmp_path)
    shard = info.root / "train-000001.tar"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(CorruptShardError, match=r"train-000001\.tar"):
        load_split(info, "train")


def test_bad_npy_names_the_file(prepared, tmp_path):
    info = _copy(prepared, tmp_path)
    shard = info.root / "val-000000.tar"
    data = bytearray(shard.read_bytes())
    i = data.index(b"\x93NUMPY")  # first npy member's magic
    data[i : i + 6] = b"XXXXXX"
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match=r"val-000000\.tar.*unreadable"):
        load_split(info, "val")


def test_count_mismatch_is_an_error(prepared, tmp_path):
    info = _copy(prepared, tmp_path)
    info.shards["train"][0]["count"] += 1
    info.counts["train"] += 1
    with pytest.raises(CorruptShardError, match=r"train-000000\.tar.*expected uint8 \[21"):
        load_split(info, "train")
    doc = json.loads((info.root / "dataset.json").read_text())
    doc["counts"]["val"] = 99
    (info.root / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(CorruptShardError, match=r"dataset\.json.*99"):
        prepare({"name": "s", "kind": "shards", "root": str(info.root)}, tmp_path)


def test_shards_kind(prepared, tmp_path):
    info = prepare({"name": "s", "kind": "shards", "root": str(prepared.root)}, tmp_path)
    assert info.root == prepared.root and info.counts == prepared.counts
    assert info.mean == prepared.mean
    missing = tmp_path / "nothing"
    with pytest.raises(FileNotFoundError, match=rf"dataset\.root={missing} does not exist"):
        prepare({"name": "s", "kind": "shards", "root": str(missing)}, tmp_path)
    with pytest.raises(ValueError, match=r"dataset\.root is not set"):
        prepare(OmegaConf.load(CONF / "shards.yaml"), tmp_path)


# ---------------------------------------------------------------------------------------------
# normalize / stream


def test_webdataset_reads_a_shard_as_one_sample_per_array(prepared):
    """A shard is a plain tar of ``.npy`` members: webdataset's key/extension split gives one
    sample per array, equal to the arrays roarkar memory-maps in place."""
    shard = ShardArrays(prepared, "train", 1)
    samples = {s["__key__"]: s for s in wds.WebDataset(str(shard.path), shardshuffle=False)}
    assert set(samples) == {"images", "labels", "relevance"}
    for name in samples:
        mapped = getattr(shard, name)
        assert (np.load(io.BytesIO(samples[name]["npy"])) == mapped).all()
    assert isinstance(shard.images, np.memmap) and len(shard.images) == 20
    assert shard.keys == [f"train_{j:08d}" for j in range(20, 40)]


def test_normalize_round_trip(prepared):
    images = load_split(prepared, "val").images
    x = normalize(images, prepared)
    assert x.dtype == torch.float32 and x.shape == images.shape
    assert torch.equal(denormalize(x, prepared), images)
    assert torch.allclose(normalize(images[0], prepared), x[0])
    mean = torch.tensor(prepared.mean).view(3, 1, 1)
    std = torch.tensor(prepared.std).view(3, 1, 1)
    assert torch.allclose(x, (images.float() / 255 - mean) / std)


# ---------------------------------------------------------------------------------------------
# conf files


def test_conf_files(tmp_path, monkeypatch):
    names = {p.stem for p in CONF.glob("*.yaml")}
    assert {
        "synth_objects",
        "synth_scenes",
        "synth_cars",
        "imagenet",
        "places365",
        "cowc",
        "shards",
    } <= names
    for name in names:
        cfg = OmegaConf.load(CONF / f"{name}.yaml")
        assert cfg.kind in KINDS and cfg.name
    monkeypatch.setenv("IMAGENET_ROOT", "/x/imagenet")
    assert OmegaConf.load(CONF / "imagenet.yaml").root == "/x/imagenet"
    cfg = OmegaConf.load(CONF / "synth_scenes.yaml")
    cfg.merge_with({"train_size": 30, "val_size": 10, "image_size": 16})
    info = prepare(cfg, tmp_path)
    assert info.num_classes == 6 and info.counts == {"train": 30, "val": 10}
    cars = OmegaConf.load(CONF / "synth_cars.yaml")
    assert len(cars.buckets) == cars.num_classes == 4


def test_probe_beats_chance_on_synth_objects():
    from roarkar.data.sanity import probe

    torch.manual_seed(0)
    r = probe("synth_objects", n_train=600, n_val=200, image_size=32, epochs=4, batch_size=32)
    assert r["accuracy"] > r["chance"] + 0.2, r  # the pattern is learnable (0.455 vs 0.165)


def test_objects_class_is_not_in_the_colours():
    """Every class draws its colours from one palette: the mean colour of the class object, and of
    the whole image, predict the class no better than chance (nearest class centroid, held out)."""
    images, labels, rel = generate("synth_objects", "train", 2000, 32, seed=0)
    x = images.float()
    inside = (x * rel[:, None]).sum((2, 3)) / rel.sum((1, 2))[:, None]
    for features in (inside, x.mean((2, 3))):
        train, test = slice(0, 1500), slice(1500, None)
        centroids = torch.stack([features[train][labels[train] == c].mean(0) for c in range(8)])
        guess = torch.cdist(features[test], centroids).argmin(1)
        accuracy = (guess == labels[test]).float().mean().item()
        assert accuracy < 0.2, accuracy  # chance 0.125


def test_objects_have_distractors_outside_the_ground_truth():
    def edges_outside(distractors):
        images, _, rel = generate(
            "synth_objects", "train", 100, 32, seed=1, distractors=distractors
        )
        x = images.float()
        edge = (x[..., 1:] - x[..., :-1]).abs().sum(1) > 90  # textured objects, not the background
        assert torch.all(rel.sum((1, 2)) == 64)
        return (edge & (rel[..., 1:] == 0)).flatten(1).sum(1).float()

    plain, with_distractors = edges_outside(0), edges_outside(2)
    assert with_distractors.mean() > 5 * plain.mean() and (with_distractors > 0).all()
