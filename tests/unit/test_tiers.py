"""The tiers of tests/ (tests/TIERS.md): every test file lives in one tier folder and is listed there
under that tier, so `pytest tests/unit` is the whole fast tier and a new file gets placed."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TIERS = ("unit", "integration", "system")


def _listed() -> dict[str, list[str]]:
    """Tier -> the test files tests/TIERS.md lists under its ``## <tier>`` heading."""
    listed: dict[str, list[str]] = {}
    tier = None
    for line in (TESTS / "TIERS.md").read_text().splitlines():
        if line.startswith("## "):
            tier = line[3:].strip()
            listed[tier] = []
        elif tier and (m := re.fullmatch(r"- `(test_\w+\.py)`.*", line)):
            listed[tier].append(m.group(1))
    return listed


def test_every_test_file_is_in_a_tier_folder():
    assert sorted(p.name for p in TESTS.glob("test_*.py")) == [], "move it into a tier folder"
    for tier in TIERS:
        folder = TESTS / tier
        assert (folder / "__init__.py").is_file(), folder
        assert list(folder.glob("test_*.py")), f"tests/{tier} holds no test file"


def test_tiers_md_lists_each_file_under_its_folder():
    listed = _listed()
    assert sorted(listed) == sorted(TIERS)
    for tier in TIERS:
        assert listed[tier] == sorted(p.name for p in (TESTS / tier).glob("test_*.py")), tier
