"""Markdown and LaTeX renderings of a table laid out like the paper (each table module lays
itself out: ``layout_table1`` ...).

No dependency beyond pandas: a table is first turned into a :class:`Layout` (a stub column, leaf
column headers, optional spanning column groups such as "KAR Kept Percent", optional row groups
such as the dataset of Table 4, and formatted cells), which :func:`layout_markdown` and
:func:`layout_latex` print. LaTeX uses booktabs (``\\toprule``, ``\\cmidrule``, ``\\midrule``,
``\\bottomrule``; add ``\\usepackage{booktabs}`` to the preamble). With several seeds a cell
reads ``mean ± std`` (``$\\pm$`` in LaTeX); a cell without a std (one seed) shows the mean alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

__all__ = [
    "Layout",
    "fmt_cell",
    "latex_escape",
    "layout_latex",
    "layout_markdown",
    "layout_modes",
]

_MODES = ("kar", "roar")
_MODE_GROUP = {"kar": "KAR Kept Percent", "roar": "ROAR Removed Percent"}


@dataclass
class Layout:
    """A table as the paper prints it: ``rows`` are ``(row_group, stub, cells)``."""

    stub: str
    leaves: list[str]
    groups: list[tuple[str, int]] | None = None
    rows: list[tuple[str | None, str, list[str]]] = field(default_factory=list)
    title: str | None = None
    note: str | None = None


def fmt_cell(mean: object, std: object = None, floatfmt: str = ".2f") -> str:
    """``"1.23"``, ``"1.23 ± 0.05"`` (when ``std`` is a finite number), ``""`` for NaN."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    text = format(float(mean), floatfmt)
    if std is not None and not pd.isna(std) and math.isfinite(float(std)):
        text += f" ± {format(float(std), floatfmt)}"
    return text


def layout_modes(
    t: pd.DataFrame, col: str, labels: dict, floatfmt: str, group: str | None
) -> Layout:
    """Tables 4 and 5: one row per (``group``, method), KAR then ROAR columns, one per value of
    ``col`` that the table has (``labels``: value -> column header)."""
    present = {m: [v for v in labels if ((t["mode"] == m) & (t[col] == v)).any()] for m in _MODES}
    leaves = [labels[v] for m in _MODES for v in present[m]]
    groups = [(_MODE_GROUP[m], len(present[m])) for m in _MODES if present[m]]
    std = t["std"] if "std" in t.columns else pd.Series([None] * len(t), index=t.index)
    cells = {}
    keys = [group] if group else []
    for rec, s in zip(t.to_dict("records"), std, strict=True):
        g = rec[group] if group else None
        cells[(g, rec["method"], rec["mode"], rec[col])] = fmt_cell(rec["accuracy"], s, floatfmt)
    rows = []
    for key in t[keys + ["method"]].drop_duplicates().itertuples(index=False, name=None):
        g, method = (key[0], key[1]) if group else (None, key[0])
        rows.append(
            (g, method, [cells.get((g, method, m, v), "") for m in _MODES for v in present[m]])
        )
    return Layout("Method", leaves, groups, rows)


# --------------------------------------------------------------------------- Markdown


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def layout_markdown(lay: Layout) -> str:
    """GitHub Markdown: group names prefix the leaf headers; row groups are bold rows."""
    leaves = list(lay.leaves)
    if lay.groups:
        i = 0
        for name, span in lay.groups:
            short = name.split()[0]
            for j in range(i, i + span):
                leaves[j] = f"{short} {leaves[j]}"
            i += span
    lines = [f"### {lay.title}", ""] if lay.title else []
    lines.append("| " + " | ".join(_md(c) for c in [lay.stub, *leaves]) + " |")
    lines.append("|:---|" + "|".join("---:" for _ in leaves) + "|")
    current = object()
    for group, stub, cells in lay.rows:
        if group is not None and group != current:
            lines.append(f"| **{_md(group)}** |" + "|".join(" " for _ in leaves) + "|")
        current = group
        lines.append("| " + " | ".join(_md(c) for c in [stub, *cells]) + " |")
    if lay.note:
        lines += ["", lay.note]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
}


def latex_escape(text: object) -> str:
    """Escape LaTeX's special characters (and write ``±`` as ``$\\pm$``)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def layout_latex(lay: Layout, label: str | None = None) -> str:
    """A booktabs ``table`` environment: spanning group headers with cmidrules, row groups."""
    ncol = 1 + len(lay.leaves)
    lines = [r"\begin{table}[ht]", r"\centering"]
    if lay.title:
        lines.append(rf"\caption{{{latex_escape(lay.title)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{l{'r' * len(lay.leaves)}}}", r"\toprule"]
    if lay.groups:
        heads, rules, col = [""], [], 2
        for name, span in lay.groups:
            heads.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(name)}}}")
            rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
            col += span
        lines.append(" & ".join(heads) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join(latex_escape(c) for c in [lay.stub, *lay.leaves]) + r" \\")
    lines.append(r"\midrule")
    current = object()
    for group, stub, cells in lay.rows:
        if group is not None and group != current:
            if lines[-1] != r"\midrule":
                lines.append(r"\midrule")
            lines.append(rf"\multicolumn{{{ncol}}}{{l}}{{\textit{{{latex_escape(group)}}}}} \\")
        current = group
        lines.append(" & ".join(latex_escape(c) for c in [stub, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if lay.note:
        lines.append(rf"\par\smallskip\footnotesize {latex_escape(lay.note)}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
