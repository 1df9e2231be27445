"""``synth_objects`` (ImageNet-like): one class object and look-alike distractors on a cluttered
background; the class is the object's pattern (its structure, not its colours, which every class
shares). Every object has the same square footprint, so removing its pixels (ROAR) leaves a
class-independent hole and cannot leak the label through the hole's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from roarkar.data.drawing import (
    OBJECT_PATTERNS,
    distractor_patterns,
    free_squares,
    object_colours,
    object_patterns,
    paint,
    smooth_noise,
    to_uint8,
)


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
    img = base + smooth_noise(rng, n, s, max(2, s // 6), 30.0)
    img += rng.normal(0, 6, size=img.shape).astype(np.float32)
    pats = object_patterns(n, o, rng)[labels, np.arange(n)]
    objects = [paint(pats, *object_colours(n, rng))]
    for _ in range(distractors):
        objects.append(paint(distractor_patterns(n, o, rng), *object_colours(n, rng)))
    rel = np.zeros((n, s, s), dtype=np.float32)
    for i in range(n):
        spots = free_squares(rng, s, o, 1 + distractors)
        if spots is None:
            raise ValueError(
                f"synth_objects: cannot fit {1 + distractors} objects of {o} px into {s} px"
            )
        for k, (y, x) in enumerate(spots):
            img[i, :, y : y + o, x : x + o] = objects[k][i]
        y, x = spots[0]
        rel[i, y : y + o, x : x + o] = 1.0
    return to_uint8(img), labels.astype(np.int64), rel


def objects_classes(num_classes: int = 8, **_: Any) -> list[str]:
    """The class names of ``synth_objects``: its first ``num_classes`` patterns."""
    return list(OBJECT_PATTERNS[:num_classes])
