"""The mask leak, measured (issue 28): can a classifier name the class from a method's binary
removal mask alone? classifier.py: the mask CNN and the Wilson interval; table.py: the table per
method, mode and percent, its Markdown and the health warnings; run.py: ``task=leak`` on a study.
"""

from roarkar.leak.classifier import LeakSettings, MaskNet, mask_accuracy, wilson_interval
from roarkar.leak.run import leak_settings, run_leak, study_leak_table
from roarkar.leak.table import LEAK_COLUMNS, leak_markdown, leak_table, leak_warnings

__all__ = [
    "LEAK_COLUMNS",
    "LeakSettings",
    "MaskNet",
    "leak_markdown",
    "leak_settings",
    "leak_table",
    "leak_warnings",
    "mask_accuracy",
    "run_leak",
    "study_leak_table",
    "wilson_interval",
]
