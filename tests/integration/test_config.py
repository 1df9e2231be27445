"""The typed config (roarkar/config): composed against its schema, resolved once, one parse of the
stage recipe, the identity rule read from the schema's field metadata, unknown keys named."""

from __future__ import annotations

import pytest

from roarkar.config import Config, TrainerConfig, not_in_identity, register_configs, resolve
from roarkar.config.overrides import check_override_keys
from roarkar.config.schema import DatasetKeys
from roarkar.identity import NOT_RESULT_RELEVANT
from roarkar.metrics.run_settings import NOT_IN_IDENTITY, RunSettings
from tests.conftest import CONF_DIR


def test_resolve_types_every_node_once(compose_cfg):
    config = resolve(compose_cfg(["protocol=input", "trainer.lr_scale.input=0.5"]))
    assert isinstance(config, Config) and resolve(config) is config
    assert isinstance(config.trainer, TrainerConfig)
    assert config.protocol.target == "predicted" and config.dataset.name == "synth_objects"
    stage = config.trainer.stage("input")
    assert (stage.epochs, stage.lr_scale) == (1, 0.5)  # debug=smoke
    assert stage.recipe["epochs"] == 1 and "progress" not in stage.recipe
    with pytest.raises(ValueError, match="trainer.epochs has no entry 'fine'"):
        config.trainer.stage("fine")


def test_the_identity_rule_is_the_schemas_field_metadata():
    assert NOT_RESULT_RELEVANT == not_in_identity(DatasetKeys, TrainerConfig)
    assert {"root", "progress", "eval_batch_size", "shard_size", "log_every"} <= NOT_RESULT_RELEVANT
    assert NOT_IN_IDENTITY == not_in_identity(RunSettings)
    assert "image_chunk" in NOT_IN_IDENTITY and "images" not in NOT_IN_IDENTITY


def test_perturbation_defaults_come_from_run_settings(compose_cfg):
    config = resolve(compose_cfg(["experiment=perturbation", "perturbation.noise=0.0"]))
    run = RunSettings.from_config(config.perturbation)
    assert run.metrics.noise == 0.0 and run.K == 2  # debug=smoke
    assert run.methods == RunSettings().methods


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.lrr=0.1", r"^trainer.lrr is not a config key; nearest: trainer.lr, "),
        (
            "dataset.trian_size=3",
            r"^dataset.trian_size is not a config key; nearest: dataset.train_size",
        ),
    ],
)
def test_an_unknown_key_is_named_with_the_nearest(override, message):
    register_configs()  # as the entry point does (Hydra is initialised by the check itself)
    with pytest.raises(ValueError, match=message):
        check_override_keys(str(CONF_DIR), ["paths.results=/tmp/x", "dataset=synth_cars", override])
    check_override_keys(str(CONF_DIR), ["trainer.lr=0.1", "-m", "seed=1,2"])  # fine: nothing raised
