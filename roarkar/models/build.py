"""The model catalogue: build a network by name, freshly initialised, with its taps found.

Models are entries of :data:`MODELS` (``model=<name>``), a builder ``(num_classes, **params) ->
nn.Module`` each: registering one is how a model is added. ``model=torchvision`` takes any
torchvision CNN by ``model.params.arch``. No weights are downloaded; a pretrained network comes
from a file (``model.weights``, :mod:`roarkar.models.weights`). torchvision is imported where a
model is built, not at import: it costs ~2 s of start-up, which is most of re-running a finished
study.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from roarkar.models.hooks import HookTappedNet
from roarkar.models.nielsen import NielsenCNN
from roarkar.models.resnet import SmallResNet
from roarkar.models.taps import TappedNet
from roarkar.registry import Registry, UnknownName

Builder = Callable[..., nn.Module]

#: Models by name (``model=<name>``): ``builder(num_classes, **model.params)`` -> the network.
MODELS: Registry[Builder] = Registry("model", key="model.name")

#: Architectures with no spatial scales to tap (patch tokens from the first layer on).
_TRANSFORMERS = ("vit_", "swin_", "maxvit_")


def _torchvision_builder(name: str) -> Builder:
    def build(num_classes: int, **params) -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None, num_classes=num_classes, **params)

    build.__doc__ = f"torchvision's {name}, randomly initialised (weights=None)."
    return build


for _name in ("resnet50", "resnet18"):
    MODELS.register(_name, _torchvision_builder(_name))
MODELS.register("small_resnet", SmallResNet)
for _name in ("vgg16", "vgg16_bn"):
    MODELS.register(_name, _torchvision_builder(_name))
MODELS.register("nielsen_cnn", NielsenCNN)


def build_model(
    name: str, num_classes: int, *, taps: Sequence[str] | None = None, **params
) -> TappedNet:
    """Build model ``name`` with freshly initialised weights, wrapped with its taps.

    ``params["arch"]`` (``model=torchvision``) names any torchvision classification CNN; vision
    transformers, and networks whose graph cannot be cut into scales, are refused with the reason.
    ``taps`` (``model.taps``): module names to tap by forward hooks, L1..Ln in execution order,
    instead of the taps found from the traced graph (for a network torch.fx cannot trace).
    """
    if "arch" in params:
        name = str(params.pop("arch"))
        net = _torchvision(name, num_classes, **params)
    else:
        try:
            builder = MODELS.get(name)
        except UnknownName as err:
            raise UnknownName(
                f"{err}; or model=torchvision with model.params.arch=<a torchvision "
                "classification model>"
            ) from None
        net = builder(num_classes, **params)
    if taps:
        return HookTappedNet(net, [str(t) for t in taps], name=name)
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
