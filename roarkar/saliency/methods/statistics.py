"""Per-tap statistic methods (paper Sec 2, Table 1 rows): one class, parameterised by the statistic.

``tap_saliency`` is the raw statistic of a tap's activation (the layer protocol masks that tap);
``saliency`` is the Eq 3 combination of the five tap maps from one forward pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from roarkar.models.taps import TapActivation
from roarkar.saliency import stats
from roarkar.saliency.base import SaliencyMethod
from roarkar.saliency.combine import check_squash, combine, resolve_weights
from roarkar.saliency.registry import register


class StatisticMethod(SaliencyMethod):
    """Saliency from a channel-column statistic at each tap (five on a ResNet), combined by Eq 3.

    ``statistic`` and ``needs_pre_relu`` are fixed by the registry entry; ``weights`` ("equal",
    "linear", "prior" or five floats) and ``squash`` ("normal", "gamma", "none") are user parameters.
    No channel reduction beyond the statistic itself; no target is used (forward only).
    """

    kind: ClassVar[str] = "statistic"
    supports_layer: ClassVar[bool] = True
    # Forward only, under no_grad: no weight gradient can arise, and freezing and restoring every
    # parameter costs 0.4 ms a call on ResNet-50 (0.15 % of its forward at batch 4 on a CPU).
    freeze_parameters: ClassVar[bool] = False

    def __init__(
        self,
        model: nn.Module,
        *,
        statistic: stats.Statistic,
        needs_pre_relu: bool = False,
        weights: str | Sequence[float] = "equal",
        squash: str = "normal",
        batch_size: int | None = None,
    ):
        super().__init__(model, batch_size=batch_size)
        self.statistic = statistic
        self.needs_pre_relu = bool(needs_pre_relu)
        self.weights = resolve_weights(weights, len(self.model.taps))
        self.squash = check_squash(squash)
        #: Per tap, what the statistic is told: ``nonnegative`` when its input is a ReLU's output
        #: (a statistic that can skip clamping negatives then does).
        self.tap_kwargs = [{} for _ in self.model.taps]
        if not self.needs_pre_relu and "nonnegative" in inspect.signature(statistic).parameters:
            self.tap_kwargs = [
                {"nonnegative": True} if t.rectified else {} for t in self.model.tap_info
            ]

    def _input(self, act: TapActivation) -> Tensor:
        if not self.needs_pre_relu:
            return act.post
        if act.pre is None:
            raise ValueError(f"{self.name} needs the tap's pre-ReLU tensor (act.pre), got None")
        return act.pre

    def tap_saliency(self, act: TapActivation, *, relevance=None, generator=None) -> Tensor:
        """The raw statistic [B, h, w] of the tap (post-ReLU, or pre-ReLU when ``needs_pre_relu``)."""
        return self.statistic(self._input(act))

    def tap_maps(self, images: Tensor) -> dict[str, Tensor]:
        """Raw statistic maps of every tap, L1..Ln, from one forward pass.

        Each tap's statistic is taken as soon as the forward pass reaches it, so no tap outlives the
        next stage: as in a plain forward pass, freed memory is reused rather than newly mapped
        (holding all five taps, as ``forward_taps`` does, costs about 3 % of a ResNet-50 forward).
        """
        if self.needs_pre_relu:
            self.model.check_pre_relu(self.name)

        def statistic(index: int, act: TapActivation) -> Tensor:
            return self.statistic(self._input(act), **self.tap_kwargs[index])

        with torch.no_grad():  # the whole network runs, as for every other method
            maps, _ = self.model.map_taps(images, statistic, self.needs_pre_relu)
        return maps

    def _saliency(self, images, targets, *, relevance, generator):
        maps = self.tap_maps(images)
        return combine(maps, tuple(images.shape[-2:]), self.weights, self.squash)


_REF = "Mundhenk et al. 2020"
STATISTICS: tuple[tuple[str, stats.Statistic, str, str, bool], ...] = (
    ("smoe_scale", stats.smoe_scale, "SMOE Scale", f"{_REF}, Eq 2 (Eq 1, 14-15)", False),
    ("std", stats.std, "Standard Dev", f"{_REF}, Table 1", False),
    ("mean", stats.mean, "Normal Mean", f"{_REF}, Table 1", False),
    (
        "normal_entropy",
        stats.normal_entropy,
        "Normal Ent",
        f"{_REF}, Sec 3.1 (excluded there)",
        False,
    ),
    ("shannon_entropy", stats.shannon_entropy, "Shannon Ent", f"{_REF}, Table 1", False),
    ("lognormal_mean", stats.lognormal_mean, "Log Normal Mean", f"{_REF}, Table 1", False),
    ("lognormal_entropy", stats.lognormal_entropy, "Log Normal Ent", f"{_REF}, Table 1", False),
    ("truncnormal_mean", stats.truncnormal_mean, "Trunc Normal Mean", f"{_REF}, Table 1", True),
    ("truncnormal_std", stats.truncnormal_std, "Trunc Normal Std", f"{_REF}, Table 1", True),
    (
        "truncnormal_entropy",
        stats.truncnormal_entropy,
        "Trunc Normal Ent",
        f"{_REF}, Table 1",
        True,
    ),
    (
        "gamma_scale",
        stats.gamma_scale,
        "Gamma Scale",
        f"{_REF}, Eq 10-13 (Choi & Wette 1969)",
        False,
    ),
)

for _name, _fn, _label, _reference, _pre in STATISTICS:
    register(
        _name,
        label=_label,
        reference=_reference,
        bind={"statistic": _fn, "needs_pre_relu": _pre},
    )(StatisticMethod)

__all__ = ["STATISTICS", "StatisticMethod"]
