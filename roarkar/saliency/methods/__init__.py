"""Saliency method implementations; importing a module registers its methods."""

from roarkar.saliency.methods import controls, gradients, statistics

__all__ = ["controls", "gradients", "statistics"]
