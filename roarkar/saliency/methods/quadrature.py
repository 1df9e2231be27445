"""Quadrature rules for the path integral over [0, 1]: Riemann sums (right, left, middle), the
trapezoid rule and Gauss-Legendre."""

from __future__ import annotations

import numpy as np

__all__ = ["RULES", "quadrature"]

RULES = ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def quadrature(rule: str, steps: int) -> tuple[list[float], list[float]]:
    """Points ``alphas`` in [0, 1] and weights (summing to 1) of a rule for the integral over [0, 1].

    Riemann right (the default; Sundararajan et al.'s and Hooker et al.'s sum of k/m, k = 1..m), left,
    middle; trapezoid over ``steps`` equally spaced points including both ends (weights 1/(m-1), ends
    halved -- Captum's trapezoid uses 1/m, so its weights sum to (m-1)/m); Gauss-Legendre (Captum's
    default). Points are exact float64 values (Captum rounds its Riemann points to float32).
    """
    m = int(steps)
    if m < 1 or (rule == "riemann_trapezoid" and m < 2):
        raise ValueError(f"steps must be >= 1 (>= 2 for the trapezoid rule), got {steps!r}")
    if rule == "riemann_right":
        return [k / m for k in range(1, m + 1)], [1 / m] * m
    if rule == "riemann_left":
        return [k / m for k in range(m)], [1 / m] * m
    if rule == "riemann_middle":
        return [(k + 0.5) / m for k in range(m)], [1 / m] * m
    if rule == "riemann_trapezoid":
        weights = [1 / (m - 1)] * m
        weights[0] = weights[-1] = 0.5 / (m - 1)
        return [k / (m - 1) for k in range(m)], weights
    if rule == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(m)
        return (0.5 * (1 + x)).tolist(), (0.5 * w).tolist()
    raise ValueError(f"unknown integration rule {rule!r}: expected one of {', '.join(RULES)}")
