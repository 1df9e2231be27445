"""Saliency method implementations; importing a module registers its methods."""

from roarkar.saliency.methods import (
    cams,
    controls,
    edges,
    gradients,
    noise,
    path,
    precomputed,
    signed,
    statistics,
    wrappers,
)

__all__ = [
    "cams",
    "controls",
    "edges",
    "gradients",
    "noise",
    "path",
    "precomputed",
    "signed",
    "statistics",
    "wrappers",
]
