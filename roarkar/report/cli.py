"""``roarkar-tables``: the paper's Tables 1, 2, 4, 5 from a long CSV or a results tree.

Examples::

    roarkar-tables --raw results/paper/table4_long.csv --out out/paper_tables --figures
    roarkar-tables --runs outputs/study --out out/tables --log-base 2
    roarkar-tables --raw results/paper/table4_long.csv --out out/prior \
        --prior-weights smoe_scale --prior-datasets imagenet,places365
    roarkar-tables --runs results/cells --out out/t --paper-dataset synth_objects=imagenet
    roarkar-tables --runs results/cells --out out/t --metric true_class_score --figures

Writes per table ``tableN.csv`` (tidy; with several seeds also std, n and, for Tables 1 and 2,
bootstrap CIs), ``tableN.md`` and ``tableN.tex`` (booktabs). When the results share dataset and
method ids with the paper (``--compare-paper auto``, the default), it prints our Tables 1 and 2
beside the published ones, flags cells differing by more than 0.01 and writes
``compare_tableN.csv`` and ``comparison.md``.

``--metric true_class_score`` computes every table, score and figure from the cells' true-class
score (mean softmax probability of the true class) instead of accuracy and writes them to
``OUT/true_class_score/`` (same file names, the metric in every title), leaving the accuracy
outputs in ``OUT`` untouched; cells without the score are an error naming their result.json.
It is not compared with the paper, whose tables are accuracies.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from roarkar.report.aggregate import collect_results
from roarkar.report.long import read_long
from roarkar.report.metric import DEFAULT_METRIC, METRICS, select_metric
from roarkar.report.scores import log_base_label, parse_log_base
from roarkar.report.uncertainty import DEFAULT_CI_SEED, DEFAULT_N_BOOT
from roarkar.report.write import format_for_console, metric_dir, write_tables


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``roarkar-tables``."""
    p = argparse.ArgumentParser(
        prog="roarkar-tables",
        description="Write and print Tables 1, 2, 4, 5 (ROAR/KAR scores) from cell results.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--raw", metavar="FILE.csv", help="long-format CSV (see docs/ARCHITECTURE.md)")
    src.add_argument("--runs", metavar="DIR", help="results tree holding one result.json per cell")
    p.add_argument("--out", metavar="DIR", required=True, help="where to write the tables")
    p.add_argument(
        "--log-base",
        default="e",
        choices=["e", "2"],
        help="log base of the Information score (Eq 9); e (default) reproduces the paper's Table 1",
    )
    p.add_argument(
        "--metric",
        default=DEFAULT_METRIC,
        choices=list(METRICS),
        help="what the tables, scores (Eq 8, 9) and figures are computed from: accuracy "
        "(default, written to OUT) or true_class_score, the mean softmax probability of the true "
        "class (written to OUT/true_class_score/, so neither overwrites the other)",
    )
    p.add_argument("--model", help="keep only this model (needed when several were run)")
    p.add_argument("--kar-percent", type=float, help="layer protocol: KAR kept percent to tabulate")
    p.add_argument("--roar-percent", type=float, help="layer protocol: ROAR removed percent")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=DEFAULT_N_BOOT,
        metavar="N",
        help="bootstrap resamples over seeds for the CIs of Tables 1 and 2 (several seeds only; "
        f"default {DEFAULT_N_BOOT}; 0 turns std/n/CI columns off)",
    )
    p.add_argument("--ci-seed", type=int, default=DEFAULT_CI_SEED, help="RNG seed of the bootstrap")
    p.add_argument(
        "--skip-failed",
        action="store_true",
        help="--runs: tabulate the ok cells when some failed or are unreadable (default: error)",
    )
    p.add_argument(
        "--allow-exact-duplicates",
        action="store_true",
        help="drop rows repeated with the same accuracy (default: error); rows for one cell and "
        "seed that disagree are always an error",
    )
    p.add_argument(
        "--compare-paper",
        choices=["auto", "on", "off"],
        nargs="?",
        const="on",
        default="auto",
        help="show the published Tables 1, 2 (4, 5) beside ours: auto (default) = when our cells "
        "are the paper's (dataset, method, model, layer, mode and percent); on (or the flag "
        "alone) = whenever dataset and method match, and fail if nothing does; off = never",
    )
    p.add_argument(
        "--paper-dataset",
        action="append",
        default=[],
        metavar="OURS=PAPER",
        help="compare/overlay our dataset OURS with the paper's PAPER (imagenet, places365, cowc); "
        "repeatable",
    )
    p.add_argument("--figures", action="store_true", help="write Figures 4 and 5 as PNG to --out")
    p.add_argument(
        "--no-paper-overlay", action="store_true", help="figures without the paper's series"
    )
    p.add_argument(
        "--prior-weights",
        metavar="METHOD",
        help="derive prior layer weights L1..L5 from METHOD's per-layer results; print them and "
        "write prior_weights.json",
    )
    p.add_argument(
        "--prior-score",
        choices=["information", "difference"],
        default="information",
        help="per-layer score summed into the prior weights (default information, which gives "
        "the paper's weights from its Table 4 on imagenet,places365)",
    )
    p.add_argument(
        "--prior-datasets",
        metavar="A,B",
        help="datasets summed for the prior weights (default: all the method has)",
    )
    return p


def _dataset_map(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        ours, sep, paper = pair.partition("=")
        if not sep or not ours or not paper:
            raise ValueError(f"--paper-dataset wants OURS=PAPER, got {pair!r}")
        out[ours.strip()] = paper.strip()
    return out


def _record(path: str) -> dict | None:
    """A cell's result.json (its recipe and data for the paper gate), None when unreadable."""
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _compare(df, args, log_base, percent, dmap) -> list:
    from roarkar.report import paper as pp
    from roarkar.report.paper_text import format_comparison, write_comparison

    if args.compare_paper == "off":
        return []
    if args.metric != DEFAULT_METRIC:
        if args.compare_paper == "on":
            raise ValueError(
                f"--compare-paper on: the paper's tables are accuracies, not the {args.metric}; "
                "compare with --metric accuracy"
            )
        print(f"not compared with the paper: its tables are accuracies, not the {args.metric}")
        return []
    if pp.paper_dir() is None:
        if args.compare_paper == "on":
            raise FileNotFoundError(
                "--compare-paper on: published tables (results/paper) not found"
            )
        return []
    paper = pp.load_paper()
    auto = args.compare_paper == "auto"
    cmps = pp.compare_with_paper(
        df, paper, log_base=log_base, percent=percent, dataset_map=dmap, same_settings=auto
    )
    if not cmps:
        if args.compare_paper == "on":
            raise ValueError(
                "--compare-paper on: no dataset/method of these results is in the paper's tables; "
                "map a dataset with --paper-dataset OURS=imagenet"
            )
        if pp.compare_with_paper(df, paper, dataset_map=dmap):
            print(
                "not compared with the paper: these cells share its dataset and method names but "
                "not its model, layers or percents (--compare-paper on compares them anyway)"
            )
        return []
    if auto:  # the paper's cells, but also its recipe, full data and a fit base model
        from roarkar.report.paper_gate import why_not_compared

        records = [_record(p) for p in df["source"].dropna().unique()] if "source" in df else []
        reason = why_not_compared(df, [r for r in records if r], paper)
        if reason:
            print(f"not compared with the paper: {reason} (--compare-paper on compares anyway)")
            return []
    if not auto:
        ours = pp.paper_overlap(df, paper, dmap, same_settings=True)
        if not any(ours.values()):
            print(
                "warning: compared on request, but no cell has the paper's model, layer and "
                "percent: the differences below are not a reproduction check"
            )
    print(format_comparison(cmps))
    return list(write_comparison(cmps, metric_dir(args.out, args.metric)).values())


def _prior(df, args, log_base, percent, source) -> list:
    from roarkar.report.prior import derive_prior_weights, write_prior_weights

    datasets = args.prior_datasets.split(",") if args.prior_datasets else None
    method = args.prior_weights
    weights = derive_prior_weights(
        df, method, score=args.prior_score, datasets=datasets, log_base=log_base, percent=percent
    )
    used = datasets or sorted(set(df.loc[df["method"] == method, "dataset"]))
    path = write_prior_weights(
        metric_dir(args.out, args.metric) / "prior_weights.json",
        weights,
        method=method,
        score=args.prior_score,
        datasets=used,
        log_base=log_base,
        source=source,
        metric=args.metric,
    )
    shown = ", ".join(f"{w:.4f}" for w in weights)
    print(
        f"Prior layer weights L1..L5 of {method} (per-layer {args.prior_score} score of the "
        f"{METRICS[args.metric]} summed over "
        f"{', '.join(used)}): [{shown}]  (rounded: {[round(w, 2) for w in weights]})"
    )
    return [path]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: load the long table, write the tables to ``--out`` and print them."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log_base = parse_log_base(args.log_base)
    try:
        if args.raw:
            df = read_long(args.raw, exact_duplicates=args.allow_exact_duplicates)
            source = args.raw
        else:
            df = collect_results(args.runs)
            source = args.runs
            bad = df.attrs["failed"] + df.attrs["unreadable"]
            if bad and not args.skip_failed:
                raise ValueError(
                    f"{args.runs}: {df.attrs['n_failed']} failed and {df.attrs['n_unreadable']} "
                    f"unreadable cell result(s); first: {bad[0]}; nothing written (--skip-failed "
                    "tabulates the others)"
                )
            print(
                f"{args.runs}: {df.attrs['n_ok']} ok cell(s), {df.attrs['n_failed']} failed "
                f"(skipped), {df.attrs['n_unreadable']} unreadable (skipped)"
            )
        if args.model:
            df = df[df["model"] == args.model]
        if df.empty:
            raise ValueError(f"{source}: no results to tabulate")
        percent = {
            k: v
            for k, v in (("kar", args.kar_percent), ("roar", args.roar_percent))
            if v is not None
        }
        percent = percent or None
        dmap = _dataset_map(args.paper_dataset)
        written = write_tables(
            df,
            args.out,
            log_base=log_base,
            percent=percent,
            n_boot=args.bootstrap if args.bootstrap > 0 else None,
            ci_seed=args.ci_seed,
            metric=args.metric,
        )
        print(format_for_console(df, log_base=log_base, percent=percent, metric=args.metric))
        extra = _compare(df, args, log_base, percent, dmap)
        if args.prior_weights:
            extra += _prior(select_metric(df, args.metric), args, log_base, percent, source)
        if args.figures:
            from roarkar.report.curves import FILE, figure_seed002
            from roarkar.report.figures import write_figures

            extra += list(
                write_figures(
                    df,
                    args.out,
                    log_base=log_base,
                    percent=percent,
                    overlay=not args.no_paper_overlay,
                    dataset_map=dmap,
                    metric=args.metric,
                ).values()
            )
            if ((df["protocol"] == "input") & (df["mode"] == "roar")).any():
                path = metric_dir(args.out, args.metric) / FILE.format(metric=args.metric)
                extra.append(figure_seed002(df, path, args.metric))
    except (ValueError, FileNotFoundError) as exc:
        print(f"roarkar-tables: error: {exc}", file=sys.stderr)
        return 2
    if "table1.csv" in written:
        print(f"Information score log base: {log_base_label(log_base)}")
    print("wrote " + ", ".join(str(p) for p in [*written.values(), *extra]))
    return 0


if __name__ == "__main__":  # python -m: the same process settings as the console script
    from roarkar.entry import tables

    tables()
