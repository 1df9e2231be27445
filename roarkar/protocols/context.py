"""What every stage needs: the dataset in memory, the trainer recipe, the device and the results root."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from roarkar.config import Config, LoaderConfig
from roarkar.data import DatasetInfo, ImageSplit, load_split, normalize, prepare
from roarkar.protocols.settings import ProtocolSettings
from roarkar.store import file_lock
from roarkar.training import ArrayBatches, DistInfo, TrainerSettings
from roarkar.training.augment import augment
from roarkar.training.distributed import barrier
from roarkar.training.streaming import ShardBatches

log = logging.getLogger(__name__)

_SPLITS: dict[tuple[str, bool], tuple[DatasetInfo, ImageSplit | None, ImageSplit | None]] = {}


@dataclass
class Context:
    """The dataset, recipe and placement shared by the stages of one run."""

    config: Config
    info: DatasetInfo
    train: ImageSplit | None  # None when streamed from shards
    val: ImageSplit | None
    dist: DistInfo
    settings: TrainerSettings
    results: Path
    spec: ProtocolSettings  # what the protocols read of the config, checked once (make_context)

    def for_config(self, config: Config) -> Context:
        """This context (same data, device and recipe) for another config of the same dataset:
        its settings read and checked again."""
        return dataclasses.replace(self, config=config, spec=ProtocolSettings.from_config(config))

    @property
    def augmentation(self) -> str:
        return str(self.config.dataset.augment)

    def epochs(self, stage: str) -> int:
        return self.config.trainer.stage(stage).epochs

    @property
    def streaming(self) -> bool:
        return self.train is None

    def batches(self, split: str, batch_size: int, *, relevance: bool = False, ranks=None):
        """Batches of ``split``: from memory (:class:`ArrayBatches`) or streamed shard by shard
        (:class:`ShardBatches`). ``ranks`` are the split's saliency ranks: a tensor in memory, a
        per-shard reader when streaming."""
        held = self.train if split == "train" else self.val
        if held is None:
            loader = self.config.loader
            return ShardBatches(
                self.info,
                split,
                batch_size,
                self.dist,
                relevance=relevance,
                attach=ranks,
                pool=int(loader.pool),
                workers=loader_workers(loader, self.dist),
                prefetch=int(loader.prefetch),
            )
        arrays = {
            "images": held.images,
            "labels": held.labels,
            "relevance": held.relevance if relevance else None,
            "ranks": ranks,
        }
        return ArrayBatches(arrays, batch_size, self.dist)

    @property
    def rank_batch_size(self) -> int:
        """``trainer.batch_size`` is the global batch; each of the world's processes takes its share,
        so a cell is the same cell (same identity, same global batches) on 1 or N processes."""
        world = self.dist.world_size
        if self.settings.batch_size % world:
            raise ValueError(
                f"trainer.batch_size={self.settings.batch_size} (global) is not divisible "
                f"by the {world} processes of this run"
            )
        return self.settings.batch_size // world

    def method_params(self) -> dict:
        """The method's parameters from config, plus the dataset's normalisation for methods that
        build baselines or noise in pixel space (they declare ``mean``/``std`` parameters)."""
        from roarkar.saliency import describe

        params = self.spec.method_params()
        accepted = describe(self.spec.method_name).params
        for key, value in (("mean", self.info.mean), ("std", self.info.std)):
            if key in accepted and key not in params:
                params[key] = list(value)
        return params

    def stage_settings(self, stage: str) -> TrainerSettings:
        """The recipe for one stage: ``trainer.lr_scale[stage]`` scales the learning rate."""
        scale = self.config.trainer.stage(stage).lr_scale
        return dataclasses.replace(self.settings, lr=self.settings.lr * scale)

    def inputs(self, images: Tensor) -> Tensor:
        """uint8 images -> normalised float on this run's device."""
        return normalize(images.to(self.dist.device, non_blocking=True), self.info)

    def augment(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return augment(x, self.augmentation, generator)


def load_data(config: Config, dist: DistInfo) -> tuple[DatasetInfo, ImageSplit, ImageSplit]:
    """Make or find the dataset's shards (rank 0 only, under a lock) and load both splits (cached)."""
    data_root = Path(config.paths.data)
    if dist.is_main:
        with file_lock(data_root / ".prepare.lock"):
            info = prepare(config.dataset.node, data_root)
    barrier(dist)
    if not dist.is_main:
        info = prepare(config.dataset.node, data_root)
    in_memory = fits_in_memory(info, config.loader)
    key = (str(info.root), in_memory)
    if key not in _SPLITS:
        _SPLITS.clear()  # keep one dataset in memory at a time
        if in_memory:
            _SPLITS[key] = (info, load_split(info, "train"), load_split(info, "val"))
        else:
            log.info("streaming %s from its shards (loader.in_memory)", info.name)
            _SPLITS[key] = (info, None, None)
    return _SPLITS[key]


def loader_workers(loader: LoaderConfig, dist: DistInfo) -> int:
    """``loader.workers``: a number, or auto (none on a CPU, where training needs the cores; on a
    GPU node this rank's share of the cores it may use, less one, at most 8)."""
    choice = str(loader.workers).lower()
    if choice != "auto":
        try:
            workers = int(choice)
        except ValueError:
            workers = -1
        if workers < 0:
            raise ValueError(f"loader.workers={choice!r}: expected auto or a number >= 0")
        return workers
    if dist.device.type != "cuda":
        return 0
    per_node = max(1, torch.cuda.device_count())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 1) // per_node - 1))  # one core stays with the training process


def fits_in_memory(info: DatasetInfo, loader: LoaderConfig) -> bool:
    """``loader.in_memory``: true, false, or auto (both splits' images under ``memory_limit_gb``)."""
    choice = str(loader.in_memory).lower()
    if choice in ("true", "false"):
        return choice == "true"
    if choice != "auto":
        raise ValueError(f"loader.in_memory={choice!r}: expected auto, true or false")
    per_image = 3 * info.image_size**2 + (4 * info.image_size**2 if info.has_relevance else 0)
    total = sum(info.counts.values()) * per_image
    return total < float(loader.memory_limit_gb) * 2**30


def make_context(config: Config, dist: DistInfo) -> Context:
    """Build the context of a run from its typed config (its settings checked before any data is
    touched)."""
    spec = ProtocolSettings.from_config(config)
    info, train, val = load_data(config, dist)
    settings = TrainerSettings.from_config(config.trainer.recipe())
    return Context(config, info, train, val, dist, settings, Path(config.paths.results), spec)
