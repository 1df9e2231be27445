"""Models cut at their scale-end taps (L1..Ln) for saliency and layer masking."""

from roarkar.models.build import MODELS, build_model
from roarkar.models.nielsen import NielsenCNN
from roarkar.models.resnet import SmallResNet
from roarkar.models.taps import (
    TAPS,
    Tap,
    TapActivation,
    TappedNet,
    check_forward_from,
    check_tap,
    tap_names,
)

__all__ = [
    "MODELS",
    "TAPS",
    "NielsenCNN",
    "SmallResNet",
    "Tap",
    "TapActivation",
    "TappedNet",
    "build_model",
    "check_forward_from",
    "check_tap",
    "tap_names",
]
