"""Converting a dataset into shards: shuffled, parallel, resumable.

Every split is put in a seeded random order over the whole split first (``dataset.shuffle_seed``),
then cut into shards of ``shard_size``: a shard is a random sample of every class, whatever order the
source lists its files in. Real images are decoded, resized and cropped by ``dataset.workers``
processes, one shard per task; each shard is written atomically together with a small sidecar of its
pixel sums, so a conversion killed part-way resumes from its finished shards, and the result is
byte-identical whatever the number of workers. An image that cannot be decoded stops the conversion
with its path, or, with ``dataset.skip_corrupt: true``, is left out and listed in ``skipped.json``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from roarkar.data.real import CorruptImageError, fit_array, load_image
from roarkar.data.shards import ChannelStats, shard_name, write_shard
from roarkar.files import write_text_atomic
from roarkar.identity import bytes_sha256

log = logging.getLogger(__name__)

SKIPPED_FILE = "skipped.json"


def shuffled_order(n: int, seed: int, split: str) -> np.ndarray:
    """The seeded order in which a split's ``n`` listed samples are written (train and val differ)."""
    salt = {"train": 1, "val": 2}[split]
    return np.random.default_rng([int(seed), salt]).permutation(n)


@dataclass(frozen=True)
class ShardTask:
    """One shard to write: which source files, in which order, with which labels. An array
    release (MNIST, CIFAR-10) carries its decoded ``pixels`` (uint8 [n, C, H, W]) instead."""

    directory: str
    split: str
    index: int
    files: tuple[str, ...]  # absolute paths (an array release: its sources)
    labels: tuple[int, ...]
    sources: tuple[str, ...]  # relative to the dataset root (arrays: file#index); in the shard
    image_size: int
    resize: int | None
    skip_corrupt: bool
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def path(self) -> Path:
        return Path(self.directory) / shard_name(self.split, self.index)

    @property
    def sidecar(self) -> Path:
        return Path(self.directory) / f".{shard_name(self.split, self.index)}.json"

    def plan_hash(self) -> str:
        blob = json.dumps([self.sources, self.labels, self.image_size, self.resize]).encode()
        return bytes_sha256(blob)[:16]

    def done(self) -> dict[str, Any] | None:
        """The sidecar of a finished shard of this same plan (else None: the shard is redone)."""
        try:
            doc = json.loads(self.sidecar.read_text())
        except (OSError, ValueError):
            return None
        if doc.get("plan") != self.plan_hash():
            return None
        if doc.get("count") and not self.path.is_file():
            return None
        return doc


def write_task(task: ShardTask) -> dict[str, Any]:
    """Decode, resize and crop the task's images and write its shard and sidecar (in a worker)."""
    s = task.image_size
    images = np.empty((len(task.files), 3, s, s), dtype=np.uint8)
    labels, sources, skipped = [], [], []
    for i, (file, label, source) in enumerate(
        zip(task.files, task.labels, task.sources, strict=True)
    ):
        try:
            images[len(labels)] = (
                load_image(Path(file), s, task.resize)
                if task.pixels is None
                else fit_array(task.pixels[i], s, task.resize, source)
            )
        except CorruptImageError as e:
            if not task.skip_corrupt:
                raise
            skipped.append({"file": source, "error": str(e)})
            continue
        labels.append(label)
        sources.append(source)
    images = images[: len(labels)]
    stats = ChannelStats()
    if task.split == "train":
        stats.update(images)
    if labels:
        write_shard(task.path, images, np.asarray(labels, np.int64), sources=sources)
    doc = {"count": len(labels), "stats": stats.as_dict(), "skipped": skipped}
    doc["plan"] = task.plan_hash()
    write_text_atomic(task.sidecar, json.dumps(doc))
    return doc


def _run(todo: list[ShardTask], workers: int) -> Iterator[tuple[ShardTask, dict[str, Any]]]:
    if workers <= 1 or len(todo) <= 1:
        for task in todo:
            yield task, write_task(task)
        return
    # fork: the workers only run PIL and numpy, and need not re-import torch
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(min(workers, len(todo))) as pool:
        for position, doc in pool.imap_unordered(_numbered, enumerate(todo)):
            yield todo[position], doc


def _numbered(job: tuple[int, ShardTask]) -> tuple[int, dict[str, Any]]:
    return job[0], write_task(job[1])


def plan_tasks(
    directory: Path,
    split: str,
    items: list[tuple[Path, int]],
    root: Path,
    *,
    image_size: int,
    resize: int | None,
    shard_size: int,
    seed: int = 0,
    skip_corrupt: bool = False,
) -> list[ShardTask]:
    """The shards of ``split``: ``items`` (path, label) in their seeded order, cut every
    ``shard_size`` samples."""
    if shard_size < 1:
        raise ValueError(f"dataset.shard_size={shard_size} must be >= 1")
    order = shuffled_order(len(items), seed, split)
    tasks = []
    for index, start in enumerate(range(0, len(items), shard_size)):
        chosen = [items[i] for i in order[start : start + shard_size]]
        tasks.append(
            ShardTask(
                directory=str(directory),
                split=split,
                index=index,
                files=tuple(str(p) for p, _ in chosen),
                labels=tuple(int(label) for _, label in chosen),
                sources=tuple(_relative(p, root) for p, _ in chosen),
                image_size=int(image_size),
                resize=None if resize is None else int(resize),
                skip_corrupt=bool(skip_corrupt),
            )
        )
    return tasks


def plan_array_tasks(
    directory: Path,
    split: str,
    pixels: np.ndarray,
    labels: np.ndarray,
    sources: list[str],
    *,
    image_size: int,
    resize: int | None,
    shard_size: int,
    seed: int = 0,
) -> list[ShardTask]:
    """The shards of an array release's ``split`` (uint8 ``pixels`` [N, C, H, W]): the same seeded
    order and cuts as ``plan_tasks``, each task carrying its own pixels."""
    if shard_size < 1:
        raise ValueError(f"dataset.shard_size={shard_size} must be >= 1")
    order = shuffled_order(len(labels), seed, split)
    tasks = []
    for index, start in enumerate(range(0, len(labels), shard_size)):
        chosen = order[start : start + shard_size]
        names = tuple(sources[i] for i in chosen)
        tasks.append(
            ShardTask(
                directory=str(directory),
                split=split,
                index=index,
                files=names,
                labels=tuple(int(labels[i]) for i in chosen),
                sources=names,
                image_size=int(image_size),
                resize=None if resize is None else int(resize),
                skip_corrupt=False,
                pixels=np.ascontiguousarray(pixels[chosen]),
            )
        )
    return tasks


def convert(
    tasks: list[ShardTask], *, workers: int = 1, stats: ChannelStats | None = None, desc: str = ""
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, str]]]:
    """Write every task's shard (both splits in one pool, one progress bar), skipping shards that
    an earlier (killed) attempt finished. Returns each split's shard list for ``dataset.json`` and
    the skipped images; adds the train split's pixel sums to ``stats``."""
    docs: dict[tuple[str, int], dict[str, Any]] = {}
    for task in tasks:
        doc = task.done()
        if doc is not None:
            docs[task.split, task.index] = doc
    todo = [t for t in tasks if (t.split, t.index) not in docs]
    if docs:
        log.info("%s: resuming, %d of %d shards already written", desc, len(docs), len(tasks))
    with tqdm(
        total=sum(len(t.files) for t in tasks),
        initial=sum(len(t.files) for t in tasks if (t.split, t.index) in docs),
        desc=desc or "converting",
        unit="img",
        dynamic_ncols=True,
        mininterval=1.0,
    ) as bar:
        for task, doc in _run(todo, workers):
            docs[task.split, task.index] = doc
            bar.update(len(task.files))
    shards: dict[str, list[dict[str, Any]]] = {}
    skipped: list[dict[str, str]] = []
    for (
        task
    ) in tasks:  # in shard order: sums and lists do not depend on which worker finished first
        doc = docs[task.split, task.index]
        skipped.extend(doc["skipped"])
        entries = shards.setdefault(task.split, [])
        if doc["count"]:
            entries.append({"file": task.path.name, "count": int(doc["count"])})
        if stats is not None and task.split == "train":
            stats.add(doc["stats"])
    return shards, skipped


def finish(directory: Path, skipped: list[dict[str, str]]) -> None:
    """Remove the resume sidecars; list skipped images in ``skipped.json`` (if any)."""
    for sidecar in directory.glob(".*.tar.json"):
        sidecar.unlink()
    if skipped:
        (directory / SKIPPED_FILE).write_text(json.dumps(skipped, indent=1))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)
