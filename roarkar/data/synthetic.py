"""Embedded synthetic datasets with ground-truth relevance maps (no downloads, deterministic).

Three generators stand in for the paper's datasets so a whole study runs on a CPU, one module each
(what they share is drawn by :mod:`roarkar.data.drawing`):

- ``synth_objects`` (ImageNet-like): the class is the pattern of one object among look-alikes;
- ``synth_scenes`` (Places-like): the class is which two kinds of landmark a scene holds together;
- ``synth_cars`` (COWC-like): the class is how many of a fixed number of vehicles are cars.

This module owns their registry (``GENERATORS``, ``dataset.generator``) and their seeding: everything is pure numpy driven
by ``numpy.random.default_rng`` seeded from ``(seed, split, chunk)``, so the same arguments give
identical bytes, and train and val never share a random stream.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from roarkar.data.synth_cars import cars_classes, synth_cars
from roarkar.data.synth_objects import objects_classes, synth_objects
from roarkar.data.synth_scenes import scenes_classes, synth_scenes
from roarkar.registry import Registry

SPLIT_IDS = {"train": 0, "val": 1}
CHUNK = 2048  # samples per independently seeded chunk (bounds memory while writing big splits)


def chunk_rng(seed: int, split: str, chunk: int) -> np.random.Generator:
    """One independent random stream per (seed, split, chunk): train and val never share samples."""
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}: expected one of {sorted(SPLIT_IDS)}")
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(chunk), 0x524F4152])
    )


#: ``dataset.generator`` -> (the generator, its class names); the ``synthetic`` dataset kind.
GENERATORS: Registry[tuple[Callable[..., Any], Callable[..., list[str]]]] = Registry(
    "synthetic generator", key="dataset.generator"
)
GENERATORS.register("synth_cars", (synth_cars, cars_classes))
GENERATORS.register("synth_objects", (synth_objects, objects_classes))
GENERATORS.register("synth_scenes", (synth_scenes, scenes_classes))


def _lookup(generator: str) -> tuple[Callable[..., Any], Callable[..., list[str]]]:
    return GENERATORS.get(generator)


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
