"""``synth_scenes`` (Places-like): the class is which two kinds of landmark a scene holds together,
on a backdrop of two large textured regions in a random layout (class-irrelevant), with look-alike
distractors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from roarkar.data.drawing import (
    distractor_patterns,
    free_squares,
    object_colours,
    object_patterns,
    paint,
    to_uint8,
)

SCENE_LAYOUTS = ("top_bottom", "left_right", "center_surround")
SCENE_TEXTURES = ("stripes", "checker", "dots")
_TEXTURE_COLOURS = (
    ((235, 125, 30), (110, 25, 10)),  # warm diagonal stripes
    ((40, 200, 235), (10, 35, 120)),  # cool checker
    ((205, 255, 120), (25, 105, 40)),  # green dots
)
# landmark kinds (indices into object_patterns); a class is an unordered pair of kinds
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
        out.append(paint(pat, fg, bg))
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
    pats = object_patterns(n, o, rng)
    idx = np.arange(n)
    objects = [
        paint(pats[kinds[pairs[:, 0]], idx], *object_colours(n, rng)),
        paint(pats[kinds[pairs[:, 1]], idx], *object_colours(n, rng)),
    ]
    for _ in range(distractors):
        objects.append(paint(distractor_patterns(n, o, rng), *object_colours(n, rng)))
    rel = np.zeros((n, s, s), dtype=np.float32)
    for i in range(n):
        spots = free_squares(rng, s, o, len(objects))
        if spots is None:
            raise ValueError(
                f"synth_scenes: cannot fit {len(objects)} objects of {o} px into {s} px"
            )
        for k, (y, x) in enumerate(spots):
            img[i, :, y : y + o, x : x + o] = objects[k][i]
            if k < 2:
                rel[i, y : y + o, x : x + o] = 1.0
    return to_uint8(img), labels.astype(np.int64), rel


def scenes_classes(num_classes: int = 6, **_: Any) -> list[str]:
    """The class names of ``synth_scenes``: its landmark pairs, ``stripes+checker`` and so on."""
    names = list(LANDMARKS)
    return [f"{names[a]}+{names[b]}" for a, b in _LANDMARK_PAIRS[:num_classes]]
