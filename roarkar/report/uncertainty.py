"""Several seeds: mean, standard deviation and n per cell, and bootstrap CIs of the scores.

Tables 4 and 5 (accuracies) get per cell the mean over seeds (the value shown), the sample
standard deviation (``std``, NaN for one seed) and the number of seeds ``n``; ``std`` is in the
unit of the value (percent). Best/Worst rows of Table 4 carry no ``std``/``n`` (NaN): they pick
a method per column.

Tables 1 and 2 (scores) are computed, as before, from the seed-mean accuracies of their cells.
Beside that point value they carry

* ``<score>_std`` and ``n``: the sample standard deviation of the score computed seed by seed
  over the ``n`` seeds that *every* cell the score uses has (paired by seed: seed ``s`` of the
  method with seed ``s`` of the random baseline). NaN when ``n < 2``.
* ``<score>_ci_low`` / ``<score>_ci_high``: a percentile bootstrap CI over seeds (default 95 %,
  2000 resamples, RNG seed 0, so the numbers are reproducible). One resample draws, with
  replacement, as many seeds as were run; each cell's accuracy becomes the mean of its
  accuracies at the drawn seeds, and the score is recomputed from those means. When every cell
  has the same seeds the draw is shared by all cells (paired, keeping whatever a seed shares
  across cells, e.g. its base model); otherwise every cell resamples its own seeds
  independently. ``AVG`` rows average the per-dataset scores within each resample.

**One seed:** the CI of a score whose cells all have a single seed is NaN, not the point value:
a bootstrap over one seed has no spread, and a zero-width interval would claim a certainty the
data cannot give. Its ``std`` is NaN too and ``n`` is 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from roarkar.report.aggregate import summarize_seeds
from roarkar.report.long import CELL_COLUMNS
from roarkar.report.rows import AVG, BASELINE, MODE_ORDER, one_percent_per_mode, protocol_rows_raw
from roarkar.report.scores import DEFAULT_LOG_BASE, eq8, eq9, parse_log_base
from roarkar.report.tables import input_sums, table1, table2, table4, table5

__all__ = [
    "DEFAULT_N_BOOT",
    "DEFAULT_CI_SEED",
    "has_several_seeds",
    "seed_matrix",
    "table1_seeds",
    "table2_seeds",
    "table4_seeds",
    "table5_seeds",
]

DEFAULT_N_BOOT = 2000
DEFAULT_CI_SEED = 0
_KEY = ["dataset", "method", "mode", "layer", "percent"]


def has_several_seeds(df: pd.DataFrame) -> bool:
    """True when some cell of the long table has more than one seed."""
    return bool((summarize_seeds(df)["n"] > 1).any())


def seed_matrix(d: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Cells (rows of the returned frame, with column ``n``) x seeds accuracy matrix, NaN if absent."""
    wide = d.pivot_table(
        index=list(CELL_COLUMNS), columns="seed", values="accuracy", aggfunc="mean", sort=False
    )
    acc = wide.to_numpy(dtype=float)
    cells = wide.index.to_frame(index=False)
    cells["n"] = np.isfinite(acc).sum(axis=1)
    return cells, acc


def _resample(acc: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` x cells matrix of bootstrap means over seeds (see the module docstring)."""
    n_cells, n_seeds = acc.shape
    if np.isfinite(acc).all():
        counts = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot)
        return counts @ acc.T / n_seeds
    out = np.empty((n_boot, n_cells))
    for c in range(n_cells):
        vals = acc[c][np.isfinite(acc[c])]
        idx = rng.integers(0, vals.size, size=(n_boot, vals.size))
        out[:, c] = vals[idx].mean(axis=1)
    return out


def _ci(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _attach(
    point: pd.DataFrame,
    keys: list[str],
    values: list[str],
    per_seed: dict[tuple, dict[str, np.ndarray]],
    boot: dict[tuple, dict[str, np.ndarray]],
    multi: dict[tuple, bool],
    level: float,
) -> pd.DataFrame:
    """Add ``v_std``, ``n``, ``v_ci_low``, ``v_ci_high`` to the point table, row by row."""
    extra: dict[str, list[float]] = {f"{v}_{s}": [] for v in values for s in ("std", "ci_low")}
    extra.update({f"{v}_ci_high": [] for v in values})
    extra["n"] = []
    for row in point[keys].itertuples(index=False, name=None):
        seeds, samples = per_seed[row], boot.get(row)
        n = None
        for v in values:
            s = seeds[v][np.isfinite(seeds[v])]
            n = s.size
            extra[f"{v}_std"].append(float(np.std(s, ddof=1)) if s.size > 1 else math.nan)
            lo, hi = (
                _ci(samples[v], level) if multi[row] and samples is not None else (math.nan,) * 2
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
    return out


# --------------------------------------------------------------------------- Table 1


def _table1_plan(point: pd.DataFrame, cells: pd.DataFrame) -> dict[tuple, dict[str, list[int]]]:
    """Per (dataset, method): column indices of its KAR/ROAR cells and the baseline's, by layer."""
    index = {k: i for i, k in enumerate(cells[_KEY].itertuples(index=False, name=None))}
    by = {(ds, m, mode): {} for ds, m, mode, _l, _p in index}
    for (ds, m, mode, layer, _p), i in index.items():
        by[(ds, m, mode)][layer] = i
    plan = {}
    for ds, method in point.loc[point["dataset"] != AVG, ["dataset", "method"]].itertuples(
        index=False, name=None
    ):
        entry = {}
        for mode in MODE_ORDER:
            layers = sorted(by[(ds, method, mode)])
            entry[mode] = [by[(ds, method, mode)][lay] for lay in layers]
            entry["z" + mode] = [by[(ds, BASELINE, mode)][lay] for lay in layers]
        plan[(ds, method)] = entry
    return plan


def _table1_scores(m: np.ndarray, plan: dict, base: float) -> dict[tuple, dict[str, np.ndarray]]:
    """Difference and Information for every row of ``m`` (resamples or seeds x cells)."""
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for key, p in plan.items():
            k, r, zk, zr = (m[:, p[c]] for c in ("kar", "roar", "zkar", "zroar"))
            out[key] = {
                "difference": eq8(k, r, zk, zr, axis=1),
                "information": eq9(k, r, zk, zr, base, axis=1),
            }
    methods = {m_ for _ds, m_ in plan}
    for method in methods:
        keys = [k for k in plan if k[1] == method]
        out[(AVG, method)] = {
            v: np.mean([out[k][v] for k in keys], axis=0) for v in ("difference", "information")
        }
    return out


def table1_seeds(
    df: pd.DataFrame,
    log_base: float = DEFAULT_LOG_BASE,
    percent: Mapping[str, float] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    ci_seed: int = DEFAULT_CI_SEED,
    level: float = 0.95,
) -> pd.DataFrame:
    """Table 1 with ``difference_std, information_std, n`` and bootstrap CI columns.

    The point values (``difference``, ``information``) and row order are those of
    :func:`roarkar.report.tables.table1`; see the module docstring for std, n and the CI.
    """
    base = parse_log_base(log_base)
    point = table1(df, log_base=base, percent=percent)  # validates (baseline cells, layers)
    d = one_percent_per_mode(protocol_rows_raw(df, "layer", "table1"), percent, "table1")
    cells, acc = seed_matrix(d)
    plan = _table1_plan(point, cells)
    per_seed = _table1_scores(acc.T, plan, base)
    boot = _table1_scores(_resample(acc, n_boot, np.random.default_rng(ci_seed)), plan, base)
    n = cells["n"].to_numpy()
    multi = {}
    for (ds, method), p in plan.items():
        multi[(ds, method)] = bool((n[sum(p.values(), [])] > 1).any())
    for method in {m_ for _ds, m_ in plan}:
        multi[(AVG, method)] = any(v for (ds, m_), v in multi.items() if m_ == method)
    out = _attach(
        point, ["dataset", "method"], ["difference", "information"], per_seed, boot, multi, level
    )
    out.attrs.update(point.attrs, n_boot=n_boot, ci_seed=ci_seed, ci_level=level)
    return out


# --------------------------------------------------------------------------- Table 2


def table2_seeds(
    df: pd.DataFrame,
    n_boot: int = DEFAULT_N_BOOT,
    ci_seed: int = DEFAULT_CI_SEED,
    level: float = 0.95,
) -> pd.DataFrame:
    """Table 2 with ``kar_std, roar_std, sum_std, n`` and bootstrap CI columns (see module doc)."""
    point = table2(df)  # validates (same percents per method)
    d = protocol_rows_raw(df, "input", "table2")
    cells, acc = seed_matrix(d)
    has_ds = "dataset" in point.columns
    rows = point.assign(dataset=point["dataset"] if has_ds else d["dataset"].iloc[0])
    plan = {}
    for ds, method in rows[["dataset", "method"]].itertuples(index=False, name=None):
        sel = (cells["dataset"] == ds) & (cells["method"] == method)
        plan[(ds, method)] = {
            mode: np.flatnonzero((sel & (cells["mode"] == mode)).to_numpy()) for mode in MODE_ORDER
        }

    def scores(m: np.ndarray) -> dict[tuple, dict[str, np.ndarray]]:
        res = {}
        for key, p in plan.items():
            res[key] = input_sums(m[:, p["kar"]], m[:, p["roar"]])
        return res

    n = cells["n"].to_numpy()
    multi = {k: bool((n[np.concatenate(list(p.values()))] > 1).any()) for k, p in plan.items()}
    per_seed = scores(acc.T)
    boot = scores(_resample(acc, n_boot, np.random.default_rng(ci_seed)))
    keys = ["dataset", "method"]
    out = _attach(rows, keys, ["kar", "roar", "sum"], per_seed, boot, multi, level)
    if not has_ds:
        out = out.drop(columns="dataset")
    out.attrs.update(n_boot=n_boot, ci_seed=ci_seed, ci_level=level)
    return out


# --------------------------------------------------------------------------- Tables 4 and 5


def _with_std(point: pd.DataFrame, raw: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    s = summarize_seeds(raw)
    s = s.assign(std=s["std"] * 100)[keys + ["std", "n"]]
    out = point.merge(s, on=keys, how="left", sort=False)
    out["n"] = out["n"].astype("Int64")
    return out


def table4_seeds(df: pd.DataFrame, percent: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Table 4 (percent) with ``std`` (percent points) and ``n`` per cell; Best/Worst have NaN."""
    point = table4(df, percent=percent)
    raw = one_percent_per_mode(protocol_rows_raw(df, "layer", "table4"), percent, "table4")
    return _with_std(point, raw, ["dataset", "method", "mode", "layer"])


def table5_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """Table 5 (percent) with ``std`` (percent points) and ``n`` per cell."""
    point = table5(df)
    raw = protocol_rows_raw(df, "input", "table5")
    keys = [c for c in ("dataset", "method", "mode", "percent") if c in point.columns]
    return _with_std(point, raw, keys)
