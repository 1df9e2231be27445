"""Saliency methods behind one registry: per-tap statistics, Eq 3 combination, pixel attributions
and controls.

>>> method = create("smoe_scale", model, weights="prior")
>>> maps = method.saliency(images)          # [B, H, W]
"""

# Importing ``methods`` registers every method.
from roarkar.saliency import combine, methods, stats
from roarkar.saliency.base import HookSet, PixelMethod, SaliencyMethod, inference_state
from roarkar.saliency.registry import MethodInfo, available, create, describe, register

__all__ = [
    "HookSet",
    "MethodInfo",
    "PixelMethod",
    "SaliencyMethod",
    "available",
    "combine",
    "create",
    "describe",
    "inference_state",
    "methods",
    "register",
    "stats",
]
