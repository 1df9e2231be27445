"""Datasets as fixed-size uint8 shards: embedded synthetic data and real layouts.

A shard is a plain tar of whole-shard ``.npy`` arrays (``images.npy``, ``labels.npy``, ...), the
container of ``roarkar.data.npytar`` (saliency rank parts use it too), not per-sample webdataset
tars: arrays are memory-mapped in place, and webdataset reads a shard as one sample per array.
``prepare(cfg, data_root)`` materialises a dataset once (locked, atomic) and returns its
``DatasetInfo``; ``load_split`` reads a split into memory, ``ShardArrays`` memory-maps one shard
(``roarkar.training.streaming`` streams from them), ``normalize`` turns uint8 images into the
model's float input. No downloads, ever.
"""

from roarkar.data.kinds import KINDS, DatasetKind
from roarkar.data.materialize import content_hash, dataset_dir, prepare
from roarkar.data.reader import (
    ImageSplit,
    ShardArrays,
    denormalize,
    load_shard,
    load_split,
    normalize,
)
from roarkar.data.shards import (
    FORMAT_VERSION,
    CorruptShardError,
    DatasetInfo,
    ShardFormatError,
    load_info,
)
from roarkar.data.synthetic import GENERATORS, class_names, generate

__all__ = [
    "FORMAT_VERSION",
    "GENERATORS",
    "KINDS",
    "CorruptShardError",
    "DatasetInfo",
    "DatasetKind",
    "ImageSplit",
    "ShardArrays",
    "ShardFormatError",
    "class_names",
    "content_hash",
    "dataset_dir",
    "denormalize",
    "generate",
    "load_info",
    "load_shard",
    "load_split",
    "normalize",
    "prepare",
]
