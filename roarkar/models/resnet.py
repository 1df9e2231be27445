"""Model builders: torchvision ResNet-50/18 (never with downloaded weights) and a small CPU ResNet."""

from __future__ import annotations

from torch import nn

from roarkar.models.taps import TappedResNet

# torchvision is imported where a model is built, not at import: it costs ~2 s of start-up (its
# ops import torch._dynamo), which is most of re-running a finished study.


class SmallResNet(nn.Module):
    """A narrow ResNet with one BasicBlock per scale, laid out like torchvision's ResNet.

    For small images (32 px) the stem is a stride-1 3x3 convolution and there is no max-pool, so the
    taps are 32, 32, 16, 8 and 4 pixels wide (CIFAR-style); ``stem="imagenet"`` gives the usual
    7x7/2 convolution and 3x3/2 max-pool.
    """

    def __init__(self, num_classes: int, width: int = 16, blocks: int = 1, stem: str = "cifar"):
        super().__init__()
        if stem == "cifar":
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        elif stem == "imagenet":
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            raise ValueError(f"unknown stem {stem!r}: expected 'cifar' or 'imagenet'")
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = width
        self.layer1 = self._layer(width, blocks, 1)
        self.layer2 = self._layer(width * 2, blocks, 2)
        self.layer3 = self._layer(width * 4, blocks, 2)
        self.layer4 = self._layer(width * 8, blocks, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 8, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        from torchvision.models.resnet import BasicBlock

        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


MODELS = ("resnet50", "resnet18", "small_resnet")


#: Architectures with no spatial scales to tap (patch tokens from the first layer on).
_TRANSFORMERS = ("vit_", "swin_", "maxvit_")


def build_model(name: str, num_classes: int, **params) -> TappedResNet:
    """Build a model by name with freshly initialised weights, wrapped with its five taps.

    ``params["arch"]`` (``model=torchvision``) names any torchvision classification builder; it is
    tapped when it is a torchvision-style ResNet (ResNet, ResNeXt, Wide ResNet), and refused with
    the reason otherwise."""
    if "arch" in params:
        return _torchvision(str(params.pop("arch")), num_classes, **params)
    if name in ("resnet50", "resnet18"):
        import torchvision

        net = getattr(torchvision.models, name)(weights=None, num_classes=num_classes, **params)
    elif name == "small_resnet":
        net = SmallResNet(num_classes, **params)
    else:
        raise ValueError(
            f"unknown model {name!r}: expected one of {', '.join(MODELS)}, or model=torchvision "
            "with model.params.arch=<a torchvision classification model>"
        )
    return TappedResNet(net, name=name)


def _torchvision(arch: str, num_classes: int, **params) -> TappedResNet:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if arch not in known:
        raise ValueError(
            f"model.params.arch={arch!r} is not a torchvision classification model; e.g. "
            f"{', '.join(m for m in known if m.startswith(('resnet', 'resnext', 'wide')))}"
        )
    if arch.startswith(_TRANSFORMERS):
        raise ValueError(
            f"model.params.arch={arch!r} is a vision transformer: it has no spatial scales, so no "
            "taps L1..L5 for the layer protocol or the per-tap statistics"
        )
    net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **params)
    try:
        return TappedResNet(net, name=arch)
    except TypeError as exc:
        raise ValueError(
            f"model.params.arch={arch!r} ({type(net).__name__}): roarkar finds the taps of "
            "torchvision-style ResNets (ResNet, ResNeXt, Wide ResNet) so far; other CNNs (VGG, "
            f"DenseNet, MobileNet, ...) are not tapped yet ({exc})"
        ) from None
