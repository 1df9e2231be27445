"""Scores (Eq 8, 9), aggregation of cell results, and the paper's Tables 1, 2, 4, 5."""

from roarkar.report.aggregate import cell_means, collect_results, summarize_seeds
from roarkar.report.long import LONG_COLUMNS, read_long
from roarkar.report.markdown import compare, to_markdown
from roarkar.report.paper import (
    KNOWN_INCONSISTENT,
    compare_with_paper,
    load_paper,
)
from roarkar.report.paper_text import format_comparison, write_comparison
from roarkar.report.prior import (
    PAPER_PRIOR_WEIGHTS,
    derive_prior_weights,
    load_prior_weights,
    per_layer_scores,
    write_prior_weights,
)
from roarkar.report.render import layout_latex, layout_markdown
from roarkar.report.rows import MissingBaselineError
from roarkar.report.scores import (
    DEFAULT_LOG_BASE,
    difference,
    information,
    log_base_label,
    parse_log_base,
)
from roarkar.report.tables import TABLES, Seeds, TableSpec, table1, table2, table4, table5
from roarkar.report.write import format_for_console, write_tables

__all__ = [
    "DEFAULT_LOG_BASE",
    "KNOWN_INCONSISTENT",
    "TABLES",
    "Seeds",
    "TableSpec",
    "PAPER_PRIOR_WEIGHTS",
    "compare_with_paper",
    "derive_prior_weights",
    "format_comparison",
    "layout_latex",
    "layout_markdown",
    "load_paper",
    "load_prior_weights",
    "per_layer_scores",
    "write_comparison",
    "write_prior_weights",
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
