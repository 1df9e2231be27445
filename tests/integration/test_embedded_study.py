"""The README's first command, default config (minutes): the benchmark must discriminate.

Marked slow: run with `pytest -m slow` (34 minutes on 2 cores, 2026-11-30). The criteria are those of
``roarkar.report.health`` (what every study prints after its tables): the ground truth first in
Tables 1 and 2, at least 10 points from random at three or more layers in each mode of Table 4,
and no more than a fifth of Table 4 at or above 99 %.
"""

from __future__ import annotations

import pytest

from roarkar.cli import run
from roarkar.report.health import check
from roarkar.report.tables import Seeds, table1, table2
from roarkar.study import records_to_long


def _study(tmp_path, *extra: str):
    from hydra import compose, initialize_config_dir

    from roarkar.config import register_configs
    from tests.conftest import CONF_DIR

    overrides = [f"paths.results={tmp_path}", "trainer.progress=false", *extra]
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        out = run(compose(config_name="config", overrides=overrides), overrides)
    assert out["failed"] == 0
    return records_to_long(out["records"])


def _assert_discriminates(long) -> None:
    failed = [c.line() for c in check(long) if not c.ok]
    assert not failed, "\n".join(failed)


@pytest.mark.slow
def test_default_study_discriminates_on_every_seed(tmp_path):
    long = _study(tmp_path, "study.seeds=[0,1,2]")
    for seed in (0, 1, 2):  # seed 0 alone is `roarkar` with no arguments
        _assert_discriminates(long[long.seed == seed])
    t1 = table1(long, seeds=Seeds()).set_index(["dataset", "method"])
    gt = t1.loc[("synth_objects", "ground_truth")]
    assert gt["n"] == 3 and gt["difference_ci_low"] > 0 and gt["information_ci_low"] > 0
    others = t1.drop(index=("synth_objects", "ground_truth"), errors="ignore")
    others = others[others.index.get_level_values(0) == "synth_objects"]
    assert gt["difference"] > others["difference"].max()
    t2 = table2(long, seeds=Seeds()).set_index("method")
    assert t2.loc["ground_truth", "sum_ci_low"] > t2.loc["random", "sum_ci_high"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "dataset",
    ["synth_scenes", "synth_cars"],
)
def test_default_study_discriminates_on_the_other_sets(tmp_path, dataset):
    _assert_discriminates(_study(tmp_path, f"dataset={dataset}"))
