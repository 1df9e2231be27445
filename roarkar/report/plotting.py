"""What every report figure shares: the Agg pyplot, a colour/marker/line style per method, the
random baseline's and the paper's line styles, the side legend, and saving a PNG."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "PAPER_STYLE",
    "RANDOM_STYLE",
    "method_styles",
    "pyplot",
    "save_figure",
    "side_legend",
]

PAPER_STYLE = {"linestyle": ":", "linewidth": 1.2, "markerfacecolor": "none", "alpha": 0.9}
RANDOM_STYLE = {"color": "black", "linestyle": "--", "marker": "x", "linewidth": 1.4}
#: tab10 without its grey (too close to Random's black); markers and line styles cycle with
#: other periods, so neighbours differ in all three and a repeated colour in marker and style.
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
            "#17becf")  # fmt: skip
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<")
_LINESTYLES = ("-", "--", "-.")


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def method_styles(methods: list[str]) -> dict[str, dict]:
    """Colour, marker and line style per method (see ``_COLOURS``)."""
    return {
        m: {
            "color": _COLOURS[i % len(_COLOURS)],
            "marker": _MARKERS[i % len(_MARKERS)],
            # shifted once per pass through the colours, so a repeated colour changes style too
            "linestyle": _LINESTYLES[(i + i // len(_COLOURS)) % len(_LINESTYLES)],
        }
        for i, m in enumerate(methods)
    }


def side_legend(fig, handles: dict) -> None:
    """Legend to the right of the panels, then a tight layout."""
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout()


def save_figure(fig, path) -> Path:
    """Write the PNG (creating its folder, legend and caption included) and close the figure."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
