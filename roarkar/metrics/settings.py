"""How the metrics without retraining are computed: :class:`Settings` (the ``perturbation`` config
block minus what to run on) and the names of the metrics, scores and pixel-count rules."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from roarkar import removal
from roarkar.config.schema import NOT_IDENTITY
from roarkar.removal import COUNTS, DEFAULT_BLUR_SIGMA, DEFAULT_NOISE, DEFAULT_TOL, SOLVERS

__all__ = ["BASE_METRICS", "COUNTS", "REPLACEMENTS", "ROAD_METRICS", "SCORES", "Settings"]

BASE_METRICS = ("aopc", "afoc_morf", "afoc_lerf", "n_morf", "n_lerf")
ROAD_METRICS = ("road_morf", "road_lerf")
SCORES = ("logit", "probability")
#: The metrics' replacements: every one of roarkar.removal's but ``zero`` (black), which needs the
#: dataset's pixel mean that the metrics do not take.
REPLACEMENTS = tuple(name for name in removal.REPLACEMENTS if name != "zero")


@dataclass(frozen=True)
class Settings:
    """How the metrics are computed (the ``perturbation`` config block minus what to run on)."""

    replacement: str = "mean"  # AOPC/AFOC/n_*: mean (dataset mean) | blur | linear (ROAD's)
    score: str = "logit"
    aopc_fraction: float = 0.1
    aopc_steps: int = 10
    afoc_fraction: float = 0.1
    decision_coarse: int = 10
    decision_fine: int = 10
    # ROAD: percent removed, MoRF and LeRF alike (ROAD's own LeRF percent is the percent kept)
    percents: tuple[float, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90)
    # ROAD's imputation noise, x the pixel range [0, 1] (std noise/std_c after normalisation), as
    # the reference; 0 for none
    noise: float = DEFAULT_NOISE
    blur_sigma: float = DEFAULT_BLUR_SIGMA
    # linear imputation: cg (batched, float64, tol solver_tol) | scipy (exact)
    solver: str = "cg"
    solver_tol: float = DEFAULT_TOL
    solver_max_iter: int | None = None
    # pixels per percent: round (round-half-up(p*H*W)) | floor (ROAD's and Quantus's int(p*H*W);
    # LeRF keeps ROAD's int((1-p)*H*W))
    count: str = "round"
    batch_size: int = field(default=256, metadata=NOT_IDENTITY)  # a speed knob

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
