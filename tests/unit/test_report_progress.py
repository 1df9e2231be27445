"""The study's progress line: cells done of the total and the time left from the cells done so far
(roarkar.report.progress), one rule for the study's console and task=status."""

from __future__ import annotations

import pytest

from roarkar.report.progress import estimate_left, format_duration, progress_line


def test_time_left_is_the_mean_of_the_finished_cells_of_each_group():
    done = [(("a", "layer"), 10.0), (("a", "layer"), 20.0), (("a", "input"), 100.0)]
    left = [("a", "layer")] * 3 + [("a", "input")] * 2
    estimate = estimate_left(done, left)
    assert estimate.seconds == pytest.approx(3 * 15.0 + 2 * 100.0)
    assert estimate.unestimated == 0


def test_a_group_with_none_finished_counts_at_the_mean_of_all_and_is_named():
    estimate = estimate_left([(("a", "layer"), 10.0), (("a", "layer"), 30.0)], [("b", "input")])
    assert (estimate.seconds, estimate.unestimated) == (20.0, 1)
    line = progress_line(2, 3, estimate)
    assert line == (
        "study: 2/3 cells done; about 20 s left (1 cells of a dataset/protocol with none "
        "finished, counted at the mean of all)"
    )


def test_nothing_finished_gives_no_estimate_and_the_line_says_so():
    assert estimate_left([], [("a", "layer")]) is None
    assert progress_line(0, 4, None) == (
        "study: 0/4 cells done; time left not estimated yet (no cell finished)"
    )


def test_the_line_counts_failed_cells_and_stops_estimating_when_every_cell_is_settled():
    estimate = estimate_left([(("a", "layer"), 61.0)], [("a", "layer")] * 2)
    assert progress_line(1, 4, estimate, failed=1) == (
        "study: 1/4 cells done (1 failed); about 2 min 02 s left"
    )
    assert progress_line(3, 4, estimate, failed=1) == "study: 3/4 cells done (1 failed)"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0 s"), (59, "59 s"), (60, "1 min 00 s"), (3725, "1 h 02 min")]
)
def test_durations_read_as_a_person_would_write_them(seconds, text):
    assert format_duration(seconds) == text
