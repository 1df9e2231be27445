"""SMOE Scale's overhead over a plain forward pass at ImageNet size, timed side by side: the whole
saliency call, the tap statistics and Eq 3 alone, and the tapped forward itself."""

from __future__ import annotations

import torch

from roarkar.bench.flops import flop_rows
from roarkar.bench.table import config_str, per_image, row
from roarkar.bench.timing import (
    Task,
    interleave,
    paired_cpu_over_wall,
    paired_quartiles,
    paired_ratio,
)
from roarkar.bench.workload import Sizes, bench_model, fixed_images
from roarkar.saliency import combine, create, stats


def run_smoe(sz: Sizes) -> list[dict]:
    """SMOE Scale's overhead over a plain forward pass at ImageNet size, by time and by op count,
    on the big model (ResNet-50) and on each of :attr:`Sizes.family_models` (VGG-16)."""
    rows = _smoe_rows(sz, sz.big_model)
    if sz.flop_count:
        rows += flop_rows(sz, bench_model(sz.big_model, sz.big_classes, sz.device).eval())
    for name in sz.family_models:
        rows += _smoe_rows(sz, name)
    return rows


def _smoe_rows(sz: Sizes, model_name: str) -> list[dict]:
    device = sz.device
    model = bench_model(model_name, sz.big_classes, device).eval()
    b, size = sz.smoe_batch, sz.big_size
    x = fixed_images(b, size, device=device)
    method = create("smoe_scale", model)
    with torch.no_grad():
        taps, _ = model.forward_taps(x)

    def plain():
        with torch.no_grad():
            return model(x)

    def tapped():
        with torch.no_grad():
            return model.forward_taps(x)

    def full():
        return method.saliency(x)

    def stat_only():
        with torch.no_grad():
            return [
                stats.smoe_scale(a.post, nonnegative=t.rectified)
                for t, a in zip(model.tap_info, taps.values(), strict=True)
            ]

    maps = {k: stats.smoe_scale(a.post) for k, a in taps.items()}

    def combine_only():
        with torch.no_grad():
            return combine.combine(maps, (size, size), "equal", "normal")

    tasks = [
        Task("plain", plain),
        Task("smoe", full),
        Task("tapped", tapped),
        Task("stat", stat_only),
        Task("combine", combine_only),
    ]
    s = interleave(tasks, sz.smoe_rounds, device)
    config = config_str(model=model_name, px=size, batch=b, device=device)
    target = "<= 1" if device.startswith("cuda") else "<= 5"
    n = len(model.taps)
    where = "GPU" if device.startswith("cuda") else "CPU"
    overhead = 100 * (paired_ratio(s["smoe"], s["plain"]) - 1)
    q1, q3 = (100 * (q - 1) for q in paired_quartiles(s["smoe"], s["plain"]))
    isolated = 100 * paired_ratio(s["stat"], s["plain"]) + 100 * paired_ratio(
        s["combine"], s["plain"]
    )
    rows = [
        per_image("smoe", "plain forward pass", config, s["plain"], b),
        per_image(
            "smoe",
            f"SMOE Scale saliency (forward with {n} tap statistics + Eq 3)",
            config,
            s["smoe"],
            b,
            ratio=paired_ratio(s["smoe"], s["plain"]),
            notes="ratio = x plain forward; create('smoe_scale').saliency(x)",
        ),
        row(
            "smoe",
            "SMOE overhead over a plain forward pass (difference of full passes)",
            config,
            overhead,
            "% of forward",
            target=target,
            target_on="value",
            cpu_over_wall=paired_cpu_over_wall(s["smoe"], s["plain"]),
            repeats=min(s["smoe"].n, s["plain"].n),
            notes=(
                f"(SMOE saliency - plain forward) / plain forward, median of paired rounds (middle"
                f" half {q1:.1f} to {q3:.1f} %); issue 7 target on {where}; paper: 0.3-1 % of FLOPs"
            ),
        ),
        row(
            "smoe",
            f"SMOE own cost, isolated ({n} tap statistics + Eq 3 on captured taps)",
            config,
            isolated,
            "% of forward",
            target=target,
            target_on="value",
            cpu_over_wall=paired_cpu_over_wall(s["stat"], s["combine"]),
            repeats=min(s["stat"].n, s["combine"].n),
            notes="timed alone, same rounds; less noisy than the difference",
        ),
        row(
            "smoe",
            f"  of which: SMOE statistic on the {n} taps",
            config,
            100 * paired_ratio(s["stat"], s["plain"]),
            "% of forward",
            samples=s["stat"],
        ),
        row(
            "smoe",
            "  of which: Eq 3 (normal-CDF squash, bilinear upsample, weighted mean)",
            config,
            100 * paired_ratio(s["combine"], s["plain"]),
            "% of forward",
            samples=s["combine"],
        ),
        row(
            "smoe",
            "forward_taps (no statistics) vs plain forward",
            config,
            paired_ratio(s["tapped"], s["plain"]),
            "x",
            ratio=paired_ratio(s["tapped"], s["plain"]),
            samples=s["tapped"],
            notes="the tapped forward itself, without statistics",
        ),
    ]
    return rows
