"""Protocol registry conformance: every registered protocol is a whole unit (its config view, its
preset, its trainer stage, its study part, the tables it feeds), and its study expansion makes one
cell per combination of its study's lists."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import get_type_hints

import pytest
import yaml

from roarkar.config import StudyConfig
from roarkar.config.nodes import PROTOCOL_VIEWS, ProtocolConfig
from roarkar.config.schema import STAGES
from roarkar.protocols import PROTOCOLS, StudyPart, get_protocol
from roarkar.registry import UnknownName
from roarkar.report.long import PROTOCOLS as LONG_PROTOCOLS
from roarkar.report.tables import TABLES

CONF = Path(__file__).resolve().parents[2] / "roarkar" / "conf"
NAMES = PROTOCOLS.names()


def test_the_paper_protocols_are_registered_in_plan_order():
    assert NAMES == ["layer", "input"]
    assert set(NAMES) == set(LONG_PROTOCOLS)  # the long table's protocol column takes exactly these


@pytest.mark.parametrize("name", NAMES)
def test_a_protocol_is_a_whole_unit(name):
    protocol = get_protocol(name)
    assert protocol.name == name
    # its typed view is the one the config builds for protocol.name
    assert PROTOCOL_VIEWS.get(name) is protocol.config
    assert isinstance(ProtocolConfig.of({"name": name, "mode": "kar"}), protocol.config)
    preset = yaml.safe_load((CONF / "protocol" / f"{name}.yaml").read_text())
    assert preset["name"] == name
    assert name in STAGES  # its cells train with trainer.epochs.<name> and lr_scale.<name>
    study = get_type_hints(StudyConfig)
    assert name in study, f"StudyConfig has no study.{name} part"
    part_fields = {f.name for f in fields(study[name].__args__[0])}  # Optional[<Part>]
    assert set(protocol.study_lists) <= part_fields
    # the tables it names are registered and say they come from it
    assert protocol.tables
    for table in protocol.tables:
        assert TABLES.get(table).protocol == name


def test_every_table_comes_from_a_registered_protocol_that_lists_it():
    for name, spec in TABLES.items():
        assert name in get_protocol(spec.protocol).tables, (name, spec.protocol)


def test_an_unknown_protocol_names_the_registered_ones():
    with pytest.raises(UnknownName, match=r"protocol.name='lyer'.*did you mean 'layer'.*input"):
        get_protocol("lyer")


def test_layer_study_expands_methods_layers_modes_and_drops_taps_the_model_lacks():
    part = StudyPart(
        {
            "methods": ["a", "b"],
            "layers": ["L1", "L2", "L5"],
            "modes": ["kar", "roar"],
            "percents": {"kar": 10, "roar": 90},
        },
        model="cnn",
        taps=lambda: ("L1", "L2"),
    )
    cells = get_protocol("layer").study_cells(part)
    assert len(cells) == 2 * 2 * 2  # L5 is not a tap of this model
    assert {c[1]["protocol.layer"] for c in cells} == {"L1", "L2"}
    assert all(
        c[1]["protocol.percent"] == {"kar": 10, "roar": 90}[c[1]["protocol.mode"]] for c in cells
    )
    with pytest.raises(ValueError, match=r"study.layer.layers=\['L5'\]: model cnn has taps L1, L2"):
        get_protocol("layer").study_cells(
            StudyPart(part.node | {"layers": ["L5"]}, "cnn", lambda: ("L1", "L2"))
        )


def test_input_study_expands_methods_percents_modes():
    part = StudyPart({"methods": ["a"], "percents": [10, 50, 90], "modes": ["kar", "roar"]})
    cells = get_protocol("input").study_cells(part)
    assert [(m, s["protocol.percent"], s["protocol.mode"]) for m, s in cells] == [
        ("a", p, mode) for p in (10, 50, 90) for mode in ("kar", "roar")
    ]
    assert get_protocol("input").precomputes and not get_protocol("layer").precomputes
