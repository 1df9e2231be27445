"""Deterministic mini-batches over in-memory arrays, split evenly across DDP ranks.

The order of epoch ``e`` depends only on (seed, e), so a run resumed from the checkpoint of epoch
``e - 1`` sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import Tensor

from roarkar.training.distributed import DistInfo


def epoch_generator(seed: int, epoch: int, salt: int = 0) -> torch.Generator:
    """A CPU generator whose state depends only on (seed, epoch, salt)."""
    return torch.Generator().manual_seed(
        (int(seed) * 1_000_003 + int(epoch) * 7_919 + salt) % (2**63)
    )


class ArrayBatches:
    """Batches of named per-sample tensors (first dimension = sample).

    Training: a fresh permutation per epoch, every rank gets the same number of full batches
    (the remainder is dropped, so DDP never waits on a rank with one batch more), and a global
    batch holds the same images for any number of ranks.
    Evaluation: every sample exactly once, split across ranks.
    """

    def __init__(self, arrays: Mapping[str, Tensor], batch_size: int, dist: DistInfo | None = None):
        sizes = {name: len(t) for name, t in arrays.items() if t is not None}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"arrays differ in length: {sizes}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.arrays = {k: v for k, v in arrays.items() if v is not None}
        self.size = next(iter(sizes.values()))
        self.batch_size = batch_size
        self.dist = dist or DistInfo()

    def steps_per_epoch(self) -> int:
        per_rank = self.size // self.dist.world_size
        return max(self.size // (self.batch_size * self.dist.world_size), 1 if per_rank else 0)

    def _take(self, index: Tensor) -> dict[str, Tensor]:
        batch = {name: t[index] for name, t in self.arrays.items()}
        batch["index"] = index
        return batch

    def train_epoch(self, seed: int, epoch: int) -> Iterator[dict[str, Tensor]]:
        """Shuffled full batches for this rank; identical across runs for the same (seed, epoch).

        Step k's global batch is the same images whatever the world size (rank r takes the r-th
        slice of it), so N processes with batch B see the batches of 1 process with batch N * B.
        """
        order = torch.randperm(self.size, generator=epoch_generator(seed, epoch, salt=1))
        world, rank = self.dist.world_size, self.dist.rank
        batch = min(self.batch_size, self.size // world)
        for step in range(self.steps_per_epoch()):
            start = step * batch * world + rank * batch
            yield self._take(order[start : start + batch])

    def eval_batches(self) -> Iterator[dict[str, Tensor]]:
        """Every sample once, in order; rank r takes samples r, r + world, ..."""
        mine = torch.arange(self.dist.rank, self.size, self.dist.world_size)
        for start in range(0, len(mine), self.batch_size):
            yield self._take(mine[start : start + self.batch_size])
