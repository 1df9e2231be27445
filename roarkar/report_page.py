"""The report page of a results tree, assembled (the study and ``task=tables`` call this): the
figures and example grids drawn into ``<results>/report/``, then the page
(:mod:`roarkar.report.page`). A page that cannot be made never costs the tables: the reason is
logged and returned instead."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from roarkar.config import Config
from roarkar.protocols.examples import MaskedExamples, masked_examples
from roarkar.report.curves import FILE as CURVES
from roarkar.report.curves import figure_seed002
from roarkar.report.figures import write_figures
from roarkar.report.metric import DEFAULT_METRIC
from roarkar.report.page import PAGE, PageInputs, write_page
from roarkar.store import RESULT_FILE
from roarkar.training import DistInfo

__all__ = ["read_records", "study_page"]

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


def study_page(
    results: Path,
    long: pd.DataFrame,
    health: str,
    input_configs: list[Config],
    dist: DistInfo,
    progress: str = "",
    left: int | None = None,
) -> str:
    """Write the page for ``results`` and return a line saying where (or why it was not made).
    ``input_configs``: one input cell's config per method, for its example grid."""
    results = Path(results)
    out = (results / PAGE).parent
    try:
        out.mkdir(parents=True, exist_ok=True)
        figures, why = _figures(long, out)
        grids, shown, missing = [], [], []
        percents = sorted({float(p) for p in long[long.protocol == "input"].percent.unique()})
        for config in sorted(input_configs, key=lambda c: str(c.method.id)):
            at = percents or [float(config.protocol.percent)]  # no finished input cell yet
            examples = masked_examples(config, dist, at, EXAMPLES)
            if examples is None:
                missing.append(str(config.method.id))
                continue
            shown.append(examples.method)
            grids.append((examples.method, _example_rows(examples, at, out)))
        note = f"methods: {', '.join(shown)}; removed pixels replaced as the cells replaced them"
        if missing:
            note += f"; no stored maps yet for {', '.join(missing)}"
        if not input_configs:
            note = "no input-protocol cells: the layer protocol masks activations, not images"
        records = read_records(results / "cells")
        inputs = PageInputs(
            long, records, health, results / "tables", figures, grids, note, progress, left, why
        )
        page = write_page(results, inputs)
    except Exception as exc:  # noqa: BLE001 - the page never costs the tables
        log.warning("report page not written: %s: %s", type(exc).__name__, exc)
        return f"report page not written ({type(exc).__name__}: {exc})"
    return f"report: {page}"
