"""A study: every cell of its plan (roarkar/plan.py), then the tables and the health checks.

Each cell's config is composed by Hydra from the same overrides a multirun job would get, so running
the study in one process and running its cells as separate jobs give identical cells (same hashes,
same result files) and either can finish what the other started.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig

from roarkar.config import Config, resolve
from roarkar.plan import cell_configs
from roarkar.protocols.cell import cell_path, run_cell
from roarkar.report.aggregate import collect_results
from roarkar.report.health import check as check_health
from roarkar.report.health import describe as describe_health
from roarkar.report.long import LONG_COLUMNS, OPTIONAL_METRICS, normalize_long
from roarkar.report.paper import compare_with_paper
from roarkar.report.paper_gate import why_not_compared
from roarkar.report.paper_text import format_comparison, write_comparison
from roarkar.report.progress import estimate_left, progress_line
from roarkar.report.write import clear_outputs, format_for_console, write_tables
from roarkar.report_page import (
    first_input_per_method,
    read_records,
    recorded_inputs,
    study_page,
)
from roarkar.runtime import tune_process
from roarkar.store import RESULT_FILE, is_finished, is_finished_record
from roarkar.training import DistInfo, setup

log = logging.getLogger(__name__)


def records_to_long(records: list[dict]) -> pd.DataFrame:
    """Finished cells as the long table (dataset, model, protocol, method, layer, mode, percent,
    seed, accuracy), with the true-class score (None where a cell predates it)."""
    rows = [
        r["cell"]
        | {
            "accuracy": r["accuracy"],
            **{c: r.get(c) for c in OPTIONAL_METRICS},
            "base_warning": "; ".join((r.get("base_model") or {}).get("warnings") or []),
        }
        for r in records
        if is_finished_record(r)
    ]
    return pd.DataFrame(rows, columns=[*LONG_COLUMNS, *OPTIONAL_METRICS, "base_warning"])


def tree_long(results: Path, ours: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """What a study tabulates into ``<results>/tables``: the tables of a tree are the whole tree,
    so when the tree holds finished cells beside this study's (another study's protocol, methods
    or datasets), every finished cell, and a line saying so; when those cells conflict with these
    (the same cell and seed twice, e.g. under another recipe), this study's cells only, and a line
    saying why. A tree of only this study's cells gives exactly its own long table."""
    cells = results / "cells"
    if not cells.is_dir():
        return ours, ""
    finished = sum(1 for _ in cells.rglob(RESULT_FILE))  # an upper bound: failed ones included
    if finished <= len(ours):
        return ours, ""
    try:
        tree = collect_results(cells)  # checks the tree: one row per cell and seed
        tree = tree[list(ours.columns)].reset_index(drop=True)
        normalize_long(tree)
    except ValueError as exc:
        return ours, (
            f"tables of this study's {len(ours)} cells only, not of every finished cell under "
            f"{cells}: {exc}"
        )
    if len(tree) <= len(ours):
        return ours, ""
    return tree, (
        f"tables of every finished cell under {cells}: {len(tree)} cells, {len(ours)} of them "
        "this study's"
    )


def run_cells(configs: list[Config], dist: DistInfo, workers: int = 1) -> Iterator[dict]:
    """Each cell's record, in plan order: run here one after another, or ``workers`` at a time in
    processes that split this one's torch threads (a cell's batches and draws depend on its seed
    and config only, so its result is that of a serial run with as many threads). Cells sharing a
    base model or maps wait on their lock; a killed study resumes like a serial one."""
    if workers < 1:
        raise ValueError(f"study.workers={workers}: expected at least 1")
    if workers == 1 or len(configs) == 1:
        for config in configs:
            yield run_cell(config, dist)
        return
    if dist.enabled:
        raise ValueError(f"study.workers={workers}: a distributed run takes study.workers=1")
    threads = max(1, torch.get_num_threads() // workers)
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    with ProcessPoolExecutor(workers, context, _start_worker, (threads,)) as pool:
        yield from pool.map(_run_in_worker, configs)


def _start_worker(threads: int) -> None:
    tune_process()
    torch.set_num_threads(threads)


def _run_in_worker(config: Config) -> dict:
    return run_cell(config)


def health_text(long: pd.DataFrame) -> str:
    """The health checks as printed after the tables (empty when there is nothing to say)."""
    try:
        return describe_health(check_health(long))
    except (ValueError, KeyError) as exc:  # the checks never cost the tables
        return f"discrimination checks not run: {exc}"


def paper_text(long: pd.DataFrame, out_dir: Path, records: list[dict]) -> str:
    """The comparison with the paper's tables (written beside ours), or the one line saying why
    there is none (:func:`roarkar.report.paper_gate.why_not_compared`)."""
    try:
        reason = why_not_compared(long, records)
        if reason:
            return f"not compared with the paper: {reason}"
        comparisons = compare_with_paper(long, same_settings=True)
        write_comparison(comparisons, out_dir)
    except (ValueError, OSError) as exc:  # the comparison never costs the tables
        return f"not compared with the paper: {exc}"
    return format_comparison(comparisons)


def report(
    long: pd.DataFrame,
    out_dir: Path,
    log_base: float = math.e,
    records: Sequence[dict] = (),
    health: str | None = None,
) -> str:
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
    health = health_text(long) if health is None else health
    text = f"{text}\n\n{health}" if health else text
    text = f"{text}\n\n{paper_text(long, out, list(records))}"
    return f"{text}\n\ntables: {out} (long.csv, table*.csv/.md/.tex)"


def run_study(cfg: DictConfig, overrides: list[str]) -> dict:
    """Run (or skip, when finished) every cell of the study, then print and write the tables.
    An edge: the plan composes the cells from ``cfg``, each is resolved here."""
    config = resolve(cfg)
    configs = [resolve(c) for c in cell_configs(cfg, overrides)]
    places = [cell_path(c) for c in configs]
    todo = sum(not is_finished(directory) for _, _, directory in places)
    groups = [(cell.dataset, cell.protocol) for cell, _, _ in places]
    names = sorted({cell.dataset for cell, _, _ in places})
    print(f"study: {len(configs)} cells on {', '.join(names)}, {todo} to run", flush=True)
    dist = setup(str(config.device))
    records = []
    if not configs:
        raise ValueError("the study plan is empty: set study.layer and/or study.input")
    spent: list[tuple[tuple[str, str], float]] = []  # (dataset, protocol), wall s of a done cell
    for index, record in enumerate(run_cells(configs, dist, int(config.study.workers)), 1):
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
        if record["status"] == "ok" and record.get("wall_time_s") is not None:
            spent.append((groups[index - 1], record["wall_time_s"]))
        if index < len(configs) and not record.get("skipped"):  # a line per cell that ran
            done = sum(r["status"] == "ok" for r in records)
            failed_so_far = sum(r["status"] == "failed" for r in records)
            estimate = estimate_left(spent, groups[index:])
            print(progress_line(done, len(configs), estimate, failed_so_far), flush=True)
    failed = [r for r in records if r["status"] == "failed"]
    running = [r for r in records if r["status"] == "running"]
    text = ""
    if dist.is_main:
        results = Path(config.paths.results)
        long, scope = tree_long(results, records_to_long(records))
        tree = read_records(results / "cells")  # once: the paper gate and the page read them
        health = health_text(long) if len(long) else ""
        tabulated = tree if scope.startswith("tables of every") else records
        text = report(long, results / "tables", records=tabulated, health=health)
        if scope:
            text = f"{scope}\n\n{text}"
        print(text, flush=True)
        done = sum(r["status"] == "ok" for r in records)
        page = study_page(
            results,
            long,
            health,
            first_input_per_method(configs, [cell for cell, _, _ in places]),
            dist,
            tree,
            progress_line(done, len(configs), None, len(failed)),
            left=len(configs) - done,
        )
        print(page, flush=True)
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


def run_tables(cfg: DictConfig | Config) -> dict:
    """Aggregate every finished cell under ``paths.results`` into the tables.

    All or nothing: a failed or unreadable cell is an error naming it, and no table is written
    (those of an earlier run stay, consistent with their own ``long.csv``). An edge.
    """
    results = Path(resolve(cfg).paths.results)
    cells = results / "cells"
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
    records, health = read_records(cells), health_text(long)
    text = report(long, results / "tables", records=records, health=health)
    print(text, flush=True)
    config = resolve(cfg)
    inputs = recorded_inputs(records, results)
    page = study_page(results, long, health, inputs, setup(str(config.device)), records)
    print(page, flush=True)
    return {"rows": len(long), "tables": text}
