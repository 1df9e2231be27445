"""The mask-leak table: per method, mode and percent, the mask-alone accuracy against chance, and
the health check that warns when a method's mask alone beats chance by more than a margin."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from torch import Tensor

from roarkar.leak.classifier import LeakSettings, mask_accuracy, wilson_interval
from roarkar.removal import check_percent, keep_mask_from_ranks
from roarkar.report.markdown import to_markdown

__all__ = ["LEAK_COLUMNS", "leak_markdown", "leak_table", "leak_warnings"]

LEAK_COLUMNS = [
    "method",
    "mode",
    "percent",
    "n_train",
    "n_val",
    "accuracy",
    "ci_low",
    "ci_high",
    "chance_uniform",
    "chance_majority",
    "chance",
    "excess_points",
]


def _subset(n: int, size: int | None, seed: int) -> Tensor | None:
    """A seeded subset of ``size`` of ``n`` indices, or None for all."""
    if size is None or size >= n:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))[:size]


def leak_table(
    ranks: Mapping[str, Mapping[str, Tensor]],
    labels: Mapping[str, Tensor],
    num_classes: int,
    percents: Sequence[float],
    modes: Sequence[str],
    *,
    seed: int = 0,
    settings: LeakSettings | None = None,
) -> pd.DataFrame:
    """One row per (method, mode, percent): a mask classifier's held-out accuracy (95 % Wilson
    interval) against chance, ``max(1 / num_classes, majority class share of val)``.

    ``ranks[method]["train" | "val"]`` are a method's saliency ranks [N, H, W] (as
    :func:`roarkar.protocols.precompute.ensure_ranks` gives them in memory), ``labels[split]`` the
    labels [N]; the masks are the protocols' own (:func:`roarkar.removal.keep_mask_from_ranks`),
    True where a pixel is removed.
    """
    s = settings or LeakSettings()
    train_y, val_y = labels["train"].long(), labels["val"].long()
    pick = _subset(len(train_y), s.train_size, seed)
    if pick is not None:
        train_y = train_y[pick]
    counts = torch.bincount(val_y, minlength=num_classes)
    uniform, majority = 1.0 / num_classes, float(counts.max()) / len(val_y)
    chance = max(uniform, majority)
    rows = []
    for method, by_split in ranks.items():
        train_r = by_split["train"] if pick is None else by_split["train"][pick]
        for mode in modes:
            for percent in percents:
                fraction = check_percent(percent)
                removed = {
                    split: ~keep_mask_from_ranks(r, mode, fraction)
                    for split, r in (("train", train_r), ("val", by_split["val"]))
                }
                correct = mask_accuracy(
                    removed["train"], train_y, removed["val"], val_y, num_classes,
                    seed=seed, settings=s,
                )  # fmt: skip
                low, high = wilson_interval(correct, len(val_y))
                accuracy = correct / len(val_y)
                rows.append(
                    {
                        "method": method,
                        "mode": mode,
                        "percent": float(percent),
                        "n_train": len(train_y),
                        "n_val": len(val_y),
                        "accuracy": 100 * accuracy,
                        "ci_low": 100 * low,
                        "ci_high": 100 * high,
                        "chance_uniform": 100 * uniform,
                        "chance_majority": 100 * majority,
                        "chance": 100 * chance,
                        "excess_points": 100 * (accuracy - chance),
                    }
                )
    return pd.DataFrame(rows, columns=LEAK_COLUMNS)


def leak_warnings(table: pd.DataFrame, margin: float = 10.0) -> list[str]:
    """A warning for every row whose mask alone beats chance by more than ``margin`` points."""
    out = []
    for row in table.itertuples(index=False):
        if row.excess_points > margin:
            where = " ".join(str(getattr(row, k)) for k in ("dataset", "seed") if hasattr(row, k))
            out.append(
                f"WARNING mask leak{f' ({where})' if where else ''}: {row.method} "
                f"{row.mode.upper()} {row.percent:g} %: the removal mask alone gives "
                f"{row.accuracy:.1f} % [{row.ci_low:.1f}, {row.ci_high:.1f}] held-out accuracy, "
                f"{row.excess_points:.1f} points above chance ({row.chance:.1f} %): a retrained "
                "model can read the class from the holes"
            )
    return out


def leak_markdown(table: pd.DataFrame) -> str:
    """The table laid out as methods x (mode, percent), each cell ``accuracy [low, high]`` in %,
    one block per dataset and seed when the table has those columns."""
    keys = [k for k in ("dataset", "model", "seed") if k in table]
    groups = table.groupby(keys, sort=False) if keys else [((), table)]
    parts = []
    for key, t in groups:
        key = key if isinstance(key, tuple) else (key,)
        title = ", ".join(f"{k} {v}" for k, v in zip(keys, key, strict=True))
        cell = t.assign(
            column=t["mode"].str.upper() + " " + t["percent"].map("{:g} %".format),
            value=t.apply(lambda r: f"{r.accuracy:.1f} [{r.ci_low:.1f}, {r.ci_high:.1f}]", axis=1),
        )
        wide = cell.pivot(index="method", columns="column", values="value")
        wide = wide.loc[list(dict.fromkeys(t["method"])), list(dict.fromkeys(cell["column"]))]
        first = t.iloc[0]
        note = (
            "Held-out accuracy (%) of a small CNN trained on the binary removal mask alone "
            f"[95 % Wilson interval]; chance {first.chance:.1f} % (1/K {first.chance_uniform:.1f} "
            f"%, majority class {first.chance_majority:.1f} %); {int(first.n_train)} train, "
            f"{int(first.n_val)} val masks."
        )
        title = f"Mask leak{f': {title}' if title else ''}"
        parts.append(to_markdown(wide.reset_index(), title=title, note=note))
    return "\n".join(parts)
