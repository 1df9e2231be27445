"""LOVI, Layer Ordered Visualization of Information (paper Sec 2.3, Eq 4-7), vectorised in torch.

The r tap maps are squashed to [0, 1] (normal CDF per map, as Eq 3) and upsampled bilinearly to the
image size. At each pixel, with s the column of r values:

- hue (Eq 4-5): the centre of mass of the layer positions phi(k) = 1 - (k-1)/(r-1) (L1 -> 1,
  L_r -> 0) weighted by s, times 300 degrees: L1 violet (300), ..., the last layer red (0);
- saturation (Eq 6): ``1 - (sum(s) / (r max(s)) - nu) / (1 - nu)`` with nu = 1/r: 1 when a single
  layer is active, 0 when all are equal (the printed Eq 6 misplaces the parentheses; this is the
  form that has those limits, and the authors' ``draw.LOVI``);
- value (Eq 7): max(s).

HSV is then converted to RGB in the usual way. Pixels where every map is 0 are black.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from roarkar.saliency.combine import ordered_maps, squash_map, upsample

HUE_SPAN = 300.0


def layer_hues(r: int) -> Tensor:
    """Hue in degrees of each of ``r`` layers: phi(k) * 300 (Eq 4)."""
    if r < 2:
        raise ValueError(f"LOVI needs at least two maps, got {r}")
    k = torch.arange(1, r + 1, dtype=torch.float64)
    return (1.0 - (k - 1.0) / (r - 1.0)) * HUE_SPAN


def hsv_to_rgb(hue: Tensor, sat: Tensor, val: Tensor) -> Tensor:
    """HSV (hue in degrees, saturation and value in [0, 1]), each [...], to RGB [..., 3] in [0, 1]."""
    h = (hue % 360.0) / 60.0
    c = val * sat
    x = c * (1.0 - ((h % 2.0) - 1.0).abs())
    zero = torch.zeros_like(c)
    sector = h.floor().clamp(0, 5).long()
    # (r, g, b) per sector 0..5: (c,x,0) (x,c,0) (0,c,x) (0,x,c) (x,0,c) (c,0,x)
    table = torch.stack(
        [
            torch.stack([c, x, zero], -1),
            torch.stack([x, c, zero], -1),
            torch.stack([zero, c, x], -1),
            torch.stack([zero, x, c], -1),
            torch.stack([x, zero, c], -1),
            torch.stack([c, zero, x], -1),
        ],
        -2,
    )  # [..., 6, 3]
    rgb = table.gather(-2, sector[..., None, None].expand(*sector.shape, 1, 3))[..., 0, :]
    return (rgb + (val - c)[..., None]).clamp(0.0, 1.0)


def lovi_hsv(maps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hue (degrees), saturation and value [B, H, W] of stacked maps [B, r, H, W] in [0, 1] (Eq 5-7)."""
    r = maps.shape[1]
    phi = (layer_hues(r) / HUE_SPAN).to(maps).view(1, r, 1, 1)
    total = maps.sum(dim=1)
    peak = maps.amax(dim=1)
    active = total > 0
    safe_total = torch.where(active, total, torch.ones_like(total))
    safe_peak = torch.where(peak > 0, peak, torch.ones_like(peak))
    hue = torch.where(active, (maps * phi).sum(dim=1) / safe_total * HUE_SPAN, 0.0)
    nu = 1.0 / r
    sat = 1.0 - (total / (r * safe_peak) - nu) / (1.0 - nu)
    sat = torch.where(active, sat.clamp(0.0, 1.0), 0.0)
    return hue, sat, peak.clamp(0.0, 1.0)


def lovi(
    tap_maps: Mapping[str, Tensor] | Sequence[Tensor],
    size: tuple[int, int],
    squash: str = "normal",
) -> Tensor:
    """LOVI image [B, 3, H, W] (RGB in [0, 1]) of tap maps [B, h_k, w_k] ordered L1..L5.

    Each map is squashed per image with ``squash`` ("normal" = the normal CDF of Eq 3; "none" for
    maps already in [0, 1]), then upsampled bilinearly to ``size``.
    """
    maps = [upsample(squash_map(m, squash), tuple(size)) for m in ordered_maps(tap_maps)]
    stacked = torch.stack(maps, dim=1).float()
    hue, sat, val = lovi_hsv(stacked)
    return hsv_to_rgb(hue, sat, val).permute(0, 3, 1, 2).contiguous()


__all__ = ["HUE_SPAN", "hsv_to_rgb", "layer_hues", "lovi", "lovi_hsv"]
