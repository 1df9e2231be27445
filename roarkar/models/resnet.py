"""roarkar's small CPU ResNet (its taps declared: two at 32 px, as a CIFAR-style stem has)."""

from __future__ import annotations

from torch import nn


class SmallResNet(nn.Module):
    """A narrow ResNet with one BasicBlock per scale, laid out like torchvision's ResNet.

    For small images (32 px) the stem is a stride-1 3x3 convolution and there is no max-pool, so the
    taps are 32, 32, 16, 8 and 4 pixels wide (CIFAR-style); ``stem="imagenet"`` gives the usual
    7x7/2 convolution and 3x3/2 max-pool.
    """

    #: The stem ReLU and the four layers' outputs. With the CIFAR stem the first two have the same
    #: size, so the rule of one tap per size would find four; these five keep the studies' taps.
    tap_nodes = ("relu", "layer1", "layer2", "layer3", "layer4")

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
