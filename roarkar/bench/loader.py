"""Loader throughput from shards: generating them once, ``load_split`` into memory, ``stream_split``."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from roarkar.bench.common import Samples, Sizes, config_str, row
from roarkar.data import load_split, prepare, stream_split

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset" / "synth_objects.yaml"


def _timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def run_loader(sz: Sizes) -> list[dict]:
    """Images/s of ``prepare`` (generate + write shards, once), ``load_split`` and ``stream_split``
    (shuffled, as training reads it; single process, no DataLoader workers)."""
    cfg = OmegaConf.load(CONF)
    cfg.train_size, cfg.val_size = sz.loader_train, sz.loader_val
    rows = []
    with tempfile.TemporaryDirectory(prefix="roarkar-bench-") as tmp:
        made = Samples()
        made.wall[0], made.cpu[0] = _timed(lambda: prepare(cfg, tmp))
        info = prepare(cfg, tmp)
        n_all = sz.loader_train + sz.loader_val
        config = config_str(dataset=cfg.name, px=info.image_size, train=info.counts["train"])
        rows.append(
            row(
                "loader",
                "prepare: generate + write shards (once per dataset)",
                config_str(dataset=cfg.name, px=info.image_size, images=n_all),
                n_all / made.median,
                "images/s",
                samples=made,
                notes="synthetic generation dominates; real data is converted once likewise",
            )
        )
        load, stream = Samples(), Samples()
        n = info.counts["train"]

        def read_stream():
            count = sum(1 for _ in stream_split(info, "train", shuffle=True, seed=0))
            assert count == n, (count, n)

        for r in range(sz.repeats):
            load.wall[r], load.cpu[r] = _timed(lambda: load_split(info, "train"))
            stream.wall[r], stream.cpu[r] = _timed(read_stream)
        rows.append(
            row(
                "loader",
                "load_split: all shards of a split into memory (uint8)",
                config,
                n / load.median,
                "images/s",
                samples=load,
                notes="checks keys, labels and counts against dataset.json",
            )
        )
        rows.append(
            row(
                "loader",
                "stream_split: webdataset stream, shuffled (1000-sample buffer)",
                config,
                n / stream.median,
                "images/s",
                ratio=stream.median / load.median,
                samples=stream,
                notes="ratio = stream time / load_split time; one process, no workers",
            )
        )
    return rows
