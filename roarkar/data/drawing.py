"""The drawing primitives every embedded generator shares: smooth colour noise, two-colour textures,
placing squares with a gap, and the object patterns and palette of synth_objects and synth_scenes.

Pure numpy; every random draw comes from the ``rng`` handed in, in a fixed order, so a generator's
bytes depend only on its seed (moving a draw changes every embedded dataset).
"""

from __future__ import annotations

import numpy as np


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


def smooth_noise(rng: np.random.Generator, n: int, size: int, grid: int, amp: float) -> np.ndarray:
    """Low-frequency colour blobs [n,3,size,size] in [-amp, amp] (bilinear upsampled grid noise)."""
    low = rng.uniform(-amp, amp, size=(n, 3, grid, grid)).astype(np.float32)
    w = _interp_matrix(size, grid)
    return np.einsum("hg,ncgk,wk->nchw", w, low, w, optimize=True)


def paint(pattern: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Two-colour texture: pattern [n,h,w] bool, fg/bg [n,3] -> float [n,3,h,w]."""
    p = pattern[:, None].astype(np.float32)
    return p * fg[:, :, None, None] + (1 - p) * bg[:, :, None, None]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float pixels on the 0..255 scale -> uint8 images (rounded, clamped)."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


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


def object_patterns(n: int, o: int, rng: np.random.Generator) -> np.ndarray:
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


def distractor_patterns(n: int, o: int, rng: np.random.Generator) -> np.ndarray:
    """Object-like textures outside the class families: random two-colour cells -> bool [n, o, o]."""
    w = max(1, o // 4)
    cells = rng.random((n, -(-o // w), -(-o // w))) < 0.5
    return np.repeat(np.repeat(cells, w, axis=1), w, axis=2)[:, :o, :o]


def object_colours(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background colours [n, 3] from one palette shared by every class (and by the
    distractors), in random order and jittered: no pixel's colour says which class it is."""
    colours = np.asarray(OBJECT_COLOURS, dtype=np.float32)  # [8, 2, 3]
    pair = rng.integers(0, len(colours), size=n)
    swap = rng.random(n) < 0.5
    fg = np.where(swap[:, None], colours[pair, 1], colours[pair, 0])
    bg = np.where(swap[:, None], colours[pair, 0], colours[pair, 1])
    return fg + rng.uniform(-25, 25, size=(n, 3)), bg + rng.uniform(-25, 25, size=(n, 3))


def free_squares(
    rng: np.random.Generator, s: int, o: int, count: int
) -> list[tuple[int, int]] | None:
    """``count`` o x o squares in an s x s image with at least a one-pixel gap between them (random
    placement, started over up to 50 times before giving up)."""
    for _ in range(50):
        occ = np.zeros((s, s), dtype=bool)
        spots = []
        for _ in range(count):
            spot = place(occ, o, o, rng)
            if spot is None:
                break
            spots.append(spot)
        if len(spots) == count:
            return spots
    return None


def place(occ: np.ndarray, h: int, w: int, rng: np.random.Generator) -> tuple[int, int] | None:
    """A free h x w spot (with a one-pixel gap to anything placed before), or None."""
    s = occ.shape[0]
    for _ in range(200):
        y = int(rng.integers(0, s - h + 1))
        x = int(rng.integers(0, s - w + 1))
        if not occ[max(0, y - 1) : y + h + 1, max(0, x - 1) : x + w + 1].any():
            occ[y : y + h, x : x + w] = True
            return y, x
    return None
