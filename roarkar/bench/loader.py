"""Loader throughput: streaming from shards against a plain memory copy of the same bytes, converting
JPEGs with one and two workers, and preparing / loading the embedded dataset."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from roarkar.bench.table import config_str, per_second, row
from roarkar.bench.timing import Samples, Task, interleave, paired_ratio
from roarkar.bench.workload import Sizes
from roarkar.config.schema import CONF_DIR
from roarkar.data import load_split, prepare
from roarkar.data.shards import (
    ChannelStats,
    DatasetInfo,
    shard_name,
    write_info,
    write_shard,
)
from roarkar.training.streaming import ShardBatches

CONF = CONF_DIR / "dataset" / "synth_objects.yaml"
STREAM_WORKERS = (0, 1, 2)


def random_shards(
    root: Path, images: int, px: int, per_shard: int, classes: int = 1000
) -> DatasetInfo:
    """A dataset of random pixels written straight as shards (what is read is all that matters)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    shards, stats = [], ChannelStats()
    for index, start in enumerate(range(0, images, per_shard)):
        n = min(per_shard, images - start)
        pixels = rng.integers(0, 256, (n, 3, px, px), dtype=np.uint8)
        write_shard(root / shard_name("train", index), pixels, rng.integers(0, classes, n))
        shards.append({"file": shard_name("train", index), "count": n})
        stats.update(pixels[:4])
    mean, std = stats.result()
    info = DatasetInfo(
        "bench",
        1000,
        px,
        mean,
        std,
        root,
        {"train": images, "val": 0},
        False,
        shards={"train": shards, "val": []},
        order="random pixels",
    )
    write_info(info, root)
    return info


def _jpeg_tree(root: Path, images: int, classes: int = 4) -> None:
    """JPEGs of ImageNet's typical size (500 x 375, smooth content, about 60-100 KB each); one in
    eight of every class's images in val (every class in both splits, as conversion requires)."""
    rng = np.random.default_rng(1)
    for i in range(images):
        folder = root / ("train" if (i // classes) % 8 else "val") / f"n{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        small = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
        big = np.asarray(small.resize((500, 375), Image.Resampling.BICUBIC), dtype=np.int16)
        noisy = np.clip(big + rng.integers(-12, 13, big.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"{i:06d}.jpg", quality=90)


def run_stream(sz: Sizes, tmp: Path) -> list[dict]:
    """Streamed images/s with 0, 1, 2 workers as fractions of a memcpy of the same bytes."""
    px, n, batch = sz.loader_px, sz.loader_images, sz.loader_batch
    info = random_shards(tmp / "stream", n, px, sz.loader_shard)
    loaders = {w: ShardBatches(info, "train", batch, workers=w, pool=4) for w in STREAM_WORKERS}
    epochs = {w: 0 for w in STREAM_WORKERS}

    def stream(w: int) -> None:
        epochs[w] += 1
        for _ in loaders[w].train_epoch(0, epochs[w]):
            pass

    # start the workers first: pages the parent held when it forked are copied on its first write
    # after (a one-time cost, paid once per training run as the workers persist across epochs)
    for w in STREAM_WORKERS:
        stream(w)
    held = load_split(info, "train").images.numpy()  # also warms the page cache
    target = np.empty_like(held)
    tasks = [Task("memcpy", lambda: np.copyto(target, held))]
    tasks += [Task(f"w{w}", lambda w=w: stream(w)) for w in STREAM_WORKERS]
    got = interleave(tasks, sz.loader_rounds)
    steps = loaders[0].steps_per_epoch() * batch
    config = config_str(px=px, images=n, batch=batch, shards=len(info.shards["train"]), pool=4)
    mb = held.nbytes / n / 2**20
    rows = [
        per_second(
            "loader",
            "memcpy of the same bytes (np.copyto, one array in memory)",
            config,
            got["memcpy"],
            n,
            notes=f"{n / got['memcpy'].median * mb / 1024:.1f} GiB/s; the physical limit the "
            "streaming rows are measured against",
        )
    ]
    for w in STREAM_WORKERS:
        s: Samples = got[f"w{w}"]
        rows.append(
            per_second(
                "loader",
                f"streamed from shards, {w} workers (fraction of memcpy)",
                config + f" workers={w}",
                s,
                steps,
                ratio=1 / paired_ratio(s, got["memcpy"], steps, n),
                target=">= 0.25",
                notes="ratio = streamed / memcpy images per second, paired rounds; steady "
                "state (workers started before timing); nothing consumes the batches",
            )
        )
    return rows


def run_convert(sz: Sizes, tmp: Path) -> list[dict]:
    """JPEG -> 224 px shards with 1 and 2 worker processes; ratio = speed-up of 2 over 1."""
    tree = tmp / "jpegs"
    _jpeg_tree(tree, sz.convert_images)
    counter = iter(range(1_000_000))
    cfg = {"name": "jpegs", "kind": "imagefolder", "root": str(tree), "image_size": sz.loader_px}
    cfg |= {"resize": round(sz.loader_px * 256 / 224), "shard_size": sz.convert_shard}

    def convert(workers: int) -> None:
        prepare(cfg | {"workers": workers}, tmp / f"convert-{next(counter)}")

    got = interleave(
        [Task(f"convert{w}", lambda w=w: convert(w), warmup=False) for w in (1, 2)],
        sz.convert_rounds,
    )
    n = sz.convert_images
    config = config_str(images=n, source="500x375 JPEG q90", px=sz.loader_px)
    rows = [
        per_second(
            "loader",
            f"convert JPEGs to shards, {w} workers",
            config + f" workers={w}",
            got[f"convert{w}"],
            n,
            notes="decode + resize + centre crop + write, whole dataset, from scratch",
        )
        for w in (1, 2)
    ]
    speedup = paired_ratio(got["convert1"], got["convert2"])
    rows.append(
        row(
            "loader",
            "convert: speed-up of 2 workers over 1",
            config,
            speedup,
            "x",
            ratio=speedup,
            target=">= 1.5",
            notes="paired rounds; each round converts the whole tree into a new directory",
        )
    )
    return rows


def run_prepare(sz: Sizes, tmp: Path) -> list[dict]:
    """The embedded dataset: ``prepare`` (generate + write, once) and ``load_split``."""
    cfg = OmegaConf.load(CONF)
    cfg.train_size, cfg.val_size = sz.loader_train, sz.loader_val
    got = interleave([Task("prepare", lambda: prepare(cfg, tmp / "embedded"), warmup=False)], 1)
    info = prepare(cfg, tmp / "embedded")
    n = info.counts["train"]
    load = interleave([Task("load", lambda: load_split(info, "train"))], sz.repeats)["load"]
    return [
        per_second(
            "loader",
            "prepare: generate + write shards (once per dataset)",
            config_str(dataset=cfg.name, px=info.image_size, images=sum(info.counts.values())),
            got["prepare"],
            sum(info.counts.values()),
            notes="synthetic generation dominates",
        ),
        per_second(
            "loader",
            "load_split: all shards of a split into memory (uint8)",
            config_str(dataset=cfg.name, px=info.image_size, train=n),
            load,
            n,
            notes="checks shapes and labels against dataset.json",
        ),
    ]


def run_loader(sz: Sizes) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="roarkar-bench-") as tmp:
        rows = run_stream(sz, Path(tmp))
        rows += run_convert(sz, Path(tmp))
        rows += run_prepare(sz, Path(tmp))
    return rows
