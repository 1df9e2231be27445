"""Display names of method ids for figures: the paper's table label, not the internal id.

A registry name gets its ``@register`` label ("SMOE Scale"); a ``conf/method`` preset (``std_prior``,
``smoe_scale_linear``) gets its registry method's label plus what the preset changes, in the paper's
Table 2 wording ("Standard Dev + Prior Layer Weights"); anything else (a Best/Worst row, a made-up
id in a test) is shown as it is.
"""

from __future__ import annotations

from functools import cache

__all__ = ["method_label", "method_labels"]

#: What a preset's parameter value adds to its method's label (Table 2 of the paper).
_SUFFIX = {
    ("weights", "prior"): " + Prior Layer Weights",
    ("weights", "linear"): " + Layer Weights [1,...,5]",
    ("squash", "gamma"): " (gamma CDF)",
}


@cache
def method_label(method: str) -> str:
    """Paper label of ``method`` (a registry name or a ``conf/method`` id), else ``method``."""
    from roarkar.saliency.configs import method_config, preset_ids
    from roarkar.saliency.registry import available, describe

    if method in available():
        return describe(method).label
    if method not in preset_ids():
        return method
    conf = method_config(method)
    name = str(conf.get("name", ""))
    if name not in available():
        return method
    params = conf.get("params") or {}
    if name == "blurred":  # a blur control names what it blurs: "Blurred Ground Truth"
        return f"{describe(name).label} {method_label(str(params.get('inner', 'gradient')))}"
    suffix = "".join(s for (k, v), s in _SUFFIX.items() if str(params.get(k)) == v)
    return describe(name).label + (suffix or f" ({method})")


def method_labels(methods: list[str]) -> dict[str, str]:
    """``{id: label}`` for ``methods``; labels made unique by appending the id on a clash."""
    labels = {m: method_label(m) for m in methods}
    seen: dict[str, int] = {}
    for v in labels.values():
        seen[v] = seen.get(v, 0) + 1
    return {m: (v if seen[v] == 1 else f"{v} ({m})") for m, v in labels.items()}
