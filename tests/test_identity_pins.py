"""Finished studies stay finished: the identities of the default study's cells and dataset are pinned
(a refactor that changes what is hashed would otherwise retrain every finished cell silently)."""

from __future__ import annotations

import pytest

from roarkar.data.materialize import dataset_dir
from roarkar.protocols.cell import cell_path

PINNED = [
    (["protocol.layer=L1", "protocol.mode=kar", "method=smoe_scale"], "f4431b152f2f9823"),
    (["protocol.layer=L3", "protocol.mode=roar", "method=smoe_scale"], "66685c6fba613c03"),
    (["protocol=input", "protocol.mode=kar", "protocol.percent=10", "method=smoe_scale"],
     "1911e219d9465647"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "identity"), PINNED)
def test_default_study_cell_identities_are_pinned(tmp_path, overrides, identity):
    from hydra import compose, initialize_config_dir

    from roarkar.saliency.configs import register_method_configs
    from tests.conftest import CONF_DIR

    register_method_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [f"paths.results={tmp_path}", "task=cell", *overrides])
    _, got, directory = cell_path(cfg)
    assert got == identity and directory.name.endswith(identity[:8])


def test_embedded_dataset_identity_is_pinned(tmp_path):
    from omegaconf import OmegaConf

    from tests.conftest import CONF_DIR

    cfg = OmegaConf.load(CONF_DIR / "dataset" / "synth_objects.yaml")
    assert dataset_dir(cfg, tmp_path).name == "synth_objects-ddd9a6a7"
