"""Saliency cost per method at the default size and at ImageNet size, in multiples of a plain
forward pass, and SMOE Scale's speed-ups over Guided Backprop and SmoothGrad."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from roarkar.bench.table import config_str, per_image, row
from roarkar.bench.timing import Samples, Task, interleave, paired_cpu_over_wall, paired_ratio
from roarkar.bench.workload import Sizes, bench_model, fixed_images, targets_for
from roarkar.saliency import combine, create, describe, stats

GBP_CLAIM = "paper: 97-344x faster than methods with a full backward pass"
SG_CLAIM = "paper: 1456-5181x faster than 15-sample SmoothGrad"


def expensive(name: str) -> bool:
    """Whether ``name`` repeats the network per image (samples or steps): timed on fewer images."""
    params = describe(name).params
    return "samples" in params or "steps" in params


def bench_method(name: str, model, sz: Sizes):
    """Method ``name`` at the bench's sample and step counts (``sz.samples``, ``sz.steps``)."""
    params: dict[str, Any] = {}
    accepted = describe(name).params
    if "samples" in accepted:
        params["samples"] = sz.samples
    if "steps" in accepted:
        params["steps"] = sz.steps
    return create(name, model, **params)


def _saliency_fn(method, x: Tensor, t: Tensor):
    relevance = torch.rand(x.shape[0], *x.shape[-2:], device=x.device)
    wants_relevance = method.name == "ground_truth"

    def fn():
        gen = torch.Generator().manual_seed(0)
        return method.saliency(
            x, t, relevance=relevance if wants_relevance else None, generator=gen
        )

    return fn


def _cost(
    sz: Sizes, model_name: str, size: int, classes: int, batch: int, methods, tag: str
) -> tuple[list[dict], dict[str, Samples], dict[str, int]]:
    device = sz.device
    model = bench_model(model_name, classes, device).eval()
    x = fixed_images(batch, size, device=device)
    t = targets_for(batch, classes, device)
    n_exp = min(sz.expensive_images, batch)
    images: dict[str, int] = {"forward": batch}

    def forward():
        with torch.no_grad():
            return model(x)

    tasks = [Task("forward", forward, budget_s=sz.budget_s)]
    for name in methods:
        method = bench_method(name, model, sz)
        n = n_exp if expensive(name) else batch
        images[name] = n
        heavy = expensive(name) and size >= 128
        tasks.append(
            Task(
                name,
                _saliency_fn(method, x[:n], t[:n]),
                warmup=not heavy,
                budget_s=sz.budget_s,
            )
        )
    if "smoe_scale" in methods:
        with torch.no_grad():
            taps, _ = model.forward_taps(x)

        def smoe_own():
            with torch.no_grad():
                maps = {k: stats.smoe_scale(a.post) for k, a in taps.items()}
                return combine.combine(maps, (size, size), "equal", "normal")

        tasks.append(Task("smoe_own", smoe_own, budget_s=sz.budget_s))
        images["smoe_own"] = batch
    samples = interleave(tasks, sz.repeats, device)
    config = config_str(model=model_name, px=size, batch=batch, device=device)
    rows = []
    fwd = samples["forward"]
    rows.append(
        per_image(
            "saliency",
            f"plain forward pass ({tag})",
            config,
            fwd,
            batch,
            ratio=1.0,
            notes="reference for the ratio column (multiples of a forward pass)",
        )
    )
    for name in methods:
        s = samples[name]
        n = images[name]
        extra = []
        if n != batch:
            extra.append(f"{n} image(s)")
        params = describe(name).params
        if "samples" in params:
            extra.append(f"samples={sz.samples}")
        if "steps" in params:
            extra.append(f"steps={sz.steps}")
        rows.append(
            per_image(
                "saliency",
                f"{name} ({tag})",
                config,
                s,
                n,
                ratio=paired_ratio(s, fwd, n, batch),
                notes="; ".join(["ratio = x plain forward", *extra]),
            )
        )
    return rows, samples, images


def _speedups(
    samples: dict[str, Samples], images: dict[str, int], config: str, tag: str
) -> list[dict]:
    rows = []
    if "smoe_scale" not in samples:
        return rows
    smoe, own = samples["smoe_scale"], samples.get("smoe_own")
    for other, claim in (("guided_backprop", GBP_CLAIM), ("smoothgrad_sq", SG_CLAIM)):
        if other not in samples:
            continue
        s = samples[other]
        full = paired_ratio(s, smoe, images[other], images["smoe_scale"])
        rows.append(
            row(
                "saliency",
                f"speed-up of smoe_scale over {other}, full pass vs full pass ({tag})",
                config,
                full,
                "x",
                ratio=full,
                cpu_over_wall=paired_cpu_over_wall(s, smoe),
                repeats=min(s.n, smoe.n),
                notes=f"both include their forward pass; {claim}",
            )
        )
        if own is not None:
            paper = paired_ratio(s, own, images[other], images["smoe_own"])
            rows.append(
                row(
                    "saliency",
                    f"speed-up of smoe_scale over {other}, paper's basis ({tag})",
                    config,
                    paper,
                    "x",
                    ratio=paper,
                    cpu_over_wall=paired_cpu_over_wall(s, own),
                    repeats=min(s.n, own.n),
                    notes=(
                        f"{other}'s full cost / SMOE's own cost (5 tap statistics + Eq 3 on "
                        f"activations the forward pass made anyway); {claim}"
                    ),
                )
            )
    return rows


def run_saliency(sz: Sizes) -> list[dict]:
    """Saliency cost per method at the default size and at ImageNet size, and SMOE's speed-ups."""
    rows, samples, images = _cost(
        sz, sz.small_model, sz.small_size, 8, sz.small_batch, sz.small_methods, "default size"
    )
    small_cfg = config_str(model=sz.small_model, px=sz.small_size, batch=sz.small_batch)
    rows += _speedups(samples, images, small_cfg, "default size")
    big_rows, samples, images = _cost(
        sz, sz.big_model, sz.big_size, sz.big_classes, sz.big_batch, sz.big_methods, "ImageNet size"
    )
    rows += big_rows
    big_cfg = config_str(model=sz.big_model, px=sz.big_size, batch=sz.big_batch)
    rows += _speedups(samples, images, big_cfg, "ImageNet size")
    return rows
