"""A command line's overrides before Hydra composes the run (the ``roarkar`` entry point): a key
every dataset kind shares set as ``dataset.<key>=<value>`` on any preset, and a key the config
does not have named in one line with the nearest keys that exist (instead of Hydra's "not in
struct")."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import MISSING as NO_DEFAULT
from dataclasses import fields

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from roarkar.config.schema import DatasetKeys

__all__ = ["DATASET_SCHEMA_KEYS", "check_override_keys", "config_keys", "schema_key_overrides"]

#: the dataset keys every kind shares that have a default (``DatasetKeys``): settable on every
#: preset, including one that does not write them (``dataset.workers``, ``dataset.skip_corrupt``)
DATASET_SCHEMA_KEYS = tuple(
    f.name
    for f in fields(DatasetKeys)
    if f.default not in (NO_DEFAULT, MISSING) or f.default_factory is not NO_DEFAULT
)
_DATASET_OVERRIDE = re.compile(r"^\+{0,2}dataset\.([A-Za-z_]\w*)=(.*)$", re.DOTALL)


def schema_key_overrides(args: Sequence[str]) -> list[str]:
    """``args`` with each ``dataset.<key>=<value>`` (or ``+dataset.<key>=<value>``) of a key in
    :data:`DATASET_SCHEMA_KEYS` as ``++dataset.<key>=<value>``: Hydra's set-or-add, so the key is
    set where the preset writes it and added where it does not (a plain override of a key the
    preset lacks is Hydra's "not in struct"; ``+`` of one it has, "already at"). Every other
    argument is left as it is, a key no dataset has among them (:func:`check_override_keys`)."""
    out = []
    for arg in args:
        found = _DATASET_OVERRIDE.match(arg)
        if found and found.group(1) in DATASET_SCHEMA_KEYS:
            arg = f"++dataset.{found.group(1)}={found.group(2)}"
        out.append(arg)
    return out


def config_keys(node: object, prefix: str = "") -> list[str]:
    """Every dotted key of a plain mapping (nested mappings walked, lists left whole)."""
    out = []
    for key, value in node.items() if isinstance(node, dict) else ():
        out += [f"{prefix}{key}", *config_keys(value, f"{prefix}{key}.")]
    return out


def check_override_keys(conf_dir: str, args: Sequence[str]) -> None:
    """Raise ``ValueError("<key> is not a config key; nearest: <a>, <b>")`` when a ``key=value``
    override in ``args`` sets a key the composed config lacks. Anything else (flags, sweeps, a
    config that fails to compose for another reason) is left to Hydra, which says it."""
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        if any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(overrides)):
            return
    except HydraException:
        return
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
        try:
            compose(config_name="config", overrides=overrides)
            return
        except ConfigCompositionException as exc:
            found = re.search(r"Could not override '([^']+)'", str(exc))
            if not found or not isinstance(exc.__cause__, ConfigAttributeError | ConfigKeyError):
                return
            key = found.group(1)
        others = [o for o in overrides if o.lstrip("~+").split("=", 1)[0] != key]
        try:
            cfg = compose(config_name="config", overrides=others)
        except HydraException:
            return
    present = config_keys(OmegaConf.to_container(cfg, resolve=False))
    shared = [f"dataset.{k}" for k in DATASET_SCHEMA_KEYS if f"dataset.{k}" not in present]
    keys = [  # the key's own parents are no suggestion
        k for k in [*present, *shared] if not key.startswith(f"{k}.")
    ]
    nearest = difflib.get_close_matches(key, keys, n=2, cutoff=0.5)
    raise ValueError(f"{key} is not a config key; nearest: {', '.join(nearest) or 'none'}")
