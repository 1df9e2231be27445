"""The work every bench section is given: its sizes per mode (``quick``, ``full``, ``tiny``) and the
fixed model, images and targets it builds them from, so sections compare like with like."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from roarkar.models import TappedNet, build_model


@dataclass
class Sizes:
    """How big each section's work is, per mode (``quick``, ``full`` or the test-only ``tiny``)."""

    mode: str
    repeats: int
    device: str = "cpu"
    # saliency at the default size (small_resnet, 32 px)
    small_model: str = "small_resnet"
    small_size: int = 32
    small_batch: int = 8
    small_methods: tuple[str, ...] = ()
    # saliency at ImageNet size
    big_model: str = "resnet50"
    big_size: int = 224
    big_classes: int = 1000
    big_batch: int = 2
    big_methods: tuple[str, ...] = ()
    # further networks at the big size for SMOE's overhead and the captum comparison (seed 003's)
    family_models: tuple[str, ...] = ("vgg16",)
    expensive_images: int = 1  # images for SmoothGrad / IG at the big size
    samples: int = 15  # SmoothGrad samples
    steps: int = 50  # IG steps
    budget_s: float = 4.0  # a task stops repeating once its timed rounds took this long
    smoe_rounds: int = 7
    # the SMOE overhead section's batch, 4 in every mode but tiny (fixed costs shrink with batch)
    smoe_batch: int = 4
    flop_count: bool = True
    # captum
    captum_batch: int = 8
    captum_big: bool = False
    # training
    train_batch: int = 64
    train_rounds: int = 8
    layer_taps: tuple[str, ...] = ("L3", "L4", "L5")
    layer_big: bool = False
    layer_big_batch: int = 8
    layer_big_rounds: int = 3
    group_cells: int = 20  # cells of one group (Table 4: 20 cells per layer)
    group_big_cells: int = (
        4  # cells of the big model's group (a few: each step is seconds on a CPU)
    )
    # loader
    loader_train: int = 1200
    loader_val: int = 400
    loader_px: int = 224  # streaming: random-pixel shards of this size
    loader_images: int = 2048
    loader_batch: int = 256
    loader_shard: int = 256
    loader_rounds: int = 7
    convert_images: int = 480  # JPEG conversion, 1 vs 2 workers
    convert_shard: int = 10
    convert_rounds: int = 3
    # glibc malloc settings: subprocess pairs (one of each kind) per workload
    runtime_pairs: int = 2
    # study
    study_overrides: tuple[str, ...] = ()
    study_note: str = ""
    # the embedded base model trained in float32 and with bf16 autocast (held-out accuracy)
    precision_overrides: tuple[str, ...] | None = None
    # gpu
    gpu_batch: int = 128
    gpu_steps: int = 20
    extra: dict[str, Any] = field(default_factory=dict)


SMALL_QUICK = (
    "smoe_scale",
    "gradient",
    "guided_backprop",
    "grad_x_input",
    "integrated_gradients",
    "smoothgrad_sq",
    "gradcam",
)
#: Left out of the full list: generic duplicates (``noise``, ``path_integral``) and the nested
#: compositions at paper defaults (750 network passes per image).
NESTED = ("smoothed_ig", "integrated_smoothgrad", "integrated_gradients_smoothgrad_sq")
BIG_QUICK = ("smoe_scale", "gradient", "guided_backprop", "smoothgrad_sq")
BIG_FULL = BIG_QUICK + ("grad_x_input", "integrated_gradients", "gradcam", "fastcam", "std")
QUICK_STUDY = (
    "debug=smoke",
    "study.layer.methods=[smoe_scale]",
    "study.layer.layers=[L3]",
    "study.layer.modes=[kar]",
    "study.input.methods=[smoe_scale]",
    "study.input.percents=[50]",
    "study.input.modes=[kar]",
)


def full_small_methods() -> tuple[str, ...]:
    from roarkar.saliency import available
    from roarkar.saliency.methods.precomputed import PRECOMPUTED  # maps by key, not from images

    skip = set(NESTED) | {"noise", "path_integral", PRECOMPUTED}
    return tuple(n for n in available() if n not in skip)


def sizes_for(mode: str, repeats: int | None = None, device: str = "cpu") -> Sizes:
    """The sizes of ``mode``: ``quick`` (about a minute on 2 cores), ``full`` or ``tiny`` (tests)."""
    if mode == "quick":
        k = repeats or 3
        return Sizes(
            mode=mode,
            repeats=k,
            device=device,
            small_batch=8,
            small_methods=SMALL_QUICK,
            big_batch=2,
            big_methods=BIG_QUICK,
            expensive_images=1,
            budget_s=3.0,
            smoe_rounds=4 * k + 1,
            captum_batch=8,
            train_batch=64,
            train_rounds=2 * k + 2,
            loader_train=1200,
            loader_val=400,
            loader_images=1024,
            loader_batch=128,
            loader_shard=128,
            loader_rounds=5,
            convert_images=160,
            convert_shard=10,
            convert_rounds=2,
            study_overrides=QUICK_STUDY,
            study_note=(
                "quick: debug=smoke with 2 cells (layer smoe_scale L3 KAR, input smoe_scale KAR 50 %), "
                "not the default study"
            ),
        )
    if mode == "full":
        k = repeats or 5
        return Sizes(
            mode=mode,
            repeats=k,
            device=device,
            small_batch=32,
            small_methods=full_small_methods(),
            big_batch=4,
            big_methods=BIG_FULL,
            expensive_images=1,
            budget_s=15.0,
            smoe_rounds=8 * k,  # the difference of two full passes is noisy: many rounds
            captum_batch=16,
            captum_big=True,
            train_batch=64,
            train_rounds=4 * k,
            layer_big=True,
            runtime_pairs=3,
            loader_train=1200,
            loader_val=400,
            study_overrides=(),
            study_note="the default embedded study (`roarkar`), as a subprocess",
            precision_overrides=(),
        )
    if mode == "tiny":
        k = repeats or 2
        return Sizes(
            mode=mode,
            repeats=k,
            device=device,
            small_batch=2,
            small_methods=("smoe_scale", "gradient", "smoothgrad_sq", "random"),
            big_model="resnet18",
            big_size=64,
            big_classes=10,
            big_batch=1,
            big_methods=BIG_QUICK,
            samples=2,
            steps=2,
            budget_s=1.0,
            smoe_rounds=3,
            smoe_batch=1,
            captum_batch=2,
            train_batch=8,
            train_rounds=2,
            layer_taps=("L3",),
            group_cells=2,
            runtime_pairs=1,
            loader_train=32,
            loader_val=16,
            loader_px=32,
            loader_images=64,
            loader_batch=16,
            loader_shard=16,
            loader_rounds=2,
            convert_images=16,
            convert_shard=4,
            convert_rounds=1,
            study_overrides=QUICK_STUDY,
            study_note="tiny",
            precision_overrides=("debug=smoke",),
            gpu_batch=2,
            gpu_steps=2,
        )
    raise ValueError(f"unknown mode {mode!r}: expected quick, full or tiny")


def bench_model(name: str, classes: int, device: str = "cpu") -> TappedNet:
    """A freshly initialised model (torch seed 0), as every section builds it; ``small_resnet`` at its
    defaults (width 16, one block per stage, CIFAR stem)."""
    torch.manual_seed(0)
    return build_model(name, classes).to(device)


def fixed_images(n: int, size: int, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g).to(device)


def targets_for(n: int, classes: int, device: str = "cpu") -> torch.Tensor:
    return (torch.arange(n) % classes).to(device)
