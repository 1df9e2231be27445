"""Difference (Eq 8) and Information (Eq 9) scores of Mundhenk et al. (paper 001).

Both compare a method's per-layer KAR accuracies ``kappa`` and ROAR accuracies ``rho`` with a
random-map baseline ``z`` of the same mode (separate random runs for KAR and ROAR)::

    D = sum_p (z_p - rho_p) + sum_q (kappa_q - z_q)                      (Eq 8)
    I = -sum_p rho_p log(rho_p / z_p) - sum_q z_q log(z_q / kappa_q)     (Eq 9)

Eq 9 is printed with log2, but the paper's Table 1 Information scores are reproduced by the
*natural* log (checked: every Table 1 Information cell follows from Table 4 within 0.01 with ln,
while log2 inflates them by 1/ln 2 ~ 1.44, e.g. SMOE Scale on ImageNet 1.13 vs 1.63). So the
default base is e; base 2 is available, and :func:`log_base_label` names the base for outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import rel_entr

__all__ = [
    "DEFAULT_LOG_BASE",
    "LOG_BASES",
    "difference",
    "eq8",
    "eq9",
    "information",
    "log_base_label",
    "parse_log_base",
    "validate_accuracies",
]

#: Log base that reproduces the published Table 1 (natural log; Eq 9 as printed says log2).
DEFAULT_LOG_BASE: float = math.e

#: Command-line spellings of the supported bases.
LOG_BASES: dict[str, float] = {"e": math.e, "ln": math.e, "2": 2.0, "log2": 2.0}

ArrayLike = Sequence[float] | np.ndarray


def parse_log_base(text: str | float) -> float:
    """Turn ``"e"``/``"ln"``/``"2"``/``"log2"`` (or a number > 1) into a float base."""
    if isinstance(text, int | float):
        base = float(text)
    else:
        key = str(text).strip().lower()
        if key in LOG_BASES:
            return LOG_BASES[key]
        try:
            base = float(key)
        except ValueError:
            raise ValueError(f"log base must be 'e' or '2'; got {text!r}") from None
    if not (base > 0 and base != 1 and math.isfinite(base)):
        raise ValueError(f"log base must be positive, finite and not 1; got {text!r}")
    return base


def log_base_label(base: float) -> str:
    """Human-readable name of a log base, for table notes ("natural log (ln)", "log2")."""
    if math.isclose(base, math.e):
        return "natural log (ln)"
    if math.isclose(base, 2.0):
        return "log2"
    return f"log base {base:g}"


def validate_accuracies(values: ArrayLike, name: str = "accuracy") -> np.ndarray:
    """Return ``values`` as a 1-D float array, or raise ValueError if any is outside [0, 1].

    Accuracies are fractions; a value in (1, 100] is almost certainly a percent, which the
    message says, because Eq 9 silently gives nonsense on percents.
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of accuracies; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one accuracy; got none")
    for i, v in enumerate(arr):
        if not math.isfinite(v):
            raise ValueError(f"{name}[{i}]: accuracy must be finite; got {v:g}")
        if v < 0.0 or v > 1.0:
            hint = " — percent? divide by 100" if 1.0 < v <= 100.0 else ""
            raise ValueError(f"{name}[{i}]: accuracy must be in [0, 1]; got {v:g}{hint}")
    return arr


def _aligned(
    kar: ArrayLike, roar: ArrayLike, random_kar: ArrayLike, random_roar: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate the four inputs (range and equal lengths, aligned by layer or percent)."""
    arrays = (
        validate_accuracies(kar, "kar"),
        validate_accuracies(roar, "roar"),
        validate_accuracies(random_kar, "random_kar"),
        validate_accuracies(random_roar, "random_roar"),
    )
    lengths = [a.size for a in arrays]
    if len(set(lengths)) != 1:
        raise ValueError(
            "kar, roar, random_kar, random_roar must have the same length (aligned by layer or "
            f"percent); got {lengths[0]}, {lengths[1]}, {lengths[2]}, {lengths[3]}"
        )
    return arrays


def difference(
    kar: ArrayLike, roar: ArrayLike, random_kar: ArrayLike, random_roar: ArrayLike
) -> float:
    """Difference score, Eq 8: ``sum(z_roar - rho) + sum(kappa - z_kar)``; higher is better."""
    k, r, zk, zr = _aligned(kar, roar, random_kar, random_roar)
    return float(eq8(k, r, zk, zr))


def information(
    kar: ArrayLike,
    roar: ArrayLike,
    random_kar: ArrayLike,
    random_roar: ArrayLike,
    base: float = DEFAULT_LOG_BASE,
) -> float:
    """Information score, Eq 9, in the given log base (default e, which reproduces Table 1).

    ``-sum rho log(rho / z_roar) - sum z_kar log(z_kar / kappa)``; a zero ROAR accuracy
    contributes 0 (the limit of x log x), a zero KAR accuracy against a non-zero baseline
    gives ``-inf``.
    """
    k, r, zk, zr = _aligned(kar, roar, random_kar, random_roar)
    return float(eq9(k, r, zk, zr, parse_log_base(base)))


def eq8(kar, roar, random_kar, random_roar, axis: int | None = None):
    """Eq 8 on arrays, summed over ``axis`` (None: all): the one place it is written; Table 1, its
    seed intervals and the prior layer weights all call it."""
    return np.sum(random_roar - roar, axis=axis) + np.sum(kar - random_kar, axis=axis)


def eq9(kar, roar, random_kar, random_roar, base: float, axis: int | None = None):
    """Eq 9 on arrays in log ``base``, summed over ``axis`` (None: all); 0 log 0 = 0, and a zero
    KAR accuracy against a non-zero baseline gives -inf (see :func:`information`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        nats = np.sum(rel_entr(roar, random_roar), axis=axis) + np.sum(
            rel_entr(random_kar, kar), axis=axis
        )
    return -nats / math.log(base)
