"""Saliency cost per method, SMOE Scale's overhead over a plain forward pass (time and op counts,
beside the paper's Table 6), and our gradient methods against Captum's on the same input."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from roarkar.bench.common import (
    Samples,
    Sizes,
    Task,
    bench_model,
    config_str,
    fixed_images,
    interleave,
    paired_cpu_over_wall,
    paired_quartiles,
    paired_ratio,
    row,
    skipped,
    targets_for,
)
from roarkar.models import TAPS
from roarkar.saliency import combine, create, describe, stats

PAPER_TABLE6 = Path(__file__).resolve().parents[2] / "results" / "paper" / "table6.csv"
GBP_CLAIM = "paper: 97-344x faster than methods with a full backward pass"
SG_CLAIM = "paper: 1456-5181x faster than 15-sample SmoothGrad"


def _model(name: str, classes: int, device: str):
    return bench_model(name, classes, device).eval()


def _expensive(name: str) -> bool:
    params = describe(name).params
    return "samples" in params or "steps" in params


def _method(name: str, model, sz: Sizes):
    params: dict[str, Any] = {}
    accepted = describe(name).params
    if "samples" in accepted:
        params["samples"] = sz.samples
    if "steps" in accepted:
        params["steps"] = sz.steps
    return create(name, model, **params)


def _saliency_fn(method, x: Tensor, t: Tensor):
    relevance = torch.rand(x.shape[0], *x.shape[-2:], device=x.device)
    wants_relevance = method.name == "ground_truth"

    def fn():
        gen = torch.Generator().manual_seed(0)
        return method.saliency(
            x, t, relevance=relevance if wants_relevance else None, generator=gen
        )

    return fn


def _cost(
    sz: Sizes, model_name: str, size: int, classes: int, batch: int, methods, tag: str
) -> tuple[list[dict], dict[str, Samples], dict[str, int]]:
    device = sz.device
    model = _model(model_name, classes, device)
    x = fixed_images(batch, size, device=device)
    t = targets_for(batch, classes, device)
    n_exp = min(sz.expensive_images, batch)
    images: dict[str, int] = {"forward": batch}

    def forward():
        with torch.no_grad():
            return model(x)

    tasks = [Task("forward", forward, budget_s=sz.budget_s)]
    for name in methods:
        method = _method(name, model, sz)
        n = n_exp if _expensive(name) else batch
        images[name] = n
        heavy = _expensive(name) and size >= 128
        tasks.append(
            Task(
                name,
                _saliency_fn(method, x[:n], t[:n]),
                warmup=not heavy,
                budget_s=sz.budget_s,
            )
        )
    if "smoe_scale" in methods:
        with torch.no_grad():
            taps, _ = model.forward_taps(x)

        def smoe_own():
            with torch.no_grad():
                maps = {k: stats.smoe_scale(a.post) for k, a in taps.items()}
                return combine.combine(maps, (size, size), "equal", "normal")

        tasks.append(Task("smoe_own", smoe_own, budget_s=sz.budget_s))
        images["smoe_own"] = batch
    samples = interleave(tasks, sz.repeats, device)
    config = config_str(model=model_name, px=size, batch=batch, device=device)
    rows = []
    fwd = samples["forward"]
    rows.append(
        row(
            "saliency",
            f"plain forward pass ({tag})",
            config,
            1000 * fwd.median / batch,
            "ms/image",
            ratio=1.0,
            samples=fwd,
            notes="reference for the ratio column (multiples of a forward pass)",
        )
    )
    for name in methods:
        s = samples[name]
        n = images[name]
        extra = []
        if n != batch:
            extra.append(f"{n} image(s)")
        params = describe(name).params
        if "samples" in params:
            extra.append(f"samples={sz.samples}")
        if "steps" in params:
            extra.append(f"steps={sz.steps}")
        rows.append(
            row(
                "saliency",
                f"{name} ({tag})",
                config,
                1000 * s.median / n,
                "ms/image",
                ratio=paired_ratio(s, fwd, n, batch),
                samples=s,
                notes="; ".join(["ratio = x plain forward", *extra]),
            )
        )
    return rows, samples, images


def _speedups(
    samples: dict[str, Samples], images: dict[str, int], config: str, tag: str
) -> list[dict]:
    rows = []
    if "smoe_scale" not in samples:
        return rows
    smoe, own = samples["smoe_scale"], samples.get("smoe_own")
    for other, claim in (("guided_backprop", GBP_CLAIM), ("smoothgrad_sq", SG_CLAIM)):
        if other not in samples:
            continue
        s = samples[other]
        full = paired_ratio(s, smoe, images[other], images["smoe_scale"])
        rows.append(
            row(
                "saliency",
                f"speed-up of smoe_scale over {other}, full pass vs full pass ({tag})",
                config,
                full,
                "x",
                ratio=full,
                cpu_over_wall=paired_cpu_over_wall(s, smoe),
                repeats=min(s.n, smoe.n),
                notes=f"both include their forward pass; {claim}",
            )
        )
        if own is not None:
            paper = paired_ratio(s, own, images[other], images["smoe_own"])
            rows.append(
                row(
                    "saliency",
                    f"speed-up of smoe_scale over {other}, paper's basis ({tag})",
                    config,
                    paper,
                    "x",
                    ratio=paper,
                    cpu_over_wall=paired_cpu_over_wall(s, own),
                    repeats=min(s.n, own.n),
                    notes=(
                        f"{other}'s full cost / SMOE's own cost (5 tap statistics + Eq 3 on "
                        f"activations the forward pass made anyway); {claim}"
                    ),
                )
            )
    return rows


def run_saliency(sz: Sizes) -> list[dict]:
    """Saliency cost per method at the default size and at ImageNet size, and SMOE's speed-ups."""
    rows, samples, images = _cost(
        sz, sz.small_model, sz.small_size, 8, sz.small_batch, sz.small_methods, "default size"
    )
    small_cfg = config_str(model=sz.small_model, px=sz.small_size, batch=sz.small_batch)
    rows += _speedups(samples, images, small_cfg, "default size")
    big_rows, samples, images = _cost(
        sz, sz.big_model, sz.big_size, sz.big_classes, sz.big_batch, sz.big_methods, "ImageNet size"
    )
    rows += big_rows
    big_cfg = config_str(model=sz.big_model, px=sz.big_size, batch=sz.big_batch)
    rows += _speedups(samples, images, big_cfg, "ImageNet size")
    return rows


# -- SMOE overhead over a forward pass ---------------------------------------------------------------

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


def _flop_rows(sz: Sizes, model) -> list[dict]:
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


def run_smoe(sz: Sizes) -> list[dict]:
    """SMOE Scale's overhead over a plain forward pass at ImageNet size, by time and by op count,
    on the big model (ResNet-50) and on each of :attr:`Sizes.family_models` (VGG-16)."""
    rows = _smoe_rows(sz, sz.big_model)
    if sz.flop_count:
        rows += _flop_rows(sz, _model(sz.big_model, sz.big_classes, sz.device))
    for name in sz.family_models:
        rows += _smoe_rows(sz, name)
    return rows


def _smoe_rows(sz: Sizes, model_name: str) -> list[dict]:
    device = sz.device
    model = _model(model_name, sz.big_classes, device)
    b, size = sz.smoe_batch, sz.big_size
    x = fixed_images(b, size, device=device)
    method = create("smoe_scale", model)
    with torch.no_grad():
        taps, _ = model.forward_taps(x)

    def plain():
        with torch.no_grad():
            return model(x)

    def tapped():
        with torch.no_grad():
            return model.forward_taps(x)

    def full():
        return method.saliency(x)

    def stat_only():
        with torch.no_grad():
            return [
                stats.smoe_scale(a.post, nonnegative=t.rectified)
                for t, a in zip(model.tap_info, taps.values(), strict=True)
            ]

    maps = {k: stats.smoe_scale(a.post) for k, a in taps.items()}

    def combine_only():
        with torch.no_grad():
            return combine.combine(maps, (size, size), "equal", "normal")

    tasks = [
        Task("plain", plain),
        Task("smoe", full),
        Task("tapped", tapped),
        Task("stat", stat_only),
        Task("combine", combine_only),
    ]
    s = interleave(tasks, sz.smoe_rounds, device)
    config = config_str(model=model_name, px=size, batch=b, device=device)
    target = "<= 1" if device.startswith("cuda") else "<= 5"
    n = len(model.taps)
    where = "GPU" if device.startswith("cuda") else "CPU"
    overhead = 100 * (paired_ratio(s["smoe"], s["plain"]) - 1)
    q1, q3 = (100 * (q - 1) for q in paired_quartiles(s["smoe"], s["plain"]))
    isolated = 100 * paired_ratio(s["stat"], s["plain"]) + 100 * paired_ratio(
        s["combine"], s["plain"]
    )
    rows = [
        row(
            "smoe",
            "plain forward pass",
            config,
            1000 * s["plain"].median / b,
            "ms/image",
            samples=s["plain"],
        ),
        row(
            "smoe",
            f"SMOE Scale saliency (forward with {n} tap statistics + Eq 3)",
            config,
            1000 * s["smoe"].median / b,
            "ms/image",
            ratio=paired_ratio(s["smoe"], s["plain"]),
            samples=s["smoe"],
            notes="ratio = x plain forward; create('smoe_scale').saliency(x)",
        ),
        row(
            "smoe",
            "SMOE overhead over a plain forward pass (difference of full passes)",
            config,
            overhead,
            "% of forward",
            target=target,
            target_on="value",
            cpu_over_wall=paired_cpu_over_wall(s["smoe"], s["plain"]),
            repeats=min(s["smoe"].n, s["plain"].n),
            notes=(
                f"(SMOE saliency - plain forward) / plain forward, median of paired rounds (middle"
                f" half {q1:.1f} to {q3:.1f} %); issue 7 target on {where}; paper: 0.3-1 % of FLOPs"
            ),
        ),
        row(
            "smoe",
            f"SMOE own cost, isolated ({n} tap statistics + Eq 3 on captured taps)",
            config,
            isolated,
            "% of forward",
            target=target,
            target_on="value",
            cpu_over_wall=paired_cpu_over_wall(s["stat"], s["combine"]),
            repeats=min(s["stat"].n, s["combine"].n),
            notes="timed alone, same rounds; less noisy than the difference",
        ),
        row(
            "smoe",
            f"  of which: SMOE statistic on the {n} taps",
            config,
            100 * paired_ratio(s["stat"], s["plain"]),
            "% of forward",
            samples=s["stat"],
        ),
        row(
            "smoe",
            "  of which: Eq 3 (normal-CDF squash, bilinear upsample, weighted mean)",
            config,
            100 * paired_ratio(s["combine"], s["plain"]),
            "% of forward",
            samples=s["combine"],
        ),
        row(
            "smoe",
            "forward_taps (no statistics) vs plain forward",
            config,
            paired_ratio(s["tapped"], s["plain"]),
            "x",
            ratio=paired_ratio(s["tapped"], s["plain"]),
            samples=s["tapped"],
            notes="the tapped forward itself, without statistics",
        ),
    ]
    return rows


# -- against Captum ----------------------------------------------------------------------------------


def _captum_ref(name: str, model, ours, xs: Tensor, ts: Tensor):
    """Captum's counterpart of our method ``name`` with the same settings, as a thunk."""
    import captum.attr as ca

    if name == "gradient":
        return lambda: ca.Saliency(model).attribute(xs, target=ts, abs=False)
    if name == "guided_backprop":
        return lambda: ca.GuidedBackprop(model).attribute(xs, target=ts)
    if name == "grad_x_input":
        return lambda: ca.InputXGradient(model).attribute(xs, target=ts)
    if name == "integrated_gradients":
        base = ours.baseline_images(xs).contiguous()
        return lambda: ca.IntegratedGradients(model).attribute(
            xs,
            baselines=base,
            target=ts,
            n_steps=ours.steps,
            method=ours.rule,
            internal_batch_size=ours.max_batch,
        )
    if name == "smoothgrad_sq":
        # Captum's stdev is absolute; ours is sigma x each image's range (here: the mean range).
        stdev = ours.sigma * (xs.amax(dim=(1, 2, 3)) - xs.amin(dim=(1, 2, 3))).mean().item()
        return lambda: ca.NoiseTunnel(ca.Saliency(model)).attribute(
            xs,
            nt_type="smoothgrad_sq",
            nt_samples=ours.samples,
            nt_samples_batch_size=max(1, ours.max_batch // xs.shape[0]),
            stdevs=stdev,
            target=ts,
            abs=False,
        )
    raise ValueError(f"no captum counterpart for {name!r}")


def _captum_pairs(model, x: Tensor, t: Tensor, names, sz: Sizes, images: dict[str, int]):
    pairs = {}
    for name in names:
        n = images.get(name, x.shape[0])
        xs, ts = x[:n], t[:n]
        ours = _method(name, model, sz)
        ref = _captum_ref(name, model, ours, xs, ts)

        def our_fn(ours=ours, xs=xs, ts=ts, name=name):
            if name == "smoothgrad_sq":
                return ours.attribute(xs, ts, generator=torch.Generator().manual_seed(0))
            return ours.attribute(xs, ts)

        def ref_fn(ref=ref):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return ref()

        pairs[name] = (our_fn, ref_fn, n)
    return pairs


CAPTUM_METHODS = (
    "gradient",
    "guided_backprop",
    "grad_x_input",
    "integrated_gradients",
    "smoothgrad_sq",
)


def _captum_compare(
    sz: Sizes,
    model_name: str,
    size: int,
    classes: int,
    batch: int,
    n_exp: int,
    budget: float,
    methods: tuple[str, ...] = CAPTUM_METHODS,
):
    device = sz.device
    model = _model(model_name, classes, device)
    x = fixed_images(batch, size, device=device)
    t = targets_for(batch, classes, device)
    images = {n: (min(n_exp, batch) if _expensive(n) else batch) for n in methods}
    pairs = _captum_pairs(model, x, t, methods, sz, images)
    heavy = size >= 128
    tasks = []
    for name, (ours, ref, _) in pairs.items():
        warm = not (heavy and _expensive(name))
        tasks.append(Task(f"ours:{name}", ours, warmup=warm, budget_s=budget, memory=False))
        tasks.append(Task(f"captum:{name}", ref, warmup=warm, budget_s=budget, memory=False))
    s = interleave(tasks, sz.repeats, device)
    rows = []
    config = config_str(model=model_name, px=size, batch=batch, device=device)
    for name, (ours, ref, n) in pairs.items():
        a, b = s[f"ours:{name}"], s[f"captum:{name}"]
        note = [f"captum {1000 * b.median / n:.3g} ms/image"]
        if name in ("gradient", "guided_backprop", "grad_x_input") or (
            name == "integrated_gradients" and not heavy
        ):
            mine, theirs = ours(), ref()
            diff = ((mine - theirs).abs().max() / theirs.abs().max()).item()
            note.append(f"max |ours - captum| / max |captum| = {diff:.1e}")
        if n != batch:
            note.append(f"{n} image(s)")
        if name == "integrated_gradients":
            note.append(f"steps={sz.steps} riemann_right, internal batch 64 both")
        if name == "smoothgrad_sq":
            note.append(f"samples={sz.samples}, 64 images per pass both")
        rows.append(
            row(
                "captum",
                f"{name}: ours vs captum",
                config,
                1000 * a.median / n,
                "ms/image",
                ratio=paired_ratio(a, b),
                target="<= 1.0",
                cpu_over_wall=paired_cpu_over_wall(a, b),
                repeats=min(a.n, b.n),
                notes="; ".join(note),
            )
        )
    return rows


def run_captum(sz: Sizes) -> list[dict]:
    """Our gradient methods against Captum on the same model, input, targets and settings."""
    try:
        import captum.attr  # noqa: F401
    except ImportError:
        return [skipped("captum", "ours vs captum", "captum is not installed (pip install captum)")]
    rows = _captum_compare(
        sz, sz.small_model, sz.small_size, 8, sz.captum_batch, sz.captum_batch, sz.budget_s
    )
    if sz.captum_big:
        # IG-50 at 224 px is left out here (100 ResNet-50 passes per image and side); the default
        # size above compares it with the same steps and rule
        big = ("gradient", "guided_backprop", "grad_x_input", "smoothgrad_sq")
        for name in (sz.big_model, *sz.family_models):
            rows += _captum_compare(sz, name, sz.big_size, sz.big_classes, 2, 1, sz.budget_s, big)
    return rows
