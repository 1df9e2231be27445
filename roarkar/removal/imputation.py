"""ROAD's noisy linear imputation of removed pixels (the ``linear`` replacement of
:mod:`roarkar.removal.replacement`, for the metrics and the input protocol alike).

Every function takes normalised images ``[N, C, H, W]`` and a bool mask ``removed [N, H, W]`` of
*pixels* (never C x H x W): a removed pixel is replaced in every channel (docs/ARCHITECTURE.md, "Pitfalls").

Noisy linear imputation (Rong et al. 2022, ROAD; the reference is ``NoisyLinearImputer`` of their
``road_evaluation`` code): each removed pixel becomes the weighted average of its 8 neighbours
(weights 1/6 for the 4 direct and 1/12 for the 4 diagonal neighbours; neighbours outside the image
are dropped and the weights renormalised), where neighbours that are themselves removed are
unknowns too. That is one sparse linear system per image and channel::

    d_i x_i - sum_{j removed} w_ij x_j = sum_{j kept} w_ij v_j      for every removed pixel i

with ``d_i`` the sum of in-image neighbour weights. The system commutes with a per-channel affine
map (``d_i`` is the sum of all the weights), so solving it in roarkar's normalised space gives
ROAD's solution in [0, 1] normalised afterwards, exactly.

**Noise, as the reference.** ROAD imputes images in [0, 1] and normalises afterwards, adding
Gaussian noise of std ``noise`` (0.01) to the imputed pixels: 1 % of the pixel range. Here the
images are already normalised, ``x = (u - mean_c) / std_c``, so the noise added to channel ``c`` has
std ``noise / std_c`` (``pixel_std`` = the dataset's per-channel std; ``None`` when the images are
on the [0, 1] pixel scale themselves). Kept pixels get no noise.

**Solvers.** ROAD solves with ``scipy.sparse.linalg.spsolve`` per image; here the default is a
**batched Jacobi-preconditioned conjugate gradient in torch** (the matrix is symmetric positive
definite whenever every hole touches a kept pixel): all images x removal steps x channels are
solved at once, in float64, with the 3x3 neighbour stencil (one depthwise convolution) as the
matrix-vector product, on CPU or GPU, until every system's residual is below ``tol`` (default
:data:`DEFAULT_TOL` = 1e-6) of its right-hand side, or after ``max_iter`` (default
``4 (H + W) + 20``) iterations, with a warning. Measured against the exact solve at 224 px on a
smooth map (holes of up to 90 % of the image, MoRF and LeRF): at most 4.4e-5 in normalised units
(0.44 % of ROAD's noise of 0.01 / std) after 130-690 iterations; ``tests/integration/test_metrics.py`` holds it
below 1e-3 at every percent 10..90. ``solver="scipy"`` builds the same system with ``scipy.sparse``
and solves it exactly (one ``spsolve`` per image, all channels at once; on a CPU it is the faster
of the two for a few images at 224 px, see ``roarkar-bench --only imputation``).
A hole without any kept neighbour (e.g. 100 % removed) has no information: CG leaves it at 0, the
dataset mean in normalised space; the scipy path reaches the same by a 1e-9 diagonal shift (ROAD's
system is singular there).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DEFAULT_TOL",
    "NEIGHBOUR_WEIGHTS",
    "SOLVERS",
    "check_pixel_mask",
    "cg_solve",
    "linear_impute",
    "noise_scale",
]

SOLVERS = ("cg", "scipy")

#: Default relative residual of the CG solve (error against the exact solve <= 1e-3 at 224 px).
DEFAULT_TOL = 1e-6

#: ROAD's neighbour weights as a 3x3 kernel (centre 0); they sum to 1.
NEIGHBOUR_WEIGHTS = torch.tensor(
    [[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]], dtype=torch.float64
)


def check_pixel_mask(images: Tensor, removed: Tensor) -> None:
    """ValueError unless ``images`` is ``[N, C, H, W]`` and ``removed`` a pixel mask ``[N, H, W]``."""
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W]; got shape {tuple(images.shape)}")
    if removed.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(
            f"removed must be a pixel mask [N, H, W] = {(images.shape[0], *images.shape[2:])}; "
            f"got {tuple(removed.shape)} (rank and mask H x W pixels, never C x H x W)"
        )


def noise_scale(
    noise: float, channels: int, pixel_std: Sequence[float] | Tensor | None = None
) -> Tensor:
    """Per-channel std ``[channels]`` of ROAD's noise in the images' units: ``noise / std_c``
    (``noise`` x the pixel range [0, 1] after normalisation), or ``noise`` when ``pixel_std`` is
    None (images on the pixel scale)."""
    noise = float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}")
    if pixel_std is None:
        return torch.full((channels,), noise, dtype=torch.float64)
    std = torch.as_tensor(pixel_std, dtype=torch.float64).flatten().cpu()
    if std.numel() != channels or not bool(torch.isfinite(std).all()) or bool((std <= 0).any()):
        raise ValueError(
            f"pixel_std must be {channels} positive per-channel stds (the dataset's std, 0..1 "
            f"scale); got {[float(v) for v in std]}"
        )
    return noise / std


#: The 8 neighbours as (dy, dx, weight): a pixel's neighbour sum is sum w * x[y + dy, x + dx].
_OFFSETS = tuple(
    (dy, dx, float(NEIGHBOUR_WEIGHTS[dy + 1, dx + 1]))
    for dy in (-1, 0, 1)
    for dx in (-1, 0, 1)
    if (dy, dx) != (0, 0)
)


def _neighbour_sum(x: Tensor, out: Tensor | None = None) -> Tensor:
    """Weighted sum of each pixel's in-image neighbours, per channel (the 3x3 kernel
    :data:`NEIGHBOUR_WEIGHTS`, neighbours outside the image count 0): ``[..., H, W]``, written into
    ``out`` when given. Eight in-place shifted adds: no padded copy, no im2col buffer."""
    out = torch.zeros_like(x) if out is None else out.zero_()
    h, w = x.shape[-2:]
    for dy, dx, weight in _OFFSETS:
        ys, yt = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
        xs, xt = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
        out[..., yt, xt].add_(x[..., ys, xs], alpha=weight)
    return out


def _cg(
    images: Tensor, removed: Tensor, tol: float, max_iter: int | None
) -> tuple[Tensor, int, float]:
    """Solve the imputation systems of every image and channel at once (Jacobi-preconditioned CG,
    float64, in place in a few reused buffers): ``(solution, iterations, largest relative
    residual)``."""
    x0 = images.to(torch.float64)
    m = removed[:, None].to(torch.float64)
    diag = _neighbour_sum(torch.ones_like(m))  # sum of in-image neighbour weights
    inv_diag = m / diag
    b = m * _neighbour_sum(x0 * (1 - m))
    del x0
    buf = torch.empty_like(b)
    nbr = torch.empty_like(b)

    def dot(a: Tensor, c: Tensor) -> Tensor:
        return torch.mul(a, c, out=buf).sum(dim=(2, 3), keepdim=True)

    x = torch.zeros_like(b)
    r = b.clone()
    z = r * inv_diag
    p = z.clone()
    ap = torch.empty_like(b)
    rz = dot(r, z)
    b_norm = dot(b, b).sqrt()
    limit = max_iter if max_iter is not None else 4 * (images.shape[2] + images.shape[3]) + 20
    if int(limit) < 1:
        raise ValueError(f"max_iter must be a positive integer or None; got {max_iter!r}")
    it = 0
    for it in range(1, int(limit) + 1):
        torch.mul(m, p, out=buf)
        torch.mul(diag, p, out=ap).sub_(_neighbour_sum(buf, nbr)).mul_(m)  # A p
        pap = dot(p, ap)
        alpha = torch.where(pap > 0, rz / pap.clamp_min(1e-300), torch.zeros_like(pap))
        x.addcmul_(alpha.expand_as(p), p)
        r.addcmul_(alpha.expand_as(ap), ap, value=-1.0)
        if it % 5 == 0 and bool((dot(r, r).sqrt() <= tol * b_norm + 1e-300).all()):
            break
        torch.mul(r, inv_diag, out=z)
        rz_new = dot(r, z)
        beta = torch.where(rz > 0, rz_new / rz.clamp_min(1e-300), torch.zeros_like(rz))
        rz = rz_new
        p.mul_(beta).add_(z)
    relres = (dot(r, r).sqrt() / b_norm.clamp_min(1e-300)).amax()
    return x, it, float(relres)


#: On a CPU, CG solves this many float64 values (2 MiB) at a time: a chunk that stays in cache
#: iterates several times faster than one large batch, and stops as soon as its own systems converge.
CPU_CHUNK_VALUES = 1 << 18


def cg_solve(
    images: Tensor, removed: Tensor, tol: float = DEFAULT_TOL, max_iter: int | None = None
) -> tuple[Tensor, int, float]:
    """The noiseless CG solve in float64 (values at the removed pixels, 0 at kept ones): all images
    at once on a GPU, in cache-sized chunks of images on a CPU. Returns ``(solution, most
    iterations of a chunk, largest relative residual)``."""
    n = images.shape[0]
    per = n if images.device.type != "cpu" else max(1, CPU_CHUNK_VALUES // images[0].numel())
    if per >= n:
        return _cg(images, removed, tol, max_iter)
    parts, iterations, relres = [], 0, 0.0
    for start in range(0, n, per):
        x, it, rr = _cg(images[start : start + per], removed[start : start + per], tol, max_iter)
        parts.append(x)
        iterations, relres = max(iterations, it), max(relres, rr)
    return torch.cat(parts), iterations, relres


def _scipy(images: Tensor, removed: Tensor) -> Tensor:
    """The same systems assembled with scipy.sparse and solved exactly (one ``spsolve`` per image,
    its channels as right-hand sides), in float64 on the CPU."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    n, c, h, w = images.shape
    out = torch.zeros(images.shape, dtype=torch.float64)
    weights = NEIGHBOUR_WEIGHTS.numpy()
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for i in range(n):
        mask = removed[i].cpu().numpy()
        img = images[i].detach().cpu().double().numpy().reshape(c, -1)
        where = np.flatnonzero(mask.reshape(-1))
        if where.size == 0:
            continue
        index = np.full(h * w, -1)
        index[where] = np.arange(where.size)
        y, x = ys.reshape(-1)[where], xs.reshape(-1)[where]
        diag = np.full(where.size, 1e-9)
        rows, cols, vals = [], [], []
        rhs = np.zeros((where.size, c))
        for dy, dx in offsets:
            wgt = weights[dy + 1, dx + 1]
            ny, nx = y + dy, x + dx
            inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
            diag[inside] += wgt
            flat = ny[inside] * w + nx[inside]
            eq = np.flatnonzero(inside)
            unknown = index[flat] >= 0
            rows.append(eq[unknown])
            cols.append(index[flat[unknown]])
            vals.append(np.full(int(unknown.sum()), -wgt))
            rhs[eq[~unknown]] += wgt * img[:, flat[~unknown]].T
        rows.append(np.arange(where.size))
        cols.append(np.arange(where.size))
        vals.append(diag)
        a = coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(where.size, where.size),
        ).tocsc()
        sol = spsolve(a, rhs).reshape(where.size, -1)
        filled = np.zeros((c, h * w))
        filled[:, where] = sol.T
        out[i] = torch.from_numpy(filled.reshape(c, h, w))
    return out.to(images.device)


def linear_impute(
    images: Tensor,
    removed: Tensor,
    *,
    noise: float = 0.01,
    pixel_std: Sequence[float] | Tensor | None = None,
    generator: torch.Generator | None = None,
    draw: Tensor | None = None,
    solver: str = "cg",
    tol: float = DEFAULT_TOL,
    max_iter: int | None = None,
) -> Tensor:
    """ROAD's noisy linear imputation of the ``removed`` pixels (see the module docstring).

    ``noise`` is a fraction of the pixel range (ROAD: 0.01); ``pixel_std`` the per-channel std the
    images were normalised with (None: images on the [0, 1] scale). The noise is ``draw`` (standard
    normal draws of the images' shape, e.g. one generator per image) or else one draw of that shape
    from ``generator``, scaled per channel, kept where removed.
    """
    check_pixel_mask(images, removed)
    scale = noise_scale(noise, images.shape[1], pixel_std)
    if solver == "cg":
        if not float(tol) > 0:
            raise ValueError(f"solver_tol must be positive; got {tol!r}")
        solved, iterations, relres = cg_solve(images, removed, float(tol), max_iter)
        if relres > float(tol):
            warnings.warn(
                f"linear imputation: CG stopped after max_iter={iterations} iterations at a "
                f"relative residual of {relres:.2e} > tol={float(tol):g}; raise solver_max_iter "
                "or use solver=scipy",
                RuntimeWarning,
                stacklevel=2,
            )
    elif solver == "scipy":
        solved = _scipy(images, removed).to(torch.float64)
    else:
        raise ValueError(f"solver={solver!r}: expected one of {', '.join(SOLVERS)}")
    if bool((scale > 0).any()):
        if draw is None:
            draw = torch.randn(solved.shape, generator=generator, dtype=torch.float64)
        elif tuple(draw.shape) != tuple(solved.shape):
            raise ValueError(f"draw must be {tuple(solved.shape)}; got {tuple(draw.shape)}")
        solved = solved + draw.to(solved.device) * scale.to(solved.device).view(1, -1, 1, 1)
    return torch.where(removed[:, None], solved.to(images.dtype), images)
