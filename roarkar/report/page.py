"""A study's report page: ``<results>/report/index.html``, one static file (no server, no network,
every link relative) with Tables 1, 2, 4, 5 (sortable), the health checks, Figures 4 and 5, the
cost spent and left, example masked images per method and, per cell, its training curve and a
link to its ``result.json``. Written after every study and ``task=tables``; the page's own script
only sorts tables and counts the images that loaded (``body[data-images-loaded]``), which the
browser test reads."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from roarkar.files import git_commit, write_text_atomic
from roarkar.report.tables import TABLES

__all__ = ["PAGE", "PageInputs", "curve_svg", "write_page"]

PAGE = Path("report") / "index.html"

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3;cursor:pointer;user-select:none}th.sorted-asc:after{content:" \\25B2"}
th.sorted-desc:after{content:" \\25BC"}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f8f8f8;padding:8px;white-space:pre-wrap}img{max-width:100%}
table.masks td{border:0;text-align:center;font-size:12px;padding:2px 6px}
table.masks img{width:96px;height:96px;image-rendering:pixelated}
.warn{color:#a40}.muted{color:#777}
"""

_SCRIPT = """
function sortBy(th){
  const table=th.closest('table'), body=table.tBodies[0], i=[...th.parentNode.children].indexOf(th);
  const asc=!th.classList.contains('sorted-asc');
  table.querySelectorAll('th').forEach(h=>h.classList.remove('sorted-asc','sorted-desc'));
  th.classList.add(asc?'sorted-asc':'sorted-desc');
  const key=r=>{const t=r.children[i].dataset.v??r.children[i].textContent; const n=parseFloat(t);
                return isNaN(n)?t:n};
  [...body.rows].sort((a,b)=>{const x=key(a),y=key(b);
    return (x<y?-1:x>y?1:0)*(asc?1:-1)}).forEach(r=>body.appendChild(r));
}
document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>sortBy(th)));
window.addEventListener('load',()=>{
  const imgs=[...document.images];
  const ok=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;
  document.body.dataset.imagesLoaded=ok; document.body.dataset.imagesBroken=imgs.length-ok;
  document.body.dataset.ready='1';
});
"""


@dataclass
class PageInputs:
    """What the page shows: the finished cells (long table), the cells' records (result.json
    contents with ``path``), the console text of the health checks and progress, the figures and
    example grids (PNG paths), and the cells of the plan not finished (None: no plan known)."""

    long: pd.DataFrame
    records: list[dict]
    health: str
    tables_dir: Path
    figures: dict[str, Path] = field(default_factory=dict)
    examples: list[tuple[str, list[list[tuple[str, Path]]]]] = field(default_factory=list)
    examples_note: str = ""
    progress: str = ""
    left: int | None = None
    figures_note: str = ""  # why there are no figures, when drawing them failed


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float):
                text = "" if math.isnan(value) else f"{value:.4g}"
                cells.append(f'<td class="num" data-v="{value!r}">{text}</td>')
            elif isinstance(value, int):
                cells.append(f'<td class="num">{value}</td>')
            else:
                cells.append(f"<td>{_esc(value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def curve_svg(history: Sequence[dict], width: int = 160, height: int = 40) -> str:
    """A cell's train loss per epoch as a small inline SVG line (empty without history)."""
    losses = [float(h["train_loss"]) for h in history if h.get("train_loss") is not None]
    losses = [v for v in losses if math.isfinite(v)]
    if not losses:
        return '<span class="muted">no curve</span>'
    low, high = min(losses), max(losses)
    step = width / max(len(losses) - 1, 1)

    def y(v: float) -> float:  # highest loss at the top; a flat curve in the middle
        return height / 2 if high == low else height - 2 - (v - low) / (high - low) * (height - 4)

    points = " ".join(f"{i * step:.1f},{y(v):.1f}" for i, v in enumerate(losses))
    title = _esc("train loss per epoch: " + ", ".join(f"{v:.3f}" for v in losses))
    dots = "".join(
        f'<circle cx="{x}" cy="{y}" r="2" fill="#2a6"/>'
        for x, y in (p.split(",") for p in points.split())
    )
    return (
        f'<svg class="curve" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f"<title>{title}</title>"
        f'<polyline fill="none" stroke="#2a6" stroke-width="1.5" points="{points}"/>{dots}</svg>'
        f' <span class="muted">{losses[0]:.3g} &rarr; {losses[-1]:.3g}</span>'
    )


def _cost(records: list[dict], left: int | None, progress: str) -> str:
    done = [r for r in records if r.get("status") == "ok"]
    failed = [r for r in records if r.get("status") == "failed"]
    wall = sum(float(r.get("wall_time_s") or 0.0) for r in done)
    gpu = sum(float(r.get("gpu_hours") or 0.0) for r in done)
    lines = [
        f"{len(done)} cells done, {len(failed)} failed"
        + ("" if left is None else f", {left} of the study's plan not finished"),
        f"spent: {wall / 3600:.3f} hours of cell wall time, {gpu:.3f} GPU-hours",
    ]
    if progress:
        lines.append(progress)
    if left is None:
        lines.append(
            "what is left of a study's plan: roarkar task=status with the study's overrides"
        )
    return "<pre>" + _esc("\n".join(lines)) + "</pre>"


#: what the cells table shows of a record's cell: names, then numbers
_CELL_NAMES = ("dataset", "protocol", "method", "layer", "mode")
_CELL_NUMBERS = ("percent", "seed")
_CELL_HEAD = (*_CELL_NAMES, *_CELL_NUMBERS, "accuracy", "status", "wall s", "train loss", "record")


def _cells(records: list[dict], page_dir: Path) -> str:
    rows = []
    for r in sorted(records, key=lambda r: json.dumps(r.get("cell", {}), sort_keys=True)):
        cell = r.get("cell", {})
        link = Path(r["path"]).resolve()
        try:
            href = Path("..") / link.relative_to(page_dir.parent.resolve())
        except ValueError:
            href = link
        acc = r.get("accuracy")
        rows.append(
            "<tr>"
            + "".join(f"<td>{_esc(cell.get(k, ''))}</td>" for k in _CELL_NAMES)
            + "".join(f'<td class="num">{_esc(cell.get(k, ""))}</td>' for k in _CELL_NUMBERS)
            + f'<td class="num">{"" if acc is None else f"{acc:.3f}"}</td>'
            + f"<td>{_esc(r.get('status', ''))}</td>"
            + f'<td class="num">{float(r.get("wall_time_s") or 0):.1f}</td>'
            + f"<td>{curve_svg(r.get('history') or [])}</td>"
            + f'<td><a href="{_esc(href.as_posix())}">result.json</a></td></tr>'
        )
    head = "".join(f"<th>{h}</th>" for h in _CELL_HEAD)
    return (
        f'<table class="sortable" id="cells"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _img(path: Path, page_dir: Path, alt: str) -> str:
    return f'<img src="{_esc(path.relative_to(page_dir).as_posix())}" alt="{_esc(alt)}">'


def write_page(results: Path, inputs: PageInputs) -> Path:
    """Write ``<results>/report/index.html`` from ``inputs`` (figures and grids must lie in the
    page's folder, so that the page moves with them) and return its path."""
    page = Path(results) / PAGE
    page_dir = page.parent
    parts = [
        "<h1>roarkar study report</h1>",
        f'<p class="muted">{_esc(Path(results).resolve())} &middot; commit '
        f"{_esc(git_commit(short=True))} &middot; {len(inputs.long)} finished cells</p>",
        "<h2>Does this study discriminate?</h2>",
        f"<pre>{_esc(inputs.health or 'no health checks')}</pre>",
        "<h2>Cost</h2>",
        _cost(inputs.records, inputs.left, inputs.progress),
    ]
    for _, spec in TABLES.items():
        csv = inputs.tables_dir / f"{spec.name}.csv"
        if not csv.exists():
            parts.append(
                f'<h2>{_esc(spec.title)}</h2><p class="muted">not written: no '
                f"{_esc(spec.protocol)}-protocol cells</p>"
            )
            continue
        frame = pd.read_csv(csv, keep_default_na=False, na_values=[""])
        parts.append(f'<h2 id="{spec.name}">{_esc(spec.title)}</h2>{_table_html(frame)}')
        parts.append(f'<p><a href="../tables/{spec.name}.csv">{spec.name}.csv</a></p>')
    parts.append("<h2>Figures</h2>")
    if inputs.figures:
        parts += [
            f"<figure>{_img(p, page_dir, name)}<figcaption>{_esc(name)}</figcaption></figure>"
            for name, p in inputs.figures.items()
        ]
    else:
        parts.append(f'<p class="muted">{_esc(inputs.figures_note or "none for these cells")}</p>')
    parts.append("<h2>What the input cells trained on</h2>")
    if inputs.examples_note:
        parts.append(f"<p>{_esc(inputs.examples_note)}</p>")
    for method, rows in inputs.examples:  # per method: a row per image, a column per mask
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{_img(path, page_dir, f'{method} {caption}')}<br>{_esc(caption)}</td>"
                for caption, path in row
            )
            + "</tr>"
            for row in rows
        )
        parts.append(f'<h3>{_esc(method)}</h3><table class="masks"><tbody>{body}</tbody></table>')
    parts += ["<h2>Cells</h2>", _cells(inputs.records, page_dir)]
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>roarkar study report</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
    write_text_atomic(page, text)
    return page
