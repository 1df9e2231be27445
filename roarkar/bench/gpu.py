"""GPU only: ResNet-50 training images/s at 224 px with bf16 autocast and channels_last, and that as
a fraction of the GPU's dense bf16 peak; the same training fed from streamed shards (the loader's
images/s, and the fraction of time the GPU waits for data); SMOE Scale's overhead over a forward
pass on the GPU."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from roarkar.bench.table import config_str, row, skipped
from roarkar.bench.workload import Sizes

#: Dense bf16 tensor-core peak, TFLOP/s (vendor data sheets, without sparsity).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM / HBM3
    ("A100", 312.0),
)


def peak_tflops(name: str) -> float | None:
    """Dense bf16 peak of a GPU from its name, or None when it is not in the table."""
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return value
    return None


def run_gpu(sz: Sizes) -> list[dict]:
    if not torch.cuda.is_available():
        return [skipped("gpu", "ResNet-50 training at 224 px, bf16 + channels_last", "no GPU")]
    from torch.utils.flop_counter import FlopCounterMode

    from roarkar.bench.smoe import run_smoe
    from roarkar.models import build_model

    device = "cuda"
    name = torch.cuda.get_device_name()
    b = sz.gpu_batch
    torch.manual_seed(0)
    model = build_model("resnet50", 1000).to(device).to(memory_format=torch.channels_last).train()
    x = torch.randn(b, 3, 224, 224, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (b,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = criterion(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model.eval()
        model(x[:1])
        model.train()
    step_flops = 3 * fc.get_total_flops() * b  # forward + backward ~ 3x forward
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(sz.gpu_steps):
        step()
    torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    per_step = wall / sz.gpu_steps
    achieved = step_flops / per_step / 1e12
    peak = peak_tflops(name)
    config = config_str(
        model="resnet50", px=224, batch=b, device=name, amp="bf16", channels_last=True
    )
    rows = [
        row(
            "gpu",
            "ResNet-50 training throughput (bf16 autocast, channels_last, SGD)",
            config,
            b / per_step,
            "images/s",
            cpu_over_wall=cpu / wall,
            repeats=sz.gpu_steps,
            peak_mem_mb=torch.cuda.max_memory_allocated() / 2**20,
            notes=f"{sz.gpu_steps} steps after 5 warm-up steps; one timing over all steps",
        ),
        row(
            "gpu",
            "achieved training TFLOP/s (3x forward FLOPs per step)",
            config,
            achieved,
            "TFLOP/s",
            ratio=None if peak is None else achieved / peak,
            notes=(
                f"ratio = fraction of the dense bf16 peak {peak:g} TFLOP/s"
                if peak
                else f"peak of {name!r} unknown"
            ),
        ),
    ]
    rows += stream_training_rows(sz, device, "resnet50", 224, 1000, sz.gpu_batch, sz.gpu_steps)
    smoe_sizes = Sizes(**{**sz.__dict__, "device": device, "big_batch": 32, "flop_count": False})
    for r in run_smoe(smoe_sizes):
        r["section"] = "gpu"
        rows.append(r)
    return rows


def stream_training_rows(
    sz: Sizes, device: str, model_name: str, px: int, classes: int, batch: int, steps: int
) -> list[dict]:
    """Training fed from streamed shards against the same training on data already on the device,
    side by side: images/s of each, the loader's own images/s, and 1 - streamed / resident as the
    fraction of time the device waits for data. Runs on CPU too (tests, small models)."""
    from roarkar.bench.loader import random_shards
    from roarkar.config import LoaderConfig
    from roarkar.data import normalize
    from roarkar.models import build_model
    from roarkar.protocols.context import loader_workers
    from roarkar.training.distributed import DistInfo
    from roarkar.training.streaming import ShardBatches

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    torch.manual_seed(0)
    model = build_model(model_name, classes).to(dev).train()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda)

    def step(x, y):
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss = criterion(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    images = batch * (steps + 5)
    with tempfile.TemporaryDirectory(prefix="roarkar-bench-") as tmp:
        info = random_shards(Path(tmp) / "s", images, px, max(batch, 64), classes)
        workers = loader_workers(LoaderConfig(workers="auto"), DistInfo(device=dev)) if cuda else 1
        loader = ShardBatches(info, "train", batch, DistInfo(device=dev), workers=workers)
        resident = normalize(torch.randint(0, 256, (batch, 3, px, px), dtype=torch.uint8), info)
        resident, labels = resident.to(dev), torch.randint(0, classes, (batch,), device=dev)

        def streamed(n: int) -> tuple[float, float]:
            waited, done, epoch = 0.0, 0, 0
            while done < n:
                batches = iter(loader.train_epoch(0, epoch))
                while done < n:
                    t = time.perf_counter()
                    b = next(batches, None)
                    waited += time.perf_counter() - t
                    if b is None:
                        break
                    x = normalize(b["images"].to(dev, non_blocking=True), info)
                    step(x, b["labels"].to(dev, non_blocking=True))
                    done += 1
                epoch += 1
            return waited, done

        def timed(fn) -> tuple[float, float, object]:
            sync()
            w0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            sync()
            return time.perf_counter() - w0, time.process_time() - c0, out

        for _ in range(3):
            step(resident, labels)
        streamed(3)  # warm-up: starts the workers, maps the shards
        wall_r, cpu_r, _ = timed(lambda: [step(resident, labels) for _ in range(steps)])
        wall_s, cpu_s, (waited, _) = timed(lambda: streamed(steps))
        t0 = time.perf_counter()
        n_read = 0
        for b in loader.train_epoch(0, 99):
            n_read += len(b["labels"])
        loader_rate = n_read / (time.perf_counter() - t0)
        loader.close()
    config = config_str(model=model_name, px=px, batch=batch, device=device, workers=workers)
    config += " bf16 channels_last" if cuda else ""
    resident_rate, stream_rate = batch * steps / wall_r, batch * steps / wall_s
    return [
        row(
            "gpu",
            "training fed from streamed shards",
            config,
            stream_rate,
            "images/s",
            ratio=stream_rate / resident_rate,
            cpu_over_wall=cpu_s / wall_s,
            repeats=steps,
            notes=f"ratio = streamed / the same steps on data already on the device "
            f"({resident_rate:.0f} images/s); the loop waited in the loader {waited / wall_s:.1%} "
            "of its wall time",
        ),
        row(
            "gpu",
            "fraction of time the device waits for data (1 - streamed / resident)",
            config,
            max(0.0, 1 - stream_rate / resident_rate),
            "fraction",
            cpu_over_wall=cpu_r / wall_r,
            notes="side by side in one run; 0 = the loader keeps up",
        ),
        row(
            "gpu",
            "the loader alone (streamed from shards, nothing consumes the batches)",
            config,
            loader_rate,
            "images/s",
            ratio=loader_rate / stream_rate,
            notes="ratio = loader images/s / training images/s: the loader's headroom",
        ),
    ]
