"""The documentation holds together: every relative link of the README, docs/*.md and the other
READMEs names a file that exists (and a heading there, when it names one), and the README stays
short (its details live in docs/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def _documents() -> list[Path]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "slurm" / "README.md"]
    return docs + sorted((ROOT / "results").glob("**/README.md"))


def _prose(text: str) -> str:
    """The text outside fenced code blocks, inline code spans emptied (a link's text may hold some)."""
    return re.sub(r"`[^`\n]*`", "``", FENCE.sub("", text))


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces to
    hyphens, a repeated heading numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        m = re.match(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(path: Path) -> list[str]:
    """The relative link targets of a Markdown file (web addresses left out)."""
    return [t for t in LINK.findall(_prose(path.read_text())) if not SCHEME.match(t)]


def test_anchors_follow_githubs_rule():
    doc = ROOT / "docs" / "metrics.md"
    assert "seed-002-nielsen-et-al-experimentnielsen2022" in anchors(doc)
    assert "how-to-add-" in anchors(ROOT / "docs" / "ARCHITECTURE.md")


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    broken = []
    for target in links(doc):
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_docs_link_to_each_other():
    """The README links to the docs index, and the index to every file of docs/."""
    assert "docs/index.md" in links(ROOT / "README.md")
    listed = {t.partition("#")[0] for t in links(ROOT / "docs" / "index.md")}
    missing = {p.name for p in (ROOT / "docs").glob("*.md")} - listed - {"index.md"}
    assert not missing, f"docs/index.md does not list {sorted(missing)}"


def test_readme_is_at_most_250_lines():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move details to docs/"
