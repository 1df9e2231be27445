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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor

from roarkar.config.schema import CONF_DIR
from roarkar.gallery_grid import blend, norm, rgb, save_grid
from roarkar.removal import fill_removed, topk_mask

log = logging.getLogger(__name__)

CONF = CONF_DIR
FIGURES = ("taps.png", "lovi.png", "masks.png", "fastcam.png", "methods.png")
PERCENTS = (10.0, 30.0, 50.0, 70.0, 90.0)


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
    from roarkar.saliency.methods.precomputed import PRECOMPUTED  # maps by key, not from images

    wanted = list(methods) if methods else [m for m in S.available() if m != PRECOMPUTED]
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
    inp = rgb(raw)
    paths = []

    # Fig 1: per-tap maps and the combined map
    tap_maps = {t: stats.smoe_scale(a.post) for t, a in taps.items()}
    combined = combine(tap_maps, size)
    shown = {t: upsample(squash_map(m), size) for t, m in tap_maps.items()}
    cells = [
        [(rows_label[i], inp[i], None)]
        + [(f"{t} {tuple(tap_maps[t].shape[-2:])}", shown[t][i], "gray") for t in shown]
        + [("combined (Eq 3)", blend(combined[i : i + 1], raw[i : i + 1])[0], None)]
        for i in range(n)
    ]
    paths.append(out / "taps.png")
    save_grid(paths[-1], cells, f"SMOE Scale per tap and combined -- {head}")

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
    save_grid(paths[-1], cells, f"LOVI -- {head}", scale=1.6)

    # Fig 3: KAR and ROAR masked images
    gen = torch.Generator().manual_seed(0)
    cells = []
    for i in range(n):
        for mode in ("kar", "roar"):
            row = [(rows_label[i] if mode == "kar" else "", inp[i], None)]
            for p in PERCENTS:
                sel = topk_mask(combined[i : i + 1], p / 100.0, gen)
                keep = sel if mode == "kar" else ~sel
                shown_img = rgb(_denorm(fill_removed(x[i : i + 1], ~keep), info))[0]
                word = "kept" if mode == "kar" else "removed"
                row.append((f"{mode.upper()} {p:g}% {word}", shown_img, None))
            cells.append(row)
    paths.append(out / "masks.png")
    save_grid(paths[-1], cells, f"KAR / ROAR masks from the combined SMOE map -- {head}")

    # Fig 6: FastCAM beside Grad-CAM++
    cam, smoe = S.create("fastcam", model).factors(x, None)
    fast = cam * smoe
    cells = [
        [
            (rows_label[i], inp[i], None),
            ("Grad-CAM++", blend(cam[i : i + 1], raw[i : i + 1])[0], None),
            ("SMOE Scale", blend(smoe[i : i + 1], raw[i : i + 1])[0], None),
            ("FastCAM", blend(fast[i : i + 1], raw[i : i + 1])[0], None),
        ]
        for i in range(n)
    ]
    paths.append(out / "fastcam.png")
    save_grid(paths[-1], cells, f"FastCAM = Grad-CAM++ x SMOE -- {head}", scale=1.6)

    # every method side by side
    maps = _method_maps(model, x, relevance, wanted)
    panels = [(S.describe(m).label, norm(v), "inferno") for m, v in maps.items()]
    per_row = 8
    cells = []
    for i in range(n):
        for start in range(0, len(panels), per_row):
            first = (rows_label[i], inp[i], None) if start == 0 else ("", inp[i], None)
            cells.append([first] + [(c, m[i], cm) for c, m, cm in panels[start : start + per_row]])
    paths.append(out / "methods.png")
    save_grid(paths[-1], cells, f"every method (per-image min-max) -- {head}", scale=1.3)
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
