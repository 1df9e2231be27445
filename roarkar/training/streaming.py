"""Batches streamed from shards, for datasets too big for memory (ImageNet, Places365).

Same interface as :class:`~roarkar.training.batches.ArrayBatches`. An epoch is planned up front in
index space, from (seed, epoch) alone: the shard order is a seeded permutation; rank r takes every
world-th shard of it (all shards, keeping every world-th sample, when there are fewer shards than
ranks); the samples of each window of ``pool`` consecutive shards are shuffled together, and the
stream is cut into full batches, cycling the rank's shards again if it runs short, so every rank
yields exactly ``steps_per_epoch()`` batches and DDP never waits on one. Shards are written in a
random order over the whole split (``roarkar.data.convert``), so any window already mixes the classes.

Batches are then gathered from the memory-mapped shards: one ``np.take`` per shard a batch touches,
no per-sample Python. With ``workers`` > 0, background processes do it (``roarkar.training.workers``:
worker w assembles batches w, w + W, ... into a ring of reused shared-memory slots, and they are
handed back in plan order, so the batches are the same for any number of workers), prefetching
``prefetch`` batches each; with none, this process gathers into one reused buffer. Either way a batch
is valid until the next one is requested; on CUDA the batches arrive in pinned memory (a copy whose
reuse the caching host allocator holds back until a ``non_blocking`` transfer from it is done).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.process import BaseProcess

import numpy as np
import torch
from torch import Tensor

from roarkar.data import DatasetInfo, ShardArrays
from roarkar.training.distributed import DistInfo
from roarkar.training.workers import WorkerPool

# attach(shard index) -> extra per-sample arrays of that shard (e.g. its saliency ranks,
# memory-mapped), numpy arrays or CPU tensors
Attach = Callable[[int], Mapping[str, np.ndarray | Tensor]]


def _batch_dtype(array: np.ndarray) -> torch.dtype:
    """The dtype an attached array has in batches: its own, except uint16 (saliency ranks stored
    compactly), widened to int32, which torch computes with."""
    return (
        torch.int32
        if array.dtype == np.uint16
        else torch.from_numpy(np.empty(0, array.dtype)).dtype
    )


class SplitReader:
    """Random access by sample index to one split's shards, memory-mapped as they are needed and
    kept open (a fresh mapping costs page faults on every epoch: 2.5x slower, results/bench)."""

    def __init__(
        self,
        info: DatasetInfo,
        split: str,
        *,
        relevance: bool = False,
        attach: Attach | None = None,
        cache: int = 16,
    ) -> None:
        self.info, self.split, self.attach, self.cache = info, split, attach, max(1, cache)
        self.relevance = relevance and info.has_relevance
        self.counts = np.asarray(info.shard_counts(split), dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self._open: OrderedDict[int, tuple[ShardArrays, dict[str, np.ndarray]]] = OrderedDict()

    def _shard(self, index: int) -> tuple[ShardArrays, dict[str, np.ndarray]]:
        if index in self._open:
            self._open.move_to_end(index)
            return self._open[index]
        shard = ShardArrays(self.info, self.split, index)
        extra = {k: np.asarray(v) for k, v in (self.attach(index) if self.attach else {}).items()}
        for name, t in extra.items():
            if len(t) != shard.count:
                raise RuntimeError(
                    f"{name} of shard {shard.path} holds {len(t)} entries, expected {shard.count}"
                )
        self._open[index] = (shard, extra)
        if len(self._open) > self.cache:
            self._open.popitem(last=False)
        return shard, extra

    def layout(self, batch: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Name -> (shape, dtype) of every tensor of a batch of ``batch`` samples."""
        size = self.info.image_size
        out = {"images": ((batch, 3, size, size), torch.uint8), "labels": ((batch,), torch.int64)}
        if self.relevance:
            out["relevance"] = ((batch, size, size), torch.float32)
        if self.attach is not None and len(self.counts):
            for name, t in self.attach(0).items():
                out[name] = ((batch, *t.shape[1:]), _batch_dtype(np.asarray(t)))
        out["index"] = ((batch,), torch.int64)
        return out

    def gather_into(self, index: np.ndarray, out: dict[str, Tensor]) -> dict[str, Tensor]:
        """Fill ``out`` (tensors laid out as ``layout``) with the samples ``index`` (sorted
        ascending): one ``np.take`` per shard the batch touches. Returns views of length n."""
        n = len(index)
        batch = {name: t[:n] for name, t in out.items()}
        views = {name: t.numpy() for name, t in batch.items()}
        shard_of = np.searchsorted(self.offsets, index, side="right") - 1
        cuts = [0, *(np.flatnonzero(np.diff(shard_of)) + 1).tolist(), n]
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            s = int(shard_of[a])
            shard, extra = self._shard(s)
            local = index[a:b] - self.offsets[s]
            np.take(shard.images, local, axis=0, out=views["images"][a:b], mode="clip")
            views["labels"][a:b] = shard.labels[local]
            if self.relevance:
                views["relevance"][a:b] = np.take(shard.relevance, local, axis=0)
            for name, t in extra.items():
                if t.dtype == views[name].dtype:
                    np.take(t, local, axis=0, out=views[name][a:b], mode="clip")
                else:  # widened (see _batch_dtype)
                    views[name][a:b] = t[local]
        views["index"][:] = index
        return batch


class ShardBatches:
    """Mini-batches streamed from a prepared dataset's shards."""

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
        workers: int = 0,
        prefetch: int = 2,
        pin_memory: bool | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if workers < 0 or prefetch < 1:
            raise ValueError(
                f"loader.workers={workers} must be >= 0, loader.prefetch={prefetch} >= 1"
            )
        self.info, self.split, self.batch_size = info, split, batch_size
        self.dist = dist or DistInfo()
        self.relevance, self.attach, self.pool = (
            relevance and info.has_relevance,
            attach,
            max(1, pool),
        )
        self.workers, self.prefetch = workers, prefetch
        self.pin_memory = self.dist.device.type == "cuda" if pin_memory is None else pin_memory
        self.counts = info.shard_counts(split)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
        self.size = int(sum(self.counts))
        self._reader: SplitReader | None = None  # in-process reading (workers=0), kept
        self._buffer: dict[str, Tensor] = {}
        self._pool: WorkerPool | None = None  # background processes, started at first use

    def steps_per_epoch(self) -> int:
        per_rank = self.size // self.dist.world_size
        return max(self.size // (self.batch_size * self.dist.world_size), 1 if per_rank else 0)

    def _mine(self, order: np.ndarray) -> tuple[np.ndarray, bool]:
        """This rank's shards; with fewer shards than ranks, all of them, split by sample."""
        world, rank = self.dist.world_size, self.dist.rank
        if len(order) >= world:
            return order[rank::world], False
        return order, True

    def _samples(self, shards: np.ndarray, by_sample: bool) -> np.ndarray:
        idx = np.concatenate(
            [np.arange(self.offsets[s], self.offsets[s + 1]) for s in shards] or [np.empty(0, int)]
        ).astype(np.int64)
        if by_sample:
            idx = idx[idx % self.dist.world_size == self.dist.rank]
        return idx

    def plan_epoch(self, seed: int, epoch: int) -> list[np.ndarray]:
        """This rank's training batches of ``epoch`` as sorted sample indices (sample order within
        a batch does not matter to SGD; sorted, the gathers read each shard front to back)."""
        steps = self.steps_per_epoch()
        batch = min(self.batch_size, max(self.size // self.dist.world_size, 1))
        need, parts, have, rounds = steps * batch, [], 0, 0
        while have < need:
            order = np.random.default_rng([int(seed), int(epoch), rounds]).permutation(
                len(self.counts)
            )
            mine, by_sample = self._mine(order)
            mix = np.random.default_rng([int(seed), int(epoch), rounds, 1000 + self.dist.rank])
            for w in range(0, len(mine), self.pool):
                idx = self._samples(mine[w : w + self.pool], by_sample)
                parts.append(idx[mix.permutation(len(idx))])
                have += len(idx)
            rounds += 1
            if rounds > 1 and have == 0:
                raise RuntimeError(f"{self.info.root}: rank {self.dist.rank} has no samples")
        stream = np.concatenate(parts)[:need].reshape(steps, batch)
        return [np.sort(row) for row in stream]

    def eval_plan(self) -> list[np.ndarray]:
        """Every sample once across ranks, in shard order, in batches of ``batch_size``."""
        mine, by_sample = self._mine(np.arange(len(self.counts)))
        idx = self._samples(mine, by_sample)
        return [idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size)]

    def train_epoch(self, seed: int, epoch: int) -> Iterator[dict[str, Tensor]]:
        """Exactly ``steps_per_epoch()`` shuffled full batches for this rank."""
        return self._iterate(self.plan_epoch(seed, epoch))

    def eval_batches(self) -> Iterator[dict[str, Tensor]]:
        return self._iterate(self.eval_plan())

    def reader(self) -> Callable[[], SplitReader]:
        """A maker of this loader's reader (a partial, not a bound method: the worker processes
        must not keep this object alive, or they would outlive it)."""
        return functools.partial(
            SplitReader,
            self.info,
            self.split,
            relevance=self.relevance,
            attach=self.attach,
            cache=2 * self.pool + 2,
        )

    def _iterate(self, plan: list[np.ndarray]) -> Iterator[dict[str, Tensor]]:
        if self.workers == 0 or not plan:
            # in this process, into one buffer kept between batches (a fresh 224 px batch of 256
            # is 38 MB of new pages to fault in: 7x slower, results/bench)
            if self._reader is None:
                self._reader = self.reader()()
                layout = self._reader.layout(self.batch_size)
                self._buffer = {k: torch.empty(shape, dtype=t) for k, (shape, t) in layout.items()}
            for index in plan:
                batch = self._reader.gather_into(index, self._buffer)
                yield {k: v.pin_memory() for k, v in batch.items()} if self.pin_memory else batch
            return
        if self._pool is None:
            self._pool = WorkerPool(self.reader(), self.batch_size, self.workers, self.prefetch)
        yield from self._pool.run(plan, pin_memory=self.pin_memory)

    @property
    def processes(self) -> list[BaseProcess]:
        """The worker processes now running: none before the first multi-worker epoch and
        after :meth:`close`."""
        return [] if self._pool is None else self._pool.processes

    def close(self) -> None:
        """Stop the worker processes (also done when the object is collected or at exit)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
