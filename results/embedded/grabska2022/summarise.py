"""The tables of README.md from a grabska2022 output folder (metrics.csv[.gz], stats.csv,
krippendorff.csv): means per metric and method, the best by mean, DeepMaps against FullGrad (win
rate, Wilcoxon p), the ground truth's rank, and Fig 10's alpha with its interval.

    python results/embedded/grabska2022/summarise.py results/embedded/grabska2022/mnist
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from roarkar.metrics.stats import higher_is_better, summary

PAPER = ["afoc_morf", "afoc_lerf", "n_morf", "n_lerf", "delta_afoc_morf", "delta_afoc_lerf",
         "delta_n_morf", "delta_n_lerf", "aopc", "delta_aopc"]  # fmt: skip


def markdown(df: pd.DataFrame) -> str:
    """A pipe table of ``df`` (its index as the first column)."""
    df = df.reset_index()
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines)


def main(folder: Path) -> None:
    path = folder / "metrics.csv.gz"
    metrics = pd.read_csv(path if path.exists() else folder / "metrics.csv", dtype={"image": str})
    methods = list(pd.unique(metrics["method"]))
    means = summary(metrics).pivot_table(index="metric", columns="method", values="mean")
    means = means.reindex(index=PAPER, columns=methods)
    oriented = means.apply(lambda row: row if higher_is_better(row.name) else -row, axis=1)
    table = means.map(lambda v: f"{v:.3f}")
    five = [m for m in methods if m not in ("random", "ground_truth")]
    table["best (mean)"] = oriented.idxmax(axis=1)
    table["best of the five"] = oriented[five].idxmax(axis=1)
    stats = pd.read_csv(folder / "stats.csv")
    pair = stats[(stats["method"] == "deepmaps") & (stats["other_method"] == "fullgrad")]
    wins = pair[pair["statistic"] == "win_rate"].set_index("metric")["value"]
    p = pair[pair["statistic"] == "wilcoxon_p"].set_index("metric")["value"]
    table["DeepMaps beats FullGrad (% of images)"] = [f"{100 * wins[m]:.0f}" for m in PAPER]
    table["Wilcoxon p"] = [f"{p[m]:.1g}" for m in PAPER]
    if "ground_truth" in methods:
        table["ground truth's rank"] = oriented.rank(axis=1, ascending=False)[
            "ground_truth"
        ].astype(int)
    print(markdown(table.rename_axis("metric")))
    alpha = pd.read_csv(folder / "krippendorff.csv")
    alpha["alpha"] = [f"{r.mean:.2f} [{r.lo:.2f}, {r.hi:.2f}]" for r in alpha.itertuples()]
    wide = alpha.pivot_table(index="metric", columns="methods", values="alpha", aggfunc="first")
    print()
    print(markdown(wide.reindex(list(pd.unique(alpha["metric"])))))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
