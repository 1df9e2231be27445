"""SMOE Scale's operation counts per tap (statistic, normalisation, combination) at ImageNet size,
counted on our implementation beside the paper's Table 6, and the forward pass's FLOPs."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from roarkar.bench.table import config_str, row
from roarkar.bench.workload import Sizes, fixed_images
from roarkar.models import TAPS
from roarkar.saliency import combine, stats

PAPER_TABLE6 = Path(__file__).resolve().parents[2] / "results" / "paper" / "table6.csv"

_NO_WORK = {
    "view",
    "_unsafe_view",
    "reshape",
    "expand",
    "slice",
    "select",
    "unsqueeze",
    "squeeze",
    "permute",
    "t",
    "transpose",
    "detach",
    "alias",
    "as_strided",
    "empty",
    "empty_like",
    "empty_strided",
    "lift_fresh",
    "_to_copy",
    "clone",
    "copy_",
    "item",
    "_local_scalar_dense",
}


class OpCounter(TorchDispatchMode):
    """Element operations of the aten calls run inside it: one per element of each call's largest
    operand (inputs or output), so an elementwise op counts its output and a reduction its input,
    and ``log``/``erf``/``ndtr`` count as one op each, as in the paper's Table 6. Views, copies and
    allocations count nothing."""

    def __init__(self):
        super().__init__()
        self.ops = 0
        self.by_op: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name not in _NO_WORK:
            sizes = [t.numel() for t in tree_leaves((args, kwargs, out)) if isinstance(t, Tensor)]
            n = max(sizes) if sizes else 0
            self.ops += n
            self.by_op[name] = self.by_op.get(name, 0) + n
        return out


def _count(fn) -> int:
    with OpCounter() as counter:
        fn()
    return counter.ops


def _paper_table6() -> dict[str, dict[str, int]]:
    if not PAPER_TABLE6.is_file():
        return {}
    with open(PAPER_TABLE6) as fh:
        return {
            r["layer"]: {k: int(r[k]) for k in ("smoe_ops", "norm_ops", "combine_ops")}
            for r in csv.DictReader(fh)
        }


def flop_rows(sz: Sizes, model) -> list[dict]:
    """Ops per tap for SMOE statistic, normalisation and combination (batch 1), beside Table 6."""
    from torch.utils.flop_counter import FlopCounterMode

    device = sz.device
    size = sz.big_size
    x = fixed_images(1, size, device=device)
    with torch.no_grad():
        with FlopCounterMode(display=False) as fc:
            model(x)
        forward_flops = fc.get_total_flops()
        taps, _ = model.forward_taps(x)
    paper = _paper_table6()
    config = config_str(model=sz.big_model, px=size, batch=1)
    rows = []
    totals = {"smoe_ops": 0, "norm_ops": 0, "combine_ops": 0}
    weights = combine.resolve_weights("equal")
    for tap, weight in zip(TAPS, weights, strict=True):
        act = taps[tap].post
        c, h, w = act.shape[1:]
        with torch.no_grad():
            smap = stats.smoe_scale(act)
            squashed = combine.squash_map(smap, "normal")
            ours = {
                "smoe_ops": _count(lambda act=act: stats.smoe_scale(act)),
                "norm_ops": _count(lambda smap=smap: combine.squash_map(smap, "normal")),
                # the upsampled, weighted map plus one add per pixel into the running sum
                "combine_ops": _count(
                    lambda sq=squashed, weight=weight: combine.upsample(sq, (size, size)) * weight
                )
                + size * size,
            }
        for key, label in (
            ("smoe_ops", "SMOE statistic"),
            ("norm_ops", "normalisation (CDF squash)"),
            ("combine_ops", "upsample + weighted sum"),
        ):
            totals[key] += ours[key]
            ref = paper.get(tap, {}).get(key)
            rows.append(
                row(
                    "smoe_flops",
                    f"{tap} {label}",
                    f"{config} tap={c}x{h}x{w}",
                    ours[key],
                    "ops",
                    ratio=None if not ref else ours[key] / ref,
                    notes=(f"paper Table 6: {ref:,}; ratio = ours / paper" if ref else "paper: n/a")
                    + (
                        "; ours combines at the input size, the paper at 112 px"
                        if key == "combine_ops"
                        else ""
                    ),
                )
            )
    total = sum(totals.values())
    paper_total = sum(sum(v.values()) for k, v in paper.items() if k in TAPS) if paper else None
    macs = forward_flops / 2
    rows.append(
        row(
            "smoe_flops",
            "total SMOE Scale ops (5 taps: statistic + normalisation + combination)",
            config,
            total,
            "ops",
            ratio=None if not paper_total else total / paper_total,
            notes=(f"paper Table 6 total: {paper_total:,}; " if paper_total else "")
            + "paper Sec 4.1: 1.1e7-3.9e7 with log/erf at one op to worst case",
        )
    )
    rows.append(
        row(
            "smoe_flops",
            "forward pass (torch.utils.flop_counter)",
            config,
            forward_flops,
            "FLOP",
            notes=f"{macs / 1e9:.2f} G multiply-adds (the paper's 'FLOPs', He et al.: 3.8e9)",
        )
    )
    rows.append(
        row(
            "smoe_flops",
            "SMOE ops as a share of forward multiply-adds (paper's terminology)",
            config,
            100 * total / macs,
            "%",
            notes="paper Sec 4.1: 0.3-1.0 %; ops counted on our implementation (OpCounter)",
        )
    )
    return rows
