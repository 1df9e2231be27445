"""study.workers=N runs N cells at once in processes that split the cores, with the results of
a serial run with as many torch threads per process (issue 27 item 2)."""

from __future__ import annotations

import pytest

from tests.conftest import run_in_tree

STUDY = [
    "study.layer=null",
    "study.input.methods=[random,gradient]",
    "study.input.percents=[25]",
    "study.input.modes=[roar]",
]


def test_two_workers_give_the_serial_studys_cells_exactly(tmp_path):
    serial = run_in_tree(tmp_path / "serial", *STUDY)
    parallel = run_in_tree(tmp_path / "parallel", *STUDY, "study.workers=2")
    assert parallel["failed"] == serial["failed"] == 0
    for a, b in zip(serial["records"], parallel["records"], strict=True):  # plan order kept
        assert a["cell"] == b["cell"] and a["cell_id"] == b["cell_id"]
        assert a["history"] == b["history"] and a["accuracy"] == b["accuracy"], a["cell"]
    assert parallel["tables"].split("tables:")[0] == serial["tables"].split("tables:")[0]


def test_workers_below_one_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"study.workers=0: expected at least 1"):
        run_in_tree(tmp_path, *STUDY, "study.workers=0")
