"""``python -m transfer ensemble``: average the test scores of runs (:func:`transfer.experiments.ensemble.ensemble_runs`)."""
from __future__ import annotations

import argparse

from transfer.cli import PROG


def build_ensemble_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} ensemble",
        description="Average the test-split scores (predictions.csv) of several run folders event by "
                    "event and write the same report for the ensemble (metrics.json, predictions.csv, "
                    "confusion matrix, roc.png, discriminant.png, report.md). The runs must share the "
                    "test events and the classes.")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (two or more)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the ensemble's report to")
    parser.add_argument("--signal", metavar="CLASS", help="signal class of two (default: the second)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


def run(argv: list[str]) -> int:
    args = build_ensemble_parser().parse_args(argv)
    from transfer.experiments.ensemble import ensemble_runs

    print("\n".join(ensemble_runs(args.runs, args.out, args.signal, args.overwrite).summary_lines()))
    return 0
