"""roarkar-gallery on a tiny synthetic dataset: every figure is written, with and without a model file."""

from __future__ import annotations

import pytest
import torch

from roarkar import gallery
from roarkar.gallery_grid import grid_figure
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
