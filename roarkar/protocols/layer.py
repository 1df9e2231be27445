"""Layer protocol (paper Sec 3.1, Tables 1 and 4).

From the base model: freeze everything up to the tap, compute the method's map from the tap's own
activation (per image, on the fly), zero the masked locations across all channels, and fine-tune the
layers after the tap. The frozen prefix runs without autograd and keeps its BatchNorm statistics.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from roarkar.config import Config, LayerProtocolConfig
from roarkar.models import TapActivation, TappedNet, check_tap
from roarkar.models.fused import inference_copy
from roarkar.protocols.context import Context
from roarkar.protocols.protocol import CellRun, Protocol, StudyPart, register_protocol
from roarkar.removal import check_percent, check_selects, keep_mask_from_ranks, saliency_ranks
from roarkar.saliency import SaliencyMethod, create, describe
from roarkar.training import FitResult, fit

log = logging.getLogger(__name__)


class TapMaskedNet(nn.Module):
    """A model whose activation at ``tap`` is masked by ``method``'s map before the rest runs."""

    def __init__(
        self, model: TappedNet, tap: str, method: SaliencyMethod, mode: str, fraction: float
    ):
        super().__init__()
        self.model, self.tap, self.method, self.mode, self.fraction = (
            model,
            tap,
            method,
            mode,
            fraction,
        )
        self.generator = torch.Generator().manual_seed(0)  # set per batch by the protocol
        # (folded prefix, input) -> activation: a cell group (roarkar.protocols.group) puts its
        # one shared computation here; None runs the prefix
        self.prefix_activation: Callable[[nn.Module, Tensor], Tensor] | None = None
        method.bind_tap(tap)
        # The frozen prefix (eval mode, no autograd) runs as a BatchNorm-folded, channels-last copy
        # (roarkar.models.fused): the same function, and ResNet-50's L3 step 1.48x -> ~1.55x faster
        # than full fine-tuning. Kept in a tuple so it is not a submodule (no state-dict entries).
        # A statistic of the pre-ReLU tensor needs the stage-by-stage path; a network tapped by
        # hooks (model.taps) runs whole, its prefix without autograd, the tap's output replaced.
        if self._needs_pre_relu:
            model.check_pre_relu(method.name)
        fast = not (self._needs_pre_relu or model.by_hooks)
        self._prefix = (model.prefix_sequential(tap),) if fast else None

    @property
    def _needs_pre_relu(self) -> bool:
        return bool(getattr(self.method, "needs_pre_relu", False))

    def _masked(self, act: TapActivation, relevance: Tensor | None) -> Tensor:
        tap_map = self.method.tap_saliency(act, relevance=relevance, generator=self.generator)
        keep = keep_mask_from_ranks(
            saliency_ranks(tap_map, self.generator), self.mode, self.fraction
        )
        return act.post * keep.unsqueeze(1).to(act.post.dtype)

    def forward(self, x: Tensor, relevance: Tensor | None = None) -> Tensor:
        if self._prefix is None:
            return self.model.forward_masked(
                x, self.tap, lambda act: self._masked(act, relevance), self._needs_pre_relu
            )
        with torch.no_grad():
            # NCHW again for the trained suffix: channels-last training on CPU is unsafe
            # (roarkar/training/settings.py)
            folded = inference_copy(self._prefix[0])
            if self.prefix_activation is None:
                act = TapActivation(folded(x).contiguous())
            else:
                act = TapActivation(self.prefix_activation(folded, x))
            h = self._masked(act, relevance)
        return self.model.forward_from(h, self.tap)


def _augment_with_relevance(
    ctx: Context, x: Tensor, relevance: Tensor | None, generator
) -> tuple[Tensor, Tensor | None]:
    """Augment images and their ground-truth maps with the same crop and flip."""
    if relevance is None:
        return ctx.augment(x, generator), None
    both = ctx.augment(torch.cat([x, relevance.unsqueeze(1)], 1), generator)
    return both[:, :-1], both[:, -1]


@dataclass
class LayerCell:
    """One layer cell, what :func:`run_layer_cell` takes besides the base model and the tap
    (``ctx`` is the cell's own: its method and identity)."""

    ctx: Context
    method_name: str
    method_params: dict
    mode: str
    fraction: float
    identity: str
    checkpoint: Path | None
    on_step: Callable[[int], None] | None = None


def layer_fit_args(base: TappedNet, tap: str, cell: LayerCell) -> dict:
    """The arguments of :func:`roarkar.training.fit` for one layer cell: a copy of ``base`` masked
    at ``tap`` (``["net"]``, a :class:`TapMaskedNet`), its trainable suffix, batches and recipe."""
    ctx, mode = cell.ctx, cell.mode
    model = copy.deepcopy(base)
    method = create(cell.method_name, model, **cell.method_params)
    trainable = model.freeze_prefix(tap)
    net = TapMaskedNet(model, tap, method, mode, cell.fraction).to(ctx.dist.device)
    prefix = model.prefix_modules(tap)
    use_relevance = ctx.info.has_relevance

    def prepare(batch, train, generator):
        x = ctx.inputs(batch["images"])
        relevance = batch.get("relevance")
        relevance = (
            relevance.to(ctx.dist.device, non_blocking=True) if relevance is not None else None
        )
        if train:
            x, relevance = _augment_with_relevance(ctx, x, relevance, generator)
        net.generator = generator
        return x, batch["labels"].to(ctx.dist.device, non_blocking=True), {"relevance": relevance}

    def freeze_statistics():
        for module in prefix:
            module.eval()

    return dict(
        net=net,
        parameters=trainable,
        prepare=prepare,
        train=ctx.batches("train", ctx.rank_batch_size, relevance=use_relevance),
        val=ctx.batches("val", ctx.settings.eval_batch_size, relevance=use_relevance),
        settings=ctx.stage_settings("layer"),
        epochs=ctx.epochs("layer"),
        seed=ctx.spec.seed,
        checkpoint=cell.checkpoint,
        identity=cell.identity,
        dist=ctx.dist,
        desc=f"layer {tap} {mode} {ctx.spec.method_id}",
        on_train_mode=freeze_statistics,
        on_step=cell.on_step,
    )


def run_layer_cell(base: TappedNet, tap: str, cell: LayerCell) -> FitResult:
    """Fine-tune a copy of ``base`` after ``tap``, masked as ``cell`` says, and return the final
    held-out accuracy and true-class score."""
    return fit(**layer_fit_args(base, tap, cell))


def layer_percent(config: Config, protocol: LayerProtocolConfig, mode: str) -> tuple[float, str]:
    """A layer cell's percent and the key it came from: ``protocol.percent``, else the study's
    percent for the mode (a multirun makes the study's cells), else ``protocol.<mode>_percent``.
    The protocol node itself is unchanged, so cell identities do not depend on where it came from."""
    if protocol.percent is not None:
        return protocol.percent, "protocol.percent"
    study = config.study.layer.percents.get(mode) if config.study.layer else None
    if study is not None:
        return study, f"study.layer.percents.{mode}"
    return getattr(protocol, f"{mode}_percent"), f"protocol.{mode}_percent"


def study_layers(part: StudyPart) -> list[str]:
    """The study's layers that the model has: a network with fewer scales (seed 002's CNN has
    two taps) leaves the others out, and says so."""
    wanted = [str(t) for t in part.node["layers"]]
    if part.taps is None:
        return wanted
    taps = part.taps()
    kept = [t for t in wanted if t in taps]
    if not kept:
        raise ValueError(
            f"study.layer.layers={wanted}: model {part.model} has taps {', '.join(taps)} only"
        )
    if len(kept) < len(wanted):
        log.warning(
            "model %s has taps %s: the study's layers %s are left out",
            part.model,
            ", ".join(taps),
            ", ".join(t for t in wanted if t not in taps),
        )
    return kept


_LOCATIONS: dict[str, int | None] = {}  # (model node, image size, tap) -> h * w, per process


def tap_locations(config: Config, tap: str) -> int | None:
    """The spatial locations (h * w) of ``tap`` at the dataset's image size, from one forward pass
    of the configured model on the meta device (nothing allocated, no weights); None where that
    pass cannot run there (a model tapped by hooks that touch values), the check then left to
    the mask itself."""
    from roarkar.models import build_model

    key = json.dumps(
        [config.model.node, config.dataset.image_size, config.dataset.num_classes, tap],
        sort_keys=True,
        default=str,
    )
    if key not in _LOCATIONS:
        size = int(config.dataset.image_size)
        try:
            with torch.device("meta"):
                model = build_model(
                    config.model.name,
                    int(config.dataset.num_classes or 1000),
                    taps=config.model.taps,
                    **config.model.params,
                )
                shape = model.forward_to(torch.empty(1, 3, size, size), tap).post.shape
            _LOCATIONS[key] = int(shape[-1] * shape[-2])
        except Exception:  # noqa: BLE001 - any failure on meta: no early check, not a wrong one
            _LOCATIONS[key] = None
    return _LOCATIONS[key]


@register_protocol
class LayerProtocol(Protocol):
    """Mask a tap's activation by the method's map, fine-tune the layers after it (Tables 1, 4)."""

    name = "layer"
    config = LayerProtocolConfig
    study_lists = ("methods", "layers", "modes")
    tables = ("table1", "table4")

    def cell_fields(self, config: Config) -> tuple[str, float]:
        protocol = config.protocol
        layer = str(protocol.layer)
        check_tap(layer)
        if not describe(config.method.name).supports_layer:
            raise ValueError(
                f"method {config.method.name!r} cannot run in the layer protocol (it needs the "
                "input image); use protocol=input, or a per-tap statistic or control"
            )
        percent, key = layer_percent(config, protocol, str(protocol.mode))
        fraction = check_percent(percent, key)
        locations = tap_locations(config, layer)
        if locations is not None:  # before any data or training: the model's shapes, on meta
            check_selects(
                fraction, locations, f"{key}={percent:g} at tap {layer} ({locations} locations)"
            )
        return layer, float(percent)

    def study_cells(self, part: StudyPart) -> list[tuple[str, dict[str, object]]]:
        layers = study_layers(part)
        return [
            (
                str(method),
                {
                    "protocol.layer": tap,
                    "protocol.mode": mode,
                    "protocol.percent": part.node["percents"][mode],
                },
            )
            for method in part.node["methods"]
            for tap in layers
            for mode in part.node["modes"]
        ]

    def train(self, run: CellRun) -> FitResult:
        ctx, cell = run.ctx, run.cell
        job = LayerCell(
            ctx,
            ctx.spec.method_name,
            ctx.method_params(),
            cell.mode,
            cell.percent / 100.0,
            run.identity,
            run.checkpoint,
            run.on_step,
        )
        return run_layer_cell(run.base, cell.layer, job)
