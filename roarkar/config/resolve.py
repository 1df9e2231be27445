"""The one converter from a composed config to typed objects (:func:`resolve`), called at the top
of each task function (the edge); nothing below it reads an OmegaConf object."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from roarkar.config.nodes import DatasetConfig, MethodConfig, ModelConfig, ProtocolConfig
from roarkar.config.schema import (
    ExportConfig,
    LoaderConfig,
    PathsConfig,
    PrecomputeConfig,
    RoarkarConfig,
    StudyConfig,
    TrainerConfig,
)

__all__ = ["Config", "resolve"]

_OPEN = ("dataset", "model", "method", "protocol", "perturbation")  # typed from their plain node


@dataclass(frozen=True)
class Config:
    """A run's whole config, typed: what every task and stage reads."""

    task: str
    seed: int
    device: str
    claim_ttl_s: float
    paths: PathsConfig
    dataset: DatasetConfig
    model: ModelConfig
    method: MethodConfig
    protocol: ProtocolConfig
    trainer: TrainerConfig
    study: StudyConfig
    precompute: PrecomputeConfig
    export: ExportConfig
    loader: LoaderConfig
    perturbation: dict  # RunSettings.from_config reads and checks it
    plain: dict = field(default_factory=dict, repr=False)  # all of it as plain data (records)


def resolve(cfg: DictConfig | Config) -> Config:
    """``cfg`` (composed against ``roarkar_schema``) as a :class:`Config`, interpolations resolved;
    a ``Config`` is returned as it is. Unset values (``???``) stay ``???``, for the stage that
    needs them to name them."""
    if isinstance(cfg, Config):
        return cfg
    if "hydra" in cfg:  # composed with return_hydra_config: the launcher's, not the run's
        cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    if OmegaConf.get_type(cfg) is not RoarkarConfig:  # a config built by hand: typed here
        cfg = OmegaConf.merge(OmegaConf.structured(RoarkarConfig), cfg)
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[assignment]
    typed = {  # the closed nodes as their dataclasses, the scalars as they are
        f.name: _typed(cfg, f.name, plain)
        for f in dataclasses.fields(RoarkarConfig)
        if f.name not in _OPEN
    }
    return Config(
        **typed,
        dataset=DatasetConfig.of(plain["dataset"]),
        model=ModelConfig.of(plain["model"]),
        method=MethodConfig.of(plain["method"]),
        protocol=ProtocolConfig.of(plain["protocol"]),
        perturbation=plain["perturbation"],
        plain=plain,
    )


def _typed(cfg: DictConfig, key: str, plain: dict) -> Any:
    node = cfg[key]
    return OmegaConf.to_object(node) if OmegaConf.is_config(node) else plain[key]
