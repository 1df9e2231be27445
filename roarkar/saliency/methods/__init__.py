"""Saliency method implementations; importing a module registers its methods."""

from roarkar.saliency.methods import (
    cams,
    controls,
    edges,
    external,
    gradients,
    libraries,
    noise,
    path,
    signed,
    statistics,
    wrappers,
)

__all__ = [
    "cams",
    "controls",
    "edges",
    "external",
    "gradients",
    "libraries",
    "noise",
    "path",
    "signed",
    "statistics",
    "wrappers",
]
