"""Seeds of the stochastic wrappers: per-image seeds that depend on neither the batch nor its
chunking, a splitmix64 mixer that derives a nested call's seed, and seeded standard-normal draws."""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

__all__ = ["image_seeds", "mix_seed", "seeded_randn"]

_MASK63 = (1 << 63) - 1
_MASK64 = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64 chain): distinct inputs give unrelated seeds."""
    h = 0
    for v in values:
        h = _splitmix(h ^ (v & _MASK64))
    return h & _MASK63


def image_seeds(images: Tensor, generator: torch.Generator | None) -> list[int]:
    """One seed per image from the generator's state (left unchanged) and the image's bytes."""
    if generator is not None:
        state = generator.get_state().cpu().numpy().tobytes()
    else:
        state = int(torch.randint(0, 2**62, (1,))).to_bytes(8, "little")
    raw = images.detach().cpu().contiguous()
    prefix = hashlib.blake2b(state, digest_size=8)
    prefix.update(str(raw.dtype).encode())
    seeds = []
    for image in raw:
        h = prefix.copy()
        h.update(image.flatten().view(torch.uint8).numpy())  # the buffer itself, no bytes copy
        seeds.append(int.from_bytes(h.digest(), "little") & _MASK63)
    return seeds


def seeded_randn(shape: tuple[int, ...], seed: int, like: Tensor) -> Tensor:
    """Standard normal noise of ``shape`` from its own generator seeded with ``seed``, on the
    device and in the dtype of ``like``."""
    gen = torch.Generator(device=like.device).manual_seed(seed)
    return torch.randn(shape, generator=gen, device=like.device, dtype=like.dtype)
