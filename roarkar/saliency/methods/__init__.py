"""Saliency method implementations; importing a module registers its methods."""

from roarkar.saliency.methods import (
    blurred,
    cams,
    controls,
    edges,
    gradients,
    noise,
    path,
    signed,
    statistics,
    wrappers,
)

__all__ = [
    "blurred",
    "cams",
    "controls",
    "edges",
    "gradients",
    "noise",
    "path",
    "signed",
    "statistics",
    "wrappers",
]
