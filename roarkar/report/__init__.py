"""Scores (Eq 8, 9), aggregation of cell results, and the paper's Tables 1, 2, 4, 5."""

from roarkar.report.aggregate import (
    LONG_COLUMNS,
    cell_means,
    collect_results,
    read_long,
    summarize_seeds,
)
from roarkar.report.scores import (
    DEFAULT_LOG_BASE,
    difference,
    information,
    log_base_label,
    parse_log_base,
)
from roarkar.report.tables import (
    MissingBaselineError,
    compare,
    format_for_console,
    table1,
    table2,
    table4,
    table5,
    to_markdown,
    write_tables,
)

__all__ = [
    "DEFAULT_LOG_BASE",
    "LONG_COLUMNS",
    "MissingBaselineError",
    "cell_means",
    "collect_results",
    "compare",
    "difference",
    "format_for_console",
    "information",
    "log_base_label",
    "parse_log_base",
    "read_long",
    "summarize_seeds",
    "table1",
    "table2",
    "table4",
    "table5",
    "to_markdown",
    "write_tables",
]
