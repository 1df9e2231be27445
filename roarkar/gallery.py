"""``roarkar-gallery``: PNG figures of saliency maps on a few images, like the paper's Fig 1, 2, 3, 6
and one panel per registered method.

Writes into ``--out``:

- ``taps.png`` (Fig 1): input, the five per-tap SMOE Scale maps L1..L5 (each normal-CDF squashed), and
  the combined map (Eq 3) alpha-blended with the grey image at 25 %;
- ``lovi.png`` (Fig 2): input and the LOVI image of the five tap maps (Eq 4-7);
- ``masks.png`` (Fig 3): KAR (kept) and ROAR (removed) images at several percents, masked by the
  combined SMOE map with exact top-k masks, removed pixels set to the dataset mean;
- ``fastcam.png`` (Fig 6): input, Grad-CAM++, SMOE Scale, FastCAM;
- ``methods.png``: one column per method that runs on the model (``ground_truth`` only with relevance).

Without ``--checkpoint`` the model is a randomly initialised, untrained network (the figure titles say
so): useful to check the plumbing, not the maps.
"""

from __future__ import annotations

import argparse
import logging
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor

from roarkar.masking import apply_keep_mask, topk_mask

log = logging.getLogger(__name__)

CONF = Path(__file__).resolve().parent / "conf"
FIGURES = ("taps.png", "lovi.png", "masks.png", "fastcam.png", "methods.png")
PERCENTS = (10.0, 30.0, 50.0, 70.0, 90.0)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def load_dataset_cfg(dataset: str, overrides: Sequence[str] = ()) -> Any:
    """``conf/dataset/<dataset>.yaml`` (or a yaml path) with ``key=value`` overrides applied."""
    path = Path(dataset)
    if path.suffix not in (".yaml", ".yml"):
        path = CONF / "dataset" / f"{dataset}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in (CONF / "dataset").glob("*.yaml"))
        raise FileNotFoundError(f"no dataset config {path} (known: {', '.join(names)})")
    cfg = OmegaConf.load(path)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return cfg


def load_model(checkpoint: str | None, model_name: str, num_classes: int, seed: int = 0):
    """(model, description): a base model saved by roarkar (``model.pt``: ``state_dict``, ``model``)
    or, without a checkpoint, a randomly initialised ``model_name``."""
    from roarkar.models import build_model

    def build(name: str):
        conf = CONF / "model" / f"{name}.yaml"
        params = (
            OmegaConf.to_container(OmegaConf.load(conf).get("params", {})) if conf.is_file() else {}
        )
        return build_model(name, num_classes, **(params or {}))

    if checkpoint is None:
        torch.manual_seed(seed)
        return build(model_name), f"randomly initialised {model_name} (untrained)"
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"--checkpoint {checkpoint} does not exist (expected a model.pt)")
    try:  # weights_only: a crafted file is refused, never run
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, empty, foreign or crafted
        raise ValueError(
            f"--checkpoint {checkpoint} cannot be read as a model file: {exc}"
        ) from exc
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ValueError(f"{checkpoint} is not a roarkar model file (a dict with 'state_dict')")
    name = str(state.get("model") or model_name)
    model = build(name)
    model.load_state_dict(state["state_dict"])
    return model, f"{name} from {Path(checkpoint).name}"


def _norm(maps: Tensor) -> Tensor:
    """Per-image min-max to [0, 1] for display."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    rng = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    return ((maps - lo.view(-1, 1, 1)) / rng.view(-1, 1, 1)).clamp(0, 1)


def _rgb(images_uint8: Tensor) -> Tensor:
    return images_uint8.permute(0, 2, 3, 1).float() / 255.0


def _blend(maps: Tensor, images_uint8: Tensor, alpha: float = 0.25) -> Tensor:
    """Map (inferno colours) alpha-blended with the grey image (paper Fig 1: 25 %)."""
    plt = _pyplot()
    cmap = plt.get_cmap("inferno")
    coloured = torch.as_tensor(cmap(_norm(maps).numpy())[..., :3], dtype=torch.float32)
    grey = _rgb(images_uint8).mean(-1, keepdim=True).expand_as(coloured)
    return (1 - alpha) * coloured + alpha * grey


#: Resolution of the gallery PNGs, and the caption font size in points.
DPI = 100
FONT = 7.0


def _wrap(text: str, width: int) -> str:
    """Wrap every line of ``text`` (kept line breaks included) to ``width`` characters."""
    return "\n".join(textwrap.fill(line, width=width) or line for line in text.split("\n"))


def grid_figure(cells: list[list[tuple[str, Tensor, str | None]]], title: str, scale: float = 1.35):
    """A grid of ``scale``-inch panels; each cell is (caption, image [H,W] or [H,W,3], cmap).

    Captions (the first column's is the row label) are wrapped to the panel's width and each row
    gets the height its longest caption needs above it, so no caption is clipped or runs into
    another or into the title, whatever the labels; a layout engine would shrink the panels.
    """
    plt = _pyplot()
    rows, cols = len(cells), max(len(r) for r in cells)
    gap, line = 0.12, FONT * 1.25 / 72  # inches between panels, per caption line
    chars = max(8, int(scale * 72 / (0.62 * FONT)))  # caption characters that fit a panel
    wrapped = [[(_wrap(c, chars), img, cmap) for c, img, cmap in row] for row in cells]
    caption_h = [
        max((c.count("\n") + 1 if c else 0) for c, _, _ in row) * line + 0.06 for row in wrapped
    ]
    width = cols * scale + (cols + 1) * gap
    head = _wrap(title, max(20, int(width * 72 / (0.62 * (FONT + 1)))))
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


def _grid(
    path: Path,
    cells: list[list[tuple[str, Tensor, str | None]]],
    title: str,
    scale: float = 1.35,
) -> None:
    """Save :func:`grid_figure` as a PNG (no bbox cropping: the layout already fits)."""
    plt = _pyplot()
    fig = grid_figure(cells, title, scale)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _method_maps(
    model, x: Tensor, relevance: Tensor | None, names: Sequence[str]
) -> dict[str, Tensor]:
    import roarkar.saliency as S

    maps = {}
    for name in names:
        if name == "ground_truth" and relevance is None:
            continue
        try:
            maps[name] = S.create(name, model).saliency(
                x, relevance=relevance, generator=torch.Generator().manual_seed(0)
            )
        except Exception as exc:  # a method that cannot run on this model is skipped, not fatal
            log.warning("skipping %s: %s", name, exc)
    return maps


def make_gallery(
    out: str | Path,
    *,
    dataset: str = "synth_objects",
    overrides: Sequence[str] = (),
    data_root: str | Path | None = None,
    checkpoint: str | None = None,
    model_name: str = "small_resnet",
    images: int = 4,
    methods: Sequence[str] | None = None,
    split: str = "val",
) -> list[Path]:
    """Write the gallery PNGs into ``out`` and return their paths."""
    import roarkar.saliency as S
    from roarkar.data import load_split, normalize, prepare
    from roarkar.saliency import stats
    from roarkar.saliency.combine import combine, squash_map, upsample
    from roarkar.saliency.lovi import lovi

    wanted = list(methods) if methods else S.available()
    unknown = sorted(set(wanted) - set(S.available()))
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}: available are {S.available()}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_dataset_cfg(dataset, overrides)
    root = data_root or os.environ.get("ROARKAR_DATA") or out / "data"  # never the cwd
    info = prepare(cfg, root)
    data = load_split(info, split)
    n = min(int(images), len(data.labels))
    if n < 1:
        raise ValueError(f"--images must be >= 1 and the {split} split non-empty")
    raw = data.images[:n]
    labels = data.labels[:n]
    relevance = data.relevance[:n] if data.relevance is not None else None
    model, about = load_model(checkpoint, model_name, info.num_classes)
    model.eval()
    x = normalize(raw, info)
    size = tuple(x.shape[-2:])
    with torch.no_grad():
        pred = model(x).argmax(1)
        taps, _ = model.forward_taps(x)
    names = info.class_names or [str(i) for i in range(info.num_classes)]
    rows_label = [
        f"label {names[int(t)]}\npred {names[int(p)]}" for t, p in zip(labels, pred, strict=True)
    ]
    head = f"{info.name}: {about}"
    inp = _rgb(raw)
    paths = []

    # Fig 1: per-tap maps and the combined map
    tap_maps = {t: stats.smoe_scale(a.post) for t, a in taps.items()}
    combined = combine(tap_maps, size)
    shown = {t: upsample(squash_map(m), size) for t, m in tap_maps.items()}
    cells = [
        [(rows_label[i], inp[i], None)]
        + [(f"{t} {tuple(tap_maps[t].shape[-2:])}", shown[t][i], "gray") for t in shown]
        + [("combined (Eq 3)", _blend(combined[i : i + 1], raw[i : i + 1])[0], None)]
        for i in range(n)
    ]
    paths.append(out / "taps.png")
    _grid(paths[-1], cells, f"SMOE Scale per tap and combined -- {head}")

    # Fig 2: LOVI
    colours = lovi(tap_maps, size).permute(0, 2, 3, 1)
    stripes = [torch.eye(5)[k].view(1, 5, 1).expand(1, 5, 8) for k in range(5)]
    legend = lovi(stripes, (5, 8), squash="none")[0].permute(1, 2, 0)  # row k: only L(k+1) on
    legend_cell = ("hue: L1 (top) .. L5", legend, None)
    cells = [
        [(rows_label[i], inp[i], None), ("LOVI", colours[i], None)]
        + ([legend_cell] if i == 0 else [])
        for i in range(n)
    ]
    paths.append(out / "lovi.png")
    _grid(paths[-1], cells, f"LOVI -- {head}", scale=1.6)

    # Fig 3: KAR and ROAR masked images
    gen = torch.Generator().manual_seed(0)
    cells = []
    for i in range(n):
        for mode in ("kar", "roar"):
            row = [(rows_label[i] if mode == "kar" else "", inp[i], None)]
            for p in PERCENTS:
                sel = topk_mask(combined[i : i + 1], p / 100.0, gen)
                keep = sel if mode == "kar" else ~sel
                shown_img = _rgb(_denorm(apply_keep_mask(x[i : i + 1], keep), info))[0]
                word = "kept" if mode == "kar" else "removed"
                row.append((f"{mode.upper()} {p:g}% {word}", shown_img, None))
            cells.append(row)
    paths.append(out / "masks.png")
    _grid(paths[-1], cells, f"KAR / ROAR masks from the combined SMOE map -- {head}")

    # Fig 6: FastCAM beside Grad-CAM++
    cam, smoe = S.create("fastcam", model).factors(x, None)
    fast = cam * smoe
    cells = [
        [
            (rows_label[i], inp[i], None),
            ("Grad-CAM++", _blend(cam[i : i + 1], raw[i : i + 1])[0], None),
            ("SMOE Scale", _blend(smoe[i : i + 1], raw[i : i + 1])[0], None),
            ("FastCAM", _blend(fast[i : i + 1], raw[i : i + 1])[0], None),
        ]
        for i in range(n)
    ]
    paths.append(out / "fastcam.png")
    _grid(paths[-1], cells, f"FastCAM = Grad-CAM++ x SMOE -- {head}", scale=1.6)

    # every method side by side
    maps = _method_maps(model, x, relevance, wanted)
    panels = [(S.describe(m).label, _norm(v), "inferno") for m, v in maps.items()]
    per_row = 8
    cells = []
    for i in range(n):
        for start in range(0, len(panels), per_row):
            first = (rows_label[i], inp[i], None) if start == 0 else ("", inp[i], None)
            cells.append([first] + [(c, m[i], cm) for c, m, cm in panels[start : start + per_row]])
    paths.append(out / "methods.png")
    _grid(paths[-1], cells, f"every method (per-image min-max) -- {head}", scale=1.3)
    return paths


def _denorm(x: Tensor, info) -> Tensor:
    from roarkar.data import denormalize

    return denormalize(x, info)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="roarkar-gallery",
        description="PNG figures of saliency maps (paper Fig 1, 2, 3, 6 and every method).",
    )
    parser.add_argument("--dataset", default="synth_objects", help="conf/dataset name or yaml path")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a dataset config key (repeatable), e.g. --set val_size=16",
    )
    parser.add_argument("--data-root", default=None, help="default: $ROARKAR_DATA or OUT/data")
    parser.add_argument("--checkpoint", default=None, help="a roarkar model.pt (else untrained)")
    parser.add_argument("--model", default="small_resnet", help="architecture without checkpoint")
    parser.add_argument("--out", default="gallery", help="output directory")
    parser.add_argument("--images", type=int, default=4, help="number of images (rows)")
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    paths = make_gallery(
        args.out,
        dataset=args.dataset,
        overrides=args.overrides,
        data_root=args.data_root,
        checkpoint=args.checkpoint,
        model_name=args.model,
        images=args.images,
        methods=args.methods,
    )
    for p in paths:
        print(p)


if __name__ == "__main__":  # python -m: the same process settings as the console script
    from roarkar.entry import gallery

    gallery()
