"""Batches streamed from webdataset shards, for datasets too big for memory (ImageNet, Places365).

Same interface as :class:`~roarkar.training.batches.ArrayBatches`. Each epoch the shard order is a
permutation seeded by (seed, epoch); rank r reads every world-th shard of it (all shards, keeping
every world-th sample, when there are fewer shards than ranks); samples are drawn at random from a
pool of a few open shards. Every rank yields exactly ``steps_per_epoch()`` full batches, cycling its
shards again if it runs short, so uneven shards never leave one DDP rank waiting. Memory holds at
most ``pool`` shards per process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from roarkar.data import DatasetInfo, ImageSplit, load_shard
from roarkar.training.batches import epoch_generator
from roarkar.training.distributed import DistInfo

# attach(shard index, shard) -> extra per-sample tensors (e.g. the saliency ranks of that shard)
Attach = Callable[[int, ImageSplit], dict[str, Tensor]]


class ShardBatches:
    """Mini-batches read shard by shard from a prepared dataset."""

    def __init__(
        self,
        info: DatasetInfo,
        split: str,
        batch_size: int,
        dist: DistInfo | None = None,
        *,
        relevance: bool = False,
        attach: Attach | None = None,
        pool: int = 4,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.info, self.split, self.batch_size = info, split, batch_size
        self.dist = dist or DistInfo()
        self.relevance, self.attach, self.pool = (
            relevance and info.has_relevance,
            attach,
            max(1, pool),
        )
        self.counts = [int(e["count"]) for e in info.shards[split]]
        self.size = sum(self.counts)

    def steps_per_epoch(self) -> int:
        per_rank = self.size // self.dist.world_size
        return max(self.size // (self.batch_size * self.dist.world_size), 1 if per_rank else 0)

    def _shard(self, index: int) -> dict[str, Tensor]:
        part = load_shard(self.info, self.split, index)
        arrays = {"images": part.images, "labels": part.labels}
        if self.relevance:
            arrays["relevance"] = part.relevance
        if self.attach is not None:
            arrays |= self.attach(index, part)
        return arrays

    def _mine(self, order: list[int]) -> tuple[list[int], bool]:
        world, rank = self.dist.world_size, self.dist.rank
        if len(order) >= world:
            return order[rank::world], False
        return (
            order,
            True,
        )  # fewer shards than ranks: everyone reads all, keeps every world-th sample

    def _stream(
        self, shards: list[int], generator: torch.Generator, by_sample: bool
    ) -> Iterator[dict[str, Tensor]]:
        """Single samples, drawn at random from a pool of open shards, cycling forever."""
        world, rank = self.dist.world_size, self.dist.rank
        queue: list[int] = []
        pool: list[tuple[dict[str, Tensor], Tensor]] = []  # (arrays, remaining positions)
        while True:
            # a new pass over the shards starts only when the previous one is used up entirely
            while len(pool) < self.pool and (queue or not pool):
                if not queue:
                    queue = list(shards)
                arrays = self._shard(queue.pop(0))
                n = len(arrays["labels"])
                positions = torch.randperm(n, generator=generator)
                if by_sample:
                    positions = positions[positions % world == rank]
                if len(positions):
                    pool.append((arrays, positions))
            pick = int(torch.randint(len(pool), (1,), generator=generator))
            arrays, positions = pool[pick]
            i = int(positions[0])
            yield {name: t[i] for name, t in arrays.items()}
            if len(positions) == 1:
                pool.pop(pick)
            else:
                pool[pick] = (arrays, positions[1:])

    def train_epoch(self, seed: int, epoch: int) -> Iterator[dict[str, Tensor]]:
        """Exactly ``steps_per_epoch()`` shuffled full batches for this rank."""
        order = torch.randperm(
            len(self.counts), generator=epoch_generator(seed, epoch, salt=1)
        ).tolist()
        mine, by_sample = self._mine(order)
        generator = epoch_generator(seed, epoch, salt=1000 + self.dist.rank)
        samples = self._stream(mine, generator, by_sample)
        batch = min(self.batch_size, max(self.size // self.dist.world_size, 1))
        for _ in range(self.steps_per_epoch()):
            items = [next(samples) for _ in range(batch)]
            yield {name: torch.stack([item[name] for item in items]) for name in items[0]}

    def eval_batches(self) -> Iterator[dict[str, Tensor]]:
        """Every sample once across ranks, in shard order."""
        mine, by_sample = self._mine(list(range(len(self.counts))))
        world, rank = self.dist.world_size, self.dist.rank
        for index in mine:
            arrays = self._shard(index)
            keep = torch.arange(len(arrays["labels"]))
            if by_sample:
                keep = keep[keep % world == rank]
            for start in range(0, len(keep), self.batch_size):
                sel = keep[start : start + self.batch_size]
                yield {name: t[sel] for name, t in arrays.items()}
