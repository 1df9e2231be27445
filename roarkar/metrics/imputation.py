"""Replacement of removed pixels: dataset mean, blur, or ROAD's noisy linear imputation.

Every function takes normalised images ``[N, C, H, W]`` and a bool mask ``removed [N, H, W]`` of
*pixels* (never C x H x W): a removed pixel is replaced in every channel (docs/ARCHITECTURE.md, "Pitfalls").

Noisy linear imputation (Rong et al. 2022, ROAD): each removed pixel becomes the weighted average of
its 8 neighbours (weights 1/6 for the 4 direct and 1/12 for the 4 diagonal neighbours; neighbours
outside the image are dropped and the weights renormalised), where neighbours that are themselves
removed are unknowns too. That is one sparse linear system per image and channel::

    d_i x_i - sum_{j removed} w_ij x_j = sum_{j kept} w_ij v_j      for every removed pixel i

with ``d_i`` the sum of in-image neighbour weights. ROAD solves it with ``scipy.sparse.linalg.spsolve``
per image; here the default solver is a **batched preconditioned conjugate gradient in torch**
(the matrix is symmetric positive definite whenever every hole touches a kept pixel): all images x
removal steps x channels are solved at once with the 3x3 neighbour stencil (shifted adds) as the
matrix-vector product, on CPU or GPU, until every system's residual is below ``tol`` (1e-4) of its
right-hand side (measured: max error ~1e-4 in normalised units, well under ROAD's noise of 0.01;
about 50-100 iterations at 32 px) or after ``max_iter`` (default 2 (H + W) + 20) iterations. ``solver="scipy"`` builds the same system with ``scipy.sparse`` and solves it exactly
(one ``spsolve`` per image and channel; slow, kept as the reference the tests compare against).
A hole without any kept neighbour (e.g. 100 % removed) has no information: CG leaves it at 0, the
dataset mean in normalised space; the scipy path reaches the same by a 1e-9 diagonal shift.
Then Gaussian noise of std ``noise`` (ROAD: 0.01, in the normalised space the model sees) is added
to the imputed pixels only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "NEIGHBOUR_WEIGHTS",
    "REPLACEMENTS",
    "SOLVERS",
    "blur",
    "linear_impute",
    "replace",
]

REPLACEMENTS = ("mean", "blur", "linear")
SOLVERS = ("cg", "scipy")

#: ROAD's neighbour weights as a 3x3 kernel (centre 0); they sum to 1.
NEIGHBOUR_WEIGHTS = torch.tensor(
    [[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]], dtype=torch.float64
)


def _check(images: Tensor, removed: Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W]; got shape {tuple(images.shape)}")
    if removed.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(
            f"removed must be a pixel mask [N, H, W] = {(images.shape[0], *images.shape[2:])}; "
            f"got {tuple(removed.shape)} (rank and mask H x W pixels, never C x H x W)"
        )


def _neighbour_sum(x: Tensor) -> Tensor:
    """Weighted sum of each pixel's in-image neighbours, per channel (shifted adds of the
    zero-padded tensor, the 3x3 kernel :data:`NEIGHBOUR_WEIGHTS`): ``[..., H, W]``."""
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1))
    direct = p[..., 0:h, 1 : w + 1] + p[..., 2 : h + 2, 1 : w + 1]
    direct = direct + p[..., 1 : h + 1, 0:w] + p[..., 1 : h + 1, 2 : w + 2]
    diagonal = p[..., 0:h, 0:w] + p[..., 0:h, 2 : w + 2]
    diagonal = diagonal + p[..., 2 : h + 2, 0:w] + p[..., 2 : h + 2, 2 : w + 2]
    return direct * (1 / 6) + diagonal * (1 / 12)


def _cg(images: Tensor, removed: Tensor, tol: float, max_iter: int | None) -> Tensor:
    """Solve the imputation systems of every image and channel at once (Jacobi-preconditioned CG)."""
    m = removed[:, None].to(images.dtype)
    diag = _neighbour_sum(torch.ones_like(m))  # sum of in-image neighbour weights
    b = m * _neighbour_sum(images * (1 - m))

    def matvec(v: Tensor) -> Tensor:
        return m * (diag * v - _neighbour_sum(m * v))

    def dot(a: Tensor, c: Tensor) -> Tensor:
        return (a * c).sum(dim=(2, 3), keepdim=True)

    x = torch.zeros_like(images)
    r = b.clone()
    z = r / diag
    p = z.clone()
    rz = dot(r, z)
    b_norm = dot(b, b).sqrt()
    limit = max_iter if max_iter is not None else 2 * (images.shape[2] + images.shape[3]) + 20
    for it in range(limit):
        ap = matvec(p)
        pap = dot(p, ap)
        alpha = torch.where(pap > 0, rz / pap.clamp_min(1e-30), torch.zeros_like(pap))
        x = x + alpha * p
        r = r - alpha * ap
        if it % 5 == 4 and bool((dot(r, r).sqrt() <= tol * b_norm + 1e-12).all()):
            break
        z = r / diag
        rz_new = dot(r, z)
        beta = torch.where(rz > 0, rz_new / rz.clamp_min(1e-30), torch.zeros_like(rz))
        rz = rz_new
        p = z + beta * p
    return x


def _scipy(images: Tensor, removed: Tensor) -> Tensor:
    """The same systems assembled with scipy.sparse and solved exactly, one per image and channel."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    n, c, h, w = images.shape
    out = torch.zeros_like(images)
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
        out[i] = torch.from_numpy(filled.reshape(c, h, w)).to(out)
    return out


def linear_impute(
    images: Tensor,
    removed: Tensor,
    *,
    noise: float = 0.01,
    generator: torch.Generator | None = None,
    solver: str = "cg",
    tol: float = 1e-4,
    max_iter: int | None = None,
) -> Tensor:
    """ROAD's noisy linear imputation of the ``removed`` pixels (see the module docstring)."""
    _check(images, removed)
    if solver == "cg":
        solved = _cg(images, removed, tol, max_iter)
    elif solver == "scipy":
        solved = _scipy(images, removed)
    else:
        raise ValueError(f"solver={solver!r}: expected one of {', '.join(SOLVERS)}")
    if noise:
        solved = solved + noise * torch.randn(
            solved.shape, generator=generator, dtype=solved.dtype
        ).to(solved.device)
    return torch.where(removed[:, None], solved.to(images.dtype), images)


def blur(images: Tensor, sigma: float) -> Tensor:
    """Gaussian blur (reflect padding, separable), per channel; the kernel fits inside the image."""
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive; got {sigma!r}")
    n, c, h, w = images.shape
    radius = max(1, min(int(np.ceil(3 * sigma)), h - 1, w - 1))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = F.pad(images.reshape(n * c, 1, h, w), (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x.view(n, c, h, w)


def replace(
    images: Tensor,
    removed: Tensor,
    kind: str,
    *,
    blurred: Tensor | None = None,
    blur_sigma: float = 2.0,
    noise: float = 0.01,
    generator: torch.Generator | None = None,
    solver: str = "cg",
    tol: float = 1e-4,
    max_iter: int | None = None,
) -> Tensor:
    """``images`` with the ``removed`` pixels replaced in every channel.

    ``mean``: 0 in normalised space, i.e. the dataset's per-channel mean (Samek et al.; Hooker);
    ``blur``: the pixel of a Gaussian-blurred copy (``blurred`` if given, else blurred here);
    ``linear``: ROAD's noisy linear imputation.
    """
    _check(images, removed)
    if kind == "mean":
        return images.masked_fill(removed[:, None], 0.0)
    if kind == "blur":
        fill = blurred if blurred is not None else blur(images, blur_sigma)
        return torch.where(removed[:, None], fill, images)
    if kind == "linear":
        return linear_impute(
            images,
            removed,
            noise=noise,
            generator=generator,
            solver=solver,
            tol=tol,
            max_iter=max_iter,
        )
    raise ValueError(f"replacement={kind!r}: expected one of {', '.join(REPLACEMENTS)}")
