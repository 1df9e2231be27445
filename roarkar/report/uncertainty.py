"""Several seeds: what every table does with them (one computation, one seed the simple case).

A table is computed from the seed means of its cells. Asked for the spread (``seeds=Seeds(...)``):

* Tables 4 and 5 (accuracies) add per cell the sample standard deviation over seeds (``std``, in
  percent points, NaN for one seed) and the number of seeds ``n`` (:func:`with_std`); Best/Worst
  rows of Table 4 carry no ``std``/``n`` (NaN): they pick a method per column.
* Tables 1 and 2 (scores) add per score ``<score>_std`` and ``n``: the sample standard deviation of
  the score computed seed by seed over the ``n`` seeds that *every* cell the score uses has
  (paired by seed: seed ``s`` of the method with seed ``s`` of the random baseline; NaN when
  ``n < 2``), and ``<score>_ci_low`` / ``<score>_ci_high``: a percentile bootstrap CI over seeds
  (default 95 %, 2000 resamples, RNG seed 0, so the numbers are reproducible). One resample
  draws, with replacement, as many seeds as were run; each cell's accuracy becomes the mean of
  its accuracies at the drawn seeds, and the score is recomputed from those means. When every
  cell has the same seeds the draw is shared by all cells (paired, keeping whatever a seed shares
  across cells, e.g. its base model); otherwise every cell resamples its own seeds
  independently. ``AVG`` rows average the per-dataset scores within each resample.

**One seed:** the CI of a score whose cells all have a single seed is NaN, not the point value:
a bootstrap over one seed has no spread, and a zero-width interval would claim a certainty the
data cannot give. Its ``std`` is NaN too and ``n`` is 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from roarkar.report.aggregate import summarize_seeds
from roarkar.report.long import CELL_COLUMNS

__all__ = [
    "DEFAULT_CI_SEED",
    "DEFAULT_N_BOOT",
    "SeedMatrix",
    "Seeds",
    "attach_intervals",
    "has_several_seeds",
    "score_samples",
    "seed_matrix",
    "with_std",
]

DEFAULT_N_BOOT = 2000
DEFAULT_CI_SEED = 0

#: Scores of every table row (its key) from a resamples-or-seeds x cells accuracy matrix.
Scorer = Callable[[np.ndarray], dict[tuple, dict[str, np.ndarray]]]


@dataclass(frozen=True)
class Seeds:
    """Ask a table for its spread over seeds: ``n_boot`` bootstrap resamples with RNG seed
    ``ci_seed``, percentile CIs at ``level`` (Tables 1, 2; Tables 4, 5 add std and n only)."""

    n_boot: int = DEFAULT_N_BOOT
    ci_seed: int = DEFAULT_CI_SEED
    level: float = 0.95

    def attrs(self) -> dict[str, float]:
        """What a table with intervals records in its ``attrs`` (its notes say them)."""
        return {"n_boot": self.n_boot, "ci_seed": self.ci_seed, "ci_level": self.level}


def has_several_seeds(df: pd.DataFrame) -> bool:
    """True when some cell of the long table has more than one seed."""
    return bool((summarize_seeds(df)["n"] > 1).any())


@dataclass(frozen=True)
class SeedMatrix:
    """A table's cells and their accuracies seed by seed.

    ``cells``: :func:`summarize_seeds` of the rows (first-appearance order; ``mean``, ``std``,
    ``n``); ``acc``: cells x seeds in that order, NaN where a cell lacks a seed; ``draw``: the
    order (the seed pivot's, lexicographic by first-appearance codes) in which cells with
    different seeds resample their own, which fixes the RNG stream and so the CIs.
    """

    cells: pd.DataFrame
    acc: np.ndarray
    draw: np.ndarray


def seed_matrix(d: pd.DataFrame) -> SeedMatrix:
    """The :class:`SeedMatrix` of the long rows ``d``."""
    cells = summarize_seeds(d)
    wide = d.pivot_table(
        index=list(CELL_COLUMNS), columns="seed", values="accuracy", aggfunc="mean", sort=False
    )
    draw = pd.MultiIndex.from_frame(cells[list(CELL_COLUMNS)]).get_indexer(wide.index)
    acc = np.full(wide.shape, np.nan)
    acc[draw] = wide.to_numpy(dtype=float)
    return SeedMatrix(cells, acc, draw)


def _resample(m: SeedMatrix, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` x cells matrix of bootstrap means over seeds (see the module docstring)."""
    acc = m.acc
    n_cells, n_seeds = acc.shape
    if np.isfinite(acc).all():
        counts = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot)
        return counts @ acc.T / n_seeds
    out = np.empty((n_boot, n_cells))
    for c in m.draw:
        vals = acc[c][np.isfinite(acc[c])]
        idx = rng.integers(0, vals.size, size=(n_boot, vals.size))
        out[:, c] = vals[idx].mean(axis=1)
    return out


def score_samples(m: SeedMatrix, scores: Scorer, seeds: Seeds) -> tuple[dict, dict]:
    """A table's scores seed by seed and over the bootstrap resamples of ``m``'s cells."""
    boot = _resample(m, seeds.n_boot, np.random.default_rng(seeds.ci_seed))
    return scores(m.acc.T), scores(boot)


def _ci(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def attach_intervals(
    point: pd.DataFrame,
    keys: list[str],
    values: list[str],
    samples: tuple[dict[tuple, dict[str, np.ndarray]], dict[tuple, dict[str, np.ndarray]]],
    multi: dict[tuple, bool],
    seeds: Seeds,
) -> pd.DataFrame:
    """Add ``v_std``, ``n``, ``v_ci_low``, ``v_ci_high`` to the point table, row by row, from the
    per-seed and bootstrap ``samples`` (:func:`score_samples`); ``multi``: rows whose cells have
    several seeds (the others get NaN intervals)."""
    per_seed, boot = samples
    extra: dict[str, list[float]] = {f"{v}_{s}": [] for v in values for s in ("std", "ci_low")}
    extra.update({f"{v}_ci_high": [] for v in values})
    extra["n"] = []
    for row in point[keys].itertuples(index=False, name=None):
        by_seed, resampled = per_seed[row], boot.get(row)
        n = None
        for v in values:
            s = by_seed[v][np.isfinite(by_seed[v])]
            n = s.size
            extra[f"{v}_std"].append(float(np.std(s, ddof=1)) if s.size > 1 else math.nan)
            lo, hi = (
                _ci(resampled[v], seeds.level)
                if multi[row] and resampled is not None
                else (math.nan,) * 2
            )
            extra[f"{v}_ci_low"].append(lo)
            extra[f"{v}_ci_high"].append(hi)
        extra["n"].append(n)
    out = point.copy()
    order = [f"{v}_std" for v in values] + ["n"]
    order += [f"{v}_{b}" for v in values for b in ("ci_low", "ci_high")]
    for col in order:
        out[col] = extra[col]
    out["n"] = out["n"].astype(int)
    out.attrs.update(point.attrs, **seeds.attrs())
    return out


def with_std(point: pd.DataFrame, cells: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Tables 4, 5: the point table with ``std`` (percent points) and ``n`` of each cell."""
    s = cells.assign(std=cells["std"] * 100)[keys + ["std", "n"]]
    out = point.merge(s, on=keys, how="left", sort=False)
    out["n"] = out["n"].astype("Int64")
    return out
