"""Tables as text: ours beside another table (``compare``) and GitHub-flavoured Markdown."""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["compare", "to_markdown"]


def compare(
    ours: pd.DataFrame, published: pd.DataFrame, keys: list[str], values: list[str]
) -> pd.DataFrame:
    """Side by side: ``keys``, then per value column ``v``, ``v_published`` and ``v_delta``.

    An outer join, so rows only one side has show up with NaN.
    """
    merged = ours[keys + values].merge(
        published[keys + values], on=keys, how="outer", suffixes=("", "_published"), sort=False
    )
    cols = list(keys)
    for v in values:
        merged[f"{v}_delta"] = merged[v] - merged[f"{v}_published"]
        cols += [v, f"{v}_published", f"{v}_delta"]
    return merged[cols]


# --------------------------------------------------------------------------- rendering


def _fmt(value: object, floatfmt: str) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else format(value, floatfmt)
    return str(value).replace("|", "\\|")


def to_markdown(
    df: pd.DataFrame, title: str | None = None, floatfmt: str = ".2f", note: str | None = None
) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned), with optional title and note."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"
    body = [
        "| " + " | ".join(_fmt(v, floatfmt) for v in row) + " |"
        for row in df.itertuples(index=False, name=None)
    ]
    parts = ([f"### {title}", ""] if title else []) + [header, rule, *body]
    if note:
        parts += ["", note]
    return "\n".join(parts) + "\n"
