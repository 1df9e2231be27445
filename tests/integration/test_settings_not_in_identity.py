"""No setting that cannot change a result changes an identity (issue 30 item 1), proven key by
key: a tiny study runs once; then, for each such setting, changing it alone leaves ``task=plan``
reporting every cell done, and running the study again trains nothing, prepares no other shards
and makes no other base model."""

from __future__ import annotations

import pytest

from roarkar.cli import run
from roarkar.config.overrides import schema_key_overrides
from roarkar.config.schema import LoaderConfig, PrecomputeConfig, not_in_identity
from roarkar.config.schema import TrainerConfig as Trainer
from roarkar.identity import NOT_RESULT_RELEVANT
from roarkar.protocols.cell import cell_path
from tests.conftest import run_in_tree

STUDY = [
    "study.layer.methods=[random,smoe_scale]",
    "study.layer.layers=[L5]",
    "study.input.methods=[random]",
    "study.input.percents=[25]",
    "study.layer.modes=[kar]",
    "study.input.modes=[roar]",
]
#: one changed value per setting that never changes a result: the keys marked identity: False in
#: the schema (dataset, trainer), the loader and precompute blocks, and the run's own scalars
CHANGED = {
    "dataset.num_workers": "2",
    "dataset.nominal_train_size": "5000",
    "dataset.nominal_val_size": "500",
    "dataset.verify": "content",
    "dataset.allow_outside_root": "false",
    "dataset.allow_class_mismatch": "true",
    "dataset.workers": "2",
    "dataset.root": "/nonexistent/synthetic-sets-have-no-root",
    "trainer.eval_batch_size": "7",
    "trainer.progress": "true",
    "trainer.logger": "none",
    "trainer.log_every": "3",
    "loader.in_memory": "false",
    "loader.memory_limit_gb": "1",
    "loader.pool": "2",
    "loader.workers": "1",
    "loader.prefetch": "3",
    "precompute.parts": "3",
    "precompute.part": "1",
    "claim_ttl_s": "60",
}
#: dataset keys that are not result-relevant but decide what is stored (shards cut otherwise,
#: other files listed): they enter the shard directory's content hash, so they rebuild shards
STORAGE = {"shard_size", "train_list", "val_list"}


def _as_given(key: str, value: str) -> list[str]:
    """The override as the entry point passes it to Hydra (a shared dataset key on any preset)."""
    return schema_key_overrides([f"{key}={value}"])


def test_every_setting_that_cannot_change_a_result_is_listed_here():
    """The list above covers the rule's keys: a new identity: False key must be added to it."""
    schema = {f"dataset.{k}" for k in NOT_RESULT_RELEVANT - not_in_identity(Trainer) - STORAGE}
    schema |= {f"trainer.{k}" for k in not_in_identity(Trainer)}
    schema |= {f"loader.{f}" for f in LoaderConfig.__dataclass_fields__}
    schema |= {f"precompute.{f}" for f in PrecomputeConfig.__dataclass_fields__}
    assert schema <= set(CHANGED) | {"dataset.skip_corrupt"}, sorted(schema - set(CHANGED))


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """The tiny study, run once: its tree, and which shard and model folders it made."""
    results = tmp_path_factory.mktemp("identity") / "results"
    out = run_in_tree(results, *STUDY)
    assert out["failed"] == 0 and out["cells"] == 3
    made = {p.relative_to(results) for p in (results / "data").iterdir()}
    models = {p.relative_to(results) for p in (results / "models").rglob("*") if p.is_dir()}
    return results, made, models


@pytest.mark.parametrize(("key", "value"), sorted(CHANGED.items()))
def test_changing_it_leaves_every_cell_done(compose_cfg, done, key, value):
    results, _, _ = done
    cfg = compose_cfg([*STUDY, *_as_given(key, value), "task=plan"], results)
    plan = run(cfg, compose_cfg.overrides)
    assert [c["status"] for c in plan["cells"]] == ["done"] * 3, key


@pytest.mark.parametrize(
    "key", ["dataset.workers", "dataset.verify", "trainer.eval_batch_size", "loader.in_memory"]
)
def test_running_the_study_again_with_it_changed_builds_nothing(compose_cfg, done, key):
    """The keys that reach data, base models and batches when a study runs."""
    results, made, models = done
    out = run(compose_cfg([*STUDY, *_as_given(key, CHANGED[key])], results), compose_cfg.overrides)
    assert all(r.get("skipped") for r in out["records"]), key
    assert {p.relative_to(results) for p in (results / "data").iterdir()} == made
    assert {p.relative_to(results) for p in (results / "models").rglob("*") if p.is_dir()} == models


def test_paths_move_the_tree_but_not_an_identity(compose_cfg, tmp_path):
    here = cell_path(compose_cfg(STUDY[:1], tmp_path / "a"))
    there = cell_path(compose_cfg([*STUDY[:1], f"paths.data={tmp_path / 'd'}"], tmp_path / "b"))
    assert here[1] == there[1] and here[2] != there[2]
