"""Pixel-removal metrics without retraining (paper 003, Grabska-Barwinska et al. 2021) and ROAD.

Per image ``x`` with predicted class ``c = argmax f(x)`` and a saliency map ranked per *pixel*
(``ranks [N, H, W]``, 0 = most salient, ties already broken at random; see
:func:`roarkar.masking.saliency_ranks`), ``x^(k)`` is ``x`` with ``k`` pixels removed in every channel:
the ``k`` most salient (MoRF) or the ``k`` least salient (LeRF).

- ``aopc`` (Eq 10, Samek et al.): ``1/(P+1) sum_{k=0..P} f_c(x) - f_c(x^(k)_MoRF)`` with ``P`` =
  ``aopc_fraction`` (10 %) of the pixels. ``aopc_steps`` evaluates ``k`` on an even grid of that many
  steps from 0 to P (``aopc_steps >= P`` is Eq 10 exactly, one pixel per step).
- ``afoc_morf`` / ``afoc_lerf`` (Eq 11, Srinivas & Fleuret): ``|f_c(x) - f_c(x^(k))| / |f_c(x)|`` at
  ``k`` = ``afoc_fraction`` (10 %) of the pixels, removed MoRF or LeRF.
- ``n_morf`` / ``n_lerf`` (Sec 4.2): the fraction of pixels removed when the decision first changes
  (``argmax f(x^(k)) != c``); 1.0 when it never changes. Searched on a coarse grid of
  ``decision_coarse`` steps, then refined inside the first coarse interval where the decision
  changed with ``decision_fine`` steps (resolution 1 / (coarse x fine) = 1 % by default); a flip that
  reverts inside an earlier coarse interval is not seen.
- ``road_morf`` / ``road_lerf`` (Rong et al. 2022): removal at ``percents`` (10..90 %) with noisy
  linear imputation whatever ``replacement`` says, its noise ``noise`` x the pixel range as the
  reference (:mod:`roarkar.metrics.imputation`; pass the dataset's ``pixel_std``); per image the
  mean over the percents of the softmax probability of ``c`` (the per-image analogue of ROAD's
  curve of the mean probability of the original prediction; the curves themselves are returned
  too). **Percent axis:** roarkar's percent is the percent *removed* for MoRF and LeRF alike;
  ROAD's LeRF percent is the percent *kept*, so roarkar's LeRF at p is ROAD's LeRF at 100 - p.

**Pixel counts** (``count``): a fraction ``p`` of the ``H*W`` pixels removes
``round(p * H * W)`` pixels, halves rounded up (``round``, the default, as roarkar's ROAR/KAR
masks) or, with ``floor``, ROAD's and Quantus's ``int(p * H * W)`` for MoRF and, for LeRF, every
pixel but ROAD's ``int((1 - p) * H * W)`` kept most salient ones. The rule applies to every count
of every metric here.

``f_c`` is the logit of ``c`` (paper 003's class score) or, with ``score=probability``, its softmax
probability. Every perturbed image of a batch of images x removal steps goes through the model in
one forward pass; nothing loops over pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from roarkar.masking import count_for
from roarkar.metrics.imputation import DEFAULT_TOL, REPLACEMENTS, SOLVERS, blur, replace

__all__ = [
    "BASE_METRICS",
    "COUNTS",
    "ORDERS",
    "ROAD_METRICS",
    "Settings",
    "delta_metrics",
    "perturbation_metrics",
    "removal_mask",
    "removed_count",
    "scores_after_removal",
]

ORDERS = ("morf", "lerf")
BASE_METRICS = ("aopc", "afoc_morf", "afoc_lerf", "n_morf", "n_lerf")
ROAD_METRICS = ("road_morf", "road_lerf")
SCORES = ("logit", "probability")
COUNTS = ("round", "floor")


@dataclass(frozen=True)
class Settings:
    """How the metrics are computed (the ``perturbation`` config block minus what to run on)."""

    replacement: str = "mean"
    score: str = "logit"
    aopc_fraction: float = 0.1
    aopc_steps: int = 10
    afoc_fraction: float = 0.1
    decision_coarse: int = 10
    decision_fine: int = 10
    percents: tuple[float, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90)
    noise: float = 0.01
    blur_sigma: float = 2.0
    solver: str = "cg"
    solver_tol: float = DEFAULT_TOL
    solver_max_iter: int | None = None
    count: str = "round"
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.replacement not in REPLACEMENTS:
            raise ValueError(
                f"replacement={self.replacement!r}: expected one of {', '.join(REPLACEMENTS)}"
            )
        if self.score not in SCORES:
            raise ValueError(f"score={self.score!r}: expected one of {', '.join(SCORES)}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver={self.solver!r}: expected one of {', '.join(SOLVERS)}")
        if self.count not in COUNTS:
            raise ValueError(
                f"count={self.count!r}: expected one of {', '.join(COUNTS)} "
                "(round: round-half-up(p*H*W); floor: ROAD's and Quantus's int(p*H*W))"
            )
        if not (math.isfinite(float(self.noise)) and float(self.noise) >= 0):
            raise ValueError(f"noise must be a finite number >= 0; got {self.noise!r}")
        if not float(self.solver_tol) > 0:
            raise ValueError(f"solver_tol must be positive; got {self.solver_tol!r}")
        if self.solver_max_iter is not None and int(self.solver_max_iter) < 1:
            raise ValueError(
                f"solver_max_iter must be a positive integer or null; got {self.solver_max_iter!r}"
            )
        for name in ("aopc_fraction", "afoc_fraction"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1]; got {value!r}")
        for name in ("aopc_steps", "decision_coarse", "decision_fine", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}")
        for p in self.percents:
            if not 0.0 < float(p) < 100.0:
                raise ValueError(f"percents must be in (0, 100); got {p!r}")


def removed_count(fraction: float, hw: int, order: str, rule: str = "round") -> int:
    """Pixels removed when a fraction ``fraction`` of the ``hw`` pixels is removed in ``order``.

    ``round``: ``round(fraction * hw)``, halves up, either order. ``floor`` (ROAD, Quantus): MoRF
    removes ``int(fraction * hw)``; LeRF keeps ROAD's ``int((1 - fraction) * hw)`` most salient pixels
    and removes the rest. Products are rounded to 9 decimals before the floor, so float noise in
    ``fraction`` (0.29 * 100 = 28.999...) does not cost a pixel.
    """
    f = float(fraction)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]; got {fraction!r}")
    if order not in ORDERS:
        raise ValueError(f"order={order!r}: expected one of {', '.join(ORDERS)}")
    if rule == "round":
        return count_for(f, hw)
    if rule != "floor":
        raise ValueError(f"count={rule!r}: expected one of {', '.join(COUNTS)}")
    if order == "morf":
        return math.floor(round(f * hw, 9))
    return hw - math.floor(round((1.0 - f) * hw, 9))


def removal_mask(ranks: Tensor, counts: Tensor, order: str) -> Tensor:
    """Pixels removed ``[R, S, H, W]`` for per-row counts ``[R, S]`` (or ``[S]``) of ranks ``[R, H, W]``.

    MoRF removes the ``k`` pixels of rank ``< k``; LeRF the ``k`` of rank ``>= H*W - k``.
    """
    if ranks.dim() != 3:
        raise ValueError(
            f"ranks must be per pixel [N, H, W]; got shape {tuple(ranks.shape)} "
            "(rank what you mask: H x W pixels, never C x H x W)"
        )
    hw = ranks.shape[1] * ranks.shape[2]
    counts = counts.to(ranks.device)
    if counts.dim() == 1:
        counts = counts.expand(ranks.shape[0], -1)
    k = counts[:, :, None, None]
    r = ranks[:, None]
    if order == "morf":
        return r < k
    if order == "lerf":
        return r >= hw - k
    raise ValueError(f"order={order!r}: expected one of {', '.join(ORDERS)}")


def _forward(model: nn.Module, x: Tensor, targets: Tensor, score: str) -> tuple[Tensor, ...]:
    logits = model(x).float()
    prob = logits.softmax(dim=1).gather(1, targets[:, None])[:, 0]
    value = logits.gather(1, targets[:, None])[:, 0] if score == "logit" else prob
    return value, prob, logits.argmax(dim=1)


@torch.inference_mode()
def scores_after_removal(
    model: nn.Module,
    images: Tensor,
    ranks: Tensor,
    targets: Tensor,
    counts: Tensor,
    order: str,
    settings: Settings,
    *,
    replacement: str | None = None,
    generator: torch.Generator | None = None,
    pixel_std: Sequence[float] | Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Score of each row's target, its probability and the decision after removing ``counts``.

    ``images [R, C, H, W]`` (normalised with the per-channel ``pixel_std``, which scales the
    imputation noise; None: images on the [0, 1] scale), ``ranks [R, H, W]``, ``targets [R]``,
    ``counts [R, S]`` or ``[S]``; returns three ``[R, S]`` tensors. Rows x steps go through the
    model in chunks of at most ``settings.batch_size`` perturbed images.
    """
    kind = replacement or settings.replacement
    rows, steps = images.shape[0], counts.shape[-1]
    device = images.device
    if counts.dim() == 1:
        counts = counts.expand(rows, -1)
    out = [torch.empty(rows, steps, device=device) for _ in range(2)]
    pred = torch.empty(rows, steps, dtype=torch.long, device=device)
    per_chunk = max(1, settings.batch_size // max(steps, 1))
    c, h, w = images.shape[1:]
    for start in range(0, rows, per_chunk):
        sl = slice(start, start + per_chunk)
        x = images[sl]
        n = x.shape[0]
        removed = removal_mask(ranks[sl], counts[sl], order).reshape(n * steps, h, w)
        xs = x[:, None].expand(n, steps, c, h, w).reshape(n * steps, c, h, w)
        blurred = None
        if kind == "blur":
            blurred = blur(x, settings.blur_sigma)[:, None].expand(n, steps, c, h, w)
            blurred = blurred.reshape(n * steps, c, h, w)
        perturbed = replace(
            xs,
            removed,
            kind,
            blurred=blurred,
            noise=settings.noise,
            pixel_std=pixel_std,
            generator=generator,
            solver=settings.solver,
            tol=settings.solver_tol,
            max_iter=settings.solver_max_iter,
        )
        value, prob, decision = _forward(
            model, perturbed, targets[sl].repeat_interleave(steps), settings.score
        )
        out[0][sl] = value.view(n, steps)
        out[1][sl] = prob.view(n, steps)
        pred[sl] = decision.view(n, steps)
    return out[0], out[1], pred


def _first_true(flags: Tensor) -> tuple[Tensor, Tensor]:
    """Index of the first True per row and whether there is one."""
    any_ = flags.any(dim=1)
    return flags.int().argmax(dim=1), any_


def _decision_fraction(
    model: nn.Module,
    images: Tensor,
    ranks: Tensor,
    targets: Tensor,
    coarse_pred: Tensor,
    order: str,
    settings: Settings,
    generator: torch.Generator | None,
    pixel_std: Sequence[float] | Tensor | None,
) -> Tensor:
    """Fraction of pixels removed when the decision first changes (1.0 if it never does)."""
    hw = ranks.shape[1] * ranks.shape[2]
    coarse, fine = int(settings.decision_coarse), int(settings.decision_fine)
    j, flipped = _first_true(coarse_pred != targets[:, None])
    coarse_counts = _counts(
        [(i + 1) / coarse for i in range(coarse)], hw, images.device, order, settings.count
    )
    result = torch.ones(images.shape[0], device=images.device)
    result[flipped] = coarse_counts[j[flipped]].float() / hw
    rows = flipped.nonzero()[:, 0]
    if fine > 1 and rows.numel():
        numer = j[rows, None] * fine + torch.arange(1, fine, device=images.device)[None]
        counts = torch.tensor(
            [
                [removed_count(v / (coarse * fine), hw, order, settings.count) for v in row]
                for row in numer.tolist()
            ],
            dtype=torch.long,
            device=images.device,
        )
        _, _, pred = scores_after_removal(
            model,
            images[rows],
            ranks[rows],
            targets[rows],
            counts,
            order,
            settings,
            generator=generator,
            pixel_std=pixel_std,
        )
        i, found = _first_true(pred != targets[rows, None])
        refined = counts.gather(1, i[:, None])[:, 0].float() / hw
        result[rows] = torch.where(found, refined, result[rows])
    return result


def _counts(fractions: Sequence[float], hw: int, device, order: str, rule: str) -> Tensor:
    """Pixels removed at each fraction (clipped to [0, 1]), by :func:`removed_count`."""
    return torch.tensor(
        [removed_count(min(max(f, 0.0), 1.0), hw, order, rule) for f in fractions],
        dtype=torch.long,
        device=device,
    )


@torch.inference_mode()
def perturbation_metrics(
    model: nn.Module,
    images: Tensor,
    ranks: Tensor,
    targets: Tensor,
    settings: Settings,
    *,
    road: bool = True,
    generator: torch.Generator | None = None,
    pixel_std: Sequence[float] | Tensor | None = None,
) -> dict[str, Tensor]:
    """Every metric per row: ``aopc, afoc_morf, afoc_lerf, n_morf, n_lerf`` (and ``road_morf,
    road_lerf`` with their curves ``road_morf_curve`` / ``road_morf_pred`` ``[R, len(percents)]``
    when ``road``). ``targets`` must be the unperturbed decision ``c`` of each row's image;
    ``pixel_std`` the per-channel std the images were normalised with (the dataset's, 0..1 scale),
    which puts the imputation noise on ROAD's pixel scale (None: images on the [0, 1] scale)."""
    if ranks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(
            f"ranks must be per pixel [N, H, W] = {(images.shape[0], *images.shape[2:])}; "
            f"got {tuple(ranks.shape)} (rank what you mask: H x W pixels, never C x H x W)"
        )
    model.eval()
    device = images.device
    ranks = ranks.to(device)
    targets = targets.to(device)
    hw = ranks.shape[1] * ranks.shape[2]
    f0, _, _ = _forward(model, images, targets, settings.score)
    denominator = f0.abs().clamp_min(1e-12)
    out: dict[str, Tensor] = {}

    # MoRF: AOPC grid, AFOC, coarse decision grid -- one pass over their union.
    rule = settings.count
    p = removed_count(settings.aopc_fraction, hw, "morf", rule)
    steps = min(int(settings.aopc_steps), p) if p else 0
    aopc_k = [round(i * p / steps) for i in range(steps + 1)] if steps else [0]
    afoc_k = removed_count(settings.afoc_fraction, hw, "morf", rule)
    coarse = int(settings.decision_coarse)
    grid = [(i + 1) / coarse for i in range(coarse)]
    coarse_k = _counts(grid, hw, device, "morf", rule).tolist()
    morf_k = sorted({k for k in (*aopc_k, afoc_k, *coarse_k) if k > 0})
    col = {k: i for i, k in enumerate(morf_k)}
    value, _, pred = scores_after_removal(
        model,
        images,
        ranks,
        targets,
        torch.tensor(morf_k, device=device),
        "morf",
        settings,
        generator=generator,
        pixel_std=pixel_std,
    )

    def at(k: int, value: Tensor, col: dict[int, int]) -> Tensor:
        return f0 if k == 0 else value[:, col[k]]

    out["aopc"] = torch.stack([f0 - at(k, value, col) for k in aopc_k], dim=1).mean(dim=1)
    out["afoc_morf"] = (f0 - at(afoc_k, value, col)).abs() / denominator
    out["n_morf"] = _decision_fraction(
        model,
        images,
        ranks,
        targets,
        _coarse(pred, col, coarse_k, targets),
        "morf",
        settings,
        generator,
        pixel_std,
    )

    # LeRF: AFOC and the coarse decision grid.
    afoc_k = removed_count(settings.afoc_fraction, hw, "lerf", rule)
    coarse_k = _counts(grid, hw, device, "lerf", rule).tolist()
    lerf_k = sorted({k for k in (afoc_k, *coarse_k) if k > 0})
    col = {k: i for i, k in enumerate(lerf_k)}
    value, _, pred = scores_after_removal(
        model,
        images,
        ranks,
        targets,
        torch.tensor(lerf_k, device=device),
        "lerf",
        settings,
        generator=generator,
        pixel_std=pixel_std,
    )
    out["afoc_lerf"] = (f0 - at(afoc_k, value, col)).abs() / denominator
    out["n_lerf"] = _decision_fraction(
        model,
        images,
        ranks,
        targets,
        _coarse(pred, col, coarse_k, targets),
        "lerf",
        settings,
        generator,
        pixel_std,
    )

    if road:
        fractions = [float(q) / 100 for q in settings.percents]
        for order in ORDERS:
            _, prob, pred = scores_after_removal(
                model,
                images,
                ranks,
                targets,
                _counts(fractions, hw, device, order, rule),
                order,
                settings,
                replacement="linear",
                generator=generator,
                pixel_std=pixel_std,
            )
            out[f"road_{order}"] = prob.mean(dim=1)
            out[f"road_{order}_curve"] = prob
            out[f"road_{order}_pred"] = pred
    return out


def _coarse(pred: Tensor, col: dict[int, int], coarse_k: list[int], targets: Tensor) -> Tensor:
    """Decisions at the coarse counts; a step that removes no pixel keeps the decision ``c``."""
    return torch.stack([targets if k == 0 else pred[:, col[k]] for k in coarse_k], dim=1)


def delta_metrics(own: dict[str, Tensor], others: dict[str, Tensor], k: int) -> dict[str, Tensor]:
    """Eq 9: ``delta_m(x) = m(x, s(x)) - 1/K sum_k m(x, s(xi_k))`` for every per-row metric ``m``.

    ``others`` holds rows ordered image-major (image 0's K partners first).
    """
    out = {}
    for name, value in own.items():
        if name in others and value.dim() == 1:
            out[f"delta_{name}"] = value - others[name].view(-1, k).mean(dim=1)
    return out


def partners(n: int, k: int, generator: torch.Generator) -> Tensor:
    """``[n, k]`` indices of ``k`` other images per image, drawn uniformly without replacement
    among the other ``n - 1`` (with replacement when ``k > n - 1``)."""
    if n < 2:
        raise ValueError("the Delta metrics need at least 2 images")
    if k <= n - 1:
        scores = torch.rand(n, n, generator=generator)
        scores.fill_diagonal_(math.inf)
        return scores.argsort(dim=1)[:, :k]
    draw = torch.randint(0, n - 1, (n, k), generator=generator)
    return draw + (draw >= torch.arange(n)[:, None]).long()
