"""What the protocols read of a run's typed config (:class:`roarkar.config.Config`), checked once
(where a cell is read from its config and where a run's context is built), so a bad value is named
before any data is touched or any model trained."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from roarkar.config import Config
from roarkar.files import path_component
from roarkar.removal import REPLACEMENTS  # input protocol: what removed pixels become
from roarkar.saliency.configs import result_id

TARGETS = ("predicted", "label")  # input protocol: the class a map explains


@dataclass(frozen=True)
class ProtocolSettings:
    """The scalars and nodes of a run's config that the base model and the protocols use."""

    dataset: str  # dataset.name
    model: str  # model.name
    model_params: dict  # model.params: keyword arguments of the architecture
    model_taps: tuple[str, ...] | None  # model.taps: modules tapped by forward hooks, else None
    weights: str | None  # model.weights: a pretrained file (loaded, never trained), else None
    seed: int
    method_id: str  # the name a method's results go by: method.id, or an adaptor's label
    method_name: str  # method.name: the registered saliency method
    method: dict  # the whole method node, resolved (it enters the precompute's identity)
    target: str | None  # protocol.target (input protocol): predicted | label
    replacement: str | None  # protocol.replacement (input protocol): mean | zero | blur | linear

    @classmethod
    def from_config(cls, config: Config) -> ProtocolSettings:
        """Read and check the settings; every bad value is named by its key."""
        if not isinstance(config, Config):  # a composed node must pass the edge first
            raise TypeError(
                f"ProtocolSettings.from_config takes a typed Config, got {type(config).__name__}: "
                "call roarkar.config.resolve(cfg) at the edge first"
            )
        protocol = config.protocol
        target = getattr(protocol, "target", None)
        if target is not None and str(target) not in TARGETS:
            raise ValueError(f"protocol.target={target!r}: expected one of {', '.join(TARGETS)}")
        replacement = getattr(protocol, "replacement", None)
        if replacement is not None:  # every replacement the metrics have, and zero (black)
            REPLACEMENTS.get(str(replacement), key="protocol.replacement")
        return cls(  # the names that become folders, checked here at the edge
            dataset=path_component(config.dataset.name, "dataset.name"),
            model=path_component(config.model.name, "model.name"),
            model_params=copy.deepcopy(config.model.params),
            model_taps=config.model.taps,
            weights=config.model.weights,
            seed=int(config.seed),
            method_id=path_component(result_id(config.method.node), "method.id"),
            method_name=config.method.name,
            method=copy.deepcopy(config.method.node),
            target=None if target is None else str(target),
            replacement=None if replacement is None else str(replacement),
        )

    def method_params(self) -> dict:
        """A fresh copy of ``method.params`` (callers may add to it)."""
        return copy.deepcopy(self.method.get("params") or {})
