"""Finished studies stay finished: the identities of the default study's cells, base models,
saliency precomputes and datasets are pinned (a refactor that changes what is hashed would
otherwise retrain every finished cell, or recompute every map, silently)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from roarkar.config import resolve
from roarkar.data.materialize import dataset_dir
from roarkar.identity import base_identity
from roarkar.protocols.base import base_dir
from roarkar.protocols.cell import cell_path
from roarkar.protocols.precompute import precompute_dir
from roarkar.protocols.settings import ProtocolSettings
from tests.conftest import CONF_DIR

PINNED = [
    (["protocol.layer=L1", "protocol.mode=kar", "method=smoe_scale"], "f4431b152f2f9823"),
    (["protocol.layer=L3", "protocol.mode=roar", "method=smoe_scale"], "66685c6fba613c03"),
    (["protocol=input", "protocol.mode=kar", "protocol.percent=10", "method=smoe_scale"],
     "1911e219d9465647"),
]  # fmt: skip

# (overrides, base model identity, its directory, the precompute directory or None)
BASES = [
    ([], "60c93e433fdea432", "synth_objects/small_resnet-s0-60c93e43", None),
    (["protocol=input", "protocol.percent=10", "method=smoe_scale"], "60c93e433fdea432",
     "synth_objects/small_resnet-s0-60c93e43", "synth_objects/smoe_scale-b08caec7"),
    (["protocol=input", "method=gradient", "protocol.target=label", "seed=3"], "95c483177bc4c205",
     "synth_objects/small_resnet-s3-95c48317", "synth_objects/gradient-d15f8ec2"),
    (["protocol=input", "method=random", "dataset=synth_cars"], "24ea42d7d757c17e",
     "synth_cars/small_resnet-s0-24ea42d7", "synth_cars/random-48e3315e"),
    (["dataset=mnist", "dataset.root=/tmp/x", "model=resnet18"], "0bc7fc9d863ea907",
     "mnist/resnet18-s0-0bc7fc9d", None),
    (["protocol=input", "dataset=cifar10", "dataset.root=/nowhere", "method=fastcam"],
     "71a2f5c936754378", "cifar10/small_resnet-s0-71a2f5c9", "cifar10/fastcam-8bcb7150"),
]  # fmt: skip

# every shipped dataset config's shard directory (shards: a directory the user names)
DATASETS = {
    "cifar10": "cifar10-c032e4f0",
    "cowc": "cowc-a14fb9b6",
    "folder": "folder-0633b820",
    "imagenet": "imagenet-f4939183",
    "mnist": "mnist-2fc4264c",
    "places365": "places365-ca4f4099",
    "synth_cars": "synth_cars-ef859ae8",
    "synth_objects": "synth_objects-ddd9a6a7",
    "synth_scenes": "synth_scenes-b184dfd1",
    "tiny_imagenet": "tiny_imagenet-e3127730",
}


def _compose(results: Path, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from roarkar.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", [f"paths.results={results}", "task=cell", *overrides])


def _ids(cfg, results: Path) -> tuple[str, Path, Path | None]:
    """Base identity, base directory and (input protocol) precompute directory of ``cfg``."""
    ctx = SimpleNamespace(results=results, spec=ProtocolSettings.from_config(resolve(cfg)))
    recipe = resolve(cfg).trainer.stage("base").recipe
    base = base_identity(cfg.dataset, cfg.model, recipe, cfg.seed)
    pre = precompute_dir(ctx, base) if cfg.protocol.name == "input" else None
    return base, base_dir(ctx, base), pre


@pytest.mark.parametrize(("overrides", "identity"), PINNED)
def test_default_study_cell_identities_are_pinned(tmp_path, overrides, identity):
    cfg = _compose(tmp_path, overrides)
    _, got, directory = cell_path(cfg)
    assert got == identity and directory.name.endswith(identity[:8])


@pytest.mark.parametrize(("overrides", "base", "where", "maps"), BASES)
def test_base_model_and_precompute_identities_are_pinned(tmp_path, overrides, base, where, maps):
    got, directory, pre = _ids(_compose(tmp_path, overrides), tmp_path)
    assert got == base and directory == tmp_path / "models" / where
    assert pre == (None if maps is None else tmp_path / "saliency" / maps)


def test_weights_file_base_and_precompute_identities_are_pinned(tmp_path):
    """A pretrained base model is its weights file's content: any path, any seed, same identity."""
    weights = tmp_path / "elsewhere" / "w.bin"
    weights.parent.mkdir()
    weights.write_bytes(b"not really weights")
    overrides = ["protocol=input", f"model.weights={weights}", "seed=5", "dataset=synth_scenes"]
    got, directory, pre = _ids(_compose(tmp_path, overrides), tmp_path)
    assert got == "e6b4da14999c47db"
    assert directory == tmp_path / "models/synth_scenes/small_resnet-weights-e6b4da14"
    assert pre == tmp_path / "saliency/synth_scenes/smoe_scale-2b56f8a7"


def test_embedded_dataset_identity_is_pinned(tmp_path):
    cfg = OmegaConf.load(CONF_DIR / "dataset" / "synth_objects.yaml")
    assert dataset_dir(cfg, tmp_path).name == "synth_objects-ddd9a6a7"


@pytest.mark.parametrize(("name", "directory"), sorted(DATASETS.items()))
def test_every_shipped_dataset_identity_is_pinned(tmp_path, name, directory):
    cfg = OmegaConf.load(CONF_DIR / "dataset" / f"{name}.yaml")
    assert dataset_dir(cfg, tmp_path).name == directory


def test_one_rule_of_what_is_result_relevant():
    """Identities leave out NOT_RESULT_RELEVANT at any depth; a dataset's shard directory also
    leaves out its naming keys but keeps the storage keys (they decide what is stored)."""
    from roarkar.identity import (
        NAMING_KEYS,
        NOT_RESULT_RELEVANT,
        STORAGE_KEYS,
        dataset_content_hash,
        identity_hash,
    )

    node = {"kind": "synthetic", "seed": 1}
    for key in NOT_RESULT_RELEVANT:
        assert identity_hash({"a": {"b": node | {key: "x"}}}) == identity_hash({"a": {"b": node}})
    for key in (NOT_RESULT_RELEVANT - STORAGE_KEYS) | NAMING_KEYS:
        assert dataset_content_hash(node | {key: "x"}, 2) == dataset_content_hash(node, 2), key
    for key in STORAGE_KEYS | {"seed", "image_size"}:
        assert dataset_content_hash(node | {key: "y"}, 2) != dataset_content_hash(node, 2), key
