"""``python -m transfer ensemble``: average the test scores of runs (:func:`transfer.experiments.ensemble.ensemble_runs`)."""
from __future__ import annotations

import argparse

from transfer.cli import PROG
from transfer.evaluation.plot_style import PLOT_STYLE_NAMES


def build_ensemble_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} ensemble",
        description="Average the test-split scores (predictions.csv) of several run folders event by "
                    "event and write the same report for the ensemble (metrics.json, predictions.csv, "
                    "confusion matrix, roc.png, discriminant.png, report.md). The runs must share the "
                    "test events and the classes. Runs trained with --event-weight record each test event's "
                    "weight in predictions.csv, and the ensemble's figures use them (report.md says when they "
                    "cannot: runs that disagree, or predate the weight column).")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (two or more)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the ensemble's report to")
    parser.add_argument("--signal", metavar="CLASS", help="signal class of two (default: the second)")
    parser.add_argument("--plot-style", choices=PLOT_STYLE_NAMES,
                        help="look of the figures: plain or mplhep's cms, atlas or lhcb style (default: the "
                             "first run's --plot-style)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


def run(argv: list[str]) -> int:
    args = build_ensemble_parser().parse_args(argv)
    from transfer.experiments.ensemble import ensemble_runs

    print("\n".join(ensemble_runs(args.runs, args.out, args.signal, args.overwrite,
                                          args.plot_style).summary_lines()))
    return 0
