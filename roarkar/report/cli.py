"""``roarkar-tables``: the paper's Tables 1, 2, 4, 5 from a long CSV or a results tree.

Examples::

    roarkar-tables --raw results/paper/table4_long.csv --out out/paper_tables
    roarkar-tables --runs outputs/study --out out/tables --log-base 2
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from roarkar.report.aggregate import collect_results, read_long
from roarkar.report.scores import log_base_label, parse_log_base
from roarkar.report.tables import format_for_console, write_tables


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
    p.add_argument("--model", help="keep only this model (needed when several were run)")
    p.add_argument("--kar-percent", type=float, help="layer protocol: KAR kept percent to tabulate")
    p.add_argument("--roar-percent", type=float, help="layer protocol: ROAR removed percent")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: load the long table, write the tables to ``--out`` and print them."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log_base = parse_log_base(args.log_base)
    try:
        if args.raw:
            df = read_long(args.raw)
            source = args.raw
        else:
            df = collect_results(args.runs)
            source = args.runs
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
        written = write_tables(df, args.out, log_base=log_base, percent=percent or None)
        print(format_for_console(df, log_base=log_base, percent=percent or None))
    except (ValueError, FileNotFoundError) as exc:
        print(f"roarkar-tables: error: {exc}", file=sys.stderr)
        return 2
    if "table1.csv" in written:
        print(f"Information score log base: {log_base_label(log_base)}")
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
