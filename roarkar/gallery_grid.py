"""The gallery's panels: maps scaled for display, blended with the image, and laid out in a grid
of captioned panels saved as a PNG (``roarkar-gallery``, :mod:`roarkar.gallery`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch
from torch import Tensor

from roarkar.report.plotting import pyplot

__all__ = ["DPI", "FONT", "blend", "grid_figure", "norm", "rgb", "save_grid", "wrap"]


def norm(maps: Tensor) -> Tensor:
    """Per-image min-max to [0, 1] for display."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    rng = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    return ((maps - lo.view(-1, 1, 1)) / rng.view(-1, 1, 1)).clamp(0, 1)


def rgb(images_uint8: Tensor) -> Tensor:
    """uint8 images ``[N, C, H, W]`` as float ``[N, H, W, C]`` in [0, 1] for ``imshow``."""
    return images_uint8.permute(0, 2, 3, 1).float() / 255.0


def blend(maps: Tensor, images_uint8: Tensor, alpha: float = 0.25) -> Tensor:
    """Map (inferno colours) alpha-blended with the grey image (paper Fig 1: 25 %)."""
    plt = pyplot()
    cmap = plt.get_cmap("inferno")
    coloured = torch.as_tensor(cmap(norm(maps).numpy())[..., :3], dtype=torch.float32)
    grey = rgb(images_uint8).mean(-1, keepdim=True).expand_as(coloured)
    return (1 - alpha) * coloured + alpha * grey


#: Resolution of the gallery PNGs, and the caption font size in points.
DPI = 100
FONT = 7.0


def wrap(text: str, width: int) -> str:
    """Wrap every line of ``text`` (kept line breaks included) to ``width`` characters."""
    return "\n".join(textwrap.fill(line, width=width) or line for line in text.split("\n"))


def grid_figure(cells: list[list[tuple[str, Tensor, str | None]]], title: str, scale: float = 1.35):
    """A grid of ``scale``-inch panels; each cell is (caption, image [H,W] or [H,W,3], cmap).

    Captions (the first column's is the row label) are wrapped to the panel's width and each row
    gets the height its longest caption needs above it, so no caption is clipped or runs into
    another or into the title, whatever the labels; a layout engine would shrink the panels.
    """
    plt = pyplot()
    rows, cols = len(cells), max(len(r) for r in cells)
    gap, line = 0.12, FONT * 1.25 / 72  # inches between panels, per caption line
    chars = max(8, int(scale * 72 / (0.62 * FONT)))  # caption characters that fit a panel
    wrapped = [[(wrap(c, chars), img, cmap) for c, img, cmap in row] for row in cells]
    caption_h = [
        max((c.count("\n") + 1 if c else 0) for c, _, _ in row) * line + 0.06 for row in wrapped
    ]
    width = cols * scale + (cols + 1) * gap
    head = wrap(title, max(20, int(width * 72 / (0.62 * (FONT + 1)))))
    head_h = (head.count("\n") + 1) * (FONT + 1) * 1.25 / 72 + 2 * gap
    height = head_h + sum(caption_h) + rows * (scale + gap)
    fig = plt.figure(figsize=(width, height), dpi=DPI)
    fig.text(0.5, 1 - gap / height, head, ha="center", va="top", fontsize=FONT + 1)
    top = height - head_h
    for r, row in enumerate(wrapped):
        top -= caption_h[r] + scale
        for c, (caption, img, cmap) in enumerate(row):
            left = gap + c * (scale + gap)
            ax = fig.add_axes((left / width, top / height, scale / width, scale / height))
            ax.axis("off")
            kwargs = {"vmin": 0.0, "vmax": 1.0, "cmap": cmap} if img.dim() == 2 else {}
            ax.imshow(img.numpy(), interpolation="nearest", **kwargs)
            ax.set_title(caption, fontsize=FONT, pad=2)
        top -= gap
    return fig


def save_grid(
    path: Path,
    cells: list[list[tuple[str, Tensor, str | None]]],
    title: str,
    scale: float = 1.35,
) -> None:
    """Save :func:`grid_figure` as a PNG (no bbox cropping: the layout already fits)."""
    plt = pyplot()
    fig = grid_figure(cells, title, scale)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
