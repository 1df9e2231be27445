"""Name -> saliency method registry with the labels the paper's tables use.

``@register("name", label=..., reference=...)`` on a :class:`SaliencyMethod` subclass adds it; ``bind``
fixes constructor arguments that define the method (e.g. which statistic a generic statistic class
computes), so one class can back many registry names. ``create`` checks parameters against the
class's keyword-only constructor arguments: an unknown parameter is a TypeError, never ignored.
An unknown name is :class:`roarkar.registry.UnknownName` (a ValueError), with a "did you mean".
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

from roarkar.registry import Registry
from roarkar.saliency.base import KINDS, SaliencyMethod

M = TypeVar("M", bound=type[SaliencyMethod])


@dataclass(frozen=True)
class MethodInfo:
    """What a registry name is: table label, literature reference, kind and capabilities."""

    name: str
    label: str
    reference: str
    kind: str
    supports_layer: bool
    needs_pre_relu: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    label_param: str | None = None  # the parameter whose value names a generic adaptor's results


@dataclass(frozen=True)
class _Entry:
    info: MethodInfo
    cls: type[SaliencyMethod]
    bind: Mapping[str, Any]


_REGISTRY: Registry[_Entry] = Registry("saliency method", key="method.name")


def method_params(cls: type[SaliencyMethod]) -> dict[str, Any]:
    """Keyword-only constructor parameters (with defaults) of ``cls`` and its bases."""
    params: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                params[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return params


def register(
    name: str,
    *,
    label: str,
    reference: str,
    kind: str | None = None,
    bind: Mapping[str, Any] | None = None,
) -> Callable[[M], M]:
    """Class decorator registering a method under ``name`` (a duplicate name is an error)."""
    bind = dict(bind or {})

    def decorator(cls: M) -> M:
        if name in _REGISTRY:  # named before the class is checked
            raise ValueError(f"saliency method {name!r} is already registered")
        if not (isinstance(cls, type) and issubclass(cls, SaliencyMethod)):
            raise TypeError(f"@register({name!r}) needs a SaliencyMethod subclass, got {cls!r}")
        params = method_params(cls)
        unknown = sorted(set(bind) - set(params))
        if unknown:
            raise TypeError(f"@register({name!r}): {cls.__name__} has no parameter(s) {unknown}")
        method_kind = kind or cls.kind
        if method_kind not in KINDS:
            raise ValueError(f"@register({name!r}): kind {method_kind!r} not in {KINDS}")
        info = MethodInfo(
            name=name,
            label=label,
            reference=reference,
            kind=method_kind,
            supports_layer=cls.supports_layer,
            needs_pre_relu=bool(bind.get("needs_pre_relu", cls.needs_pre_relu)),
            params={k: v for k, v in params.items() if k not in bind},
            label_param=cls.label_param,
        )
        _REGISTRY.register(name, _Entry(info, cls, bind))
        return cls

    return decorator


def available() -> list[str]:
    """Registered method names, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    return _REGISTRY.get(name)


def describe(name: str) -> MethodInfo:
    """Label, reference, kind and capabilities of ``name``."""
    return _entry(name).info


def cheap_params(name: str, samples: int = 2, steps: int = 2) -> dict[str, Any]:
    """Small ``samples``/``steps`` (nested ones in ``inner_params``) for registry name ``name``, for
    tests: the paper defaults of the nested compositions cost 750 passes per image."""
    entry = _entry(name)
    params: dict[str, Any] = {}
    if "samples" in entry.info.params:
        params["samples"] = samples
    if "steps" in entry.info.params:
        params["steps"] = steps
    inner = entry.bind.get("inner")
    if isinstance(inner, str) and "inner_params" in entry.info.params:
        nested = cheap_params(inner, samples, steps)
        if nested:
            params["inner_params"] = nested
    return params


def create(name: str, model: nn.Module, **params: Any) -> SaliencyMethod:
    """Instantiate method ``name`` on ``model`` (a TappedNet or a torchvision-style ResNet)."""
    entry = _entry(name)
    unknown = sorted(set(params) - set(entry.info.params))
    if unknown:
        raise TypeError(
            f"saliency method {name!r} got unknown parameter(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(sorted(entry.info.params)) or 'nothing'}"
        )
    method = entry.cls(model, **entry.bind, **params)
    method.name = name
    method.info = entry.info
    return method


__all__ = [
    "MethodInfo",
    "available",
    "cheap_params",
    "create",
    "describe",
    "method_params",
    "register",
]
