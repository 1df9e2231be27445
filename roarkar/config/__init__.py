"""The typed config: the schema Hydra composes against (:mod:`~roarkar.config.schema`, registered
by :func:`register_configs`), the typed views of the open nodes (:mod:`~roarkar.config.nodes`) and
the one converter :func:`resolve` that the task functions call at their top."""

from roarkar.config.nodes import (
    DatasetConfig,
    InputProtocolConfig,
    LayerProtocolConfig,
    MethodConfig,
    ModelConfig,
    ProtocolConfig,
)
from roarkar.config.resolve import Config, resolve
from roarkar.config.schema import (
    NOT_IDENTITY,
    LoaderConfig,
    RoarkarConfig,
    Stage,
    StudyConfig,
    TrainerConfig,
    not_in_identity,
)
from roarkar.config.store import register_configs

__all__ = [
    "NOT_IDENTITY",
    "Config",
    "DatasetConfig",
    "InputProtocolConfig",
    "LayerProtocolConfig",
    "LoaderConfig",
    "MethodConfig",
    "ModelConfig",
    "ProtocolConfig",
    "RoarkarConfig",
    "Stage",
    "StudyConfig",
    "TrainerConfig",
    "not_in_identity",
    "register_configs",
    "resolve",
]
