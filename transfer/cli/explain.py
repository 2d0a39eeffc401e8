"""``python -m transfer explain``: where a run's score comes from, per class, with the sanity check
(:func:`transfer.evaluation.explain.explain_run`)."""
from __future__ import annotations

import argparse

from transfer.cli import PROG


def build_explain_parser() -> argparse.ArgumentParser:
    from transfer.evaluation.attribution import DEFAULT_METHODS, METHODS, SANITY_LIMIT
    from transfer.evaluation.explain import DEFAULT_EVENT_COUNT, DEFAULT_MAX_EVENTS

    parser = argparse.ArgumentParser(
        prog=f"{PROG} explain",
        description="Maps of where a trained run's score comes from: for each class, the attribution of the "
                    "log-odds ln[p(class) / sum of the other p] to every pixel or calorimeter cell, averaged "
                    "over the test events the network got right and over those it got wrong, beside the "
                    "class's mean input (one panel per layer or channel; event images in eta-phi), and the "
                    "most confidently right and wrong events one by one. Every method must pass the sanity "
                    "check of Adebayo et al. 2018: the maps of the same network with re-initialised weights "
                    f"must differ (correlation below {SANITY_LIMIT}); a method that fails is reported and not "
                    "drawn. Writes RUN/explain/ (PNG figures, explain.npz, explain.json) and a section of "
                    "RUN/report.md. Runs under the Keras backend of this process (KERAS_BACKEND: tensorflow "
                    "or jax).")
    parser.add_argument("run", metavar="RUN", help="a run folder (or its model.keras)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), metavar="M[,M...]",
                        help="attribution methods, comma-separated, or 'all' (those that apply to the network): "
                             + "; ".join(f"{m.name}: {m.description}".replace("%", "%%") for m in METHODS.values())
                             + f" (default: {','.join(DEFAULT_METHODS)})")
    parser.add_argument("--events", type=int, default=DEFAULT_EVENT_COUNT, metavar="N",
                        help=f"draw the N most confidently right and the N most confidently wrong events one by "
                             f"one (default: {DEFAULT_EVENT_COUNT}; 0: none)")
    parser.add_argument("--max-events", type=int, default=DEFAULT_MAX_EVENTS, metavar="N",
                        help=f"explain at most N events, the same number per class where they have them "
                             f"(default: {DEFAULT_MAX_EVENTS})")
    data = parser.add_argument_group("other events than the run's test split")
    data.add_argument("--data", nargs="+", metavar="ITEM",
                      help="labelled events read like the run's new data: CLASS=FILE|FOLDER|GLOB items (or files "
                           "with --y-key) for a run on HDF5 arrays, read with its keys, grid and arrays.json; a "
                           "folder of class subfolders of PNGs for a run on images")
    data.add_argument("--x-key", metavar="KEY[,KEY...]", help="arrays: the image key(s) (default: the run's)")
    data.add_argument("--y-key", metavar="KEY",
                      help="arrays: integer labels in these files, label k being the run's k-th class")
    data.add_argument("--resample", action="store_true",
                      help="arrays: accept files on another grid than the training files and resample them onto "
                           "it (default: refuse them, the maps would not be comparable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the event sample, noise and re-initialisation")
    return parser


def run(argv: list[str]) -> int:
    args = build_explain_parser().parse_args(argv)
    from transfer.evaluation.explain import explain_run

    result = explain_run(args.run, data=args.data, x_key=args.x_key, y_key=args.y_key, resample=args.resample,
                         methods=args.methods, events=max(args.events, 0), max_events=args.max_events, seed=args.seed)
    print("\n".join(result.summary_lines()))
    return 0
