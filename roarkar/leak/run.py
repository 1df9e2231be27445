"""``task=leak``: the mask-leak table of a study's input protocol on its own base models.

For every dataset and seed of ``study`` and every input method, the method's saliency ranks (the
input cells' own precompute, computed once and shared with them: :func:`ensure_ranks`) give the
removal masks at each of ``study.input.percents`` and ``modes``; :func:`leak_table` trains a mask
classifier per (method, mode, percent). Writes ``leak.csv`` and ``leak.md`` under
``{paths.results}/tables/``, prints the table and the health warnings (``leak.margin`` points).
``leak.epochs``, ``leak.batch_size``, ``leak.lr``, ``leak.train_size`` set the classifier
(``+leak.<key>=...``: the config has no ``leak`` block by default).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from roarkar.leak.classifier import LeakSettings
from roarkar.leak.table import leak_markdown, leak_table, leak_warnings

log = logging.getLogger(__name__)

__all__ = ["leak_settings", "run_leak", "study_leak_table"]


def leak_settings(cfg: DictConfig) -> LeakSettings:
    """The ``leak`` block of ``cfg`` (absent: the defaults); an unknown key is named."""
    block = cfg.get("leak")
    values = dict(OmegaConf.to_container(block, resolve=True)) if block else {}
    known = {f.name for f in dataclasses.fields(LeakSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"leak: unknown key(s) {', '.join(unknown)}; known are {sorted(known)}")
    return LeakSettings(**values)


def _input_configs(cfg: DictConfig, overrides: list[str]) -> dict[tuple[str, int], dict]:
    """One input-cell config per method, grouped by (dataset, seed), in the study's order."""
    from roarkar.plan import cell_configs

    if not cfg.study.get("input"):
        raise ValueError("task=leak needs study.input (the input protocol's methods and percents)")
    groups: dict[tuple[str, int], dict[str, DictConfig]] = {}
    for cell in cell_configs(cfg, overrides):
        if str(cell.protocol.name) != "input":
            continue
        key = (str(cell.dataset.name), int(cell.seed))
        groups.setdefault(key, {}).setdefault(str(cell.method.id), cell)
    return groups


def study_leak_table(
    cfg: DictConfig, overrides: list[str], settings: LeakSettings | None = None
) -> pd.DataFrame:
    """:func:`leak_table` of every dataset and seed of ``cfg.study``'s input protocol, with
    ``dataset``, ``model`` and ``seed`` columns first (base models trained or found as the cells
    do; Hydra must be initialised, as in ``@hydra.main``)."""
    from roarkar.config import resolve
    from roarkar.protocols.base import MODEL_FILE, base_dir, ensure_base_model
    from roarkar.protocols.context import make_context
    from roarkar.protocols.precompute import ensure_ranks
    from roarkar.training import setup

    s = settings or leak_settings(cfg)
    dist = setup(str(cfg.device))
    inputs = cfg.study.input
    frames = []
    for (dataset, seed), by_method in _input_configs(cfg, overrides).items():
        first = next(iter(by_method.values()))
        ctx = make_context(resolve(first), dist)
        if ctx.streaming:
            raise ValueError(
                f"task=leak: {dataset} is streamed from its shards; set dataset.train_size and "
                "dataset.val_size so that both splits fit in loader.memory_limit_gb"
            )
        base, base_id, _ = ensure_base_model(ctx)
        weights = base_dir(ctx, base_id) / MODEL_FILE
        ranks = {}
        for method, cell in by_method.items():
            started = time.time()
            ranks[method] = ensure_ranks(ctx.for_config(resolve(cell)), base, base_id, weights)
            log.info("leak: %s ranks on %s in %.1f s", method, dataset, time.time() - started)
        labels = {"train": ctx.train.labels, "val": ctx.val.labels}
        table = leak_table(
            ranks, labels, ctx.info.num_classes, list(inputs.percents), list(inputs.modes),
            seed=seed, settings=s,
        )  # fmt: skip
        table.insert(0, "seed", seed)
        table.insert(0, "model", str(first.model.name))
        table.insert(0, "dataset", dataset)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def run_leak(cfg: DictConfig, overrides: list[str]) -> dict:
    """Compute, write and print the mask-leak table of the study's input protocol."""
    started = time.time()
    settings = leak_settings(cfg)
    table = study_leak_table(cfg, overrides, settings)
    out = Path(cfg.paths.results) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "leak.csv", index=False)
    text = leak_markdown(table)
    warnings = leak_warnings(table, settings.margin)
    (out / "leak.md").write_text(text + ("\n" + "\n\n".join(warnings) + "\n" if warnings else ""))
    verdict = "\n".join(warnings) or (
        f"mask leak: no method's mask alone beats chance by more than {settings.margin:g} points"
    )
    print(f"{text}\n{verdict}\n\nleak table: {out / 'leak.csv'}, {out / 'leak.md'} "
          f"({time.time() - started:.0f} s)", flush=True)  # fmt: skip
    return {"rows": len(table), "warnings": warnings, "table": table}
