"""Typed views of the config nodes that vary by preset or kind (``dataset``, ``model``, ``method``,
``protocol``): their common keys as attributes, and the whole node as written (``node``), which is
what enters identities and what the data kinds read their own keys from."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

from roarkar.config.schema import DatasetKeys
from roarkar.registry import Registry

__all__ = [
    "DatasetConfig",
    "InputProtocolConfig",
    "LayerProtocolConfig",
    "MethodConfig",
    "ModelConfig",
    "ProtocolConfig",
]


def _known(cls: type, node: dict) -> dict:
    """The entries of ``node`` that are fields of ``cls`` (``node`` itself excluded)."""
    return {f.name: node[f.name] for f in fields(cls) if f.name != "node" and f.name in node}


@dataclass
class DatasetConfig(DatasetKeys):
    """``dataset``: the keys every kind shares, and the node with the kind's own keys."""

    node: dict = field(default_factory=dict)

    @classmethod
    def of(cls, node: dict) -> DatasetConfig:
        for split in ("train", "val"):  # an empty split trains or scores nothing
            size = node.get(f"{split}_size")
            if size is not None and (
                isinstance(size, bool) or not isinstance(size, int) or size < 1
            ):
                raise ValueError(
                    f"dataset.{split}_size={size!r}: expected null (every image) or a whole "
                    "number of images >= 1"
                )
        return cls(**_known(cls, node), node=node)

    def split_size(self, split: str) -> int | None:
        """Images in a split, from the config (no data touched): the subset, else the nominal size."""
        for value in (getattr(self, f"{split}_size"), getattr(self, f"nominal_{split}_size")):
            if value is not None:
                return int(value)
        return None


@dataclass(frozen=True)
class ModelConfig:
    """``model``: the architecture's name and keyword arguments, and a pretrained weights file."""

    name: str
    params: dict = field(default_factory=dict)
    weights: str | None = None  # a state_dict file: loaded, never trained
    # modules tapped by forward hooks (`+model.taps=[...]`, networks torch.fx cannot trace)
    taps: tuple[str, ...] | None = None
    node: dict = field(default_factory=dict)

    @classmethod
    def of(cls, node: dict) -> ModelConfig:
        params = copy.deepcopy(node.get("params") or {})
        weights = node.get("weights")
        taps = node.get("taps")
        return cls(
            str(node["name"]),
            params,
            str(weights) if weights else None,
            tuple(str(t) for t in taps) if taps else None,
            node,
        )


@dataclass(frozen=True)
class MethodConfig:
    """``method``: the id its results go by, the registered method and its parameters."""

    id: str
    name: str
    params: dict = field(default_factory=dict)
    node: dict = field(default_factory=dict)

    @classmethod
    def of(cls, node: dict) -> MethodConfig:
        params = copy.deepcopy(node.get("params") or {})
        return cls(str(node["id"]), str(node["name"]), params, node)


@dataclass(frozen=True)
class ProtocolConfig:
    """``protocol``: the keys both protocols share (``conf/protocol/<name>.yaml``)."""

    name: str
    mode: str = ""
    percent: Any = None
    node: dict = field(default_factory=dict)

    @classmethod
    def of(cls, node: dict) -> ProtocolConfig:
        name = str(node.get("name"))
        kind = PROTOCOL_VIEWS.get(name) if name in PROTOCOL_VIEWS else ProtocolConfig
        return kind(**_known(kind, node), node=node)


@dataclass(frozen=True)
class LayerProtocolConfig(ProtocolConfig):
    """``protocol=layer``: mask a tap's activation, fine-tune after it."""

    layer: str = ""
    kar_percent: Any = None  # the percent when neither protocol.percent nor the study gives one
    roar_percent: Any = None
    target: str | None = None  # set by an experiment for its input cells: unused here
    replacement: str | None = None


@dataclass(frozen=True)
class InputProtocolConfig(ProtocolConfig):
    """``protocol=input``: precomputed maps, train from scratch."""

    target: str | None = None  # predicted | label
    replacement: str | None = None  # mean | zero


# Each protocol's typed view of ``protocol``, by ``protocol.name``; a registered protocol
# (``roarkar.protocols``) names its view as ``config``, and the conformance test checks they agree.
PROTOCOL_VIEWS: Registry[type[ProtocolConfig]] = Registry("protocol", "protocol.name")
PROTOCOL_VIEWS.register("layer", LayerProtocolConfig)
PROTOCOL_VIEWS.register("input", InputProtocolConfig)
