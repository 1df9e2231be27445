"""A study: every cell of a plan (methods x layers or percents x modes x seeds), then the tables.

Each cell's config is composed by Hydra from the same overrides a multirun job would get, so running
the study in one process and running its cells as separate jobs give identical cells (same hashes,
same result files) and either can finish what the other started.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import pandas as pd
from hydra import compose
from omegaconf import DictConfig, OmegaConf

from roarkar.protocols.cell import cell_path, run_cell
from roarkar.report.aggregate import LONG_COLUMNS, collect_results
from roarkar.report.tables import format_for_console, write_tables
from roarkar.training import setup

log = logging.getLogger(__name__)

# Overrides the study sets per cell; a user's override of the same key is replaced, not repeated.
_CELL_KEYS = ("method", "protocol", "seed", "task")


def plan(cfg: DictConfig) -> list[tuple[list[str], dict[str, object]]]:
    """One entry per cell of ``cfg.study``: the config-group overrides (method, protocol) and the
    scalar settings (``protocol.layer``, ``protocol.mode``, ``protocol.percent``, ``seed``)."""
    study = cfg.study
    cells = []
    for seed in study.seeds:
        layer = study.get("layer")
        if layer:
            for method in layer.methods:
                for tap in layer.layers:
                    for mode in layer.modes:
                        cells.append(
                            (
                                [f"method={method}", "protocol=layer"],
                                {
                                    "protocol.layer": tap,
                                    "protocol.mode": mode,
                                    "protocol.percent": layer.percents[mode],
                                    "seed": seed,
                                },
                            )
                        )
        inputs = study.get("input")
        if inputs:
            for method in inputs.methods:
                for percent in inputs.percents:
                    for mode in inputs.modes:
                        cells.append(
                            (
                                [f"method={method}", "protocol=input"],
                                {"protocol.mode": mode, "protocol.percent": percent, "seed": seed},
                            )
                        )
    return cells


def as_overrides(groups: list[str], scalars: dict[str, object]) -> list[str]:
    """The command-line overrides that run this cell as its own job (``task=cell``)."""
    return [*groups, *(f"{k}={v}" for k, v in scalars.items()), "task=cell"]


def _keep(override: str) -> bool:
    key = override.lstrip("+~").split("=", 1)[0]
    return key.split(".", 1)[0].split("/", 1)[0] not in _CELL_KEYS


def cell_configs(cfg: DictConfig, overrides: list[str]) -> list[DictConfig]:
    """Compose every cell's config (Hydra must be initialised, as in @hydra.main or a test).

    Hydra composes once per (method, protocol); the scalar settings are then set on copies, which
    gives the same config as composing ``as_overrides(...)`` for each cell, ten times faster.
    """
    base = [o for o in overrides if _keep(o)]
    composed: dict[tuple[str, ...], DictConfig] = {}
    configs = []
    for groups, scalars in plan(cfg):
        key = tuple(groups)
        if key not in composed:
            composed[key] = compose(config_name="config", overrides=base + groups + ["task=cell"])
        cell = copy.deepcopy(composed[key])
        for dotted, value in scalars.items():
            OmegaConf.update(cell, dotted, value, merge=False)
        configs.append(cell)
    return configs


def records_to_long(records: list[dict]) -> pd.DataFrame:
    """Finished cells as the long table (dataset, model, protocol, method, layer, mode, percent, seed, accuracy)."""
    rows = [r["cell"] | {"accuracy": r["accuracy"]} for r in records if r.get("status") == "ok"]
    return pd.DataFrame(rows, columns=list(LONG_COLUMNS))


def report(long: pd.DataFrame, out_dir: Path, log_base: float = math.e) -> str:
    """Write Tables 1, 2, 4, 5 under ``out_dir`` and return them as console text.

    A study without its random baseline still keeps every result; the tables then say what is
    missing instead of failing the run.
    """
    long.to_csv(
        Path(out_dir).mkdir(parents=True, exist_ok=True) or Path(out_dir) / "long.csv", index=False
    )
    try:
        write_tables(long, out_dir, log_base=log_base)
        return format_for_console(long, log_base=log_base)
    except ValueError as exc:
        return f"tables not written: {exc}\nthe finished cells are in {Path(out_dir) / 'long.csv'}"


def run_study(cfg: DictConfig, overrides: list[str]) -> dict:
    """Run (or skip, when finished) every cell of the study, then print and write the tables."""
    configs = cell_configs(cfg, overrides)
    todo = sum(not (cell_path(c)[2] / "result.json").exists() for c in configs)
    log.info("study: %d cells, %d to run", len(configs), todo)
    dist = setup(str(cfg.device))
    records = []
    for index, cell_cfg in enumerate(configs, 1):
        record = run_cell(cell_cfg, dist)
        cell = record["cell"]
        state = "skipped" if record.get("skipped") else record["status"]
        acc = f"{record['accuracy']:.3f}" if record.get("accuracy") is not None else "-"
        print(
            f"[{index}/{len(configs)}] {cell['protocol']:5} {cell['method']:14} {cell['layer'] or 'input':5} "
            f"{cell['mode']:4} {cell['percent']:5g}%  accuracy {acc}  ({state})",
            flush=True,
        )
        records.append(record)
    failed = [r for r in records if r["status"] != "ok"]
    text = ""
    if dist.is_main:
        text = report(records_to_long(records), Path(cfg.paths.results) / "tables")
        print(text, flush=True)
        for r in failed:
            print(f"FAILED {r['cell']}: {r['error']}", flush=True)
    return {"cells": len(records), "failed": len(failed), "records": records, "tables": text}


def run_tables(cfg: DictConfig) -> dict:
    """Aggregate every finished cell under ``paths.results`` into the tables."""
    long = collect_results(Path(cfg.paths.results) / "cells")
    text = report(long, Path(cfg.paths.results) / "tables")
    print(text, flush=True)
    return {"rows": len(long), "tables": text}
