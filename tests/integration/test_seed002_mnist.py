"""Seed 002's study on the offline MNIST digits, whole (`experiment=nielsen2022_cpu`): 100 cells.

Marked slow (`pytest -m slow`; 27 min on 2 cores, 2026-11-30, torch single-threaded as in every
test; the CLI, two threads, took 16.5 min). It holds what results/embedded/nielsen2022/README.md reports: the integrated-gradients
family removes the evidence best (its true-class score below random's at every level), guided
backprop equals the gradient on this SELU network, and with mean replacement the gradient family
does not beat random removal at t = 0.5 (ROAR's fill leaks the outline).
"""

from __future__ import annotations

import pytest

from roarkar.cli import run
from roarkar.study import records_to_long


@pytest.mark.slow
def test_nielsen2022_cpu_on_the_mnist_digits(tmp_path):
    from hydra import compose, initialize_config_dir

    from roarkar.config import register_configs
    from tests.conftest import CONF_DIR

    overrides = [
        f"paths.results={tmp_path}",
        "trainer.progress=false",
        "experiment=nielsen2022_cpu",
    ]
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        out = run(compose(config_name="config", overrides=overrides), overrides)
    assert out["cells"] == 100 and out["failed"] == 0
    long = records_to_long(out["records"])
    score = long.pivot_table(
        index="method", columns="percent", values="true_class_score", aggfunc="mean"
    )
    for percent in (10, 30, 50, 70, 90):
        assert score.loc["integrated_gradients", percent] < score.loc["random", percent] - 0.1
    assert score.loc["guided_backprop"].equals(score.loc["gradient"])
    assert score.loc["smoothgrad", 50] > score.loc["random", 50]  # the fill's leak
