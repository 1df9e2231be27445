"""roarkar-gallery on a tiny synthetic dataset: every figure is written, with and without a model file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roarkar import gallery
from roarkar.data import prepare
from roarkar.gallery_grid import grid_figure
from roarkar.models import build_model

pytest.importorskip("matplotlib")

TINY = ["train_size=8", "val_size=8"]


def test_gallery_writes_every_figure(tmp_path, capsys, monkeypatch):
    out = tmp_path / "gallery"
    grids = {}  # file name -> (cells, scale) as the gallery laid them out
    save_grid = gallery.save_grid

    def recording(path, cells, title, scale=1.35):
        grids[path.name] = (cells, scale)
        save_grid(path, cells, title, scale)

    monkeypatch.setattr(gallery, "save_grid", recording)
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
    assert sorted(grids) == names
    info = prepare(gallery.load_dataset_cfg("synth_objects", TINY), tmp_path / "data")
    fill = torch.tensor(info.mean).mul(255).round() / 255  # the dataset mean, as shown
    for name, (cells, scale) in grids.items():
        _assert_png_shows_the_grid(out / name, cells, scale)
    _assert_masks_keep_and_remove_what_they_say(grids["masks.png"][0], fill)
    _assert_png_shows_the_fill(out / "masks.png", fill, grids["masks.png"][0])


def _assert_png_shows_the_grid(path, cells, scale: float) -> None:
    """The PNG decodes, is as wide as its columns of ``scale``-inch panels (0.12 in gaps) and as
    tall as its rows at least, and shows more than a blank page."""
    from PIL import Image

    from roarkar.gallery_grid import DPI

    with Image.open(path) as img:
        img.load()
        pixels = np.asarray(img.convert("RGB"))
    cols, rows = max(len(r) for r in cells), len(cells)
    assert pixels.shape[1] == round((cols * scale + (cols + 1) * 0.12) * DPI), path.name
    assert pixels.shape[0] >= rows * scale * DPI, path.name
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 50, f"{path.name}: {len(colours)} colours"
    for row in cells:  # each input panel is a real image, not a constant
        assert row[1][1].std() > 0 and row[0][1].std() > 0


def _assert_masks_keep_and_remove_what_they_say(cells, fill: torch.Tensor) -> None:
    """masks.png: the KAR p% panel keeps exactly p% of the input's pixels and sets every other
    one to the dataset mean; the ROAR p% panel removes exactly p% (the top-k mask is exact)."""
    assert len(cells) == 4  # 2 images x (KAR row, ROAR row)
    for r, row in enumerate(cells):
        mode = "KAR" if r % 2 == 0 else "ROAR"
        image = row[0][1]
        assert not (image == fill).all(-1).any()  # so a mean pixel is a replaced one
        assert len(row) == 1 + len(gallery.PERCENTS)
        for (caption, panel, _), p in zip(row[1:], gallery.PERCENTS, strict=True):
            word = "kept" if mode == "KAR" else "removed"
            assert caption == f"{mode} {p:g}% {word}"
            replaced = (panel == fill).all(-1)
            assert ((panel == image).all(-1) | replaced).all(), caption
            pixels = replaced.numel()
            kept = round(p / 100 * pixels) if mode == "KAR" else pixels - round(p / 100 * pixels)
            assert int((~replaced).sum()) == kept, caption


def _assert_png_shows_the_fill(path, fill: torch.Tensor, cells) -> None:
    """The mask panels' replaced pixels reach the PNG: the mean colour covers about as many PNG
    pixels as the replaced share of the panels (nearest-neighbour upscaling keeps colours)."""
    from PIL import Image

    with Image.open(path) as img:
        pixels = torch.from_numpy(np.asarray(img.convert("RGB")).copy())
    shown = (pixels.float().sub(fill * 255).abs() <= 1).all(-1).sum()
    replaced = sum(float((panel == fill).all(-1).float().mean()) for row in cells
                   for _, panel, _ in row[1:])  # fmt: skip
    panel_px = (1.35 * 100) ** 2
    assert 0.8 * replaced * panel_px <= int(shown) <= 1.2 * replaced * panel_px


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


def _overlap(a, b, tol: float = 1.0) -> bool:
    """Two boxes overlap by more than ``tol`` pixels (a title touching its panel does not)."""
    return a.x0 < b.x1 - tol and b.x0 < a.x1 - tol and a.y0 < b.y1 - tol and b.y0 < a.y1 - tol


def _grid_rows(row_label: str) -> list[list[tuple[str, torch.Tensor, str | None]]]:
    """methods.png's layout: the input with its row label, then eight method panels per row."""
    import roarkar.saliency as S

    labels = [S.describe(m).label for m in S.available()]
    rows = []
    for start in range(0, len(labels), 8):
        first = (row_label if start == 0 else "", torch.rand(32, 32, 3), None)
        rows.append([first] + [(lab, torch.rand(32, 32), "inferno") for lab in labels[start : start + 8]])  # fmt: skip
    return rows


@pytest.mark.parametrize(
    "row_label",
    ["label hstripes\npred vstripes", "label a_very_long_class_name_of_a_real_dataset\npred cat"],
)
def test_gallery_panels_are_readable_and_no_label_is_clipped(row_label):
    """Every caption, row label and the title lie inside the figure, overlap no other text and
    no panel; panels are at least 100 px (they were about 40 px in methods.png)."""
    import itertools

    import matplotlib.pyplot as plt

    fig = grid_figure(
        _grid_rows(row_label), "every method (per-image min-max) -- " + "long title " * 20, 1.3
    )
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        drawn = [*fig.texts, *(ax.title for ax in fig.axes)]  # the axes themselves are off
        texts = [t for t in drawn if t.get_visible() and t.get_text()]
        assert row_label.split("\n")[1] in [t.get_text().split("\n")[-1] for t in texts]
        boxes = [t.get_window_extent(renderer) for t in texts]
        panels = [ax.get_window_extent(renderer) for ax in fig.axes]
        inside = fig.bbox
        for text, box in zip(texts, boxes, strict=True):
            assert inside.x0 <= box.x0 and box.x1 <= inside.x1, text.get_text()
            assert inside.y0 <= box.y0 and box.y1 <= inside.y1, text.get_text()
            assert not any(_overlap(box, p) for p in panels), text.get_text()
        for (ta, a), (tb, b) in itertools.combinations(zip(texts, boxes, strict=True), 2):
            assert not _overlap(a, b), (ta.get_text(), tb.get_text())
        assert min(min(p.width, p.height) for p in panels) >= 100
    finally:
        plt.close(fig)
