"""Train-time augmentation on whole batches, on the batch's device.

Masking happens before augmentation (the augmentation sees the masked image, as in Hooker et al.),
so augmentation runs on the already masked, normalised batch rather than in the loader.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

AUGMENTATIONS = ("none", "flip", "crop_flip", "crop", "resized_crop_flip")


def _rand(shape, generator: torch.Generator, device) -> Tensor:
    return torch.rand(shape, generator=generator).to(device)


def random_flip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = _rand((x.shape[0],), generator, x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def random_crop(x: Tensor, generator: torch.Generator, padding: int) -> Tensor:
    """Pad by ``padding`` with zeros (the mean, on normalised images) and crop back per image."""
    b, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    offsets = (_rand((b, 2), generator, x.device) * (2 * padding + 1)).long()
    rows = offsets[:, 0, None] + torch.arange(h, device=x.device)
    cols = offsets[:, 1, None] + torch.arange(w, device=x.device)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_resized_crop(
    x: Tensor, generator: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> Tensor:
    """Inception-style crop of random area and aspect, resized back to the input size (batched)."""
    b, _, h, w = x.shape
    u = _rand((b, 4), generator, x.device)
    area = (scale[0] + (scale[1] - scale[0]) * u[:, 0]) * h * w
    log_r = torch.log(torch.tensor(ratio, device=x.device))
    aspect = torch.exp(log_r[0] + (log_r[1] - log_r[0]) * u[:, 1])
    cw = torch.sqrt(area * aspect).clamp(1, w)
    ch = torch.sqrt(area / aspect).clamp(1, h)
    x0 = u[:, 2] * (w - cw)
    y0 = u[:, 3] * (h - ch)
    boxes = torch.stack(
        [torch.arange(b, device=x.device, dtype=x.dtype), x0, y0, x0 + cw, y0 + ch], 1
    )
    from torchvision.ops import roi_align  # imported here: ~2 s of start-up otherwise

    return roi_align(
        x, boxes.to(x.dtype), output_size=(h, w), spatial_scale=1.0, sampling_ratio=2, aligned=True
    )


def augment(x: Tensor, kind: str, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Apply the named augmentation (see :data:`AUGMENTATIONS`)."""
    if kind == "none":
        return x
    if kind == "flip":
        return random_flip(x, generator)
    if kind == "crop":
        return random_crop(x, generator, padding)
    if kind == "crop_flip":
        return random_flip(random_crop(x, generator, padding), generator)
    if kind == "resized_crop_flip":
        return random_flip(random_resized_crop(x, generator), generator)
    raise ValueError(f"unknown augmentation {kind!r}: expected one of {', '.join(AUGMENTATIONS)}")
