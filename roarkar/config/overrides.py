"""A command line's override of a key the config does not have, named in one line with the
nearest keys that exist (instead of Hydra's "not in struct"): checked by the ``roarkar`` entry
point before Hydra composes the run."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

__all__ = ["check_override_keys", "config_keys"]


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
    keys = [  # the key's own parents are no suggestion
        k
        for k in config_keys(OmegaConf.to_container(cfg, resolve=False))
        if not key.startswith(f"{k}.")
    ]
    nearest = difflib.get_close_matches(key, keys, n=2, cutoff=0.5)
    raise ValueError(f"{key} is not a config key; nearest: {', '.join(nearest) or 'none'}")
