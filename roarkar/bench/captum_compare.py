"""Our gradient methods against Captum's on the same model, input, targets and settings: time per
image, their paired ratio and, where exact, the largest difference of the maps."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from roarkar.bench.saliency import bench_method, expensive
from roarkar.bench.table import config_str, row, skipped
from roarkar.bench.timing import Task, interleave, paired_cpu_over_wall, paired_ratio
from roarkar.bench.workload import Sizes, bench_model, fixed_images, targets_for


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
        ours = bench_method(name, model, sz)
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
    model = bench_model(model_name, classes, device).eval()
    x = fixed_images(batch, size, device=device)
    t = targets_for(batch, classes, device)
    images = {n: (min(n_exp, batch) if expensive(n) else batch) for n in methods}
    pairs = _captum_pairs(model, x, t, methods, sz, images)
    heavy = size >= 128
    tasks = []
    for name, (ours, ref, _) in pairs.items():
        warm = not (heavy and expensive(name))
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
