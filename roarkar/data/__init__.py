"""Datasets as fixed-size uint8 webdataset shards: embedded synthetic data and real layouts.

``prepare(cfg, data_root)`` materialises a dataset once (locked, atomic) and returns its
``DatasetInfo``; ``load_split`` reads a split into memory, ``stream_split`` streams it (DDP/worker
split), ``normalize`` turns uint8 images into the model's float input. No downloads, ever.
"""

from roarkar.data.materialize import DATASETS, content_hash, dataset_dir, prepare
from roarkar.data.shards import (
    CorruptShardError,
    DatasetInfo,
    ImageSplit,
    denormalize,
    load_info,
    load_shard,
    load_split,
    normalize,
    stream_split,
)
from roarkar.data.synthetic import GENERATORS, class_names, generate

__all__ = [
    "DATASETS",
    "GENERATORS",
    "CorruptShardError",
    "DatasetInfo",
    "ImageSplit",
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
    "stream_split",
]
