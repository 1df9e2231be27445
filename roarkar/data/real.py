"""Real-dataset layouts (ImageNet ImageFolder, Places365, COWC list files, Tiny ImageNet) -> sample
lists + pixels (the array releases, MNIST and CIFAR-10, are read by ``roarkar.data.layouts``);
each ``list_<kind>(root, cfg)`` is registered as a dataset kind in :mod:`roarkar.data.kinds`.

Each layout is turned into, per split, a list of ``(image path, label)`` plus the class names; the
pixels are decoded with PIL, resized so the shorter side is ``resize`` and centre-cropped to
``image_size`` (the usual evaluation preprocessing), then stored in shards by ``prepare``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_EXT = "(" + ", ".join(IMAGE_EXTENSIONS) + "): remove it or add its images"


class UpscaledImageWarning(UserWarning):
    """A source image smaller than the size it is converted to."""


_WARNED = {"upscale": False}  # once per process: a million small images are one finding


def reset_warnings() -> None:
    """Forget that the once-per-process warnings were given (the next upscaled image warns again)."""
    _WARNED["upscale"] = False


class CorruptImageError(ValueError):
    """An image file that cannot be decoded (the message names it)."""


@dataclass
class Listing:
    """What a real layout holds: per split ``[(path, label)]``, the class names and the list
    files it read (``meta``: they enter the source fingerprint, :mod:`roarkar.data.fingerprint`)."""

    samples: dict[str, list[tuple[Path, int]]]
    class_names: list[str]
    meta: list[Path] = field(default_factory=list)


def need_dir(path: Path, key: str, expected: str) -> None:
    """A folder at ``path``, else an error naming the config ``key`` and what was ``expected``."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{key}={path} is a file, not a folder (expected {expected})")
    if not path.is_dir():
        raise FileNotFoundError(f"{key}={path} does not exist (expected {expected})")


def need_file(path: Path, key: str, expected: str) -> None:
    """A file at ``path``, else an error naming the config ``key`` and what was ``expected``."""
    if path.exists() and not path.is_file():
        raise IsADirectoryError(f"{key}={path} is a folder, not a file (expected {expected})")
    if not path.is_file():
        raise FileNotFoundError(f"{key}={path} does not exist (expected {expected})")


def _read_list(path: Path, key: str, base: Path, num_classes: int | None) -> list[tuple[Path, int]]:
    """Lines ``relative/path label`` -> [(base/path, label)], with errors naming file and line."""
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        try:
            rel, label = parts[0], int(parts[1])
        except (IndexError, ValueError) as e:
            raise ValueError(
                f"{key}={path} line {lineno}: expected 'relative/path label', got {line!r}"
            ) from e
        if label < 0 or (num_classes is not None and label >= num_classes):
            raise ValueError(
                f"{key}={path} line {lineno}: label {label} outside 0..{(num_classes or 1) - 1}"
            )
        out.append((base / rel.lstrip("/"), label))
    return out


def list_imagefolder(root: Path, cfg: Mapping[str, Any]) -> Listing:
    """ImageNet as ``root/{train,val}/<class>/*.jpg``; classes sorted by folder name (from train)."""
    need_dir(root, "dataset.root", "an ImageFolder tree with train/ and val/")
    split_dirs = {s: root / str(cfg.get(f"{s}_dir") or s) for s in ("train", "val")}
    for s, d in split_dirs.items():
        need_dir(d, f"dataset.{s}_dir", f"a folder of class folders under dataset.root={root}")
    classes = sorted(p.name for p in split_dirs["train"].iterdir() if p.is_dir())
    if not classes:
        raise FileNotFoundError(f"dataset.root={root}: {split_dirs['train']} has no class folders")
    index = {c: i for i, c in enumerate(classes)}
    samples: dict[str, list[tuple[Path, int]]] = {}
    for s, d in split_dirs.items():
        found = []
        for cdir in sorted(p for p in d.iterdir() if p.is_dir()):
            if cdir.name not in index:
                raise ValueError(
                    f"dataset.root={root}: class folder {cdir} is not in {split_dirs['train']}"
                )
            files = [f for f in sorted(cdir.iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS]
            if not files:
                raise ValueError(f"dataset.root={root}: class folder {cdir} holds no images {_EXT}")
            found += [(f, index[cdir.name]) for f in files]
        samples[s] = found
    return Listing(samples, classes)


def list_places365(root: Path, cfg: Mapping[str, Any]) -> Listing:
    """Places365 standard layout: list files, ``data_256/`` and ``val_256/`` under ``root``."""
    need_dir(
        root,
        "dataset.root",
        "the Places365 folder with places365_train_standard.txt, data_256/, val_256/",
    )
    cats = root / str(cfg.get("categories") or "categories_places365.txt")
    need_file(cats, "dataset.categories", "lines '/a/abbey 0'")
    names: dict[int, str] = {}
    for lineno, line in enumerate(cats.read_text().splitlines(), 1):
        if line.strip():
            try:
                name, idx = line.split()
                names[int(idx)] = name.strip("/")
            except ValueError as e:
                raise ValueError(
                    f"dataset.categories={cats} line {lineno}: expected '/a/abbey 0', got {line!r}"
                ) from e
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"dataset.categories={cats}: class indices are not 0..{len(names) - 1}")
    class_names = [names[i] for i in range(len(names))]
    samples, meta = {}, [cats]
    for s, list_key, list_default, dir_key, dir_default in (
        ("train", "train_list", "places365_train_standard.txt", "train_dir", "data_256"),
        ("val", "val_list", "places365_val.txt", "val_dir", "val_256"),
    ):
        lst = root / str(cfg.get(list_key) or list_default)
        need_file(lst, f"dataset.{list_key}", "lines 'relative/path.jpg label'")
        base = root / str(cfg.get(dir_key) or dir_default)
        need_dir(base, f"dataset.{dir_key}", f"the images listed in {lst.name}")
        samples[s] = _read_list(lst, f"dataset.{list_key}", base, len(class_names))
        meta.append(lst)
    return Listing(samples, class_names, meta)


def list_cowc(root: Path, cfg: Mapping[str, Any]) -> Listing:
    """COWC-style list files ``relative/path.png label`` per split, paths relative to ``root``."""
    need_dir(root, "dataset.root", "a folder with the COWC patches and train/val list files")
    num_classes = cfg.get("num_classes")
    samples, meta = {}, []
    for s in ("train", "val"):
        key = f"{s}_list"
        lst = root / str(cfg.get(key) or f"{s}.txt")
        need_file(lst, f"dataset.{key}", "lines 'relative/path.png label'")
        samples[s] = _read_list(
            lst, f"dataset.{key}", root, None if num_classes is None else int(num_classes)
        )
        meta.append(lst)
    labels = [lab for s in samples.values() for _, lab in s]
    n = int(num_classes) if num_classes is not None else (max(labels) + 1 if labels else 0)
    names = cfg.get("class_names")
    return Listing(samples, [str(c) for c in names] if names else [str(i) for i in range(n)], meta)


def release_dir(root: Path, name: str) -> Path:
    """``root`` itself, or ``root/name`` when ``root`` is the folder that holds the release."""
    return root / name if (root / name).is_dir() else root


def list_tiny_imagenet(root: Path, cfg: Mapping[str, Any]) -> Listing:
    """Tiny ImageNet as released: ``wnids.txt``, ``train/<wnid>/images/*.JPEG``,
    ``val/val_annotations.txt`` + ``val/images/``; classes are the sorted wnids (ImageFolder's
    order of ``train/``); ``root`` is ``tiny-imagenet-200/`` or the folder holding it."""
    expected = "tiny-imagenet-200/ with wnids.txt, train/<wnid>/images/, val/val_annotations.txt"
    need_dir(root, "dataset.root", expected)
    root = release_dir(root, "tiny-imagenet-200")
    wnids_file = root / "wnids.txt"
    need_file(wnids_file, "dataset.root", f"{expected} (no wnids.txt)")
    wnids = [w.strip() for w in wnids_file.read_text().splitlines() if w.strip()]
    if len(set(wnids)) != len(wnids):
        raise ValueError(f"{wnids_file}: a wnid is listed twice")
    classes = sorted(wnids)
    index = {w: i for i, w in enumerate(classes)}
    train = []
    for w in classes:
        folder = root / "train" / w / "images"
        need_dir(folder, "dataset.root", f"the training images of {w} (listed in {wnids_file})")
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"dataset.root={root}: class folder {folder} holds no images {_EXT}")
        train += [(f, index[w]) for f in files]
    extra = sorted({p.name for p in (root / "train").iterdir() if p.is_dir()} - set(index))
    if extra:
        raise ValueError(f"{root / 'train'}: class folders {extra[:5]} are not in {wnids_file}")
    notes = root / "val" / "val_annotations.txt"
    need_file(notes, "dataset.root", "val/val_annotations.txt: lines 'val_0.JPEG<TAB>wnid ...'")
    val = []
    for lineno, line in enumerate(notes.read_text().splitlines(), 1):
        parts = line.split("\t")
        if not line.strip():
            continue
        if len(parts) < 2 or parts[1].strip() not in index:
            raise ValueError(
                f"{notes} line {lineno}: expected 'val_N.JPEG<TAB><wnid of wnids.txt>...', "
                f"got {line!r}"
            )
        val.append((root / "val" / "images" / parts[0].strip(), index[parts[1].strip()]))
    return Listing({"train": train, "val": val}, classes, [wnids_file, notes])


def load_image(path: Path, image_size: int, resize: int | None) -> np.ndarray:
    """Decode ``path`` as RGB, resize the shorter side to ``resize`` and centre-crop -> uint8 [3,S,S]."""
    if not path.is_file():
        raise FileNotFoundError(f"image {path} listed in the dataset does not exist")
    check_resize(image_size, resize)
    try:
        with Image.open(path) as im:
            return fit_image(as_rgb(im, path), image_size, resize, str(path))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # PIL: UnidentifiedImageError (an OSError), "image file is truncated", bad headers
        raise CorruptImageError(
            f"image {path} cannot be decoded ({type(e).__name__}: {e}); fix or remove it, or set "
            "dataset.skip_corrupt=true to leave such images out (listed in skipped.json)"
        ) from e


def as_rgb(im: Image.Image, path: Path) -> Image.Image:
    """An image as 8-bit RGB; 16-bit grey (``I;16*``, or ``I`` within 0..65535) scaled to
    0..255 (PIL's ``convert`` clips it to white); other wide modes refused, naming the file."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        arr = np.asarray(im)
        if im.mode == "F" or arr.min() < 0 or arr.max() > 65535:
            raise CorruptImageError(
                f"image {path} has {im.mode} pixels in {arr.min()}..{arr.max()}, not 8- or 16-bit "
                "integers; convert it to 8-bit RGB first"
            )
        scaled = (arr.astype(np.uint32) * 255 + 32767) // 65535  # round(v * 255 / 65535)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def check_resize(image_size: int, resize: int | None) -> int:
    """``dataset.resize`` (null: ``image_size``), refused when smaller than ``image_size``."""
    resize = int(resize or image_size)
    if resize < image_size:
        raise ValueError(f"dataset.resize={resize} must be >= dataset.image_size={image_size}")
    return resize


def fit_image(im: Image.Image, image_size: int, resize: int | None, where: str) -> np.ndarray:
    """An RGB PIL image, shorter side resized to ``resize`` and centre-cropped -> uint8 [3,S,S];
    already ``image_size`` square with no other ``resize``: the pixels unchanged."""
    resize = check_resize(image_size, resize)
    w, h = im.size
    if min(w, h) < resize and not _WARNED["upscale"]:
        _WARNED["upscale"] = True
        warnings.warn(
            f"image {where} is {w}x{h} px, smaller than dataset.resize={resize}: it is "
            "upscaled, and so are others like it (one warning per process); the network "
            "sees interpolation, not detail. Lower dataset.image_size / resize to match "
            "the data",
            UpscaledImageWarning,
            stacklevel=3,
        )
    if (w, h) != (image_size, image_size) or resize != image_size:
        scale = resize / min(w, h)
        nw, nh = max(resize, round(w * scale)), max(resize, round(h * scale))
        im = im.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (nw - image_size) // 2, (nh - image_size) // 2
        im = im.crop((left, top, left + image_size, top + image_size))
    arr = np.asarray(im, dtype=np.uint8)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def fit_array(arr: np.ndarray, image_size: int, resize: int | None, where: str) -> np.ndarray:
    """A uint8 ``[C, H, W]`` array (C = 1: grey, copied into R, G and B; C = 3: RGB) -> uint8
    ``[3, S, S]`` as ``fit_image``; at its own size with no other ``resize``: the pixels unchanged."""
    c, h, w = arr.shape
    if (h, w) == (image_size, image_size) and check_resize(image_size, resize) == image_size:
        return np.ascontiguousarray(np.broadcast_to(arr, (3, h, w)))
    im = Image.fromarray(arr[0] if c == 1 else arr.transpose(1, 2, 0)).convert("RGB")
    return fit_image(im, image_size, resize, where)
