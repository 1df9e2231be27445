"""A study: every cell of a plan (methods x layers or percents x modes x seeds), then the tables.

Each cell's config is composed by Hydra from the same overrides a multirun job would get, so running
the study in one process and running its cells as separate jobs give identical cells (same hashes,
same result files) and either can finish what the other started.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path

import pandas as pd
import torch
from hydra import compose
from omegaconf import DictConfig, OmegaConf

from roarkar.protocols.cell import cell_path, run_cell
from roarkar.report.aggregate import LONG_COLUMNS, collect_results
from roarkar.report.health import check as check_health
from roarkar.report.health import describe as describe_health
from roarkar.report.write import clear_outputs, format_for_console, write_tables
from roarkar.store import Claim, read_result
from roarkar.training import setup

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parent / "conf"


def _check_not_empty(study: DictConfig) -> None:
    """An empty list in the study would plan no cell for a reason nobody asked for."""
    if not study.get("seeds"):
        raise ValueError(
            f"study.seeds={study.get('seeds')} is empty: give at least one seed, e.g. "
            "study.seeds=[0]"
        )
    for protocol, keys in (
        ("layer", ("methods", "layers", "modes")),
        ("input", ("methods", "percents", "modes")),
    ):
        part = study.get(protocol)
        for key in keys if part else ():
            if not part.get(key):
                raise ValueError(
                    f"study.{protocol}.{key}={part.get(key)} is empty: give at least one, or set "
                    f"study.{protocol}=null to leave the {protocol} protocol out"
                )


def plan(cfg: DictConfig) -> list[tuple[list[str], dict[str, object]]]:
    """One entry per cell of ``cfg.study``: the config-group overrides (dataset, method, protocol)
    and the scalar settings (``protocol.layer``, ``protocol.mode``, ``protocol.percent``, ``seed``).

    ``study.datasets`` (a list of dataset config names) repeats the plan on each dataset; when it is
    absent or null the run's own ``dataset`` is used.
    """
    study = cfg.study
    datasets = study.get("datasets") or [None]
    _check_not_empty(study)
    cells = []
    for dataset in datasets:
        on = [f"dataset={dataset}"] if dataset else []
        for seed in study.seeds:
            layer = study.get("layer")
            for method in layer.methods if layer else []:
                for tap in layer.layers:
                    for mode in layer.modes:
                        scalars = {
                            "protocol.layer": tap,
                            "protocol.mode": mode,
                            "protocol.percent": layer.percents[mode],
                            "seed": seed,
                        }
                        cells.append(([*on, f"method={method}", "protocol=layer"], scalars))
            inputs = study.get("input")
            for method in inputs.methods if inputs else []:
                for percent in inputs.percents:
                    for mode in inputs.modes:
                        scalars = {"protocol.mode": mode, "protocol.percent": percent, "seed": seed}
                        cells.append(([*on, f"method={method}", "protocol=input"], scalars))
    return cells


def as_overrides(groups: list[str], scalars: dict[str, object]) -> list[str]:
    """The command-line overrides that run this cell as its own job (``task=cell``)."""
    return [*groups, *(f"{k}={v}" for k, v in scalars.items()), "task=cell"]


def override_key(override: str) -> str:
    """The key an override sets: ``+protocol.target=label`` -> ``protocol.target``."""
    return override.lstrip("+~").split("=", 1)[0]


def kept_overrides(
    overrides: list[str], groups: list[str], scalars: dict[str, object]
) -> list[str]:
    """The user's overrides that a cell keeps (the one rule for a study and a SLURM sweep): all but
    those setting a key the cell sets itself, or a ``protocol.<key>`` its protocol lacks."""
    taken = {override_key(g) for g in groups} | set(scalars) | {"task"}
    return [o for o in overrides if override_key(o) not in taken and _applies(o, groups)]


def _applies(override: str, groups: list[str]) -> bool:
    """A ``protocol.<key>`` override applies only to cells whose protocol has that key (a study
    mixing protocols passes ``protocol.target=label`` to its input cells, not its layer cells)."""
    key = override_key(override)
    if not key.startswith("protocol."):
        return True
    protocol = next(g.split("=", 1)[1] for g in groups if g.startswith("protocol="))
    return key.split(".")[1] in OmegaConf.load(CONF_DIR / "protocol" / f"{protocol}.yaml")


def cell_configs(cfg: DictConfig, overrides: list[str]) -> list[DictConfig]:
    """Compose every cell's config (Hydra must be initialised, as in @hydra.main or a test).

    The user's overrides are kept except those naming a key the cell sets itself (its dataset,
    method and protocol groups, ``protocol.layer/mode/percent``, ``seed``, ``task``). Hydra composes
    once per (dataset, method, protocol); the scalar settings are then set on copies, which gives the
    same config as composing ``as_overrides(...)`` for each cell, ten times faster.
    """
    composed: dict[tuple[str, ...], DictConfig] = {}
    configs = []
    left_out: set[str] = set()
    for groups, scalars in plan(cfg):
        key = tuple(groups)
        if key not in composed:
            base = kept_overrides(overrides, groups, scalars)
            composed[key] = compose(config_name="config", overrides=base + groups + ["task=cell"])
        if not _has_relevance(composed[key]):
            left_out.add(str(composed[key].dataset.name))
            continue
        cell = copy.deepcopy(composed[key])
        for dotted, value in scalars.items():
            OmegaConf.update(cell, dotted, value, merge=False)
        configs.append(cell)
    for name in sorted(left_out):
        log.warning(
            "ground_truth left out of the study on %s: that dataset has no relevance maps (only "
            "the embedded synthetic sets have a ground truth)",
            name,
        )
    return configs


def _has_relevance(cell: DictConfig) -> bool:
    """False for a ground_truth cell on data without relevance maps (a real image layout; a
    shards folder may hold them, and the method says so if it does not)."""
    kind = str(cell.dataset.kind)
    return str(cell.method.name) != "ground_truth" or kind in ("synthetic", "shards")


def records_to_long(records: list[dict]) -> pd.DataFrame:
    """Finished cells as the long table (dataset, model, protocol, method, layer, mode, percent, seed, accuracy)."""
    rows = [
        r["cell"]
        | {
            "accuracy": r["accuracy"],
            "base_warning": "; ".join((r.get("base_model") or {}).get("warnings") or []),
        }
        for r in records
        if r.get("status") == "ok"
    ]
    return pd.DataFrame(rows, columns=[*LONG_COLUMNS, "base_warning"])


def report(long: pd.DataFrame, out_dir: Path, log_base: float = math.e) -> str:
    """Write Tables 1, 2, 4, 5 under ``out_dir`` and return them as console text.

    A study without its random baseline still keeps every result: ``long.csv`` is written alone
    (an earlier run's tables are removed, never left beside it) and the text says what is missing.
    """
    out = Path(out_dir)
    try:
        write_tables(long, out, log_base=log_base)
        text = format_for_console(long, log_base=log_base)
    except ValueError as exc:
        out.mkdir(parents=True, exist_ok=True)
        clear_outputs(out)
        long.to_csv(out / "long.csv", index=False)
        return f"tables not written: {exc}\nthe finished cells are in {out / 'long.csv'}"
    try:
        health = describe_health(check_health(long))
    except (ValueError, KeyError) as exc:  # the checks never cost the tables
        health = f"discrimination checks not run: {exc}"
    text = f"{text}\n\n{health}" if health else text
    return f"{text}\n\ntables: {out} (long.csv, table*.csv/.md/.tex)"


def run_study(cfg: DictConfig, overrides: list[str]) -> dict:
    """Run (or skip, when finished) every cell of the study, then print and write the tables."""
    configs = cell_configs(cfg, overrides)
    todo = sum(not (cell_path(c)[2] / "result.json").exists() for c in configs)
    log.info("study: %d cells, %d to run", len(configs), todo)
    dist = setup(str(cfg.device))
    records = []
    if not configs:
        raise ValueError("the study plan is empty: set study.layer and/or study.input")
    for index, cell_cfg in enumerate(configs, 1):
        record = run_cell(cell_cfg, dist)
        cell = record["cell"]
        state = (
            record["status"]
            if record["status"] == "running"
            else "skipped"
            if record.get("skipped")
            else record["status"]
        )
        acc = f"{record['accuracy']:.3f}" if record.get("accuracy") is not None else "-"
        print(
            f"[{index}/{len(configs)}] {cell['protocol']:5} {cell['method']:14} {cell['layer'] or 'input':5} "
            f"{cell['mode']:4} {cell['percent']:5g}%  accuracy {acc}  ({state})",
            flush=True,
        )
        records.append(record)
    failed = [r for r in records if r["status"] == "failed"]
    running = [r for r in records if r["status"] == "running"]
    text = ""
    if dist.is_main:
        text = report(records_to_long(records), Path(cfg.paths.results) / "tables")
        print(text, flush=True)
        for r in failed:
            print(f"FAILED {r['cell']}: {r['error']}", flush=True)
        if running:
            print(
                f"{len(running)} cells were being run by another process and are not in these tables; "
                "`roarkar task=tables` once they finish",
                flush=True,
            )
    return {
        "cells": len(records),
        "failed": len(failed),
        "running": len(running),
        "records": records,
        "tables": text,
    }


def run_tables(cfg: DictConfig) -> dict:
    """Aggregate every finished cell under ``paths.results`` into the tables.

    All or nothing: a failed or unreadable cell is an error naming it, and no table is written
    (those of an earlier run stay, consistent with their own ``long.csv``).
    """
    cells = Path(cfg.paths.results) / "cells"
    long = collect_results(cells)
    bad = long.attrs["failed"] + long.attrs["unreadable"]
    if bad:
        raise ValueError(
            f"{cells}: {long.attrs['n_failed']} failed and {long.attrs['n_unreadable']} unreadable "
            f"cell result(s), so no table was written; first: {bad[0]}. Re-run the study to "
            "retry failed cells (delete an unreadable result.json to retrain it), or tabulate "
            f"the others with `roarkar-tables --runs {cells} --out DIR --skip-failed`"
        )
    if long.empty:
        raise ValueError(f"{cells}: no finished cell to tabulate")
    text = report(long, Path(cfg.paths.results) / "tables")
    print(text, flush=True)
    return {"rows": len(long), "tables": text}


def _split_size(dataset: DictConfig, split: str) -> int | None:
    """Images in a split, from the config (no data is touched): the subset size, else the nominal."""
    for key in (f"{split}_size", f"nominal_{split}_size"):
        if dataset.get(key) is not None:
            return int(dataset[key])
    return None


def forward_flops(cfg: DictConfig, num_classes: int) -> float:
    """FLOPs of one forward pass of the configured model at the dataset's image size (counted on
    the meta device, so nothing is allocated)."""
    from torch.utils.flop_counter import FlopCounterMode

    from roarkar.models import build_model

    params = OmegaConf.to_container(cfg.model.get("params", {}), resolve=True) or {}
    size = int(cfg.dataset.image_size)
    with torch.device("meta"):
        model = build_model(str(cfg.model.name), num_classes, **params)
        images = torch.empty(1, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        model(images)
    return float(counter.get_total_flops())


def survey(cfg: DictConfig, overrides: list[str]) -> pd.DataFrame:
    """Every cell of the study with its state (done, failed, running, todo), what it cost if
    finished, and what it will cost (image-epochs, FLOPs) if not. Touches no data."""
    rows = []
    flops: dict[tuple, float] = {}
    for cell_cfg in cell_configs(cfg, overrides):
        cell, identity, directory = cell_path(cell_cfg)
        result = read_result(directory) or {}
        status = {"ok": "done", "failed": "failed"}.get(result.get("status"), "todo")
        if status != "done":
            claim = Claim(directory, 0).holder()
            if claim and claim.get("expires_at", 0) > time.time():
                status = "running"
        epochs = int(cell_cfg.trainer.epochs[cell.protocol])
        images = _split_size(cell_cfg.dataset, "train")
        key = (cell.dataset, cell.model)
        if key not in flops:
            flops[key] = forward_flops(cell_cfg, int(cell_cfg.dataset.get("num_classes") or 1000))
        rows.append(
            cell.as_dict()
            | {
                "status": status,
                "cell_id": identity[:8],
                "epochs": epochs,
                "image_epochs": None if images is None else epochs * images,
                "train_flops": None if images is None else 3 * flops[key] * epochs * images,
                "wall_time_s": result.get("wall_time_s") if status == "done" else None,
                "gpu_hours": result.get("gpu_hours") if status == "done" else None,
                "path": str(directory),
            }
        )
    return pd.DataFrame(rows)


def _counts(table: pd.DataFrame) -> str:
    states = table.status.value_counts()
    return f"{len(table)} cells: " + ", ".join(
        f"{states.get(s, 0)} {s}" for s in ("done", "running", "failed", "todo")
    )


def run_plan(cfg: DictConfig, overrides: list[str]) -> dict:
    """Dry run: list the study's cells, whether each is done, failed, running or to run, and what the
    missing ones cost (image-epochs, and FLOPs at 3x a forward pass per trained image, an upper
    bound for fine-tuning after a frozen prefix). Nothing is trained or written."""
    table = survey(cfg, overrides)
    todo = table[table.status != "done"]
    lines = [
        table.drop(columns=["path", "train_flops", "wall_time_s", "gpu_hours"]).to_string(
            index=False
        ),
        "",
        _counts(table),
        f"to run: {todo.image_epochs.sum():,.0f} image-epochs, {todo.train_flops.sum() / 1e15:,.1f} PFLOP "
        "(3x forward FLOPs per trained image; base models and saliency precompute not included)",
    ]
    unknown = int(todo.image_epochs.isna().sum())
    if unknown:
        lines.append(
            f"{unknown} cells have no known split size (set dataset.train_size or nominal_train_size)"
        )
    text = "\n".join(lines)
    print(text, flush=True)
    return {"cells": table.to_dict("records"), "text": text}


def run_status(cfg: DictConfig, overrides: list[str]) -> dict:
    """Where a study stands: cells done, running, failed and missing per dataset and protocol; GPU-hours
    and wall time spent; and an estimate to finish from the mean cost of finished cells of the same
    (dataset, protocol)."""
    table = survey(cfg, overrides)
    groups = []
    remaining_gpu = remaining_wall = 0.0
    for (dataset, protocol), part in table.groupby(["dataset", "protocol"], sort=False):
        done = part[part.status == "done"]
        left = int((part.status != "done").sum())
        mean_wall = done.wall_time_s.fillna(0).mean() if len(done) else float("nan")
        mean_gpu = done.gpu_hours.fillna(0).mean() if len(done) else float("nan")
        if left and len(done):
            remaining_wall += left * mean_wall
            remaining_gpu += left * mean_gpu
        states = part.status.value_counts()
        groups.append(
            {
                "dataset": dataset,
                "protocol": protocol,
                **{s: int(states.get(s, 0)) for s in ("done", "running", "failed", "todo")},
                "gpu_hours_spent": float(done.gpu_hours.fillna(0).sum()),
                "wall_hours_spent": float(done.wall_time_s.fillna(0).sum()) / 3600,
                "est_gpu_hours_left": left * mean_gpu if left else 0.0,
                "est_wall_hours_left": left * mean_wall / 3600 if left else 0.0,
            }
        )
    summary = pd.DataFrame(groups)
    lines = [
        summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
        "",
        _counts(table),
        f"spent: {summary.gpu_hours_spent.sum():.3f} GPU-hours, {summary.wall_hours_spent.sum():.3f} hours "
        f"of cell wall time; estimated to finish: {remaining_gpu:.3f} GPU-hours, "
        f"{remaining_wall / 3600:.3f} cell-hours (from finished cells of the same dataset and "
        "protocol; groups with none finished are not estimated)",
    ]
    failed = table[table.status == "failed"]
    for row in failed.itertuples():
        lines.append(f"failed: {row.path}")
    text = "\n".join(lines)
    print(text, flush=True)
    return {"summary": summary.to_dict("records"), "cells": table.to_dict("records"), "text": text}
