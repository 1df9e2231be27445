"""Names that become folders are one path component each (roarkar.files.path_component), and an
artifact's folder is built only from such names (child_path, Cell.relative_dir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from roarkar.files import child_path, path_component
from roarkar.store import Cell

ESCAPES = ["..", ".", "", "a/b", "../up", "/abs/path", "a\\b", " padded", "nul\x00"]


@pytest.mark.parametrize("name", ESCAPES)
def test_every_escape_is_refused_naming_the_key(name):
    with pytest.raises(ValueError, match=r"^dataset\.name=.*expected one path component"):
        path_component(name, "dataset.name")


@pytest.mark.parametrize("name", ["synth_objects", "smoe_scale", "L3", "my.method", ".hidden"])
def test_plain_names_pass_unchanged(name):
    assert path_component(name, "k") == name


def test_child_path_joins_checked_names_under_the_root(tmp_path):
    assert child_path(tmp_path, "cells", ("d", "dataset.name")) == tmp_path / "cells" / "d"
    with pytest.raises(ValueError, match=r"method\.id='\.\./\.\.'"):
        child_path(tmp_path, "maps", ("../..", "method.id"))


FIELDS = {
    "dataset": "d",
    "model": "m",
    "protocol": "layer",
    "method": "random",
    "layer": "L1",
    "mode": "kar",
    "percent": 10.0,
    "seed": 0,
}


@pytest.mark.parametrize(
    ("field", "key"),
    [
        ("dataset", "dataset.name"),
        ("model", "model.name"),
        ("method", "method.id"),
        ("layer", "protocol.layer"),
        ("mode", "protocol.mode"),
    ],
)
@pytest.mark.parametrize("name", ["..", "x/../../y", "/etc"])
def test_a_cell_refuses_a_folder_name_that_escapes(field, key, name):
    with pytest.raises(ValueError, match=rf"^{key}="):
        Cell(**FIELDS | {field: name})


def test_a_good_cell_stays_inside_cells():
    path = Cell(**FIELDS).relative_dir("0123456789")
    assert path == Path("cells/d/m/layer/random/L1-kar-p10-s0-01234567")
    assert ".." not in path.parts
