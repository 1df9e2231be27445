"""Method configs keep their cell identities: the composed ``method`` node of every method id that
had a YAML file at commit 30caee5 is frozen (tests/data/method_configs_30caee5.json, captured from
those YAML files), and must stay the same keys, values and types (an int 5 and a float 5.0 hash
differently), so finished studies stay finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

FROZEN = Path(__file__).resolve().parents[1] / "data" / "method_configs_30caee5.json"
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

    from roarkar.config import register_configs
    from tests.conftest import CONF_DIR

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda method: compose("config", [f"method={method}", "task=cell"]).method


def test_every_frozen_method_id_composes_to_its_frozen_node(compose_method):
    assert len(EXPECTED) == 48
    for method, expected in EXPECTED.items():
        got = compose_method(method)
        assert canonical(got) == canonical(expected), method


def test_every_frozen_method_id_reads_the_same_without_hydra():
    """plan, perturbation and the figures' labels read a method id without composing."""
    from roarkar.saliency.configs import method_config

    for method, expected in EXPECTED.items():
        assert canonical(method_config(method)) == canonical(expected), method


def test_every_registered_name_composes_without_a_yaml(compose_method):
    from roarkar.saliency import available, describe
    from roarkar.saliency.configs import method_config, method_ids, preset_ids, registry_config

    assert set(available()) <= set(method_ids())
    for name in available():
        got = OmegaConf.to_container(compose_method(name), resolve=True)
        assert got == method_config(name), name
        if name not in preset_ids():
            assert got == registry_config(name)
            assert set(got["params"]) <= set(describe(name).params)
    for preset in preset_ids():
        assert canonical(compose_method(preset)) == canonical(method_config(preset)), preset


def test_yaml_files_hold_only_presets_that_differ_from_the_registry():
    """A YAML of a registered name differs from the registry's config (else it is deleted); a
    preset over a base repeats no key of it with the same value."""
    from roarkar.saliency.configs import (
        CONF_METHODS,
        method_config,
        preset_ids,
        registry_config,
    )

    for preset in preset_ids():
        own = OmegaConf.to_container(OmegaConf.load(CONF_METHODS / f"{preset}.yaml"))
        if preset == own.get("name"):
            assert canonical(own) != canonical(registry_config(preset)), preset
        for base in own.pop("defaults", None) or []:
            if base == "_self_":
                continue
            if base.startswith("/method/"):
                base = base.removeprefix("/method/").removesuffix("@_here_")
            elif "/" in preset:
                base = f"{preset.rsplit('/', 1)[0]}/{base}"
            inherited = method_config(base)
            params = own.get("params") or {}
            same = {k for k, v in params.items() if inherited["params"].get(k) == v}
            assert not same, f"{preset} repeats {same} of {base}"


def test_an_unknown_method_id_names_the_registered_methods(compose_method, monkeypatch, tmp_path):
    from hydra.errors import MissingConfigException

    import roarkar.saliency.configs as configs

    with pytest.raises(MissingConfigException, match=r"nonsense(.|\n)*\bnoise\b(.|\n)*smoe_scale"):
        compose_method("nonsense")
    with pytest.raises(ValueError, match=r"method 'nonsense': .* known are .*path_integral"):
        configs.method_config("nonsense")
    (tmp_path / "odd.yaml").write_text("defaults: [{smoe_scale: x}]\nid: odd\n")
    monkeypatch.setattr(configs, "CONF_METHODS", tmp_path)
    with pytest.raises(ValueError, match=r"odd.yaml: defaults entry"):
        configs.method_config("odd")


def test_a_registered_method_without_a_yaml_runs_from_the_command_line(tmp_path):
    """``roarkar method=gradient`` (no conf/method/gradient.yaml): the entry point stores the
    registry's configs before Hydra composes."""
    from roarkar.saliency.configs import preset_ids
    from tests.conftest import CONF_DIR

    assert "gradient" not in preset_ids()
    root = CONF_DIR.parent
    proc = subprocess.run(
        [sys.executable, "-m", "roarkar.cli", "task=cell", "debug=smoke", "method=gradient",
         "protocol=input", f"paths.results={tmp_path}", "trainer.progress=false"],
        capture_output=True, text=True, timeout=600, cwd=root,
        env=os.environ | {"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    (result,) = (tmp_path / "cells").rglob("result.json")
    record = json.loads(result.read_text())
    assert record["status"] == "ok" and record["cell"]["method"] == "gradient"
