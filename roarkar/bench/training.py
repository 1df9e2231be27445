"""Training throughput: the input protocol's masked step against an unmasked one, and the layer
protocol's frozen-prefix fine-tuning against full fine-tuning, each step timed side by side."""

from __future__ import annotations

import copy
from collections.abc import Callable
from types import SimpleNamespace

import torch
from torch import Tensor, nn

from roarkar.bench.table import config_str, per_second, row
from roarkar.bench.timing import Task, interleave, paired_ratio
from roarkar.bench.workload import Sizes, bench_model
from roarkar.data import normalize
from roarkar.protocols.layer import TapMaskedNet
from roarkar.removal import fill_removed, keep_mask_from_ranks, saliency_ranks
from roarkar.saliency import create
from roarkar.training.augment import augment

INFO = SimpleNamespace(mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))


def _batch(n: int, size: int, classes: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, classes, (n,), generator=g)
    ranks = saliency_ranks(torch.rand(n, size, size, generator=g), g).to(torch.int32)
    return images, labels, ranks


def sgd_stepper(net: nn.Module, params, prepare, device: str, bf16: bool = False):
    """One SGD training step on the batch ``prepare`` returns (forward, loss, backward, update);
    ``bf16``: the forward under bf16 autocast (``trainer.amp=bf16``)."""
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
    criterion = nn.CrossEntropyLoss()
    state = {"epoch": 0}
    precision = torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16)

    def step():
        state["epoch"] += 1
        generator = torch.Generator().manual_seed(state["epoch"])
        x, y, kwargs = prepare(generator)
        with precision:
            logits = net(x, **kwargs)
        loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def run_training(sz: Sizes) -> list[dict]:
    """The input protocol's per-batch work, masked (normalise + mask from ranks + augment + step)
    against unmasked (normalise + augment + step), on the same batch, model and recipe."""
    device = sz.device
    b = sz.train_batch
    images, labels, ranks = _batch(b, 32, 8)
    images, labels, ranks = images.to(device), labels.to(device), ranks.to(device)
    nets = {k: bench_model("small_resnet", 8, device).train() for k in ("masked", "plain", "bf16")}
    nets["bf16"].to(memory_format=torch.channels_last)

    def masked_prepare(generator):
        x = normalize(images, INFO)
        keep = keep_mask_from_ranks(ranks, "kar", 0.5)
        x = fill_removed(x, ~keep, 0.0)
        return augment(x, "crop_flip", generator), labels, {}

    def plain_prepare(generator):
        return augment(normalize(images, INFO), "crop_flip", generator), labels, {}

    def bf16_prepare(generator):
        x = augment(normalize(images, INFO), "crop_flip", generator)
        return x.contiguous(memory_format=torch.channels_last), labels, {}

    def mask_only():
        keep = keep_mask_from_ranks(ranks, "kar", 0.5)
        return fill_removed(normalize(images, INFO), ~keep, 0.0)

    tasks = [
        Task(
            "masked",
            sgd_stepper(nets["masked"], nets["masked"].parameters(), masked_prepare, device),
        ),
        Task(
            "plain", sgd_stepper(nets["plain"], nets["plain"].parameters(), plain_prepare, device)
        ),
        Task("mask_only", mask_only, memory=False),
        Task(
            "bf16",
            sgd_stepper(nets["bf16"], nets["bf16"].parameters(), bf16_prepare, device, bf16=True),
            memory=False,
        ),
    ]
    s = interleave(tasks, sz.train_rounds, device)
    config = config_str(model="small_resnet", px=32, batch=b, device=device, augment="crop_flip")
    ratio = paired_ratio(s["plain"], s["masked"])  # images/s masked over images/s unmasked
    return [
        per_second(
            "training",
            "input protocol step, masked (normalise + mask from ranks + augment + SGD step)",
            config,
            s["masked"],
            b,
        ),
        per_second(
            "training",
            "input protocol step, unmasked (normalise + augment + SGD step)",
            config,
            s["plain"],
            b,
        ),
        row(
            "training",
            "masked / unmasked training throughput",
            config,
            ratio,
            "x",
            ratio=ratio,
            target=">= 0.95",
            cpu_over_wall=s["masked"].cpu_over_wall,
            repeats=min(s["masked"].n, s["plain"].n),
            notes="paired rounds; KAR 50 %, ranks int32 as stored by precompute",
        ),
        row(
            "training",
            "masking alone (normalise + mask from ranks), per batch",
            config,
            1000 * s["mask_only"].median,
            "ms/batch",
            ratio=paired_ratio(s["mask_only"], s["plain"]),
            samples=s["mask_only"],
            notes="ratio = share of an unmasked step",
        ),
        row(
            "training",
            "bf16 autocast + channels_last / float32 training throughput (trainer.amp=bf16)",
            config,
            b / s["bf16"].median,
            "images/s",
            ratio=paired_ratio(s["plain"], s["bf16"]),
            cpu_over_wall=s["bf16"].cpu_over_wall,
            repeats=min(s["bf16"].n, s["plain"].n),
            notes="value = bf16 images/s; ratio = speed-up over the float32 unmasked step; "
            "held-out accuracy of both: section precision",
        ),
    ]


class FullMaskedNet(nn.Module):
    """What :class:`TapMaskedNet` computes, with autograd through the prefix (full fine-tuning):
    the map and mask come from the tap's activation as there, but every parameter trains."""

    def __init__(self, inner: TapMaskedNet):
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor, relevance: Tensor | None = None) -> Tensor:
        m = self.inner
        act = m.model.forward_to(x, m.tap)
        with torch.no_grad():
            tap_map = m.method.tap_saliency(act, generator=m.generator)
            keep = keep_mask_from_ranks(saliency_ranks(tap_map, m.generator), m.mode, m.fraction)
        h = act.post * keep.unsqueeze(1).to(act.post.dtype)
        return m.model.forward_from(h, m.tap)


def _layer_pair(base: nn.Module, tap: str, x: Tensor, y: Tensor, device: str):
    """Steps of frozen-prefix (the layer protocol's) and full fine-tuning after a masked ``tap``."""
    frozen_model = copy.deepcopy(base)
    method = create("smoe_scale", frozen_model)
    trainable = frozen_model.freeze_prefix(tap)
    frozen = TapMaskedNet(frozen_model, tap, method, "kar", 0.125).to(device).train()
    for module in frozen_model.prefix_modules(tap):
        module.eval()  # as the protocol: frozen BatchNorm statistics in the prefix

    full_model = copy.deepcopy(base)
    full = FullMaskedNet(
        TapMaskedNet(full_model, tap, create("smoe_scale", full_model), "kar", 0.125)
    ).to(device)
    full.train()

    def prep(generator):
        return augment(x, "crop_flip", generator), y, {}

    return (
        sgd_stepper(frozen, trainable, prep, device),
        sgd_stepper(full, list(full_model.parameters()), prep, device),
    )


def timed_tap_pairs(
    sz: Sizes,
    model_name: str,
    size: int,
    classes: int,
    batch: int,
    rounds: int,
    pair: Callable,
    names: tuple[str, str],
    **config: object,
) -> tuple[dict, str]:
    """Two kinds of training step at each of :attr:`Sizes.layer_taps`, timed side by side on one
    model and batch: ``pair(base, tap, x, y, device)`` gives the two step functions. Returns the
    samples by ``f"{name}:{tap}"`` and the rows' config (``config`` added before the device)."""
    device = sz.device
    base = bench_model(model_name, classes, device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).to(device)
    y = torch.randint(0, classes, (batch,), generator=g).to(device)
    tasks = []
    for tap in sz.layer_taps:
        steps = pair(base, tap, x, y, device)
        tasks += [
            Task(f"{name}:{tap}", step, memory=False)
            for name, step in zip(names, steps, strict=True)
        ]
    samples = interleave(tasks, rounds, device)
    return samples, config_str(model=model_name, px=size, batch=batch, **config, device=device)


def _layer_rows(sz: Sizes, model_name: str, size: int, classes: int, batch: int, rounds: int):
    s, config = timed_tap_pairs(
        sz, model_name, size, classes, batch, rounds, _layer_pair, ("frozen", "full")
    )
    rows = []
    for tap in sz.layer_taps:
        a, b = s[f"frozen:{tap}"], s[f"full:{tap}"]
        speedup = paired_ratio(b, a)
        rows.append(
            row(
                "layer",
                f"{tap}: frozen-prefix fine-tuning vs full fine-tuning",
                config,
                batch / a.median,
                "images/s",
                ratio=speedup,
                target=">= 1.5",
                cpu_over_wall=a.cpu_over_wall,
                repeats=min(a.n, b.n),
                notes=(
                    f"value = frozen-prefix images/s; full {batch / b.median:.4g} images/s; "
                    "ratio = speed-up (full step time / frozen step time); smoe_scale KAR 12.5 %"
                ),
            )
        )
    return rows


def run_layer(sz: Sizes) -> list[dict]:
    """Layer protocol fine-tuning with a frozen prefix (TapMaskedNet: prefix under no_grad, only the
    suffix trains) against full fine-tuning of every parameter, at L3, L4, L5."""
    rows = _layer_rows(sz, "small_resnet", 32, 8, sz.train_batch, sz.train_rounds)
    if sz.layer_big:
        rows += _layer_rows(
            sz, sz.big_model, sz.big_size, sz.big_classes, sz.layer_big_batch, sz.layer_big_rounds
        )
    return rows
