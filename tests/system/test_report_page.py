"""The study's report page (report/index.html): written by a study and by task=tables, every
image it shows and every link it makes lie in the results tree, its tables hold the study's rows,
and in a real browser (headless Chromium, Debian's `chromium`) every image loads."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.conftest import run_in_tree

STUDY = [
    "study.layer.methods=[random,smoe_scale]",
    "study.layer.layers=[L1]",
    "study.input.methods=[random,ground_truth]",
    "study.input.percents=[10,50]",
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _Page(HTMLParser):
    """The page's images, links, table headings and table cells, as parsed."""

    def __init__(self) -> None:
        super().__init__()
        self.images, self.links, self.headings, self.cells = [], [], [], []
        self._in = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag in ("h2", "td"):
            self._in = tag

    def handle_data(self, data):
        if self._in == "h2":
            self.headings.append(data)
        elif self._in == "td":
            self.cells.append(data)

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A small study at debug=smoke, its page written by the study, then by task=tables."""
    results = tmp_path_factory.mktemp("report") / "results"
    out = run_in_tree(results, *STUDY)
    first = (results / "report" / "index.html").read_text()
    run_in_tree(results, *STUDY, "task=tables")
    return results, out, first


def test_the_study_and_task_tables_write_the_same_page_of_its_own_files(study):
    results, out, first = study
    page = results / "report" / "index.html"
    assert f"report: {page}" in out["tables"] or page.exists()

    # the same tables, figures, images and cells; only the study knows its plan (cost: cells left)
    def tail(text: str) -> str:
        return text[text.index('<h2 id="table1">') :]

    assert tail(page.read_text()) == tail(first)
    assert "0 of the study&#x27;s plan not finished" in first and "study: 12/12 cells done" in first
    parsed = _Page()
    parsed.feed(page.read_text())
    names = {Path(src).name for src in parsed.images}
    assert {"fig4_layer_scores.png", "fig5_accuracy_vs_percent.png"} <= names
    masks = [src for src in parsed.images if src.startswith("masks/")]
    # per input method, 2 val images, each as itself and under KAR and ROAR at 10 and 50 %
    assert len(masks) == 2 * 2 * (1 + 2 * 2), masks
    assert {Path(src).parts[1] for src in masks} == {"random", "ground_truth"}
    assert "methods: ground_truth, random; removed pixels replaced" in page.read_text()
    for src in parsed.images:  # relative, inside the tree, a PNG that decodes and is not blank
        assert not Path(src).is_absolute() and ".." not in Path(src).parts, src
        with Image.open(page.parent / src) as image:
            assert image.width >= 32 and image.height >= 32
            assert len(set(image.convert("L").getdata())) > 3, src
    results_json = [h for h in parsed.links if h.endswith("result.json")]
    assert len(results_json) == len(list((results / "cells").rglob("result.json"))) == 4 + 8
    for href in parsed.links:
        assert (page.parent / href).resolve().is_file(), href


def test_the_tables_on_the_page_hold_the_studys_rows(study):
    results, _, first = study
    parsed = _Page()
    parsed.feed(first)
    for n in (1, 2, 4, 5):
        assert any(h.startswith(f"Table {n}:") for h in parsed.headings), parsed.headings
    long = pd.read_csv(results / "tables" / "long.csv")
    table5 = pd.read_csv(results / "tables" / "table5.csv")
    assert len(table5) == 2 * 2 * 2  # two methods, KAR and ROAR, two percents
    shown = [f"{v:.4g}" for v in table5.accuracy]
    assert all(value in parsed.cells for value in shown)  # every Table 5 value, as on the page
    assert set(long.method) <= set(parsed.cells)
    assert parsed.cells.count("ok") == len(long)  # one cell row per finished cell


def test_every_image_loads_in_chromium_and_a_screenshot_is_saved(study, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium as root)")
    results, _, _ = study
    url = (results / "report" / "index.html").resolve().as_uri()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [browser, *FLAGS, *profile, "--virtual-time-budget=10000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    expected = dom.count("<img ")
    assert attrs.get("ready") == "1", attrs
    assert (attrs["images-loaded"], attrs["images-broken"]) == (str(expected), "0"), attrs
    assert expected == 2 + 2 * 2 * 5  # Figures 4 and 5, the masked examples
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *FLAGS, *profile, "--window-size=1300,2400", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    with Image.open(shot) as image:  # the page drawn: headings, tables and figures, not blank
        assert image.size == (1300, 2400)
        assert len(set(image.convert("L").getdata())) > 50
    print(f"screenshot: {shot}")
