"""Does a study discriminate? Checks on the tables of data whose answer is known.

A ROAR/KAR table where every method sits at 99-100 % measures nothing, and on a synthetic dataset a
benchmark that does not rank its own ground truth first is broken, not informative. After the
tables, a study prints, per dataset:

- ``saturation``: at most a fifth of Table 4's cells (methods, not Best/Worst) at or above 99 %;
- with a ``ground_truth`` method: it ranks first in Table 1 on Difference and on Information and
  first in Table 2's SUM, and in Table 4, in each mode, it is at least ``margin`` (10 points) from
  random, above it for KAR and below it for ROAR, at three or more of the five layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from roarkar.report.rows import AVG, BASELINE, BEST, WORST
from roarkar.report.tables import table1, table2, table4

GROUND_TRUTH = "ground_truth"


@dataclass(frozen=True)
class Check:
    dataset: str
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.dataset}: {self.name}: {self.detail}"


def _rank(t: pd.DataFrame, column: str) -> int:
    order = t.sort_values(column, ascending=False)["method"].tolist()
    return order.index(GROUND_TRUTH) + 1


def check(
    long: pd.DataFrame, *, margin: float = 10.0, saturated: float = 99.0, layers: int = 3
) -> list[Check]:
    """The discrimination checks of every dataset in ``long`` (see the module docstring)."""
    out: list[Check] = []
    layer = long[long["protocol"] == "layer"]
    t4 = table4(layer) if not layer.empty else pd.DataFrame()
    t1 = table1(layer) if not layer.empty and (layer["method"] == BASELINE).any() else None
    inputs = long[long["protocol"] == "input"]
    t2 = table2(inputs) if not inputs.empty else None
    for ds in sorted(long["dataset"].unique()):
        if not t4.empty:
            cells = t4[(t4["dataset"] == ds) & ~t4["method"].isin([BEST, WORST])]
            high = int((cells["accuracy"] >= saturated).sum())
            out.append(
                Check(
                    ds,
                    "saturation",
                    high <= len(cells) / 5,
                    f"{high} of {len(cells)} Table 4 cells at or above {saturated:g} %",
                )
            )
        if GROUND_TRUTH not in set(long.loc[long["dataset"] == ds, "method"]):
            continue
        if t1 is not None:
            rows = t1[(t1["dataset"] == ds) & (t1["dataset"] != AVG)]
            if GROUND_TRUTH in set(rows["method"]):
                for score in ("difference", "information"):
                    rank = _rank(rows, score)
                    out.append(
                        Check(ds, f"Table 1 {score}", rank == 1, f"ground truth ranks {rank}")
                    )
        if t2 is not None:
            rows = t2[t2["dataset"] == ds] if "dataset" in t2 else t2
            if GROUND_TRUTH in set(rows["method"]):
                rank = _rank(rows, "sum")
                out.append(Check(ds, "Table 2 SUM", rank == 1, f"ground truth ranks {rank}"))
        if not t4.empty:
            d = t4[t4["dataset"] == ds]
            for mode, sign in (("kar", 1), ("roar", -1)):
                gt = d[(d["method"] == GROUND_TRUTH) & (d["mode"] == mode)].set_index("layer")
                rnd = d[(d["method"] == BASELINE) & (d["mode"] == mode)].set_index("layer")
                both = gt.index.intersection(rnd.index)
                if both.empty:
                    continue
                gap = sign * (gt.loc[both, "accuracy"] - rnd.loc[both, "accuracy"])
                wide = [str(la) for la in both if gap[la] >= margin]
                out.append(
                    Check(
                        ds,
                        f"Table 4 {mode.upper()} ground truth vs random",
                        len(wide) >= min(layers, len(both)),
                        f"{margin:g}+ points {'above' if sign > 0 else 'below'} random at "
                        f"{len(wide)} of {len(both)} layers ({', '.join(wide) or 'none'})",
                    )
                )
    return out


def describe(checks: list[Check]) -> str:
    """The checks as lines, with a loud summary when one fails."""
    if not checks:
        return ""
    lines = ["Does this study discriminate? (roarkar.report.health)"]
    lines += [f"  {c.line()}" for c in checks]
    failed = [c for c in checks if not c.ok]
    if failed:
        lines.append(
            f"WARNING: {len(failed)} check(s) failed: on this data the tables above do not tell "
            "the methods apart as a benchmark must (see docs/embedded-study.md)"
        )
    return "\n".join(lines)


__all__ = ["Check", "check", "describe"]
