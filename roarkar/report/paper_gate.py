"""Whether finished cells may be set beside the paper's tables without being asked, and if not,
why: one rule for the study, ``task=tables`` and ``roarkar-tables``' automatic comparison, each
of which prints the comparison or ``not compared with the paper: <reason>``.

The cells must be the paper's cells (its datasets, model, methods, layers and percents), trained
by its recipe (the epochs of ``conf/trainer/he2016.yaml`` for their stage and for the base model),
on the full datasets (no ``dataset.train_size`` / ``val_size`` subset), from a fit base model.
``roarkar-tables --compare-paper on`` compares anyway, with its warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

import pandas as pd
from omegaconf import OmegaConf

from roarkar.config.schema import CONF_DIR
from roarkar.report.long import normalize_long
from roarkar.report.paper import load_paper, paper_dir, paper_overlap

__all__ = ["PAPER_RECIPE", "paper_epochs", "why_not_compared"]

PAPER_RECIPE = "he2016"  # conf/trainer/<this>.yaml: the recipe the paper's cells were trained by


@cache
def paper_epochs() -> dict[str, int]:
    """Epochs per stage (base, layer, input) of the paper's recipe, as its preset writes them."""
    node = OmegaConf.load(CONF_DIR / "trainer" / f"{PAPER_RECIPE}.yaml")
    return {str(k): int(v) for k, v in node.epochs.items()}


def _recipe_reason(records: Sequence[Mapping], pairs: dict[str, set]) -> str | None:
    """Why the records of the paper's cells (``pairs``: protocol -> (dataset, method)) are not
    the paper's recipe or data, or None."""
    epochs = paper_epochs()
    for record in records:
        cell, config = record.get("cell") or {}, record.get("config") or {}
        protocol = cell.get("protocol")
        if (cell.get("dataset"), cell.get("method")) not in pairs.get(protocol, set()):
            continue
        trained = (config.get("trainer") or {}).get("epochs") or {}
        for stage in (protocol, "base"):
            if stage in trained and int(trained[stage]) != epochs[stage]:
                return (
                    f"the cells trained {trained[stage]} {stage} epochs, the paper's recipe "
                    f"{epochs[stage]} (trainer={PAPER_RECIPE})"
                )
        dataset = config.get("dataset") or {}
        for key in ("train_size", "val_size"):
            if dataset.get(key) is not None:
                return f"the cells trained on a subset (dataset.{key}={dataset[key]})"
    return None


def why_not_compared(
    long: pd.DataFrame,
    records: Sequence[Mapping] = (),
    paper: Mapping[str, pd.DataFrame] | None = None,
) -> str | None:
    """None when ``long``'s cells may be compared with the paper automatically; else the reason
    in a few words. ``records``: the cells' ``result.json`` contents (their recipe and data)."""
    if paper is None:
        if paper_dir() is None:
            return "the published tables (results/paper) are not in this checkout"
        paper = load_paper()
    d = normalize_long(long)
    pairs = paper_overlap(d, paper, same_settings=True)
    if not any(pairs.values()):
        if any(paper_overlap(d, paper).values()):
            return (
                "these cells share the paper's dataset and method names but not its model, "
                "layers or percents"
            )
        return "no cell is one of the paper's (its datasets imagenet, places365, cowc and methods)"
    warnings = d["base_warning"] if "base_warning" in d.columns else pd.Series(dtype=str)
    unfit = [w for w in warnings.fillna("").astype(str) if w]
    if unfit:
        return f"the base model is unfit ({unfit[0]})"
    return _recipe_reason(records, pairs)
