"""roarkar-gallery on a tiny synthetic dataset: every figure is written, with and without a model file."""

from __future__ import annotations

import pytest
import torch

from roarkar import gallery
from roarkar.models import build_model

pytest.importorskip("matplotlib")

TINY = ["train_size=8", "val_size=8"]


def test_gallery_writes_every_figure(tmp_path, capsys):
    out = tmp_path / "gallery"
    gallery.main(
        [
            "--dataset",
            "synth_objects",
            *[a for o in TINY for a in ("--set", o)],
            "--data-root",
            str(tmp_path / "data"),
            "--out",
            str(out),
            "--images",
            "2",
            "--methods",
            "smoe_scale",
            "gradcam",
            "ground_truth",
            "sobel",
            "random",
        ]
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(gallery.FIGURES)
    for name in names:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    printed = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in printed] == list(gallery.FIGURES)


def test_gallery_with_checkpoint_and_errors(tmp_path):
    model = build_model("small_resnet", 8, width=16, blocks=1, stem="cifar")
    torch.save({"model": model.name, "state_dict": model.state_dict()}, tmp_path / "model.pt")
    loaded, about = gallery.load_model(str(tmp_path / "model.pt"), "resnet50", 8)
    assert about == "small_resnet from model.pt"
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    _, about = gallery.load_model(None, "small_resnet", 8)
    assert "randomly initialised" in about
    paths = gallery.make_gallery(
        tmp_path / "out",
        overrides=TINY,
        data_root=tmp_path / "data",
        checkpoint=str(tmp_path / "model.pt"),
        images=1,
        methods=["fastcam"],
    )
    assert [p.name for p in paths] == list(gallery.FIGURES) and all(p.is_file() for p in paths)
    with pytest.raises(ValueError, match="unknown method"):
        gallery.make_gallery(
            tmp_path / "out", overrides=TINY, data_root=tmp_path / "data", methods=["nope"]
        )
    with pytest.raises(FileNotFoundError, match="known: .*synth_objects"):
        gallery.load_dataset_cfg("no_such_dataset")
