"""Real trees that used to convert silently into something else (issues 30 and 31): empty class
folders, classes missing from a split, 16-bit images, list entries and symlinks leaving the root."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from roarkar.data import load_split, prepare
from roarkar.data.real import load_image


def png(path: Path, colour=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def folder_tree(root: Path, train=("a", "b"), val=("a", "b")) -> Path:
    for split, classes in (("train", train), ("val", val)):
        for c in classes:
            png(root / split / c / "0.png")
    return root


def inet(root: Path, **extra) -> dict:
    return {"name": "i", "kind": "imagefolder", "root": str(root), "image_size": 8, **extra}


def cowc(root: Path, train: list[str], val: list[str], **extra) -> dict:
    (root / "train.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text("\n".join(train))
    (root / "val.txt").write_text("\n".join(val))
    return {"name": "c", "kind": "cowc", "root": str(root), "image_size": 8, **extra}


def test_an_empty_class_folder_is_named(tmp_path):
    root = folder_tree(tmp_path / "t")
    (root / "train" / "c").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*train/c holds no images"):
        prepare(inet(root), tmp_path / "data")


def test_a_train_class_missing_from_val_is_named(tmp_path):
    root = folder_tree(tmp_path / "t", train=("a", "b", "c"))
    with pytest.raises(ValueError, match=r"1 class\(es\) have no val images: \['c'\]"):
        prepare(inet(root), tmp_path / "data")
    with pytest.warns(UserWarning, match=r"no val images: \['c'\]"):
        info = prepare(inet(root, allow_class_mismatch=True), tmp_path / "data")
    assert info.num_classes == 3 and info.counts == {"train": 3, "val": 2}


def test_a_val_label_missing_from_train_is_named(tmp_path):
    root = tmp_path / "cowc"
    for name in ("t0", "t1", "v0", "v1"):
        png(root / f"{name}.png")
    conf = cowc(root, ["t0.png 0", "t1.png 1"], ["v0.png 0", "v1.png 2"])
    with pytest.raises(ValueError, match=r"have no train images: \['2'\]"):
        prepare(conf, tmp_path / "data")  # it used to widen num_classes to 3 silently


def test_a_16_bit_image_is_scaled_not_clipped(tmp_path):
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    pixels = load_image(tmp_path / "g16.png", 64, None)
    expected = np.round(ramp.astype(np.float64) * 255 / 65535)
    assert np.array_equal(pixels[0], expected) and np.array_equal(pixels[0], pixels[2])
    assert abs(pixels.mean() - ramp.mean() * 255 / 65535) < 0.5  # was 254.5 (clipped to white)
    Image.fromarray(ramp.astype(np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(ValueError, match=r"f\.tiff has F pixels"):
        load_image(tmp_path / "f.tiff", 64, None)


def test_list_entries_and_symlinks_outside_the_root(tmp_path, caplog):
    root = tmp_path / "in" / "cowc"
    for name in ("t0", "t1", "v0", "v1"):
        png(root / f"{name}.png")
    png(tmp_path / "away.png")
    png(tmp_path / "elsewhere" / "x.png")
    os.symlink(tmp_path / "elsewhere" / "x.png", root / "link.png")
    train = ["t0.png 0", "t1.png 1", "../../away.png 0", "link.png 1"]
    conf = cowc(root, train, ["v0.png 0", "v1.png 1"])
    with caplog.at_level(logging.WARNING):
        info = prepare(conf, tmp_path / "data")
    assert "2 listed file(s) lie outside dataset.root" in caplog.text
    assert info.counts["train"] == 4  # read
    doc = json.loads((info.root / "dataset.json").read_text())
    assert doc["source"]["outside_root"] == {"count": 2, "files": ["../../away.png", "link.png"]}
    with pytest.raises(ValueError, match=r"2 listed file\(s\) lie outside .*refused"):
        prepare({**conf, "allow_outside_root": False}, tmp_path / "data")
    with pytest.raises(ValueError, match=r"refused \(dataset\.allow_outside_root=false\)"):
        prepare({**conf, "allow_outside_root": False}, tmp_path / "fresh")
    assert not list((tmp_path / "fresh").glob("c-*/dataset.json"))
    assert len(load_split(info, "train").labels) == 4


def test_a_places365_entry_climbing_out_of_its_folder_is_counted(tmp_path, caplog):
    root = tmp_path / "deep" / "er" / "places"
    (root / "categories_places365.txt").parent.mkdir(parents=True)
    (root / "categories_places365.txt").write_text("/a/abbey 0\n/b/beach 1\n")
    for c in ("a/abbey", "b/beach"):
        png(root / "data_256" / c / "0.png")
    png(tmp_path / "x.png")
    lines = "/a/abbey/0.png 0\n/b/beach/0.png 1\n/../../../../x.png 1\n"
    (root / "places365_train_standard.txt").write_text(lines)
    for i in range(2):
        png(root / "val_256" / f"v{i}.png")
    (root / "places365_val.txt").write_text("v0.png 0\nv1.png 1\n")
    conf = {"name": "p", "kind": "places365", "root": str(root), "image_size": 8}
    with caplog.at_level(logging.WARNING):
        info = prepare(conf, tmp_path / "data")
    assert "1 listed file(s) lie outside dataset.root" in caplog.text
    assert info.source["outside_root"] == {"count": 1, "files": ["../../../x.png"]}


def test_source_check_keys_change_no_identity(compose_cfg):
    """How a source tree is checked (verify, allow_outside_root, allow_class_mismatch) changes no
    cell identity and no shard directory; rebuild does both."""
    from roarkar.data import dataset_dir
    from roarkar.protocols.cell import cell_path

    def ids(extra):
        cfg = compose_cfg(["protocol.layer=L2", *extra])
        return cell_path(cfg)[1], dataset_dir(cfg.dataset, "/tmp/d").name

    plain = ids([])
    for extra in (
        ["+dataset.verify=content"],
        ["+dataset.allow_outside_root=false"],
        ["+dataset.allow_class_mismatch=true"],
    ):
        assert ids(extra) == plain, extra
    rebuilt = ids(["+dataset.rebuild=true"])
    assert rebuilt[0] != plain[0] and rebuilt[1] != plain[1]
