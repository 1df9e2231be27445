"""What the protocols read of a run's config, resolved and checked once at the edge (where a cell
is read from its config and where a run's context is built), so no protocol digs in the raw config
and a bad value is named before any data is touched or any model trained."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from roarkar.identity import to_plain
from roarkar.saliency.configs import result_id

TARGETS = ("predicted", "label")  # input protocol: the class a map explains
REPLACEMENTS = ("mean", "zero")  # input protocol: what removed pixels become


def _plain(node: Any) -> dict:
    """A fresh resolved plain dict of a config node ({} for a missing one)."""
    return {} if node is None else to_plain(node)


@dataclass(frozen=True)
class ProtocolSettings:
    """The scalars and nodes of a run's config that the base model and the protocols use."""

    dataset: str  # dataset.name
    model: str  # model.name
    model_params: dict  # model.params: keyword arguments of the architecture
    weights: str | None  # model.weights: a pretrained file (loaded, never trained), else None
    seed: int
    method_id: str  # the name a method's results go by: method.id, or an adaptor's label
    method_name: str  # method.name: the registered saliency method
    method: dict  # the whole method node, resolved (it enters the precompute's identity)
    target: str | None  # protocol.target (input protocol): predicted | label
    replacement: str | None  # protocol.replacement (input protocol): mean | zero

    @classmethod
    def from_config(cls, cfg: DictConfig) -> ProtocolSettings:
        """Read and check the settings; every bad value is named by its key."""
        target = OmegaConf.select(cfg, "protocol.target")
        if target is not None and str(target) not in TARGETS:
            raise ValueError(f"protocol.target={target!r}: expected one of {', '.join(TARGETS)}")
        replacement = OmegaConf.select(cfg, "protocol.replacement")
        if replacement is not None and str(replacement) not in REPLACEMENTS:
            raise ValueError(
                f"protocol.replacement={replacement!r}: expected one of {', '.join(REPLACEMENTS)}"
            )
        weights = cfg.model.get("weights")
        return cls(
            dataset=str(cfg.dataset.name),
            model=str(cfg.model.name),
            model_params=_plain(cfg.model.get("params")),
            weights=str(weights) if weights else None,
            seed=int(cfg.seed),
            method_id=result_id(cfg.method),
            method_name=str(cfg.method.name),
            method=_plain(cfg.method),
            target=None if target is None else str(target),
            replacement=None if replacement is None else str(replacement),
        )

    def method_params(self) -> dict:
        """A fresh copy of ``method.params`` (callers may add to it)."""
        return copy.deepcopy(self.method.get("params") or {})
