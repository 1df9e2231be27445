"""The mask leak (issue 28 item 3): a classifier on the removal mask alone, against chance."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from roarkar.cli import run
from roarkar.leak import (
    LEAK_COLUMNS,
    LeakSettings,
    leak_markdown,
    leak_settings,
    leak_table,
    leak_warnings,
    wilson_interval,
)
from roarkar.removal import saliency_ranks


def test_wilson_interval_known_values():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def _ranks(labels: torch.Tensor, leaky: bool, seed: int) -> torch.Tensor:
    """Maps whose salient half is the top (class 0) or bottom (class 1) half when ``leaky``,
    random otherwise, as ranks."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(len(labels), 16, 16, generator=g)
    if leaky:
        top = torch.zeros(16, 16)
        top[:8] = 1.0
        maps = maps + 2 * torch.where(labels[:, None, None] == 0, top, 1 - top)
    return saliency_ranks(maps, g)


def test_a_class_shaped_mask_leaks_and_a_random_one_does_not():
    labels = {"train": torch.arange(400) % 2, "val": torch.arange(200) % 2}
    ranks = {
        name: {split: _ranks(y, name == "leaky", i) for i, (split, y) in enumerate(labels.items())}
        for name in ("leaky", "random")
    }
    settings = LeakSettings(epochs=3)
    table = leak_table(ranks, labels, 2, [25], ["roar", "kar"], seed=0, settings=settings)
    assert list(table.columns) == LEAK_COLUMNS and len(table) == 4
    by = table.set_index(["method", "mode"])
    assert (by.loc["leaky", "accuracy"] > 95).all()
    assert (by.loc["random", "accuracy"] < 65).all()
    assert (table["chance"] == 50.0).all()
    assert (table["ci_low"] <= table["accuracy"]).all() and (
        table["accuracy"] <= table["ci_high"]
    ).all()
    again = leak_table(ranks, labels, 2, [25], ["roar", "kar"], seed=0, settings=settings)
    pd.testing.assert_frame_equal(table, again)  # seeded: the same table
    warnings = leak_warnings(table)
    assert len(warnings) == 2 and all("leaky" in w for w in warnings)
    assert "| leaky |" in leak_markdown(table)


def _row(method: str, accuracy: float, chance: float = 12.5) -> dict:
    values = [method, "roar", 25.0, 1200, 400, accuracy, accuracy - 4, accuracy + 4, 12.5, 13.0]
    return dict(zip(LEAK_COLUMNS, [*values, chance, accuracy - chance], strict=True))


def test_health_check_warns_only_above_the_margin():
    table = pd.DataFrame([_row("smoe_scale", 35.5), _row("gradient", 20.0)])
    warnings = leak_warnings(table)
    assert len(warnings) == 1 and "smoe_scale ROAR 25 %" in warnings[0]
    assert "23.0 points above chance" in warnings[0]
    assert leak_warnings(table, margin=5.0)[1].count("gradient") == 1
    assert leak_warnings(table, margin=30.0) == []


def test_leak_settings_from_config_name_unknown_keys(compose_cfg):
    assert leak_settings(compose_cfg([])) == LeakSettings()
    assert leak_settings(compose_cfg(["+leak.epochs=2"])).epochs == 2
    with pytest.raises(ValueError, match="unknown key"):
        leak_settings(compose_cfg(["+leak.epoch=2"]))


def test_task_leak_writes_and_prints_the_table(compose_cfg, tmp_path, capsys):
    overrides = [
        "task=leak",
        "study.layer=null",
        "study.input.methods=[random,ground_truth]",
        "study.input.percents=[25]",
        "+leak.epochs=1",
    ]
    cfg = compose_cfg(overrides)
    out = run(cfg, compose_cfg.overrides)  # as the entry point: every command-line override
    assert out["rows"] == 4
    tables = tmp_path / "results" / "tables"
    table = pd.read_csv(tables / "leak.csv")
    assert list(table.columns) == ["dataset", "model", "seed", *LEAK_COLUMNS]
    assert set(table["method"]) == {"random", "ground_truth"} and set(table["mode"]) == {
        "kar",
        "roar",
    }
    assert (table["n_val"] == 48).all() and (table["chance_uniform"] == 12.5).all()
    assert "Mask leak: dataset synth_objects" in (tables / "leak.md").read_text()
    assert "ground_truth" in capsys.readouterr().out
