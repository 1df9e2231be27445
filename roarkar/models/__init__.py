"""Models with five scale-end taps (L1..L5) for saliency and layer masking."""

from roarkar.models.resnet import MODELS, SmallResNet, build_model
from roarkar.models.taps import TAPS, TapActivation, TappedResNet, check_tap

__all__ = [
    "MODELS",
    "TAPS",
    "SmallResNet",
    "TapActivation",
    "TappedResNet",
    "build_model",
    "check_tap",
]
