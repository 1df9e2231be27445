"""The ``method`` config group from the registry: ``method=<any registered name>`` needs no YAML.

Each registered name gets a config ``{id, name, params}`` whose ``params`` are the registry's
defaults of the parameters the papers set (:data:`PAPER_PARAMS`); :func:`register_method_configs`
stores them in Hydra's ConfigStore (group ``method``), called by the entry points and the compose
helpers, never on import. ``conf/method`` keeps only the named presets of the papers, each a
``defaults: [<base>, _self_]`` list plus the keys that differ, or, under a registered name, the
whole config where it differs from the registry's (a YAML wins over the registry's config).
A cell identity hashes the composed ``method`` node, so what a config shows is part of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from roarkar.config.schema import CONF_DIR
from roarkar.saliency.registry import available, describe
from roarkar.targets import absolute_target

__all__ = [
    "CONF_METHODS",
    "PAPER_PARAMS",
    "method_config",
    "method_ids",
    "preset_ids",
    "register_method_configs",
    "registry_config",
    "pin_targets",
    "result_id",
]

CONF_METHODS = CONF_DIR / "method"

#: The parameters a method's config shows, with the registry's defaults: those the papers set.
#: The others (batch sizes, fused kernels, normalisation, a wrapper's inner method) stay out of the
#: config, hence out of the cell identity; a study or an override may still set them (``++``).
PAPER_PARAMS = (
    "weights",
    "squash",
    "layer",
    "field",
    "include_input",
    "samples",
    "sigma",
    "steps",
    "rule",
    "baseline",
)


def registry_config(name: str) -> dict[str, Any]:
    """The config of registered method ``name``: its id and name, and its paper parameters."""
    params = describe(name).params  # raises on an unknown name, listing the registered ones
    return {"id": name, "name": name, "params": {k: params[k] for k in PAPER_PARAMS if k in params}}


def preset_ids(conf: Path = CONF_METHODS) -> list[str]:
    """The ids of the YAML presets under ``conf`` (``nielsen2022/guided_backprop`` for a folder)."""
    return sorted(p.relative_to(conf).with_suffix("").as_posix() for p in conf.rglob("*.yaml"))


def method_ids() -> list[str]:
    """Every id ``method=...`` accepts: the registered names and the YAML presets."""
    return sorted(set(available()) | set(preset_ids()))


def register_method_configs() -> None:
    """Store the config of every registered name without a YAML of its own in Hydra's ConfigStore
    (group ``method``), so ``method=<name>`` composes; a YAML of the same name is left to win (one
    source per config: Hydra would otherwise merge the two). Idempotent."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    presets = set(preset_ids())
    for name in available():
        if name not in presets:
            store.store(group="method", name=name, node=registry_config(name))


def method_config(method: str) -> dict[str, Any]:
    """The ``method`` node that ``method=<method>`` composes, read without Hydra: a YAML preset
    (its ``defaults`` list resolved) or a registered name; an unknown id is a ValueError."""
    path = CONF_METHODS / f"{method}.yaml"
    if path.is_file():
        return _load_preset(path)
    if method in available():
        return registry_config(method)
    raise ValueError(
        f"method {method!r}: no conf/method/{method}.yaml and no registered method of that name; "
        f"known are {', '.join(method_ids())}"
    )


def _load_preset(path: Path) -> dict[str, Any]:
    """A YAML preset merged over its ``defaults`` (``x``: conf/method/<folder>/x,
    ``/method/x@_here_``: conf/method/x), in the list's order, ``_self_`` last unless placed."""
    own = OmegaConf.load(path)
    defaults = list(own.pop("defaults", None) or [])
    if "_self_" not in defaults:
        defaults.append("_self_")
    parts = []
    for entry in defaults:
        if entry == "_self_":
            parts.append(own)
        elif isinstance(entry, str) and re.fullmatch(r"/method/[\w/]+@_here_", entry):
            base = entry.removeprefix("/method/").removesuffix("@_here_")
            parts.append(OmegaConf.create(method_config(base)))
        elif isinstance(entry, str) and not entry.startswith("/") and "@" not in entry:
            folder = path.parent.relative_to(CONF_METHODS).as_posix()
            base = entry if folder == "." else f"{folder}/{entry}"
            parts.append(OmegaConf.create(method_config(base)))
        else:
            raise ValueError(
                f"{path}: defaults entry {entry!r}: a method preset names its base method as "
                "'<id>' (same folder) or '/method/<id>@_here_'"
            )
    return OmegaConf.to_container(OmegaConf.merge(*parts), resolve=True)


def result_id(method: Mapping[str, Any]) -> str:
    """The name a method node's results go by (the cell's ``method``, a table's row, a folder):
    ``params.label`` when set; a generic adaptor under its own id (``external``, ``captum``,
    ``gradcam_lib``) is named by its target's object or its class (``smoothed_gradient``,
    ``DeepLift``); any other node by its ``id``. A label that is another method's id (its rows
    would mix with that method's) or no folder name is a ValueError."""
    method_id, name = str(method["id"]), str(method.get("name"))
    params = method.get("params") or {}
    label = params.get("label")
    if label is None and method_id == name and name in available():
        key = describe(name).label_param
        value = params.get(key) if key else None
        if value is not None:
            label = re.split(r"[:.]", str(value))[-1]
    if label is None:
        return method_id
    label = str(label)
    if not label or "/" in label or label.startswith(".") or label != label.strip():
        raise ValueError(f"method.params.label={label!r}: a method's label must be a folder name")
    if label != method_id and label in method_ids():
        raise ValueError(
            f"method.params.label={label!r} is the id of a roarkar method: its results would mix "
            "with that method's in the tables; give another label"
        )
    return label


def pin_targets(cfg: DictConfig, overrides: list[str]) -> list[str]:
    """An external method's ``path/to/file.py:obj`` made absolute against the directory the user
    ran from, in ``cfg`` (its result records show it) and in the overrides (``method.params.target``
    and a study's ``study.<protocol>.method_params.<id>.target``) that a study, a multirun
    job or a SLURM array passes on (a job on another node, or in another folder, imports the same
    file); returns the overrides. A module target is left as it is."""
    pinned = []
    for override in overrides:
        key, sep, value = override.partition("=")
        name = key.lstrip("+~")
        method_key = name.endswith("method.params.target") or (
            name.startswith("study.") and ".method_params." in name and name.endswith(".target")
        )
        if sep and method_key and ":" in value:
            # a multirun job's overrides come back escaped (``file.py\\:obj``)
            value = absolute_target(re.sub(r"\\(.)", r"\1", value))
            override = f"{key}={value}"
            if OmegaConf.select(cfg, name) is not None:
                OmegaConf.update(cfg, name, value, merge=False)
        pinned.append(override)
    target = OmegaConf.select(cfg, "method.params.target")
    if isinstance(target, str) and ":" in target:
        OmegaConf.update(cfg, "method.params.target", absolute_target(target), merge=False)
    return pinned
