"""The bench's one table: its columns, and the row every section builds (value, paired ratio,
target, CPU over wall, repeats, spread, peak memory, notes)."""

from __future__ import annotations

import math
from typing import Any

from roarkar.bench.timing import Samples

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


def per_image(
    section: str, what: str, config: str, samples: Samples, images: int, **kw: Any
) -> dict[str, Any]:
    """A row of ``samples``' median time per image in ms, each timed call having handled ``images``
    images (the form of every per-image cost in the table); ``kw`` as for :func:`row`."""
    return row(
        section, what, config, 1000 * samples.median / images, "ms/image", samples=samples, **kw
    )


def per_second(
    section: str, what: str, config: str, samples: Samples, images: int, **kw: Any
) -> dict[str, Any]:
    """A row of the throughput of ``samples`` in images per second (each timed call having handled
    ``images`` images, the median call); ``kw`` as for :func:`row`."""
    return row(section, what, config, images / samples.median, "images/s", samples=samples, **kw)


def config_str(**kv: Any) -> str:
    """``k=v`` pairs of a row's config column, separated by spaces."""
    return " ".join(f"{k}={v}" for k, v in kv.items())
