"""Removal, the one owner for the protocols and the metrics: ranks -> count rule -> mask ->
replacement.

- **Ranks** (:func:`saliency_ranks`): 0 = most salient, ties broken by a seeded permutation.
- **Count rule**: ``round(p * n)`` halves up (:func:`count_for`; ROAR/KAR and the metrics' default)
  or ROAD's ``floor`` (:func:`removed_count`, ``rule="floor"``).
- **Mask** (:func:`order_mask`, one comparison of the ranks). One vocabulary: an *order* says which
  end goes first, ``morf`` (most relevant first) or ``lerf`` (least relevant first); a protocol's
  *mode* is an order with its percent read as kept or removed (:data:`MODE_ORDER`):

  ====  =======================================  ===========================
  mode  percent ``p`` of the ``n`` locations     as a removal
  ====  =======================================  ===========================
  roar  the top ``k = round(p n)`` removed       MoRF, ``k`` removed
  kar   the top ``k = round(p n)`` kept          LeRF, ``n - k`` removed
  ====  =======================================  ===========================

- **Replacement** (:func:`replace`, :data:`REPLACEMENTS`): mean, zero, blur, linear (ROAD's noisy
  linear imputation, solved in :mod:`roarkar.removal.imputation`).
"""

from roarkar.removal.imputation import DEFAULT_TOL, SOLVERS, cg_solve, linear_impute
from roarkar.removal.masks import (
    COUNTS,
    MODE_ORDER,
    MODES,
    ORDERS,
    check_percent,
    check_selects,
    count_for,
    keep_mask_from_ranks,
    order_mask,
    removal_mask,
    removed_count,
    removed_counts,
    saliency_ranks,
    topk_mask,
)
from roarkar.removal.replacement import (
    DEFAULT_BLUR_SIGMA,
    DEFAULT_NOISE,
    REPLACEMENTS,
    ReplaceArgs,
    blur,
    fill_removed,
    image_draws,
    replace,
)

__all__ = [
    "COUNTS",
    "DEFAULT_BLUR_SIGMA",
    "DEFAULT_NOISE",
    "DEFAULT_TOL",
    "MODES",
    "MODE_ORDER",
    "ORDERS",
    "REPLACEMENTS",
    "SOLVERS",
    "ReplaceArgs",
    "blur",
    "cg_solve",
    "check_percent",
    "check_selects",
    "count_for",
    "fill_removed",
    "image_draws",
    "keep_mask_from_ranks",
    "linear_impute",
    "order_mask",
    "removal_mask",
    "removed_count",
    "removed_counts",
    "replace",
    "saliency_ranks",
    "topk_mask",
]
