"""Converting real image trees to shards: the same bytes for any number of workers, a killed
conversion resumes from its finished shards, unreadable images named or (when asked) skipped and
listed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from roarkar.data import dataset_dir, load_split, prepare
from roarkar.data.real import CorruptImageError


def jpeg_tree(root: Path, classes: int = 4, per_class: int = 10, size=(64, 48)) -> None:
    rng = np.random.default_rng(0)
    for c in range(classes):
        for split, n in (("train", per_class), ("val", 2)):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.jpg", quality=90)


def config(root: Path, **over) -> dict:
    cfg = {"name": "tree", "kind": "imagefolder", "root": str(root), "image_size": 16}
    return cfg | {"resize": 20, "shard_size": 6} | over


def test_workers_give_byte_identical_shards(tmp_path):
    jpeg_tree(tmp_path / "tree")
    one = prepare(config(tmp_path / "tree", workers=1), tmp_path / "a")
    two = prepare(config(tmp_path / "tree", workers=2), tmp_path / "b")
    assert one.root.name == two.root.name, "the worker count is not part of the dataset's identity"
    files = sorted(p.name for p in one.root.iterdir())
    assert files == sorted(p.name for p in two.root.iterdir())
    assert "dataset.json" in files and not [f for f in files if f.startswith(".")]
    for name in files:
        if name != "dataset.json":
            assert (one.root / name).read_bytes() == (two.root / name).read_bytes(), name
    assert one.mean == two.mean and one.std == two.std and one.shards == two.shards
    assert len(one.shards["train"]) == 7  # 40 images in shards of 6


def test_killed_conversion_resumes_from_its_finished_shards(tmp_path):
    jpeg_tree(tmp_path / "tree", classes=4, per_class=40, size=(640, 480))
    cfg = config(tmp_path / "tree", shard_size=4, workers=1)
    out = dataset_dir(cfg, tmp_path / "data")
    partial = out.parent / f".{out.name}.partial"
    script = textwrap.dedent(
        f"""
        from roarkar.data import prepare
        prepare({cfg!r}, {str(tmp_path / "data")!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(list(partial.glob("train-*.tar"))) < 3:
        assert proc.poll() is None, (
            f"conversion ended before it could be killed: {proc.stderr.read()}"
        )
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "a killed conversion must not look finished"
    before = {p.name: p.stat().st_mtime_ns for p in partial.glob("train-*.tar")}
    sidecars = {p.name.removeprefix(".").removesuffix(".json") for p in partial.glob(".*.tar.json")}
    finished = {name: ns for name, ns in before.items() if name in sidecars}
    assert finished, "some shards were finished (shard and sidecar) before the kill"

    info = prepare(cfg, tmp_path / "data")  # resumes
    for name, ns in finished.items():
        assert (info.root / name).stat().st_mtime_ns == ns, f"{name} was written again"
    assert not partial.exists() and info.counts == {"train": 160, "val": 8}
    fresh = prepare(cfg, tmp_path / "fresh")  # uninterrupted, for comparison
    for path in sorted(fresh.root.glob("*.tar")):
        assert path.read_bytes() == (info.root / path.name).read_bytes(), path.name
    assert info.mean == fresh.mean and info.std == fresh.std


@pytest.fixture
def broken_tree(tmp_path):
    root = tmp_path / "tree"
    jpeg_tree(root, classes=2, per_class=6)
    good = (root / "train" / "c0" / "000.jpg").read_bytes()
    (root / "train" / "c0" / "zz-truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "train" / "c1" / "zz-garbage.jpg").write_bytes(b"not an image at all")
    return root


def test_corrupt_image_is_an_error_naming_it(broken_tree, tmp_path):
    cfg = config(broken_tree)
    with pytest.raises(CorruptImageError, match=r"zz-(truncated|garbage)\.jpg.*skip_corrupt"):
        prepare(cfg, tmp_path / "data")
    assert not dataset_dir(cfg, tmp_path / "data").exists(), "nothing left looking finished"


def test_corrupt_images_skipped_and_listed_when_asked(broken_tree, tmp_path, caplog):
    info = prepare(config(broken_tree, skip_corrupt=True), tmp_path / "data")
    assert info.counts == {"train": 12, "val": 4} and info.skipped == 2
    listed = json.loads((info.root / "skipped.json").read_text())
    assert sorted(Path(e["file"]).name for e in listed) == ["zz-garbage.jpg", "zz-truncated.jpg"]
    assert all("cannot be decoded" in e["error"] for e in listed)
    assert "2 unreadable images left out" in caplog.text
    assert len(load_split(info, "train")) == 12
