"""Seed 002's MNIST network (Nielsen et al., Fig. 1): two conv-SELU-pool scales and a dense head."""

from __future__ import annotations

from torch import Tensor, nn


class NielsenCNN(nn.Module):
    """conv 32 3x3 (pad 1) - SELU - max-pool 2 - conv 64 3x3 (pad 1) - SELU - max-pool 2 - linear
    128 - SELU - dropout 0.5 - linear ``num_classes``, exactly as seed 002's Fig. 1, for
    ``image_size`` px images of ``in_channels`` (1 grey, 3 RGB). The figure's final softmax is the
    loss's and the metrics' (the network returns logits). Two scales, so two taps: 28 and 14 px.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 28):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"nielsen_cnn: image_size={image_size} must be a multiple of 4")
        self.image_size = image_size  # the size its dense head was built for (the taps' probe)
        self.conv1 = nn.Conv2d(in_channels, 32, 3, 1, 1)
        self.act1 = nn.SELU()
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(32, 64, 3, 1, 1)
        self.act2 = nn.SELU()
        self.pool2 = nn.MaxPool2d(2, 2)
        self.linear1 = nn.Linear(64 * (image_size // 4) ** 2, 128)
        self.act3 = nn.SELU()
        self.dropout = nn.Dropout(0.5)
        self.linear2 = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.act1(self.conv1(x)))
        x = self.pool2(self.act2(self.conv2(x)))
        x = self.act3(self.linear1(x.reshape(x.size(0), -1)))
        return self.linear2(self.dropout(x))
