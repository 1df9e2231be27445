"""Per-layer scores (Figure 4) and prior layer weights derived from one's own layer results.

The paper combines its five per-layer maps with "prior weights [0.18, 0.15, 0.37, 0.4, 0.72]",
chosen "based on the expected accuracy given our results when we computed Table 1". It does not
say how. Searching derivations on the paper's own Table 4 (results/paper/README.md lists them):

**The per-layer Information score (Eq 9's terms at one layer, natural log) of SMOE Scale, summed
over ImageNet and Places, gives [0.1771, 0.1472, 0.3744, 0.4000, 0.7159], which rounds to the
published [0.18, 0.15, 0.37, 0.40, 0.72] in every layer**, with no scaling or normalisation.
With COWC included (all three datasets) it would be [0.41, 0.44, 0.75, 0.52, 1.01]; the per-layer
Difference score (``(z - rho) + (kappa - z)``) of SMOE Scale on ImageNet alone,
[0.19, 0.17, 0.33, 0.36, 0.65], is the closest Difference-based candidate (off by up to 0.07).
This is a reconstruction that fits to two decimals, not a statement from the paper.

:func:`derive_prior_weights` implements that derivation for any long table: per layer L, for
the chosen method and the chosen datasets (default: all it has),
``w_L = sum_datasets [ -rho_L log(rho_L / zr_L) - zk_L log(zk_L / kappa_L) ]`` with seed-mean
accuracies; ``score="difference"`` uses ``(zr_L - rho_L) + (kappa_L - zk_L)`` instead. Negative
weights (a layer worse than random) are clipped to 0, because the combined map (Eq 3) needs
non-negative weights; only their ratios matter there (it is a weighted average).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from roarkar.layer_weights import load_prior_weights
from roarkar.report.rows import BASELINE, MissingBaselineError, one_percent_per_mode, protocol_rows
from roarkar.report.scores import DEFAULT_LOG_BASE, eq8, eq9, log_base_label, parse_log_base

__all__ = [
    "LAYERS",
    "PAPER_PRIOR_WEIGHTS",
    "derive_prior_weights",
    "load_prior_weights",
    "per_layer_scores",
    "write_prior_weights",
]

LAYERS: tuple[str, ...] = ("L1", "L2", "L3", "L4", "L5")
#: The paper's prior layer weights (Sec 4.2), L1..L5.
PAPER_PRIOR_WEIGHTS: tuple[float, ...] = (0.18, 0.15, 0.37, 0.40, 0.72)
SCORES = ("information", "difference")


def per_layer_scores(
    df: pd.DataFrame,
    log_base: float = DEFAULT_LOG_BASE,
    percent: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Per dataset, non-random method and layer: the terms of Eq 8 and Eq 9 at that layer.

    Columns ``dataset, method, layer, kar_gain`` (kappa - z_kar), ``roar_gain`` (z_roar - rho),
    ``difference`` (their sum, the "combined score per scale layer" of Figure 4) and
    ``information`` (``-rho log(rho/z_roar) - z_kar log(z_kar/kappa)``). Seeds are averaged
    first; a missing random cell raises :class:`MissingBaselineError`. Methods keep their order
    of appearance; a method lacking one mode at a layer has no row for that layer.
    """
    base = parse_log_base(log_base)
    d = one_percent_per_mode(protocol_rows(df, "layer", "per_layer_scores"), percent, "per-layer")
    acc = d.set_index(["dataset", "method", "mode", "layer"])["accuracy"]
    rows = []
    for ds in pd.unique(d["dataset"]):
        for method in pd.unique(d.loc[d["dataset"] == ds, "method"]):
            if method == BASELINE:
                continue
            for layer in LAYERS:
                if (ds, method, "kar", layer) not in acc or (ds, method, "roar", layer) not in acc:
                    continue
                k, r = acc[(ds, method, "kar", layer)], acc[(ds, method, "roar", layer)]
                z = {}
                for mode in ("kar", "roar"):
                    if (ds, BASELINE, mode, layer) not in acc:
                        raise MissingBaselineError(ds, layer, mode, method)
                    z[mode] = acc[(ds, BASELINE, mode, layer)]
                rows.append(
                    {
                        "dataset": ds,
                        "method": method,
                        "layer": layer,
                        "kar_gain": k - z["kar"],
                        "roar_gain": z["roar"] - r,
                        "difference": float(eq8(k, r, z["kar"], z["roar"])),
                        "information": float(eq9(k, r, z["kar"], z["roar"], base)),
                    }
                )
    if not rows:
        raise ValueError("per_layer_scores: no non-random method with both KAR and ROAR cells")
    out = pd.DataFrame(rows)
    out.attrs["log_base"] = base
    return out


def derive_prior_weights(
    df_long: pd.DataFrame,
    method: str = "smoe_scale",
    *,
    score: str = "information",
    datasets: Iterable[str] | None = None,
    log_base: float = DEFAULT_LOG_BASE,
    percent: Mapping[str, float] | None = None,
    clip: bool = True,
    ndigits: int | None = None,
) -> list[float]:
    """Prior layer weights L1..L5 from per-layer results (see the module docstring).

    ``w_L`` = the per-layer ``score`` (``"information"``, default, or ``"difference"``) of
    ``method`` at layer L, summed over ``datasets`` (default: every dataset the method has).
    On the paper's Table 4, ``datasets=["imagenet", "places365"]`` and ``ndigits=2`` give the
    published [0.18, 0.15, 0.37, 0.40, 0.72]. Negative sums are clipped to 0 (``clip``);
    ``ndigits`` rounds. Raises ValueError when the method, a dataset or a layer is missing.
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}; got {score!r}")
    pls = per_layer_scores(df_long, log_base=log_base, percent=percent)
    mine = pls[pls["method"] == method]
    if mine.empty:
        have = ", ".join(pd.unique(pls["method"]))
        raise ValueError(
            f"derive_prior_weights: no layer results for method {method!r}; have {have}"
        )
    chosen = list(pd.unique(mine["dataset"])) if datasets is None else list(datasets)
    if not chosen:
        raise ValueError("derive_prior_weights: no datasets chosen")
    weights = []
    for layer in LAYERS:
        total = 0.0
        for ds in chosen:
            v = mine.loc[(mine["dataset"] == ds) & (mine["layer"] == layer), score]
            if v.empty:
                raise ValueError(
                    f"derive_prior_weights: method {method!r} has no KAR+ROAR result at "
                    f"dataset {ds!r}, layer {layer!r}"
                )
            total += float(v.iloc[0])
        if clip:
            total = max(total, 0.0)
        weights.append(round(total, ndigits) if ndigits is not None else total)
    if not any(w > 0 for w in weights):
        raise ValueError(
            f"derive_prior_weights: every layer's {score} score of {method!r} is <= 0 "
            f"({weights}); such weights cannot combine maps"
        )
    return weights


def write_prior_weights(
    path: str | Path,
    weights: Sequence[float],
    *,
    method: str,
    score: str,
    datasets: Sequence[str],
    log_base: float = DEFAULT_LOG_BASE,
    source: str | None = None,
    metric: str = "accuracy",
) -> Path:
    """Write ``prior_weights.json``: ``weights`` (L1..L5) and how they were derived (from
    ``metric``'s per-layer scores)."""
    path = Path(path)
    rec = {
        "weights": [float(w) for w in weights],
        "layers": list(LAYERS[: len(weights)]),
        "method": method,
        "score": score,
        "metric": metric,
        "datasets": list(datasets),
        "log_base": log_base_label(log_base) if score == "information" else None,
        "derivation": "per-layer score of the method summed over the datasets, clipped at 0 "
        "(roarkar.report.prior.derive_prior_weights)",
        "source": source,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=2) + "\n")
    return path
