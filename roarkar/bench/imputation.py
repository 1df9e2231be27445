"""ROAD's noisy linear imputation: the default solver (batched CG, float64, tol 1e-6) beside the
exact one (scipy's sparse direct solve), side by side on the same images and masks.

One image at ``sz.big_size`` px (224 in the quick and full runs), a smooth saliency map (one
Gaussian bump off centre: the largest holes), removed at ROAD's nine percents 10..90, MoRF and LeRF:
18 perturbed images per call, as ``perturbation_metrics`` hands them to the imputation.
"""

from __future__ import annotations

import torch

from roarkar.bench.table import config_str, per_image, row
from roarkar.bench.timing import Task, interleave, paired_ratio
from roarkar.bench.workload import Sizes
from roarkar.removal import (
    DEFAULT_TOL,
    ORDERS,
    cg_solve,
    linear_impute,
    removal_mask,
    removed_count,
    saliency_ranks,
)

PERCENTS = tuple(range(10, 100, 10))


def workload(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images [18, 3, size, size], removed [18, size, size])``: one normalised image of uniform
    pixels, MoRF then LeRF at 10..90 % of a smooth map's pixels."""
    g = torch.Generator().manual_seed(0)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    image = (torch.rand(1, 3, size, size, generator=g) - mean) / std
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = size / 224
    bump = torch.exp(-((yy - 90 * c) ** 2 + (xx - 120 * c) ** 2) / (2 * (50 * c) ** 2))
    ranks = saliency_ranks(bump[None].float(), g)
    hw = size * size
    masks = []
    for order in ORDERS:
        counts = torch.tensor([removed_count(p / 100, hw, order) for p in PERCENTS])
        masks.append(removal_mask(ranks, counts, order)[0])
    removed = torch.cat(masks)
    return image.expand(len(removed), -1, -1, -1).contiguous(), removed


def run_imputation(sz: Sizes) -> list[dict]:
    """Rows: ms per perturbed image of each solver, their ratio, and the default's error."""
    size = int(sz.big_size)
    images, removed = workload(size)
    n = images.shape[0]
    tasks = [
        Task("cg", lambda: linear_impute(images, removed, noise=0.0), budget_s=sz.budget_s),
        Task(
            "scipy",
            lambda: linear_impute(images, removed, noise=0.0, solver="scipy"),
            budget_s=sz.budget_s,
        ),
    ]
    samples = interleave(tasks, sz.repeats, "cpu")
    exact = linear_impute(images, removed, noise=0.0, solver="scipy").double()
    solved, iterations, _ = cg_solve(images, removed, DEFAULT_TOL, None)
    error = float(((solved.float().double() - exact) * removed[:, None]).abs().max())
    config = config_str(size=size, images=n, percents="10..90", orders="morf+lerf", map="smooth")
    rows = [
        per_image(
            "imputation",
            f"ROAD imputation, default solver (CG, float64, tol {DEFAULT_TOL:g})",
            config,
            samples["cg"],
            n,
            notes=f"largest error against the exact solve {error:.1e} (normalised units); "
            f"at most {iterations} iterations",
        ),
        per_image(
            "imputation",
            "ROAD imputation, exact solver (scipy spsolve, ROAD's own)",
            config,
            samples["scipy"],
            n,
        ),
    ]
    ratio = paired_ratio(samples["cg"], samples["scipy"])
    rows.append(
        row(
            "imputation",
            "ROAD imputation: default (CG) / exact (scipy) time",
            config,
            ratio,
            "x",
            ratio=ratio,
            repeats=min(samples["cg"].n, samples["scipy"].n),
            notes="below 1: CG is faster; CG also runs batched on a GPU, scipy only on the CPU",
        )
    )
    return rows
