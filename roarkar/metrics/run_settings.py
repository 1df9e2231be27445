"""The ``perturbation`` config block: what the metrics run on (:class:`RunSettings`), how a method
entry names a method (:func:`load_method`), and which settings are not part of a run's identity."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import OmegaConf

from roarkar.metrics.settings import Settings
from roarkar.metrics.stats import higher_is_better
from roarkar.saliency.configs import method_config, method_ids

log = logging.getLogger(__name__)

__all__ = ["NOT_IN_IDENTITY", "RunSettings", "drop_ground_truth", "load_method"]

#: Settings that change no value of metrics.csv (a speed knob, the figures' settings)
NOT_IN_IDENTITY = ("image_chunk", "figure_metrics", "alpha_fraction", "alpha_repeats",
                   "spearman_methods")  # fmt: skip


@dataclass
class RunSettings:
    """The ``perturbation`` config block: what to run on, and the metric :class:`Settings`."""

    methods: list[Any] = field(
        default_factory=lambda: ["random", "ground_truth", "smoe_scale", "gradient", "std", "mean"]
    )
    images: int = 100
    K: int = 5
    split: str = "val"
    delta_road: bool = False
    agreement: bool = True
    reuse: bool = True
    image_chunk: int = 32
    figure_metrics: list[str] | None = None  # None: every metric in the figures
    alpha_fraction: float = 0.1  # Fig 10: share of the images in each subset ...
    alpha_repeats: int = 50  # ... and how many subsets
    spearman_methods: list[str] | None = None  # Fig 11's methods (None: every method)
    metrics: Settings = field(default_factory=Settings)

    @classmethod
    def from_config(cls, block: Any) -> RunSettings:
        if block is None:
            values = {}
        elif OmegaConf.is_config(block):
            values = dict(OmegaConf.to_container(block, resolve=True))
        else:
            values = dict(block)
        own = {f.name for f in fields(cls)} - {"metrics"}
        metric_keys = {f.name for f in fields(Settings)}
        unknown = sorted(set(values) - own - metric_keys)
        if unknown:
            raise ValueError(
                f"perturbation: unknown key(s) {', '.join(unknown)}; "
                f"known are {', '.join(sorted(own | metric_keys))}"
            )
        metric_values = {k: values.pop(k) for k in list(values) if k in metric_keys}
        if "percents" in metric_values:
            metric_values["percents"] = tuple(float(p) for p in metric_values["percents"])
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
