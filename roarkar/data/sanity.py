"""Learnability probe for the synthetic datasets: a tiny conv net trained for a few seconds.

``python -m roarkar.data.sanity [--epochs 4] [--n-train 1200] [--n-val 400]`` prints, for each
generator, the probe's validation accuracy next to chance. It exists to catch a generator whose
signal is too weak (or leaks) before hours of ROAR/KAR retraining are spent on it.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from roarkar.data.synthetic import GENERATORS, class_names, generate


class _MeanMaxPool(nn.Module):
    """Global mean and max pooling side by side (mean counts cars, max finds one object)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1)


def tiny_convnet(num_classes: int, width: int = 24) -> nn.Module:
    """Three 3x3 conv layers (two strided) + global mean|max pool + linear: ~35k parameters."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        _MeanMaxPool(),
        nn.Linear(4 * width, num_classes),
    )


def probe(
    generator: str,
    *,
    n_train: int = 1200,
    n_val: int = 400,
    image_size: int = 32,
    epochs: int = 4,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 3e-3,
    **params: object,
) -> dict[str, float]:
    """Train ``tiny_convnet`` on ``generator``'s train split, return val accuracy, chance, seconds."""
    t0 = time.time()
    torch.manual_seed(seed)
    xtr, ytr, _ = generate(generator, "train", n_train, image_size, seed, **params)
    xva, yva, _ = generate(generator, "val", n_val, image_size, seed, **params)
    mean = xtr.float().mean((0, 2, 3), keepdim=True) / 255
    std = xtr.float().std((0, 2, 3), keepdim=True) / 255

    def prep(x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255 - mean) / std

    xtr, xva = prep(xtr), prep(xva)
    k = len(class_names(generator, **params))
    model = tiny_convnet(k)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((n_train + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n_train, generator=gen)
        for i in range(0, n_train, batch_size):
            idx = perm[i : i + batch_size]
            loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xva).argmax(1) == yva).float().mean().item()
    chance = torch.bincount(yva, minlength=k).max().item() / max(1, n_val)
    return {"accuracy": acc, "chance": chance, "seconds": time.time() - t0}


def main(argv: list[str] | None = None) -> None:
    """Print the probe accuracy for every synthetic generator."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--n-train", type=int, default=1200)
    ap.add_argument("--n-val", type=int, default=400)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("generators", nargs="*", default=sorted(GENERATORS))
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for g in args.generators:
        r = probe(
            g,
            n_train=args.n_train,
            n_val=args.n_val,
            image_size=args.image_size,
            epochs=args.epochs,
            seed=args.seed,
        )
        print(
            f"{g:14s} val accuracy {r['accuracy']:.3f}  chance (majority) {r['chance']:.3f}  "
            f"({r['seconds']:.1f} s, {args.epochs} epochs, {args.n_train} train images)"
        )


if __name__ == "__main__":
    main()
