"""How the bench measures: interleaved timing of tasks side by side, paired ratios, memory probes.

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
