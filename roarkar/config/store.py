"""Registration of the schema in Hydra's ConfigStore, called by the entry points and the tests'
compose helpers (never on import)."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from roarkar.config.schema import RoarkarConfig

__all__ = ["register_configs"]


def register_configs() -> None:
    """Store the schema (``roarkar_schema``, the top of ``conf/config.yaml``) and the method
    configs of the registered names (``method=<name>`` without a YAML)."""
    from roarkar.metrics.run_settings import config_schema
    from roarkar.saliency.configs import register_method_configs

    schema = OmegaConf.structured(RoarkarConfig)
    schema.perturbation = OmegaConf.structured(config_schema())  # its defaults are the metrics'
    ConfigStore.instance().store(name="roarkar_schema", node=schema)
    register_method_configs()
