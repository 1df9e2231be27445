"""roarkar.data real layouts: ImageFolder, Places365, COWC list files -> shards; path errors."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from roarkar.data import load_split, prepare

CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]


def png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (30, 20)) -> None:
    """A solid image whose centre crop must come back as exactly ``colour``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def shard_sources(path: Path) -> list[str]:
    """The source file of each sample, as recorded in the shard (plain tar + JSON)."""
    with tarfile.open(path) as tar:
        return json.loads(tar.extractfile("sources.json").read())


def imagefolder_tree(root: Path) -> None:
    for c, name in enumerate(["n01", "n02", "n03"]):
        for i in range(3):
            png(root / "train" / name / f"{i}.png", COLOURS[c], size=(30 + i, 20))
        png(root / "val" / name / "v.PNG", COLOURS[c])


def check_split(info, split: str, n: int) -> None:
    s = load_split(info, split)
    assert s.images.shape == (n, 3, info.image_size, info.image_size) and s.relevance is None
    for image, label in zip(s.images, s.labels, strict=True):
        assert torch.all(image == torch.tensor(COLOURS[int(label)]).view(3, 1, 1))


def test_imagefolder(tmp_path):
    imagefolder_tree(tmp_path / "inet")
    cfg = OmegaConf.load(CONF / "imagenet.yaml")
    cfg.merge_with(
        {
            "root": str(tmp_path / "inet"),
            "image_size": 8,
            "resize": 10,
            "num_classes": 3,
            "shard_size": 4,
        }
    )
    info = prepare(cfg, tmp_path / "data")
    assert info.class_names == ["n01", "n02", "n03"] and info.num_classes == 3
    assert info.counts == {"train": 9, "val": 3} and not info.has_relevance
    assert info.root.name.startswith("imagenet-")
    check_split(info, "train", 9)
    check_split(info, "val", 3)
    labels = load_split(info, "train").labels.tolist()
    assert sorted(labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert labels != sorted(labels), "written in a seeded random order, not listing order"
    sources = [src for path in info.shard_paths("train") for src in shard_sources(path)]
    assert [info.class_names.index(Path(src).parent.name) for src in sources] == labels
    m = np.mean([c for c in COLOURS for _ in range(3)], axis=0) / 255
    assert np.allclose(info.mean, m, atol=1e-6)
    # the hash ignores the root: the same tree elsewhere maps to the same shards
    assert (
        prepare({**OmegaConf.to_container(cfg), "root": "/moved"}, tmp_path / "data").root
        == info.root
    )


def test_imagefolder_num_classes_mismatch(tmp_path):
    imagefolder_tree(tmp_path / "inet")
    cfg = {"name": "i", "kind": "imagefolder", "root": str(tmp_path / "inet"), "image_size": 8}
    with pytest.raises(ValueError, match=r"dataset\.num_classes=1000 .* 3 classes"):
        prepare({**cfg, "num_classes": 1000}, tmp_path / "data")
    assert not list((tmp_path / "data").glob(".*tmp*")), "a failed build leaves no temp dir"


def test_centre_crop(tmp_path):
    img = np.zeros((10, 24, 3), np.uint8)
    img[:, 7:17] = 255  # the central 10 columns are white; the shorter side is already 10
    (tmp_path / "r" / "train" / "a").mkdir(parents=True)
    (tmp_path / "r" / "val" / "a").mkdir(parents=True)
    for split in ("train", "val"):
        Image.fromarray(img).save(tmp_path / "r" / split / "a" / "x.png")
    cfg = {
        "name": "c",
        "kind": "imagefolder",
        "root": str(tmp_path / "r"),
        "image_size": 10,
        "resize": 10,
    }
    images = load_split(prepare(cfg, tmp_path / "data"), "val").images
    assert images.shape == (1, 3, 10, 10) and torch.all(images == 255)


def test_places365(tmp_path):
    root = tmp_path / "places"
    cats = ["a/abbey", "b/beach", "c/canyon"]
    (root).mkdir()
    (root / "categories_places365.txt").write_text(
        "".join(f"/{c} {i}\n" for i, c in enumerate(cats))
    )
    train_lines, val_lines = [], []
    for i, c in enumerate(cats):
        for j in range(2):
            png(root / "data_256" / c / f"{j:08d}.jpg".replace(".jpg", ".png"), COLOURS[i])
            train_lines.append(f"/{c}/{j:08d}.png {i}")
        png(root / "val_256" / f"Places365_val_{i:08d}.png", COLOURS[i])
        val_lines.append(f"Places365_val_{i:08d}.png {i}")
    (root / "places365_train_standard.txt").write_text("\n".join(train_lines) + "\n")
    (root / "places365_val.txt").write_text("\n".join(val_lines) + "\n")
    cfg = OmegaConf.load(CONF / "places365.yaml")
    cfg.merge_with({"root": str(root), "image_size": 8, "resize": 8, "num_classes": 3})
    info = prepare(cfg, tmp_path / "data")
    assert info.class_names == cats and info.counts == {"train": 6, "val": 3}
    check_split(info, "train", 6)
    check_split(info, "val", 3)


def test_places365_missing_pieces(tmp_path):
    root = tmp_path / "places"
    root.mkdir()
    cfg = {"name": "p", "kind": "places365", "root": str(root), "image_size": 8}
    with pytest.raises(FileNotFoundError, match=r"dataset\.categories=.*categories_places365\.txt"):
        prepare(cfg, tmp_path / "data")
    (root / "categories_places365.txt").write_text("/a/abbey 0\n")
    with pytest.raises(FileNotFoundError, match=r"dataset\.train_list=.*places365_train_standard"):
        prepare(cfg, tmp_path / "data")


def test_cowc(tmp_path):
    root = tmp_path / "cowc"
    lines = {"train": [], "val": []}
    for split, n in (("train", 5), ("val", 2)):
        for i in range(n):
            png(root / "patches" / f"{split}{i}.png", COLOURS[i % 3], size=(12, 12))
            lines[split].append(f"patches/{split}{i}.png {i % 3}")
    (root / "train.txt").write_text("\n".join(lines["train"]))
    (root / "val.txt").write_text("\n".join(lines["val"]))
    cfg = OmegaConf.load(CONF / "cowc.yaml")
    # class 2 has no val image: allowed here explicitly (else an error naming it)
    cfg.merge_with({"root": str(root), "image_size": 12, "resize": 12})
    cfg.allow_class_mismatch = True
    with pytest.warns(UserWarning, match=r"have no val images: \['2'\]"):
        info = prepare(cfg, tmp_path / "data")
    assert info.num_classes == 3 and info.counts == {"train": 5, "val": 2}
    check_split(info, "train", 5)
    (root / "val.txt").write_text("patches/val0.png 7\n")
    with pytest.raises(ValueError, match=r"dataset\.val_list=.*val\.txt line 1: label 7"):
        prepare({**OmegaConf.to_container(cfg), "num_classes": 3, "image_size": 10}, tmp_path / "d")


def test_cowc_missing_list(tmp_path):
    (tmp_path / "cowc").mkdir()
    cfg = {"name": "c", "kind": "cowc", "root": str(tmp_path / "cowc"), "image_size": 8}
    with pytest.raises(FileNotFoundError, match=r"dataset\.train_list=.*train\.txt does not exist"):
        prepare(cfg, tmp_path / "data")
    (tmp_path / "cowc" / "train.txt").write_text("gone.png 0\n")
    (tmp_path / "cowc" / "val.txt").write_text("gone.png 0\n")
    with pytest.raises(FileNotFoundError, match=r"gone\.png"):
        prepare(cfg, tmp_path / "data")


def test_missing_or_unset_root(tmp_path, monkeypatch):
    missing = tmp_path / "imagenet"
    cfg = {"name": "i", "kind": "imagefolder", "root": str(missing), "image_size": 8}
    with pytest.raises(
        FileNotFoundError,
        match=rf"dataset\.root={missing} does not exist \(expected an ImageFolder tree with train/ and val/\)",
    ):
        prepare(cfg, tmp_path / "data")
    (missing / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"dataset\.val_dir=.*imagenet/val does not exist"):
        prepare(cfg, tmp_path / "data")
    for conf, env in (
        ("imagenet", "IMAGENET_ROOT"),
        ("places365", "PLACES365_ROOT"),
        ("cowc", "COWC_ROOT"),
    ):
        monkeypatch.delenv(env, raising=False)
        with pytest.raises(ValueError, match=rf"dataset\.root is not set.*{env}.*dataset\.root="):
            prepare(OmegaConf.load(CONF / f"{conf}.yaml"), tmp_path / "data")
