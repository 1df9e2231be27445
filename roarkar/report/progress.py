"""A study's progress line: cells done of the total and the time left, estimated from the cells
done so far. One rule for the study's console and ``task=status``: a cell still to run costs the
mean wall time of the finished cells of its (dataset, protocol), else of all finished cells; with
none finished there is no estimate, and the line says so instead of guessing."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

__all__ = ["estimate_left", "format_duration", "progress_line"]


@dataclass(frozen=True)
class Estimate:
    """Seconds left for the cells to run, and how many of them had no finished cell to go by."""

    seconds: float
    unestimated: int


def estimate_left(
    done: Iterable[tuple[Hashable, float]], left: Iterable[Hashable]
) -> Estimate | None:
    """Wall time left for the cells ``left`` (one group key each, e.g. (dataset, protocol)) from the
    finished cells ``done`` (group key, wall seconds). None when nothing has finished."""
    by_group: dict[Hashable, list[float]] = {}
    for key, seconds in done:
        by_group.setdefault(key, []).append(float(seconds))
    every = [s for group in by_group.values() for s in group]
    if not every:
        return None
    overall = sum(every) / len(every)
    total, unestimated = 0.0, 0
    for key in left:
        group = by_group.get(key)
        if group:
            total += sum(group) / len(group)
        else:
            total += overall
            unestimated += 1
    return Estimate(total, unestimated)


def format_duration(seconds: float) -> str:
    """``1 h 02 min``, ``4 min 10 s`` or ``12 s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def progress_line(finished: int, total: int, estimate: Estimate | None, failed: int = 0) -> str:
    """``study: 12/40 cells done (1 failed); about 4 min 10 s left`` (the cells run one after
    another)."""
    head = f"study: {finished}/{total} cells done"
    if failed:
        head += f" ({failed} failed)"
    if finished + failed >= total:
        return head
    if estimate is None:
        return f"{head}; time left not estimated yet (no cell finished)"
    tail = f"; about {format_duration(estimate.seconds)} left"
    if estimate.unestimated:
        tail += (
            f" ({estimate.unestimated} cells of a dataset/protocol with none finished, "
            "counted at the mean of all)"
        )
    return head + tail
