"""Layer cells trained as one group on a shared frozen prefix (roarkar.protocols.group) against the
same cells trained alone, one batch per round each, side by side at each tap."""

from __future__ import annotations

import copy
from itertools import cycle, islice

from torch import Tensor, nn

from roarkar.bench.table import row
from roarkar.bench.timing import paired_ratio
from roarkar.bench.training import sgd_stepper, timed_tap_pairs
from roarkar.bench.workload import Sizes
from roarkar.protocols.group import SharedPrefix
from roarkar.protocols.layer import TapMaskedNet
from roarkar.saliency import create
from roarkar.training.augment import augment

#: Methods of the post-ReLU tap the cells cycle through (the prefix is shared only where the map
#: comes from the tap's output; a pre-ReLU statistic runs stage by stage), each at KAR and ROAR.
METHODS = ("smoe_scale", "std", "mean", "normal_entropy", "shannon_entropy", "random")

#: The group's targets at a tap (speed-up of the group over its cells alone; issue 27).
TARGETS = {"L4": ">= 2", "L5": ">= 3"}


def _cell_steps(base: nn.Module, tap: str, n: int, x: Tensor, y: Tensor, device: str, shared):
    """One SGD step function per cell (``n`` cells of :data:`METHODS` x KAR/ROAR), their frozen
    prefixes reading ``shared`` (a :class:`SharedPrefix`) when it is given."""
    kinds = islice(cycle((m, mode) for m in METHODS for mode in ("kar", "roar")), n)
    steps = []
    for method_name, mode in kinds:
        model = copy.deepcopy(base)
        trainable = model.freeze_prefix(tap)
        net = TapMaskedNet(model, tap, create(method_name, model), mode, 0.5).to(device).train()
        for module in model.prefix_modules(tap):
            module.eval()
        net.prefix_activation = shared

        def prep(generator):
            return augment(x, "crop_flip", generator), y, {}

        steps.append(sgd_stepper(net, trainable, prep, device))
    return steps


def _group_rows(
    sz: Sizes, model_name: str, size: int, classes: int, batch: int, rounds: int, n: int
) -> list[dict]:
    def pair(base, tap, x, y, device):
        alone = _cell_steps(base, tap, n, x, y, device, None)
        group = _cell_steps(base, tap, n, x, y, device, SharedPrefix())
        return (lambda: [step() for step in alone]), (lambda: [step() for step in group])

    s, config = timed_tap_pairs(
        sz, model_name, size, classes, batch, rounds, pair, ("alone", "group"), cells=n
    )
    rows = []
    for tap in sz.layer_taps:
        a, b = s[f"alone:{tap}"], s[f"group:{tap}"]
        speedup = paired_ratio(a, b)
        rows.append(
            row(
                "group",
                f"{tap}: {n} layer cells as one group vs each alone (one batch each)",
                config,
                n * batch / b.median,
                "images/s",
                ratio=speedup,
                target=TARGETS.get(tap),
                cpu_over_wall=b.cpu_over_wall,
                repeats=min(a.n, b.n),
                notes=(
                    f"value = group cell-images/s; alone {n * batch / a.median:.4g}; ratio = "
                    "speed-up (alone time / group time); methods cycle "
                    f"{', '.join(METHODS)} x KAR/ROAR 50 %"
                ),
            )
        )
    return rows


def run_group(sz: Sizes) -> list[dict]:
    """A group of :attr:`Sizes.group_cells` layer cells (one shared prefix per batch) against the
    same cells alone at L3, L4, L5 on the small ResNet; on the big model too when ``layer_big``
    (:attr:`Sizes.group_big_cells` cells)."""
    rows = _group_rows(sz, "small_resnet", 32, 8, sz.train_batch, sz.train_rounds, sz.group_cells)
    if sz.layer_big:
        big = (sz.big_model, sz.big_size, sz.big_classes, sz.layer_big_batch, sz.layer_big_rounds)
        rows += _group_rows(sz, *big, sz.group_big_cells)
    return rows
