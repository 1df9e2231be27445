"""Method configs keep their cell identities: the composed ``method`` node of every method id that
had a YAML file at commit 30caee5 is frozen (tests/data/method_configs_30caee5.json, captured from
those YAML files), and must stay the same keys, values and types (an int 5 and a float 5.0 hash
differently), so finished studies stay finished."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

FROZEN = Path(__file__).resolve().parent / "data" / "method_configs_30caee5.json"
EXPECTED = json.loads(FROZEN.read_text())


def canonical(node: object) -> str:
    """The JSON text a cell identity hashes (sorted keys; an int stays an int)."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    return json.dumps(node, sort_keys=True)


@pytest.fixture(scope="module")
def compose_method():
    """compose(method=<id>) -> the composed ``method`` node (Hydra initialised once)."""
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda method: compose("config", [f"method={method}", "task=cell"]).method


def test_every_frozen_method_id_composes_to_its_frozen_node(compose_method):
    assert len(EXPECTED) == 48
    for method, expected in EXPECTED.items():
        got = compose_method(method)
        assert canonical(got) == canonical(expected), method
