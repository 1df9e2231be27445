"""Embedded synthetic datasets with ground-truth relevance maps (no downloads, deterministic).

Three generators stand in for the paper's datasets so a whole study runs on a CPU:

- ``synth_objects`` (ImageNet-like): one class object and look-alike distractors on a cluttered
  background; the class is the object's pattern (its structure, not its colours, which every class
  shares). Every object has the same square footprint, so removing its pixels (ROAR) leaves a
  class-independent hole and cannot leak the label through the hole's shape.
- ``synth_scenes`` (Places-like): the class is which two kinds of landmark a scene holds together,
  on a backdrop of two large textured regions in a random layout (class-irrelevant), with
  look-alike distractors.
- ``synth_cars`` (COWC-like): overhead grass/road with a fixed number of small parked vehicles,
  each a car or a look-alike of the same footprint and colours; the class is how many are cars.

Everything is pure numpy driven by ``numpy.random.default_rng`` seeded from ``(seed, split, chunk)``,
so the same arguments give identical bytes, and train and val never share a random stream.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

SPLIT_IDS = {"train": 0, "val": 1}

# ----------------------------------------------------------------------------------------------
# shared helpers


CHUNK = 2048  # samples per independently seeded chunk (bounds memory while writing big splits)


def chunk_rng(seed: int, split: str, chunk: int) -> np.random.Generator:
    """One independent random stream per (seed, split, chunk): train and val never share samples."""
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}: expected one of {sorted(SPLIT_IDS)}")
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(chunk), 0x524F4152])
    )


def _interp_matrix(size: int, grid: int) -> np.ndarray:
    """Bilinear upsampling weights [size, grid] (align_corners=False), for smooth noise fields."""
    pos = np.clip((np.arange(size) + 0.5) * grid / size - 0.5, 0, grid - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, grid - 1)
    frac = pos - i0
    w = np.zeros((size, grid), dtype=np.float32)
    w[np.arange(size), i0] += 1 - frac
    w[np.arange(size), i1] += frac
    return w


def _smooth_noise(rng: np.random.Generator, n: int, size: int, grid: int, amp: float) -> np.ndarray:
    """Low-frequency colour blobs [n,3,size,size] in [-amp, amp] (bilinear upsampled grid noise)."""
    low = rng.uniform(-amp, amp, size=(n, 3, grid, grid)).astype(np.float32)
    w = _interp_matrix(size, grid)
    return np.einsum("hg,ncgk,wk->nchw", w, low, w, optimize=True)


def _paint(pattern: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Two-colour texture: pattern [n,h,w] bool, fg/bg [n,3] -> float [n,3,h,w]."""
    p = pattern[:, None].astype(np.float32)
    return p * fg[:, :, None, None] + (1 - p) * bg[:, :, None, None]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# synth_objects

OBJECT_PATTERNS = (
    "hstripes",
    "vstripes",
    "diagonal",
    "antidiagonal",
    "checker",
    "dots",
    "rings",
    "cross",
)
# (foreground, background) colour pairs shared by every class; high contrast within a pair.
OBJECT_COLOURS = (
    ((230, 30, 30), (250, 230, 60)),  # red / yellow
    ((30, 60, 230), (240, 240, 240)),  # blue / white
    ((30, 200, 60), (20, 20, 20)),  # green / black
    ((250, 140, 0), (70, 0, 130)),  # orange / purple
    ((0, 220, 220), (150, 0, 60)),  # cyan / maroon
    ((240, 0, 200), (190, 255, 190)),  # magenta / pale green
    ((250, 250, 0), (0, 0, 130)),  # yellow / navy
    ((255, 255, 255), (90, 50, 20)),  # white / brown
)


def _object_patterns(n: int, o: int, rng: np.random.Generator) -> np.ndarray:
    """All pattern families for n objects of o x o with random phase -> bool [P, n, o, o]."""
    w = max(1, o // 4)
    yy = np.arange(o)[None, :, None]
    xx = np.arange(o)[None, None, :]
    py = rng.integers(0, 2 * w, size=(n, 1, 1))
    px = rng.integers(0, 2 * w, size=(n, 1, 1))
    c = (o - 1) / 2
    ring = np.maximum(np.abs(yy - c), np.abs(xx - c))
    pats = [
        ((yy + py) // w) % 2 == 0,
        ((xx + px) // w) % 2 == 0,
        ((yy + xx + py) // w) % 2 == 0,
        ((xx - yy + 4 * o + px) // w) % 2 == 0,
        (((yy + py) // w + (xx + px) // w) % 2) == 0,
        (((yy + py) % (2 * w)) < w)
        & (((xx + px) % (2 * w)) < w)
        & (((yy + py) // (2 * w) + (xx + px) // (2 * w)) % 2 == 0),
        (np.floor(ring) // w) % 2 == 0,
        (np.abs(yy - c) < w) | (np.abs(xx - c) < w),
    ]
    return np.stack([np.broadcast_to(p, (n, o, o)) for p in pats])


def _distractor_patterns(n: int, o: int, rng: np.random.Generator) -> np.ndarray:
    """Object-like textures outside the class families: random two-colour cells -> bool [n, o, o]."""
    w = max(1, o // 4)
    cells = rng.random((n, -(-o // w), -(-o // w))) < 0.5
    return np.repeat(np.repeat(cells, w, axis=1), w, axis=2)[:, :o, :o]


def _object_colours(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background colours [n, 3] from one palette shared by every class (and by the
    distractors), in random order and jittered: no pixel's colour says which class it is."""
    colours = np.asarray(OBJECT_COLOURS, dtype=np.float32)  # [8, 2, 3]
    pair = rng.integers(0, len(colours), size=n)
    swap = rng.random(n) < 0.5
    fg = np.where(swap[:, None], colours[pair, 1], colours[pair, 0])
    bg = np.where(swap[:, None], colours[pair, 0], colours[pair, 1])
    return fg + rng.uniform(-25, 25, size=(n, 3)), bg + rng.uniform(-25, 25, size=(n, 3))


def _free_squares(
    rng: np.random.Generator, s: int, o: int, count: int
) -> list[tuple[int, int]] | None:
    """``count`` o x o squares in an s x s image with at least a one-pixel gap between them (random
    placement, started over up to 50 times before giving up)."""
    for _ in range(50):
        occ = np.zeros((s, s), dtype=bool)
        spots = []
        for _ in range(count):
            spot = _place(occ, o, o, rng)
            if spot is None:
                break
            spots.append(spot)
        if len(spots) == count:
            return spots
    return None


def synth_objects(
    rng: np.random.Generator,
    n: int,
    image_size: int,
    *,
    num_classes: int = 8,
    object_size: int | None = None,
    distractors: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ImageNet-like: one class object and ``distractors`` look-alike objects on a cluttered
    background, all squares of the same size and colours from one shared palette.

    The class is the object's pattern alone (stripes, diagonals, checker, dots, rings, cross), its
    structure rather than its colour: a handful of pixels do not reveal it. The distractors carry
    random two-colour cells, a texture no class has, so a map that marks every object is not the
    ground truth. Relevance is 1 on the class object's square only. ``object_size`` defaults to a
    quarter of the image side (~6 % of the pixels per object).
    """
    if not 2 <= num_classes <= len(OBJECT_PATTERNS):
        raise ValueError(
            f"synth_objects: num_classes={num_classes} must be in [2, {len(OBJECT_PATTERNS)}]"
        )
    s = image_size
    o = int(object_size) if object_size else max(3, round(s / 4))
    if not 2 <= o <= s:
        raise ValueError(f"synth_objects: object_size={o} must be in [2, image_size={s}]")
    if distractors < 0:
        raise ValueError(f"synth_objects: distractors={distractors} must be >= 0")
    labels = rng.integers(0, num_classes, size=n)
    # background: low-contrast colour blobs + pixel noise around a muted per-image colour
    base = rng.uniform(80, 175, size=(n, 1, 1, 1)) + rng.uniform(-20, 20, size=(n, 3, 1, 1))
    img = base + _smooth_noise(rng, n, s, max(2, s // 6), 30.0)
    img += rng.normal(0, 6, size=img.shape).astype(np.float32)
    pats = _object_patterns(n, o, rng)[labels, np.arange(n)]
    objects = [_paint(pats, *_object_colours(n, rng))]
    for _ in range(distractors):
        objects.append(_paint(_distractor_patterns(n, o, rng), *_object_colours(n, rng)))
    rel = np.zeros((n, s, s), dtype=np.float32)
    for i in range(n):
        spots = _free_squares(rng, s, o, 1 + distractors)
        if spots is None:
            raise ValueError(
                f"synth_objects: cannot fit {1 + distractors} objects of {o} px into {s} px"
            )
        for k, (y, x) in enumerate(spots):
            img[i, :, y : y + o, x : x + o] = objects[k][i]
        y, x = spots[0]
        rel[i, y : y + o, x : x + o] = 1.0
    return _to_uint8(img), labels.astype(np.int64), rel


def _objects_classes(num_classes: int = 8, **_: Any) -> list[str]:
    return list(OBJECT_PATTERNS[:num_classes])


# ----------------------------------------------------------------------------------------------
# synth_scenes

SCENE_LAYOUTS = ("top_bottom", "left_right", "center_surround")
SCENE_TEXTURES = ("stripes", "checker", "dots")
_TEXTURE_COLOURS = (
    ((235, 125, 30), (110, 25, 10)),  # warm diagonal stripes
    ((40, 200, 235), (10, 35, 120)),  # cool checker
    ((205, 255, 120), (25, 105, 40)),  # green dots
)
# landmark kinds (indices into _object_patterns); a class is an unordered pair of kinds
LANDMARKS = {"stripes": 0, "checker": 4, "rings": 6, "cross": 7}
_LANDMARK_PAIRS = tuple((a, b) for a in range(4) for b in range(a + 1, 4))


def _scene_textures(n: int, s: int, rng: np.random.Generator) -> np.ndarray:
    """The three region textures over the whole image, jittered -> float [3, n, 3, s, s]."""
    w = max(1, s // 16)
    yy = np.arange(s)[None, :, None]
    xx = np.arange(s)[None, None, :]
    py = rng.integers(0, 4 * w, size=(n, 1, 1))
    px = rng.integers(0, 4 * w, size=(n, 1, 1))
    pats = (
        ((yy + xx + py) // w) % 2 == 0,
        (((yy + py) // w + (xx + px) // w) % 2) == 0,
        (((yy + py) % (3 * w)) < w) & (((xx + px) % (3 * w)) < w),
    )
    out = []
    for k, pat in enumerate(pats):
        fg = np.asarray(_TEXTURE_COLOURS[k][0], np.float32) + rng.uniform(-20, 20, size=(n, 3))
        bg = np.asarray(_TEXTURE_COLOURS[k][1], np.float32) + rng.uniform(-20, 20, size=(n, 3))
        out.append(_paint(pat, fg, bg))
    return np.stack(out)


def _scene_backdrop(rng: np.random.Generator, n: int, s: int) -> np.ndarray:
    """Two large textured regions in a random layout (top/bottom, left/right, centre/surround)
    with random, distinct textures: the look of a scene, and nothing about its class."""
    layout = rng.integers(0, len(SCENE_LAYOUTS), size=n)
    ta = rng.integers(0, 3, size=n)
    tb = (ta + rng.integers(1, 3, size=n)) % 3
    tex = _scene_textures(n, s, rng)
    frac = rng.uniform(0.35, 0.65, size=n)
    margin = rng.uniform(0.2, 0.3, size=n)
    yy = np.arange(s)[None, :, None]
    xx = np.arange(s)[None, None, :]

    def col(v: np.ndarray) -> np.ndarray:
        return v[:, None, None]

    cut = col(np.rint(s * frac))
    m = col(np.rint(s * margin))
    a_top, a_left = yy < cut, xx < cut
    a_center = (yy >= m) & (yy < s - m) & (xx >= m) & (xx < s - m)
    a = np.where(col(layout) == 0, a_top, np.where(col(layout) == 1, a_left, a_center))
    idx = np.arange(n)
    img = np.where(a[:, None], tex[ta, idx], tex[tb, idx])
    # muted: the regions are context, the landmarks stand out
    grey = img.mean(1, keepdims=True)
    return 0.45 * img + 0.55 * (0.6 * grey + 50)


def synth_scenes(
    rng: np.random.Generator,
    n: int,
    image_size: int,
    *,
    num_classes: int = 6,
    object_size: int | None = None,
    distractors: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Places-like: a scene is defined by which two kinds of landmark it holds together.

    Two large textured regions in a random layout make the backdrop (class-irrelevant); on it sit
    the class's two landmarks (an unordered pair of four kinds: stripes, checker, rings, cross; six
    classes) and ``distractors`` look-alikes with random two-colour cells, all squares of one size
    with colours from the shared object palette. Relevance is 1 on the two landmarks only: the
    evidence is local (about 12 % of the image) and needs both of them.
    """
    if not 2 <= num_classes <= len(_LANDMARK_PAIRS):
        raise ValueError(
            f"synth_scenes: num_classes={num_classes} must be in [2, {len(_LANDMARK_PAIRS)}]"
        )
    s = image_size
    o = int(object_size) if object_size else max(3, round(s / 4))
    if not 2 <= o <= s or distractors < 0:
        raise ValueError(
            f"synth_scenes: object_size={o} (2..{s}), distractors={distractors} (>= 0)"
        )
    labels = rng.integers(0, num_classes, size=n)
    img = _scene_backdrop(rng, n, s)
    img += rng.normal(0, 5, size=img.shape).astype(np.float32)
    kinds = np.asarray(list(LANDMARKS.values()))
    pairs = np.asarray(_LANDMARK_PAIRS)[labels]
    pats = _object_patterns(n, o, rng)
    idx = np.arange(n)
    objects = [
        _paint(pats[kinds[pairs[:, 0]], idx], *_object_colours(n, rng)),
        _paint(pats[kinds[pairs[:, 1]], idx], *_object_colours(n, rng)),
    ]
    for _ in range(distractors):
        objects.append(_paint(_distractor_patterns(n, o, rng), *_object_colours(n, rng)))
    rel = np.zeros((n, s, s), dtype=np.float32)
    for i in range(n):
        spots = _free_squares(rng, s, o, len(objects))
        if spots is None:
            raise ValueError(
                f"synth_scenes: cannot fit {len(objects)} objects of {o} px into {s} px"
            )
        for k, (y, x) in enumerate(spots):
            img[i, :, y : y + o, x : x + o] = objects[k][i]
            if k < 2:
                rel[i, y : y + o, x : x + o] = 1.0
    return _to_uint8(img), labels.astype(np.int64), rel


def _scenes_classes(num_classes: int = 6, **_: Any) -> list[str]:
    names = list(LANDMARKS)
    return [f"{names[a]}+{names[b]}" for a, b in _LANDMARK_PAIRS[:num_classes]]


# ----------------------------------------------------------------------------------------------
# synth_cars

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


def _place(occ: np.ndarray, h: int, w: int, rng: np.random.Generator) -> tuple[int, int] | None:
    """A free h x w spot (with a one-pixel gap to anything placed before), or None."""
    s = occ.shape[0]
    for _ in range(200):
        y = int(rng.integers(0, s - h + 1))
        x = int(rng.integers(0, s - w + 1))
        if not occ[max(0, y - 1) : y + h + 1, max(0, x - 1) : x + w + 1].any():
            occ[y : y + h, x : x + w] = True
            return y, x
    return None


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
    img = img[:, :, None, None] + _smooth_noise(rng, n, s, max(2, s // 4), 18.0)
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
            spots = [_place(occ, d, d, rng) for d in sizes]
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
    return _to_uint8(img), labels.astype(np.int64), rel


def _cars_classes(buckets: Sequence[Sequence[int]] = DEFAULT_BUCKETS, **_: Any) -> list[str]:
    return [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in _check_buckets(buckets)]


# ----------------------------------------------------------------------------------------------
# registry

GENERATORS: dict[str, tuple[Callable[..., Any], Callable[..., list[str]]]] = {
    "synth_objects": (synth_objects, _objects_classes),
    "synth_scenes": (synth_scenes, _scenes_classes),
    "synth_cars": (synth_cars, _cars_classes),
}


def _lookup(generator: str) -> tuple[Callable[..., Any], Callable[..., list[str]]]:
    if generator not in GENERATORS:
        raise ValueError(
            f"unknown synthetic generator {generator!r}: expected one of {sorted(GENERATORS)}"
        )
    return GENERATORS[generator]


def generator_params(generator: str) -> list[str]:
    """The keyword parameters a generator accepts (beyond rng, n, image_size)."""
    fn, _ = _lookup(generator)
    sig = inspect.signature(fn)
    return [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _check_params(generator: str, params: dict[str, Any]) -> None:
    allowed = generator_params(generator)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"{generator}: unknown parameter(s) {unknown}; accepted: {allowed}")


def class_names(generator: str, **params: Any) -> list[str]:
    """Human-readable class names of a generator with the given parameters (their count = classes)."""
    _check_params(generator, params)
    _, names = _lookup(generator)
    return names(**{k: v for k, v in params.items() if v is not None})


def generate_chunks(
    generator: str, split: str, n: int, image_size: int, seed: int, **params: Any
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``generate`` as numpy chunks of at most ``CHUNK`` samples (for writing big splits)."""
    fn, _ = _lookup(generator)
    _check_params(generator, params)
    if int(image_size) < 8:
        raise ValueError(f"{generator}: image_size={image_size} must be >= 8")
    if int(n) < 0:
        raise ValueError(f"{generator}: n={n} must be >= 0")
    kw = {k: v for k, v in params.items() if v is not None}
    for chunk, start in enumerate(range(0, int(n), CHUNK)):
        m = min(CHUNK, int(n) - start)
        yield fn(chunk_rng(seed, split, chunk), m, int(image_size), **kw)


def generate(
    generator: str, split: str, n: int, image_size: int, seed: int, **params: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Generate ``n`` samples of ``split`` deterministically from ``seed``.

    Returns images uint8 [N,3,H,W], labels int64 [N], relevance float32 [N,H,W] in [0, 1].
    Every ``CHUNK`` samples are drawn from their own seeded stream, so memory stays bounded.
    Parameters set to ``None`` take the generator's default.
    """
    parts = list(generate_chunks(generator, split, n, image_size, seed, **params))
    if not parts:
        s = int(image_size)
        return (
            torch.empty((0, 3, s, s), dtype=torch.uint8),
            torch.empty(0, dtype=torch.int64),
            torch.empty((0, s, s), dtype=torch.float32),
        )
    images, labels, rel = (np.concatenate(x) for x in zip(*parts, strict=True))
    return torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(rel)
