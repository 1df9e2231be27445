"""The README's first command, default config (minutes): ground truth must beat random.

Marked slow: run with `pytest -m slow`. Its wall time is reported by the study, not asserted here.
"""

from __future__ import annotations

import pytest

from roarkar.cli import run
from roarkar.study import records_to_long


@pytest.mark.slow
def test_default_embedded_study_ground_truth_beats_random(tmp_path):
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    overrides = [f"paths.results={tmp_path}", "trainer.progress=false"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        out = run(compose(config_name="config", overrides=overrides), overrides)
    assert out["failed"] == 0
    long = records_to_long(out["records"])
    for protocol in ("layer", "input"):
        part = long[long.protocol == protocol]
        total = part.groupby(["method", "mode"]).accuracy.sum()
        assert total["ground_truth", "kar"] > total["random", "kar"], protocol
        assert total["ground_truth", "roar"] < total["random", "roar"], protocol
