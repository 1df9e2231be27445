"""``synth_cars`` (COWC-like): overhead grass/road with a fixed number of small parked vehicles,
each a car or a look-alike of the same footprint and colours; the class is how many are cars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from roarkar.data.drawing import place, smooth_noise, to_uint8

DEFAULT_BUCKETS = ((0, 0), (1, 1), (2, 2), (3, 3))
_CAR_COLOURS = np.array(
    [(245, 245, 245), (250, 235, 90), (255, 120, 120), (140, 190, 255), (215, 215, 225)], np.float32
)


def _check_buckets(buckets: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    out = [(int(b[0]), int(b[1])) for b in buckets]
    for (lo, hi), prev in zip(out, [(-1, -1), *out[:-1]], strict=True):
        if not 0 <= lo <= hi or lo <= prev[1]:
            raise ValueError(
                f"synth_cars: buckets={out} must be increasing, disjoint [lo, hi] >= 0"
            )
    if len(out) < 2:
        raise ValueError(f"synth_cars: buckets={out} needs at least two buckets")
    return out


def _vehicle_marks(n: int, v: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Dark marks on a v x v vehicle -> (car, look-alike) bool [n, v, v]. A car has a straight
    windscreen bar through its middle (row or column); a look-alike has a diagonal bar of the same
    length: the same footprint, colours and amount of dark, only the structure differs."""
    yy, xx = np.mgrid[0:v, 0:v]
    mid = v // 2
    rows = np.broadcast_to(yy == mid, (n, v, v))
    cols = np.broadcast_to(xx == mid, (n, v, v))
    turn = rng.random(n)[:, None, None] < 0.5
    car = np.where(turn, rows, cols)
    diag = np.broadcast_to(yy == xx, (n, v, v))
    anti = np.broadcast_to(yy + xx == v - 1, (n, v, v))
    alike = np.where(rng.random(n)[:, None, None] < 0.5, diag, anti)
    return car, alike


def synth_cars(
    rng: np.random.Generator,
    n: int,
    image_size: int,
    *,
    buckets: Sequence[Sequence[int]] = DEFAULT_BUCKETS,
    num_classes: int | None = None,
    vehicles: int = 3,
    vehicle_size: int | None = None,
    distractors: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COWC-like: overhead grass with an optional road and ``vehicles`` parked vehicles, of which
    0..``vehicles`` are cars and the rest car look-alikes; the class is the bucket of the car count.

    Every vehicle is a ``vehicle_size`` square (default 3 px at 32 px) in a car colour with a dark
    bar: straight for a car, diagonal for a look-alike. Relevance = every vehicle's pixels: with a
    fixed number of same-sized vehicles, deciding the count means looking at each of them, and a
    map that marks only the cars lets ROAR leak the count through the holes it leaves (the holes
    number the cars). ``distractors`` larger roofs (in car colours, with a straight ridge) are
    objects a map may mark that say nothing about the count.
    """
    bks = _check_buckets(buckets)
    if num_classes is not None and int(num_classes) != len(bks):
        raise ValueError(
            f"synth_cars: num_classes={num_classes} but buckets={bks} give {len(bks)} classes"
        )
    if bks[-1][1] > vehicles:
        raise ValueError(
            f"synth_cars: buckets={bks} count up to {bks[-1][1]} cars but vehicles={vehicles}"
        )
    s = image_size
    v = int(vehicle_size) if vehicle_size else max(3, round(s / 10))
    r = v + 2  # roof side
    labels = rng.integers(0, len(bks), size=n)
    grass = np.array([80, 130, 55], np.float32)
    img = grass + rng.uniform(-20, 20, size=(n, 3))
    img = img[:, :, None, None] + smooth_noise(rng, n, s, max(2, s // 4), 18.0)
    img += rng.normal(0, 7, size=img.shape).astype(np.float32)
    rel = np.zeros((n, s, s), dtype=np.float32)
    car_marks, alike_marks = _vehicle_marks(n * vehicles, v, rng)
    ridge, _ = _vehicle_marks(n * distractors, r, rng)
    dark = np.array([30, 30, 35], np.float32)
    for i in range(n):
        occ = np.zeros((s, s), dtype=bool)
        if rng.random() < 0.6:  # a grey road band
            width = int(rng.integers(max(2, s // 5), max(3, s // 3) + 1))
            pos = int(rng.integers(0, s - width + 1))
            road = rng.uniform(95, 130) + rng.normal(0, 4, size=(3, s, width))
            if rng.random() < 0.5:
                img[i, :, :, pos : pos + width] = road
            else:
                img[i, :, pos : pos + width, :] = road.transpose(0, 2, 1)
        lo, hi = bks[labels[i]]
        cars = int(rng.integers(lo, hi + 1))
        sizes = [v] * vehicles + [r] * distractors
        spots = None
        for _ in range(50):
            occ[:] = False
            spots = [place(occ, d, d, rng) for d in sizes]
            if all(sp is not None for sp in spots):
                break
        else:
            raise ValueError(
                f"synth_cars: cannot fit {vehicles} vehicles of {v} px and {distractors} roofs "
                f"of {r} px into {s} px"
            )
        for k, ((y, x), d) in enumerate(zip(spots, sizes, strict=True)):
            body = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))] + rng.uniform(-10, 10, size=3)
            if k < vehicles:
                mark = (car_marks if k < cars else alike_marks)[i * vehicles + k]
                rel[i, y : y + d, x : x + d] = 1.0
            else:
                mark = ridge[i * distractors + k - vehicles]
            img[i, :, y : y + d, x : x + d] = np.where(
                mark[None], dark[:, None, None], body[:, None, None]
            )
    return to_uint8(img), labels.astype(np.int64), rel


def cars_classes(buckets: Sequence[Sequence[int]] = DEFAULT_BUCKETS, **_: Any) -> list[str]:
    """The class names of ``synth_cars``: its car-count buckets (``2`` or ``0-1``)."""
    return [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in _check_buckets(buckets)]
