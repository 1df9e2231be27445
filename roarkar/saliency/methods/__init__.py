"""Saliency method implementations; importing a module registers its methods."""

from roarkar.saliency.methods import (  # noqa: I001 - registration order: the wrappers over others last
    cams,
    controls,
    edges,
    external,
    gradients,
    libraries,
    noise,
    path,
    precomputed,
    signed,
    statistics,
    wrappers,
    blurred,
)

__all__ = [
    "blurred",
    "cams",
    "controls",
    "edges",
    "external",
    "gradients",
    "libraries",
    "noise",
    "path",
    "precomputed",
    "signed",
    "statistics",
    "wrappers",
]
