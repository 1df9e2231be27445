"""Figures 4 and 5 of the paper as PNG, from any long table (matplotlib, Agg backend).

* **Figure 4** (layer protocol): the per-layer Difference score ``(z - rho) + (kappa - z)``
  against the layer L1..L5 for the top methods (by AVG Difference of Table 1), one panel per
  dataset and one for the mean over datasets; Random, the baseline, is drawn at 0. A caption line
  in the figure defines kappa, rho and z with the percents used.
* **Figure 5** (input protocol): accuracy (%) against the percent kept (KAR panel) or removed
  (ROAR panel), one line per method, the random baseline dashed; one row of panels per dataset;
  error bars of ± one std over seeds when there are several.

Legends name methods as the paper does (:func:`roarkar.saliency.labels.method_label`), and every
method has its own colour, marker and line style, so overlapping lines stay apart.

The paper's series are overlaid where it has the same method on the same dataset (Table 4 for
Figure 4, Table 5 for Figure 5; ``dataset_map`` maps our dataset names onto the paper's), in the
method's colour with thin dotted lines and hollow markers, labelled "(paper)". They are left out
when the results are the paper's own (they would coincide) or with ``overlay=False``.

``metric="true_class_score"`` draws both from the cells' true-class score (mean softmax
probability of the true class) instead of accuracy: axis labels and titles say so, the paper's
series (accuracies) are not overlaid, and :func:`write_figures` writes them to
``out_dir/true_class_score/`` (``fig5_true_class_score_vs_percent.png``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from roarkar.report.long import normalize_long
from roarkar.report.metric import DEFAULT_METRIC, METRICS, select_metric
from roarkar.report.plotting import (
    PAPER_STYLE,
    RANDOM_STYLE,
    method_styles,
    pyplot,
    save_figure,
    side_legend,
)
from roarkar.report.prior import LAYERS, per_layer_scores
from roarkar.report.rows import AVG, BASELINE
from roarkar.report.scores import DEFAULT_LOG_BASE
from roarkar.report.tables import table1
from roarkar.report.write import metric_dir
from roarkar.saliency.labels import method_labels

__all__ = [
    "draw_figure4",
    "draw_figure5",
    "figure4",
    "figure5",
    "write_figures",
]


def _layer_percents(d: pd.DataFrame, percent: Mapping[str, float] | None) -> dict[str, str]:
    """The KAR / ROAR percent of the layer rows, as text for the caption ("2.5 %")."""
    out = {}
    for mode in ("kar", "roar"):
        if percent is not None and mode in percent:
            out[mode] = f"{float(percent[mode]):g} %"
        else:
            present = sorted(d.loc[(d["protocol"] == "layer") & (d["mode"] == mode), "percent"])
            out[mode] = f"{float(present[0]):g} %" if present else "?"
    return out


def _paper(overlay: bool, df: pd.DataFrame) -> dict | None:
    if not overlay:
        return None
    from roarkar.report.paper import is_paper_data, load_paper, paper_dir

    if paper_dir() is None:
        return None
    paper = load_paper()
    own = is_paper_data(df, paper)
    return {"paper": paper, "own": own}


def draw_figure4(
    df_long: pd.DataFrame,
    *,
    top: int = 5,
    log_base: float = DEFAULT_LOG_BASE,
    percent: Mapping[str, float] | None = None,
    overlay: bool = True,
    dataset_map: Mapping[str, str] | None = None,
    metric: str = DEFAULT_METRIC,
):
    """Figure 4 of ``metric`` as a matplotlib Figure with its legend (the caller saves or closes
    it)."""
    plt = pyplot()
    d = select_metric(normalize_long(df_long), metric)
    overlay = overlay and metric == DEFAULT_METRIC  # the paper's series are accuracies
    pls = per_layer_scores(d, log_base=log_base, percent=percent)
    t1 = table1(d, log_base=log_base, percent=percent)
    methods = list(pd.unique(t1.loc[t1["dataset"] == AVG, "method"]))[:top]
    datasets = list(pd.unique(pls["dataset"]))
    dmap = dict(dataset_map or {})
    ctx = _paper(overlay, d)
    paper_pls = None
    if ctx is not None and not ctx["own"]["layer"]:
        paper_pls = per_layer_scores(ctx["paper"]["t4_long"])
    styles = method_styles(methods)
    names = method_labels([BASELINE, *methods])
    panels = datasets + (["mean over datasets"] if len(datasets) > 1 else [])
    ncol = 2 if len(panels) == 4 else min(len(panels), 3)
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(3.6 * ncol + 1.8, 3.0 * nrow + 0.6), squeeze=False, sharey=True
    )
    x = np.arange(1, len(LAYERS) + 1)

    def series(frame: pd.DataFrame, method: str, ds_list: list[str]) -> np.ndarray:
        """Per-layer Difference of ``method``, mean over ``ds_list`` (NaN unless it has all)."""
        sub = frame[(frame["method"] == method) & frame["dataset"].isin(ds_list)]
        if set(sub["dataset"]) != set(ds_list):
            return np.full(len(LAYERS), np.nan)
        return sub.groupby("layer")["difference"].mean().reindex(LAYERS).to_numpy()

    handles: dict[str, object] = {}
    for ax, panel in zip(axes.flat, panels, strict=False):
        overall = panel == "mean over datasets"
        ours_ds = datasets if overall else [panel]
        # Random scores exactly 0 against itself: it is the baseline z of every term
        (h,) = ax.plot(x, np.zeros(len(x)), **RANDOM_STYLE)
        handles.setdefault(f"{names[BASELINE]} (the baseline z: 0 by definition)", h)
        for m in methods:
            y = series(pls, m, ours_ds)
            (h,) = ax.plot(x, y, linewidth=1.8, **styles[m])
            handles.setdefault(names[m], h)
            if paper_pls is not None:
                pds = [dmap.get(ds, ds) for ds in ours_ds]
                yp = series(paper_pls, m, pds)
                if np.isfinite(yp).any():
                    style = dict(PAPER_STYLE, color=styles[m]["color"], marker=styles[m]["marker"])
                    (hp,) = ax.plot(x, yp, **style)
                    handles.setdefault(f"{names[m]} (paper)", hp)
        ax.set_title(f"{panel} (paper: {dmap[panel]})" if panel in dmap else panel)
        ax.set_xticks(x, list(LAYERS))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("per-layer Difference\n(z − ρ) + (κ − z)")
    for ax in axes[-1, :]:
        ax.set_xlabel("layer (tap L1..L5)")
    of = "" if metric == DEFAULT_METRIC else f" of the {METRICS[metric]}"
    fig.suptitle(
        f"Figure 4: per-layer Difference score (Eq 8 at one layer){of}, "
        f"top {len(methods)} methods by Difference averaged over datasets"
    )
    pc = _layer_percents(d, percent)
    fig.text(
        0.01,
        0.0,
        f"κ: {METRICS[metric]} when the {pc['kar']} most salient pixels of the layer are kept "
        "(KAR); "
        f"ρ: when the {pc['roar']} most salient are removed (ROAR);\n"
        "z: the same for the Random map (KAR's z with κ, ROAR's z with ρ). "
        "Higher is better; 0 is Random.",
        ha="left",
        va="top",
        fontsize=9,
    )
    side_legend(fig, handles)
    return fig


def figure4(
    df_long: pd.DataFrame,
    path: str | Path,
    *,
    top: int = 5,
    log_base: float = DEFAULT_LOG_BASE,
    percent: Mapping[str, float] | None = None,
    overlay: bool = True,
    dataset_map: Mapping[str, str] | None = None,
    metric: str = DEFAULT_METRIC,
) -> Path:
    """Figure 4: per-layer Difference score vs layer for the ``top`` methods; see module doc."""
    fig = draw_figure4(
        df_long,
        top=top,
        log_base=log_base,
        percent=percent,
        overlay=overlay,
        dataset_map=dataset_map,
        metric=metric,
    )
    return save_figure(fig, path)


def _t5_with_std(d: pd.DataFrame) -> pd.DataFrame:
    from roarkar.report.tables import Seeds, table5

    t5 = table5(d, seeds=Seeds())
    if "dataset" not in t5.columns:
        t5 = t5.assign(dataset=d.loc[d["protocol"] == "input", "dataset"].iloc[0])
    return t5


def draw_figure5(
    df_long: pd.DataFrame,
    *,
    overlay: bool = True,
    dataset_map: Mapping[str, str] | None = None,
    metric: str = DEFAULT_METRIC,
):
    """Figure 5 of ``metric`` as a matplotlib Figure with its legend (the caller saves or closes
    it)."""
    plt = pyplot()
    d = select_metric(normalize_long(df_long), metric)
    overlay = overlay and metric == DEFAULT_METRIC  # the paper's series are accuracies
    label = "top-1 accuracy" if metric == DEFAULT_METRIC else METRICS[metric]
    t5 = _t5_with_std(d)
    datasets = list(pd.unique(t5["dataset"]))
    methods = [m for m in pd.unique(t5["method"]) if m != BASELINE]
    styles = {BASELINE: RANDOM_STYLE, **method_styles(methods)}
    names = method_labels([BASELINE, *methods])
    dmap = dict(dataset_map or {})
    ctx = _paper(overlay, d)
    paper_t5 = None
    if ctx is not None and not ctx["own"]["input"]:
        paper_t5 = ctx["paper"]["table5"]
    fig, axes = plt.subplots(
        len(datasets), 2, figsize=(11, 3.6 * len(datasets)), squeeze=False, sharex=True
    )
    handles: dict[str, object] = {}
    for row, ds in enumerate(datasets):
        for col, mode in enumerate(("kar", "roar")):
            ax = axes[row, col]
            sub = t5[(t5["dataset"] == ds) & (t5["mode"] == mode)]
            for m in [BASELINE, *methods]:
                s = sub[sub["method"] == m].sort_values("percent")
                if s.empty:
                    continue
                yerr = s["std"].to_numpy() if s["std"].notna().any() else None
                style = dict({"linewidth": 1.6}, **styles[m])
                h = ax.errorbar(s["percent"], s["accuracy"], yerr=yerr, capsize=2, **style)
                handles.setdefault(names[m] + (" (baseline)" if m == BASELINE else ""), h)
                if paper_t5 is not None:
                    p = paper_t5[
                        (paper_t5["dataset"] == dmap.get(ds, ds))
                        & (paper_t5["method"] == m)
                        & (paper_t5["mode"] == mode)
                    ].sort_values("percent")
                    if not p.empty:
                        pstyle = dict(PAPER_STYLE, color=style["color"], marker=style["marker"])
                        (hp,) = ax.plot(p["percent"], p["accuracy"], **pstyle)
                        handles.setdefault(f"{names[m]} (paper)", hp)
            what = (
                "kept (KAR, higher is better)"
                if mode == "kar"
                else "removed (ROAR, lower is better)"
            )
            ax.set_title(f"{ds}: {mode.upper()}")
            ax.set_xlabel(f"% of most salient pixels {what}")
            ax.set_ylabel(f"{label} (%)")
            ax.grid(alpha=0.3)
    fig.suptitle(f"Figure 5: {METRICS[metric]} vs percent of the input kept or removed")
    side_legend(fig, handles)
    return fig


def figure5(
    df_long: pd.DataFrame,
    path: str | Path,
    *,
    overlay: bool = True,
    dataset_map: Mapping[str, str] | None = None,
    metric: str = DEFAULT_METRIC,
) -> Path:
    """Figure 5: accuracy (or ``metric``) vs percent kept (KAR) / removed (ROAR); see the module
    docstring."""
    fig = draw_figure5(df_long, overlay=overlay, dataset_map=dataset_map, metric=metric)
    return save_figure(fig, path)


def write_figures(
    df_long: pd.DataFrame,
    out_dir: str | Path,
    *,
    log_base: float = DEFAULT_LOG_BASE,
    percent: Mapping[str, float] | None = None,
    overlay: bool = True,
    dataset_map: Mapping[str, str] | None = None,
    top: int = 5,
    metric: str = DEFAULT_METRIC,
) -> dict[str, Path]:
    """``fig4_layer_scores.png`` (layer rows) and ``fig5_<metric>_vs_percent.png`` (input rows)
    in ``out_dir``, or for a metric other than accuracy in ``out_dir/<metric>/``."""
    d = select_metric(normalize_long(df_long), metric)  # a cell lacking it: an error, no file
    out = metric_dir(out_dir, metric)
    written = {}
    if (d["protocol"] == "layer").any():
        p = figure4(
            d,
            out / "fig4_layer_scores.png",
            top=top,
            log_base=log_base,
            percent=percent,
            overlay=overlay,
            dataset_map=dataset_map,
            metric=metric,
        )
        written[p.name] = p
    if (d["protocol"] == "input").any():
        p = figure5(
            d,
            out / f"fig5_{metric}_vs_percent.png",
            overlay=overlay,
            dataset_map=dataset_map,
            metric=metric,
        )
        written[p.name] = p
    return written
