"""What every bench section shares: sizes per mode, interleaved timing, memory probes and rows.

Timing: each repeat ("round") runs every task of a comparison once, in an order rotated by one task
per round, so A and B see the same load; a figure is the median over rounds and a ratio is the median
of the per-round ratios (paired), which is robust to the load drifting during the run. Beside every
figure goes the process CPU time over wall time of the same calls (the cores are shared: a value
well below the thread count means the process was waiting for a core).

Memory (CPU): the growth of the process's peak resident set over one call: glibc's free lists are
trimmed (``malloc_trim``), the kernel's high-water mark is reset (``/proc/self/clear_refs`` = 5), then
``VmHWM - VmRSS(before)``. It counts pages touched by the call (tensors, allocator slack, library
workspaces), not bytes requested. On CUDA: ``torch.cuda.max_memory_allocated`` growth.
"""

from __future__ import annotations

import ctypes
import math
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from roarkar.models import TappedNet, build_model

COLUMNS = (
    "section",
    "what",
    "config",
    "value",
    "unit",
    "ratio",
    "target",
    "meets_target",
    "cpu_over_wall",
    "repeats",
    "spread_pct",
    "peak_mem_mb",
    "notes",
)


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

    skip = set(NESTED) | {"noise", "path_integral"}
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


# -- timing ------------------------------------------------------------------------------------------


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


_LIBC: Any = None


def _libc():
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
        except OSError:
            _LIBC = False
    return _LIBC


def _status_kb(field_name: str) -> int | None:
    try:
        text = open("/proc/self/status").read()
    except OSError:
        return None
    found = re.search(rf"{field_name}:\s+(\d+)", text)
    return int(found.group(1)) if found else None


class MemoryProbe:
    """Peak memory growth (MiB) over a block; ``mb`` is None where it cannot be measured."""

    def __init__(self, device: str):
        self.device = device
        self.mb: float | None = None

    def __enter__(self) -> MemoryProbe:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self._base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            return self
        libc = _libc()
        if libc:
            libc.malloc_trim(0)
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self._base = _status_kb("VmRSS")
        except OSError:
            self._base = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
            return
        peak = _status_kb("VmHWM")
        if self._base is not None and peak is not None:
            self.mb = max(peak - self._base, 0) / 1024


@dataclass
class Samples:
    """Timed rounds of one task: wall and CPU seconds keyed by round index."""

    wall: dict[int, float] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)
    mem_mb: float | None = None

    @property
    def n(self) -> int:
        return len(self.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall.values()) if self.wall else math.nan

    @property
    def cpu_over_wall(self) -> float:
        ratios = [self.cpu[r] / self.wall[r] for r in self.wall if self.wall[r] > 0]
        return statistics.median(ratios) if ratios else math.nan

    @property
    def spread_pct(self) -> float:
        """(max - min) / median of the rounds, in percent (NaN for a single round)."""
        if self.n < 2:
            return math.nan
        values = list(self.wall.values())
        return 100.0 * (max(values) - min(values)) / self.median


@dataclass
class Task:
    """One thing to time: ``fn()`` does the work once (its result is ignored)."""

    name: str
    fn: Callable[[], Any]
    warmup: bool = True  # one untimed call first (also where the memory probe runs)
    budget_s: float | None = None  # stop repeating once the timed rounds took this long
    memory: bool = True


def interleave(tasks: Sequence[Task], rounds: int, device: str = "cpu") -> dict[str, Samples]:
    """Time ``tasks`` side by side: ``rounds`` rounds, each running every (still budgeted) task once,
    in an order rotated by one per round. Memory is probed on the warm-up call (or on the first timed
    call of a task without warm-up)."""
    out = {t.name: Samples() for t in tasks}
    for task in tasks:
        if task.warmup:
            if task.memory:
                with MemoryProbe(device) as probe:
                    task.fn()
                    _sync(device)
                out[task.name].mem_mb = probe.mb
            else:
                task.fn()
                _sync(device)
    for r in range(rounds):
        order = list(tasks[r % len(tasks) :]) + list(tasks[: r % len(tasks)])
        for task in order:
            samples = out[task.name]
            if (
                task.budget_s is not None
                and samples.n
                and sum(samples.wall.values()) > task.budget_s
            ):
                continue
            probe = MemoryProbe(device) if (task.memory and samples.mem_mb is None) else None
            if probe is not None:
                probe.__enter__()
            _sync(device)
            w0, c0 = time.perf_counter(), time.process_time()
            task.fn()
            _sync(device)
            samples.wall[r] = time.perf_counter() - w0
            samples.cpu[r] = time.process_time() - c0
            if probe is not None:
                probe.__exit__(None, None, None)
                samples.mem_mb = probe.mb
    return out


def paired_ratio(a: Samples, b: Samples, scale_a: float = 1.0, scale_b: float = 1.0) -> float:
    """Median over the rounds both ran of (a / scale_a) / (b / scale_b); ratio of medians when they
    share no round."""
    common = sorted(set(a.wall) & set(b.wall))
    if common:
        return statistics.median((a.wall[r] / scale_a) / (b.wall[r] / scale_b) for r in common)
    return (a.median / scale_a) / (b.median / scale_b)


def paired_quartiles(a: Samples, b: Samples) -> tuple[float, float]:
    """First and third quartiles over the rounds both ran of a / b (NaN when they share none): how
    far a paired ratio moves from round to round on a noisy machine."""
    ratios = [a.wall[r] / b.wall[r] for r in sorted(set(a.wall) & set(b.wall))]
    if len(ratios) < 2:
        return (ratios[0], ratios[0]) if ratios else (math.nan, math.nan)
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q1, q3


def paired_cpu_over_wall(*samples: Samples) -> float:
    values = [s.cpu_over_wall for s in samples if s.n]
    return statistics.median(values) if values else math.nan


# -- rows --------------------------------------------------------------------------------------------


def meets(value: float | None, target: str | None) -> bool | None:
    """Whether ``value`` satisfies ``target`` ("<= 0.05", ">= 1.5"); None without a target."""
    if target is None or value is None or not math.isfinite(value):
        return None
    op, _, threshold = target.partition(" ")
    bound = float(threshold)
    if op == "<=":
        return value <= bound
    if op == ">=":
        return value >= bound
    raise ValueError(f"unknown target {target!r}")


def row(
    section: str,
    what: str,
    config: str,
    value: float | None,
    unit: str,
    *,
    ratio: float | None = None,
    target: str | None = None,
    target_on: str = "ratio",
    samples: Samples | None = None,
    cpu_over_wall: float | None = None,
    repeats: int | None = None,
    notes: str = "",
    peak_mem_mb: float | None = None,
) -> dict[str, Any]:
    """One table row; ``target`` applies to ``ratio`` (``target_on="ratio"``) or to ``value``."""
    checked = ratio if target_on == "ratio" else value
    nan = math.nan
    return {
        "section": section,
        "what": what,
        "config": config,
        "value": nan if value is None else float(value),
        "unit": unit,
        "ratio": nan if ratio is None else float(ratio),
        "target": target or "",
        "meets_target": ""
        if meets(checked, target) is None
        else ("yes" if meets(checked, target) else "no"),
        "cpu_over_wall": (
            float(cpu_over_wall)
            if cpu_over_wall is not None
            else (samples.cpu_over_wall if samples is not None else nan)
        ),
        "repeats": repeats if repeats is not None else (samples.n if samples is not None else 1),
        "spread_pct": samples.spread_pct if samples is not None else nan,
        "peak_mem_mb": (
            peak_mem_mb
            if peak_mem_mb is not None
            else (samples.mem_mb if samples is not None and samples.mem_mb is not None else nan)
        ),
        "notes": notes,
    }


def skipped(section: str, what: str, why: str) -> dict[str, Any]:
    return row(section, what, "", None, "", notes=why, repeats=0)


def config_str(**kv: Any) -> str:
    return " ".join(f"{k}={v}" for k, v in kv.items())


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
