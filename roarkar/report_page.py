"""The report page of a results tree, assembled (the study and ``task=tables`` call this): the
figures and example grids drawn into ``<results>/report/``, then the page
(:mod:`roarkar.report.page`). A page that cannot be made never costs the tables: the reason is
logged and returned instead."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf
from PIL import Image

from roarkar.config import Config, resolve
from roarkar.protocols.examples import MaskedExamples, masked_examples
from roarkar.report.curves import FILE as CURVES
from roarkar.report.curves import figure_seed002
from roarkar.report.figures import write_figures
from roarkar.report.metric import DEFAULT_METRIC
from roarkar.report.page import PAGE, PageInputs, write_page
from roarkar.store import RESULT_FILE, Cell
from roarkar.training import DistInfo

__all__ = ["first_input_per_method", "read_records", "recorded_inputs", "study_page"]

log = logging.getLogger(__name__)
EXAMPLES = 2  # val images per method in the grid


def read_records(cells: Path) -> list[dict]:
    """Every readable ``result.json`` under ``cells``, each with its ``path``."""
    out = []
    for path in sorted(Path(cells).rglob(RESULT_FILE)):
        try:
            out.append(json.loads(path.read_text()) | {"path": str(path)})
        except (OSError, ValueError):
            continue  # run_tables names unreadable results; the page shows what it can read
    return out


def _example_rows(examples: MaskedExamples, percents: list[float], out: Path) -> list[list]:
    """One row per image: itself, then KAR keeping and ROAR removing each percent, each saved as
    a PNG at the images' own size (the page scales them up, pixel for pixel)."""
    folder = out / "masks" / examples.method
    folder.mkdir(parents=True, exist_ok=True)

    def png(image: torch.Tensor, name: str) -> Path:
        path = folder / f"{name}.png"
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)
        return path

    rows = []
    for i, key in enumerate(examples.keys):
        row = [(key, png(examples.original[i], f"{i}-original"))]
        for mode, word in (("kar", "kept"), ("roar", "removed")):
            for p in percents:
                image = examples.images[(mode, float(p))][i]
                row.append((f"{mode.upper()} {p:g}% {word}", png(image, f"{i}-{mode}-{p:g}")))
        rows.append(row)
    return rows


def _figures(long: pd.DataFrame, out: Path) -> tuple[dict[str, Path], str]:
    """Figures 4 and 5 (and seed 002's curves) drawn into ``out``, or why not (the page stays)."""
    try:
        figures = {p.name: p for p in write_figures(long, out).values()} if len(long) else {}
        roar = long[(long.protocol == "input") & (long["mode"] == "roar")] if len(long) else long
        if len(roar) and roar.percent.nunique() >= 3:  # seed 002's curve: score against t
            curve = figure_seed002(long, out / CURVES.format(metric=DEFAULT_METRIC))
            figures[curve.name] = curve
    except ValueError as exc:
        return {}, f"figures not drawn: {exc}"
    return figures, ""


def first_input_per_method(configs: list[Config], cells: list[Cell]) -> list[Config]:
    """The first input cell's config of each method of a study (its example grid)."""
    seen: dict[str, Config] = {}
    for config, cell in zip(configs, cells, strict=True):
        if cell.protocol == "input":
            seen.setdefault(cell.method, config)
    return list(seen.values())


def recorded_inputs(records: list[dict], results: Path) -> list[Config]:
    """One input cell's recorded config per method (its example grid), read back through the
    schema, with the tree's paths where the tree has moved since (``task=tables``: no plan)."""
    seen: dict[str, Config] = {}
    for record in records:
        cell, plain = record.get("cell") or {}, copy.deepcopy(record.get("config"))
        if cell.get("protocol") != "input" or not plain or cell.get("method") in seen:
            continue
        paths = plain.get("paths") or {}
        old, data = str(paths.get("results", "")), str(paths.get("data", ""))
        if old and data.startswith(old):
            paths["data"] = str(results) + data[len(old) :]
        paths["results"] = str(results)
        try:
            seen[cell["method"]] = resolve(OmegaConf.create(plain))
        except Exception as exc:  # noqa: BLE001 - a record of another version: no example grid
            log.info("no example grid for %s: its recorded config does not resolve (%s)", cell, exc)
    return list(seen.values())


def study_page(
    results: Path,
    long: pd.DataFrame,
    health: str,
    input_configs: list[Config],
    dist: DistInfo,
    records: list[dict],
    progress: str = "",
    left: int | None = None,
) -> str:
    """Write the page for ``results`` and return a line saying where (or why it was not made).
    ``input_configs``: one input cell's config per method, for its example grid; ``records``:
    the tree's cell records (:func:`read_records`)."""
    results = Path(results)
    out = (results / PAGE).parent
    try:
        out.mkdir(parents=True, exist_ok=True)
        figures, why = _figures(long, out)
        grids, missing = [], []
        percents = sorted({float(p) for p in long[long.protocol == "input"].percent.unique()})
        for config in input_configs:
            at = percents or [float(config.protocol.percent)]  # no finished input cell yet
            examples = masked_examples(config, dist, at, EXAMPLES)
            if examples is None:
                missing.append(str(config.method.id))
                continue
            grids.append((examples.method, _example_rows(examples, at, out)))
        grids.sort(key=lambda grid: grid[0])  # by the method's label: any caller, the same page
        note = f"methods: {', '.join(method for method, _ in grids)}; removed pixels replaced as the cells replaced them"
        if missing:
            note += f"; no stored maps yet for {', '.join(missing)}"
        if not input_configs:
            note = "no input-protocol cells: the layer protocol masks activations, not images"
        inputs = PageInputs(
            long, records, health, results / "tables", figures, grids, note, progress, left, why
        )
        page = write_page(results, inputs)
    except Exception as exc:  # noqa: BLE001 - the page never costs the tables
        log.warning("report page not written: %s: %s", type(exc).__name__, exc)
        return f"report page not written ({type(exc).__name__}: {exc})"
    return f"report: {page}"
