"""The paper's Tables 1, 2, 4 and 5: importing this module registers them in :data:`TABLES`
(one module each, :mod:`roarkar.report.table_spec` says what a table is).

* Table 4 (layer protocol): accuracy per dataset, method, mode and layer, with Best/Worst rows.
* Table 1 (layer protocol): Difference (Eq 8) and Information (Eq 9) per dataset and method, AVG.
* Table 5 (input protocol): accuracy per method, mode and percent.
* Table 2 (input protocol): KAR = sum of KAR accuracies, ROAR = -sum of ROAR accuracies, SUM.

Several seeds of a cell are averaged first (``seeds=Seeds()`` adds their spread). Accuracies are
shown in percent in Tables 4 and 5 (as in the paper) and as fractions in Tables 1 and 2 (whose
published scores are sums of fractions). Every function returns a long, tidy DataFrame;
``pivot_*`` give the paper's layout.
"""

from __future__ import annotations

from roarkar.report.table1_layer_scores import layout_table1, pivot_table1, table1
from roarkar.report.table2_input_sums import input_sums, layout_table2, table2
from roarkar.report.table4_layer_accuracy import layout_table4, pivot_table4, table4
from roarkar.report.table5_input_accuracy import layout_table5, pivot_table5, table5
from roarkar.report.table_spec import TABLES, TableSpec
from roarkar.report.uncertainty import Seeds

__all__ = [
    "TABLES",
    "Seeds",
    "TableSpec",
    "input_sums",
    "layout_table1",
    "layout_table2",
    "layout_table4",
    "layout_table5",
    "pivot_table1",
    "pivot_table4",
    "pivot_table5",
    "table1",
    "table2",
    "table4",
    "table5",
]
