"""roarkar.report.health on hand-made results: a study that discriminates passes, a saturated one
and one that ranks its ground truth below another method fail, and say why."""

from __future__ import annotations

import itertools

import pandas as pd

from roarkar.report.health import check, describe
from roarkar.report.long import LONG_COLUMNS

LAYERS = ("L1", "L2", "L3", "L4", "L5")


def _long(acc) -> pd.DataFrame:
    """``acc(method, mode, layer) -> accuracy`` for the layer protocol, plus an input protocol
    where the ground truth leads."""
    rows = [
        dict(
            dataset="d",
            model="m",
            protocol="layer",
            method=m,
            layer=la,
            mode=mo,
            percent=12.5,
            seed=0,
            accuracy=acc(m, mo, la),
        )
        for m, mo, la in itertools.product(
            ("random", "ground_truth", "smoe"), ("kar", "roar"), LAYERS
        )
    ]
    for m, mo, p in itertools.product(("random", "ground_truth"), ("kar", "roar"), (10, 50, 90)):
        good = (m == "ground_truth") == (mo == "kar")
        rows.append(
            dict(
                dataset="d",
                model="m",
                protocol="input",
                method=m,
                layer="",
                mode=mo,
                percent=p,
                seed=0,
                accuracy=0.8 if good else 0.3,
            )
        )
    return pd.DataFrame(rows, columns=list(LONG_COLUMNS))


def test_a_discriminating_study_passes():
    def acc(method, mode, layer):
        if method == "random":
            return 0.5 if mode == "kar" else 0.8
        if method == "ground_truth":
            return 0.85 if mode == "kar" else 0.2
        return 0.7 if mode == "kar" else 0.5

    checks = check(_long(acc))
    assert all(c.ok for c in checks), describe(checks)
    assert {c.name for c in checks} >= {"saturation", "Table 1 difference", "Table 2 SUM"}


def test_saturation_and_a_losing_ground_truth_fail_loudly():
    def acc(method, mode, layer):
        if method == "smoe":
            return 1.0 if mode == "kar" else 0.1
        return 0.995 if mode == "kar" else (0.999 if method == "random" else 0.95)

    checks = {c.name: c for c in check(_long(acc))}
    assert not checks["saturation"].ok and "20 of 30" in checks["saturation"].detail
    assert not checks["Table 1 difference"].ok and "ranks 2" in checks["Table 1 difference"].detail
    assert not checks["Table 4 KAR ground truth vs random"].ok
    assert not checks["Table 4 ROAR ground truth vs random"].ok
    failed = sum(not c.ok for c in checks.values())
    assert failed >= 5 and f"WARNING: {failed} check(s) failed" in describe(list(checks.values()))
