"""A real dataset's shards are tied to the source tree they came from (issue 30 item 2): another
tree under the same name and paths is refused, naming both fingerprints and the first differing
file; ``dataset.rebuild`` gives new shards and new identities, so nothing built on the old tree is
reported as done for the new one."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from roarkar.data import prepare
from roarkar.data.fingerprint import ENTRIES_FILE, SourceChangedError, fingerprint
from roarkar.identity import base_identity

CHANGED = "train/b/1.png"


def tree(root: Path) -> Path:
    """Two classes, two train images and one val image each."""
    for c, colour in (("a", (200, 30, 30)), ("b", (30, 30, 200))):
        for split, n in (("train", 2), ("val", 1)):
            for i in range(n):
                path = root / split / c / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (10, 10), colour).save(path)
    return root


def copy(src: Path, dst: Path) -> Path:
    """A copy with the modification times kept (``cp -a``, ``rsync -t``)."""
    shutil.copytree(src, dst, copy_function=shutil.copy2)
    return dst


def same_size_other_bytes(path: Path) -> None:
    """Rewrite ``path`` with other pixels but the same size and modification time."""
    before = path.stat()
    Image.new("RGB", (10, 10), (31, 30, 200)).save(path)
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def cfg(root: Path, **extra) -> dict:
    return {"name": "inet", "kind": "imagefolder", "root": str(root), "image_size": 8, **extra}


def test_another_tree_under_the_same_name_is_refused_then_rebuilt(tmp_path, compose_cfg):
    a = tree(tmp_path / "a")
    b = copy(a, tmp_path / "b")
    Image.new("RGB", (12, 10), (0, 0, 0)).save(b / CHANGED)  # one file changed, same path
    data = tmp_path / "data"
    first = prepare(cfg(a), data)
    assert first.source["fingerprint"] == fingerprint(a, first_files(a)).digest
    assert first.source["files"] == 6 and (first.root / ENTRIES_FILE).is_file()
    with pytest.raises(SourceChangedError) as err:
        prepare(cfg(b), data)
    new = fingerprint(b, first_files(b)).digest
    message = str(err.value)
    assert first.source["fingerprint"] in message and new in message
    assert f"first differing file: {CHANGED} (size" in message
    assert "+dataset.rebuild=true" in message
    rebuilt = prepare(cfg(b, rebuild=True), data)
    assert rebuilt.root != first.root and rebuilt.source["fingerprint"] == new
    assert prepare(cfg(a), data).root == first.root  # the first tree still finds its shards
    # rebuilt once already: a third tree is refused again, with a new value to pass
    c = copy(b, tmp_path / "c")
    Image.new("RGB", (14, 10), (0, 0, 0)).save(c / CHANGED)
    with pytest.raises(SourceChangedError, match=r"\+dataset\.rebuild=[0-9a-f]{8} \(any new"):
        prepare(cfg(c, rebuild=True), data)

    # cells and base models hang off the dataset's identity: none is done for the rebuilt tree
    def plan(root: Path, *extra: str) -> list[dict]:
        from roarkar.cli import run

        over = ["dataset=folder", f"dataset.root={root}", f"paths.data={data}", *extra]
        return run(compose_cfg(["task=plan", *over]), compose_cfg.overrides)["cells"]

    cells = plan(a)
    done = Path(cells[0]["path"])
    done.mkdir(parents=True)
    (done / "result.json").write_text(json.dumps({"status": "ok", "accuracy": 0.5}))
    assert plan(a)[0]["status"] == "done"
    again = plan(b, "+dataset.rebuild=true")
    assert again[0]["status"] != "done" and again[0]["path"] != str(done)
    old, new_cfg = (
        compose_cfg(["dataset=folder"]),
        compose_cfg(["dataset=folder", "+dataset.rebuild=true"]),
    )
    assert base_identity(old.dataset, old.model, {}, 0) != base_identity(
        new_cfg.dataset, new_cfg.model, {}, 0
    )


def first_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.png"))


def test_a_copy_with_its_times_kept_is_the_same_tree(tmp_path):
    a = tree(tmp_path / "a")
    first = prepare(cfg(a), tmp_path / "data")
    moved = copy(a, tmp_path / "elsewhere")
    assert prepare(cfg(moved), tmp_path / "data").root == first.root


def test_only_a_modification_time_differs(tmp_path):
    a = tree(tmp_path / "a")
    prepare(cfg(a), tmp_path / "data")
    stamp = (a / CHANGED).stat().st_mtime_ns + 10**9
    os.utime(a / CHANGED, ns=(stamp, stamp))
    with pytest.raises(SourceChangedError, match=rf"{CHANGED} \(same size, modification time"):
        prepare(cfg(a), tmp_path / "data")


def test_verify_content_sees_what_stat_cannot(tmp_path):
    a = tree(tmp_path / "a")
    b = copy(a, tmp_path / "b")
    same_size_other_bytes(b / CHANGED)
    by_stat = prepare(cfg(a), tmp_path / "stat")
    assert by_stat.source["verify"] == "stat"
    assert prepare(cfg(b), tmp_path / "stat").root == by_stat.root  # stat: size and time only
    by_content = prepare(cfg(a, verify="content"), tmp_path / "content")
    assert by_content.source["verify"] == "content"
    assert by_content.root.name == by_stat.root.name, "verify is how, not what: same directory"
    with pytest.raises(SourceChangedError, match=rf"{CHANGED} \(same size, content \(SHA-256\)"):
        prepare(cfg(b), tmp_path / "content")  # checked as recorded, whatever verify says now
    with pytest.raises(ValueError, match=r"dataset\.verify='bytes': expected one of"):
        prepare(cfg(a, verify="bytes"), tmp_path / "other")


def test_shards_without_a_record_are_used_with_a_warning(tmp_path, caplog):
    a = tree(tmp_path / "a")
    first = prepare(cfg(a), tmp_path / "data")
    doc = json.loads((first.root / "dataset.json").read_text())
    del doc["source"]
    (first.root / "dataset.json").write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING):
        assert prepare(cfg(a), tmp_path / "data").root == first.root
    assert "records no source fingerprint" in caplog.text


def test_a_list_file_is_part_of_the_tree(tmp_path):
    root = tmp_path / "cowc"
    for split in ("train", "val"):
        for i in range(2):
            path = root / "p" / f"{split}{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (10 * i, 0, 0)).save(path)
        (root / f"{split}.txt").write_text(f"p/{split}0.png 0\np/{split}1.png 1\n")
    conf = OmegaConf.to_container(
        OmegaConf.load(Path(__file__).parents[2] / "conf/dataset/cowc.yaml")
    )
    conf |= {"root": str(root), "image_size": 8, "resize": 8}
    prepare(conf, tmp_path / "data")
    (root / "val.txt").write_text("p/val0.png 1\np/val1.png 0\n")  # labels swapped, same size
    with pytest.raises(SourceChangedError, match=r"first differing file: val\.txt"):
        prepare(conf, tmp_path / "data")
