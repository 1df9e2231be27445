"""Layer weights read from a ``prior_weights.json`` (written by ``roarkar-tables --prior-weights``).

A bottom-layer module with no roarkar imports: the saliency combination (Eq 3) reads the file, the
report writes it, and neither imports the other.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["load_prior_weights"]


def load_prior_weights(path: str | Path) -> list[float]:
    """Layer weights from a JSON file: ``{"weights": [...]}`` (as written) or a bare list.

    Raises ValueError (naming the file) unless they are finite, non-negative numbers, not all 0.
    """
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"prior weights file not found: {path}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    values = rec.get("weights") if isinstance(rec, dict) else rec
    if not isinstance(values, list) or not values:
        raise ValueError(f"{path}: expected a list of weights or {{'weights': [...]}}")
    try:
        weights = [float(w) for w in values]
    except (TypeError, ValueError):
        raise ValueError(f"{path}: weights must be numbers; got {values!r}") from None
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"{path}: weights must be finite, non-negative, not all 0; got {weights}")
    return weights
