"""A paper table as a registered unit: :class:`TableSpec` (its rows, its one computation, its
layout, its title) and :data:`TABLES`, the registry the writer and the console iterate.

A table module (``table1_layer_scores.py`` ...) defines its computation and layout and registers
its spec; importing :mod:`roarkar.report.tables` registers the paper's four.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from roarkar.registry import Registry
from roarkar.report.render import Layout
from roarkar.report.rows import MODE_ORDER, one_percent_per_mode, protocol_rows_raw
from roarkar.report.scores import DEFAULT_LOG_BASE
from roarkar.report.uncertainty import Seeds

__all__ = ["TABLES", "TableSpec", "register_table", "select_rows"]


def select_rows(
    df: pd.DataFrame, protocol: str, table: str, percent: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """The rows a table starts from, seeds kept: one protocol, one model and, for the layer
    protocol, one percent per mode (``percent``, or the only one present)."""
    d = protocol_rows_raw(df, protocol, table)
    return one_percent_per_mode(d, percent, table) if protocol == "layer" else d


@dataclass(frozen=True)
class TableSpec:
    """One paper table.

    ``compute(df, [log_base=], [percent=], seeds=)`` is its one computation from the long table
    (seed column kept): seed means, and with ``seeds`` (:class:`Seeds`) their spread; it takes
    ``log_base`` / ``percent`` only when it names them. ``layout`` lays the result out for Markdown
    and LaTeX, ``wide`` for the console; ``interval_values`` are the scores given bootstrap CIs.
    """

    name: str
    title: str
    protocol: str
    compute: Callable[..., pd.DataFrame]
    layout: Callable[[pd.DataFrame], Layout]
    wide: Callable[[pd.DataFrame], pd.DataFrame]
    interval_values: tuple[str, ...] = ()
    uses_log_base: bool = False

    def table(
        self,
        df: pd.DataFrame,
        *,
        log_base: float = DEFAULT_LOG_BASE,
        percent: Mapping[str, float] | None = None,
        seeds: Seeds | None = None,
    ) -> pd.DataFrame:
        """The table of the long table ``df`` (with the spread over seeds when ``seeds``)."""
        takes = inspect.signature(self.compute).parameters
        given = {"log_base": log_base, "percent": percent}
        return self.compute(df, seeds=seeds, **{k: v for k, v in given.items() if k in takes})

    def percents_said(self, d: pd.DataFrame, percent: Mapping[str, float] | None) -> str:
        """Which percents the table shows, for its title: every table states them."""
        if self.protocol == "layer":
            used = select_rows(d, "layer", self.name, percent)
            said = {m: sorted(set(used.loc[used["mode"] == m, "percent"])) for m in MODE_ORDER}
            kar = "/".join(f"{p:g}" for p in said["kar"]) or "-"
            roar = "/".join(f"{p:g}" for p in said["roar"]) or "-"
            return f" (KAR keeps {kar} %, ROAR removes {roar} % of the tap's locations)"
        used = sorted(set(d.loc[d["protocol"] == "input", "percent"]))
        return f" (at {', '.join(f'{p:g}' for p in used)} % of the pixels)"


#: The paper's tables by name (``table1`` ...), in the order they are written and printed.
TABLES: Registry[TableSpec] = Registry("table", key="table")


def register_table(spec: TableSpec) -> TableSpec:
    """Register ``spec`` under its name (a table module's one registry line)."""
    TABLES.register(spec.name, spec)
    return spec
