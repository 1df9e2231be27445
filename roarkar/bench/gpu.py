"""GPU only: ResNet-50 training images/s at 224 px with bf16 autocast and channels_last, and that as
a fraction of the GPU's dense bf16 peak; SMOE Scale's overhead over a forward pass on the GPU."""

from __future__ import annotations

import time

import torch
from torch import nn

from roarkar.bench.common import Sizes, config_str, row, skipped

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

    from roarkar.bench.saliency import run_smoe
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
    smoe_sizes = Sizes(**{**sz.__dict__, "device": device, "big_batch": 32, "flop_count": False})
    for r in run_smoe(smoe_sizes):
        r["section"] = "gpu"
        rows.append(r)
    return rows
