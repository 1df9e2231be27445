"""The model catalogue: build a network by name, freshly initialised, with its taps found.

No weights are downloaded; a pretrained network comes from a file (``model.weights``,
:mod:`roarkar.models.weights`). torchvision is imported where a model is built, not at import: it
costs ~2 s of start-up, which is most of re-running a finished study.
"""

from __future__ import annotations

from torch import nn

from roarkar.models.nielsen import NielsenCNN
from roarkar.models.resnet import SmallResNet
from roarkar.models.taps import TappedNet

#: Models by name (``model=<name>``); ``model=torchvision`` takes any torchvision CNN by
#: ``model.params.arch``.
MODELS = ("resnet50", "resnet18", "small_resnet", "vgg16", "vgg16_bn", "nielsen_cnn")
_TORCHVISION = ("resnet50", "resnet18", "vgg16", "vgg16_bn")

#: Architectures with no spatial scales to tap (patch tokens from the first layer on).
_TRANSFORMERS = ("vit_", "swin_", "maxvit_")


def build_model(name: str, num_classes: int, **params) -> TappedNet:
    """Build model ``name`` with freshly initialised weights, wrapped with its taps.

    ``params["arch"]`` (``model=torchvision``) names any torchvision classification CNN; vision
    transformers, and networks whose graph cannot be cut into scales, are refused with the reason.
    """
    if "arch" in params:
        arch = str(params.pop("arch"))
        return TappedNet(_torchvision(arch, num_classes, **params), name=arch)
    net: nn.Module
    if name in _TORCHVISION:
        import torchvision

        net = getattr(torchvision.models, name)(weights=None, num_classes=num_classes, **params)
    elif name == "small_resnet":
        net = SmallResNet(num_classes, **params)
    elif name == "nielsen_cnn":
        net = NielsenCNN(num_classes, **params)
    else:
        raise ValueError(
            f"unknown model {name!r}: expected one of {', '.join(MODELS)}, or model=torchvision "
            "with model.params.arch=<a torchvision classification model>"
        )
    return TappedNet(net, name=name)


def _torchvision(arch: str, num_classes: int, **params) -> nn.Module:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if arch not in known:
        raise ValueError(
            f"model.params.arch={arch!r} is not a torchvision classification model; e.g. "
            "resnet101, vgg19, densenet121, mobilenet_v3_large, efficientnet_b0, convnext_tiny"
        )
    if arch.startswith(_TRANSFORMERS):
        raise ValueError(
            f"model.params.arch={arch!r} is a vision transformer: it has no spatial scales, so no "
            "taps L1..L5 for the layer protocol or the per-tap statistics"
        )
    if arch in ("googlenet", "inception_v3"):
        params.setdefault("aux_logits", False)  # auxiliary heads: a second output in training
        params.setdefault("init_weights", True)
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **params)
