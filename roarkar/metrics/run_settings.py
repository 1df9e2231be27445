"""The ``perturbation`` config block: what the metrics run on (:class:`RunSettings`, the one place
of its defaults), how a method entry names a method (:func:`load_method`), and which settings are
not part of a run's identity (their fields' ``identity: False``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, make_dataclass
from typing import Any

from roarkar.config.schema import NOT_IDENTITY, not_in_identity
from roarkar.metrics.settings import Settings
from roarkar.metrics.stats import higher_is_better
from roarkar.saliency.configs import method_config, method_ids

log = logging.getLogger(__name__)

__all__ = [
    "METRICS_NOT_IN_IDENTITY",
    "NOT_IN_IDENTITY",
    "RunSettings",
    "drop_ground_truth",
    "load_method",
]


@dataclass
class RunSettings:
    """The ``perturbation`` config block: what to run on, and the metric :class:`Settings`."""

    # method ids (registered names or conf/method presets; or {name, params} mappings)
    methods: list[Any] = field(
        default_factory=lambda: ["random", "ground_truth", "smoe_scale", "gradient", "std", "mean"]
    )
    images: int = 100  # the first N held-out (val) images
    K: int = 5  # Eq 9: maps of K random other images per image for the Delta metrics
    split: str = "val"
    delta_road: bool = False
    agreement: bool = True
    reuse: bool = True
    # not in the identity: they change no value of metrics.csv (a speed knob, the figures' settings)
    image_chunk: int = field(default=32, metadata=NOT_IDENTITY)
    # None: every metric in the figures
    figure_metrics: list[str] | None = field(default=None, metadata=NOT_IDENTITY)
    # Fig 10: share of the images in each subset, and how many subsets
    alpha_fraction: float = field(default=0.1, metadata=NOT_IDENTITY)
    alpha_repeats: int = field(default=50, metadata=NOT_IDENTITY)
    # Fig 11's methods (None: every method)
    spearman_methods: list[str] | None = field(default=None, metadata=NOT_IDENTITY)
    metrics: Settings = field(default_factory=Settings)

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> RunSettings:
        """The block's settings (plain data, ``Config.perturbation``), checked; unknown keys named."""
        values = dict(block or {})
        own = {f.name for f in fields(cls)} - {"metrics"}
        metric_keys = {f.name for f in fields(Settings)}
        unknown = sorted(set(values) - own - metric_keys)
        if unknown:
            raise ValueError(
                f"perturbation: unknown key(s) {', '.join(unknown)}; "
                f"known are {', '.join(sorted(own | metric_keys))}"
            )
        metric_values = {k: values.pop(k) for k in list(values) if k in metric_keys}
        # floats, given or not: the identity of a run is the same either way
        metric_values["percents"] = tuple(
            float(p) for p in metric_values.get("percents", Settings.percents)
        )
        out = cls(**values, metrics=Settings(**metric_values))
        if out.K < 0 or out.images < 2 or out.image_chunk < 1:
            raise ValueError(
                f"perturbation: need K >= 0, images >= 2, image_chunk >= 1; "
                f"got K={out.K}, images={out.images}, image_chunk={out.image_chunk}"
            )
        if out.split not in ("train", "val"):
            raise ValueError(f"perturbation.split={out.split!r}: expected train or val")
        for metric in out.figure_metrics or []:
            higher_is_better(metric)  # raises on an unknown metric name
        if not 0 < out.alpha_fraction <= 1 or out.alpha_repeats < 1:
            raise ValueError(
                f"perturbation: need 0 < alpha_fraction <= 1 and alpha_repeats >= 1; got "
                f"{out.alpha_fraction}, {out.alpha_repeats}"
            )
        return out

    def identity(self) -> dict:
        """These settings as they enter the run's identity (:data:`NOT_IN_IDENTITY` left out)."""
        values = asdict(self)
        metrics = values.pop("metrics")
        for key in NOT_IN_IDENTITY:
            values.pop(key)
        return values | {
            "metrics": {k: v for k, v in metrics.items() if k not in METRICS_NOT_IN_IDENTITY}
        }


#: Settings that change no value of metrics.csv (their fields say so)
NOT_IN_IDENTITY = not_in_identity(RunSettings)
METRICS_NOT_IN_IDENTITY = not_in_identity(Settings)


def load_method(entry: Any) -> tuple[str, str, dict]:
    """``(id, registry name, params)`` of a method entry: a method id (a ``conf/method`` preset or
    a registered name, composed as ``method=<id>`` would be), or a mapping ``{id?, name, params?}``;
    another string is kept as a name (``create`` names the registered ones)."""
    if isinstance(entry, str):
        if entry not in method_ids():
            return entry, entry, {}
        entry = method_config(entry)
    entry = dict(entry)
    if "name" not in entry:
        raise ValueError(f"perturbation.methods: entry {entry!r} has no name")
    return str(entry.get("id", entry["name"])), str(entry["name"]), dict(entry.get("params") or {})


def drop_ground_truth(run: RunSettings, dataset: str) -> None:
    """Leave ``ground_truth`` out of ``run.methods`` (with a warning): the data has no relevance."""
    kept = [e for e in run.methods if load_method(e)[1] != "ground_truth"]
    if len(kept) < len(run.methods):
        log.warning(
            "ground_truth left out on %s: that dataset has no relevance maps (only the embedded "
            "synthetic sets have a ground truth)",
            dataset,
        )
        run.methods = kept


def config_schema() -> type:
    """The ``perturbation`` node's schema for Hydra, derived from :class:`RunSettings` and
    :class:`Settings` (one flat block, their defaults, nothing written twice), so that
    ``perturbation.<key>=value`` overrides any setting; typed ``Any``, checked by ``from_config``."""

    def default(f) -> Any:
        value = f.default_factory() if f.default_factory is not MISSING else f.default
        return field(default_factory=lambda: list(value) if isinstance(value, tuple) else value)

    own = [f for f in fields(RunSettings) if f.name != "metrics"]
    return make_dataclass(
        "PerturbationConfig", [(f.name, Any, default(f)) for f in [*own, *fields(Settings)]]
    )
