"""The comparison with the published tables as text and files: every flagged cell, the plain-text
report (which says whether the flags are exactly the paper's known inconsistencies) and
``compare_tableN.csv`` / ``comparison.md``. The comparison itself is :mod:`roarkar.report.paper`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from roarkar.report.paper import KNOWN_INCONSISTENT, TABLE_KEYS, TABLE_VALUES, TOL
from roarkar.report.scores import log_base_label

__all__ = ["flagged_cells", "format_comparison", "write_comparison"]


def flagged_cells(cmps: Mapping[str, pd.DataFrame]) -> list[dict]:
    """Every flagged cell: table, dataset, method, (mode, layer/percent), column, ours, published."""
    rows = []
    for name, t in cmps.items():
        for v in TABLE_VALUES[name]:
            for rec in t[t[f"{v}_flag"]].to_dict("records"):
                rows.append(
                    {
                        "table": name,
                        "dataset": rec["paper_dataset"],
                        "ours_dataset": rec["dataset"],
                        "method": rec["method"],
                        "where": " ".join(str(rec[k]) for k in TABLE_KEYS[name][2:]),
                        "column": v,
                        "ours": rec[v],
                        "published": rec[f"{v}_published"],
                    }
                )
    return rows


def _ds(f: Mapping) -> str:
    same = f["ours_dataset"] == f["dataset"]
    return f["dataset"] if same else f"{f['ours_dataset']} (paper: {f['dataset']})"


def _fmt(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def format_comparison(cmps: Mapping[str, pd.DataFrame], tol: float = TOL) -> str:
    """Plain text: per table, ours beside published; then every flagged cell with both numbers."""
    if not cmps:
        return "No dataset/method of these results is in the paper's tables; nothing to compare.\n"
    parts = []
    any_t = next(iter(cmps.values()))
    own = any(t.attrs.get("paper_data") for t in cmps.values())
    head = "Comparison with the published tables (results/paper/)"
    if own:
        head += ": these results ARE the paper's own Table 4 / Table 5"
    parts.append(head)
    if "table1" in cmps:
        parts.append(
            f"Information score (Eq 9) recomputed with the {log_base_label(any_t.attrs['log_base'])}"
            " (the published Table 1 follows the natural log although Eq 9 is printed with log2)."
        )
    for name in ("table1", "table2"):
        if name not in cmps:
            continue
        t = cmps[name]
        show = t.copy()
        for v in TABLE_VALUES[name]:
            show[f"{v}_flag"] = show[f"{v}_flag"].map({True: "*", False: ""})
        cols = ["dataset", "method"] + [
            c for v in TABLE_VALUES[name] for c in (v, f"{v}_published", f"{v}_flag")
        ]
        text = show[cols].to_string(index=False, float_format="{:.2f}".format, na_rep="-")
        parts.append(f"{name} (ours | published | * = differs by more than {tol:g})\n{text}")
    for name in ("table4", "table5"):
        if name in cmps:
            t = cmps[name]
            n_pub = int(t["accuracy_published"].notna().sum())
            n_flag = int(t["accuracy_flag"].sum())
            parts.append(
                f"{name}: {n_pub} of {len(t)} cells have a published value; {n_flag} differ by "
                f"more than {tol:g} percentage points (compare_{name}.csv)"
            )
    flags = flagged_cells({k: v for k, v in cmps.items() if k in ("table1", "table2")})
    if flags:
        lines = [f"Cells differing from the published value by more than {tol:g}:"]
        for f in flags:
            tag = ""
            if own:
                known = (f["table"], f["dataset"], f["method"], f["column"]) in KNOWN_INCONSISTENT
                tag = "  (known inconsistency of the paper)" if known else "  (NOT a known one)"
            lines.append(
                f"  {f['table']} {_ds(f)} {f['method']}{(' ' + f['where']) if f['where'] else ''} {f['column']}: ours "
                f"{_fmt(f['ours'])}, published {_fmt(f['published'])}{tag}"
            )
        parts.append("\n".join(lines))
    else:
        parts.append(
            f"No Table 1 / Table 2 cell differs from the published one by more than {tol:g}."
        )
    if own:
        flagged = {(f["table"], f["dataset"], f["method"], f["column"]) for f in flags}
        expected = {k for k in KNOWN_INCONSISTENT if k[0] in cmps}
        verdict = "exactly the known" if flagged == expected else "NOT exactly the known"
        named = []
        if "table1" in cmps:
            named.append(
                "Table 1's ImageNet Difference of Shannon Ent, Trunc Normal Std, Trunc Normal Mean, "
                "Log Normal Ent and Log Normal Mean (hence their AVG)"
            )
        if "table2" in cmps:
            named.append("Table 2's Guided Backprop SUM (3.6001 - 3.5724 = 0.03, published 0.04)")
        parts.append(
            f"These are {verdict} inconsistencies of the paper, published cells that do not "
            f"follow from its own appendix tables: {'; '.join(named)}."
        )
    return "\n\n".join(parts) + "\n"


def write_comparison(cmps: Mapping[str, pd.DataFrame], out_dir: str | Path) -> dict[str, Path]:
    """``compare_tableN.csv`` per table and ``comparison.md`` (the text of format_comparison)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, t in cmps.items():
        path = out / f"compare_{name}.csv"
        t.to_csv(path, index=False)
        written[path.name] = path
    path = out / "comparison.md"
    path.write_text("```\n" + format_comparison(cmps) + "```\n")
    written[path.name] = path
    return written
