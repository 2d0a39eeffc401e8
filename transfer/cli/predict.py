"""``python -m transfer predict``: score images or arrays with a saved run (:func:`transfer.deploy.predict.predict`)."""
from __future__ import annotations

import argparse
import sys

from transfer.cli import PROG


def build_predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} predict",
        description="Score PNG images or HDF5 arrays with a trained run's model.keras (class names from "
                    "the classes.json beside it; arrays are read and scaled as the run's arrays.json "
                    "says, and their channel names must match): one row per image or event with a "
                    "score per class and the predicted class.")
    parser.add_argument("--model", required=True, metavar="RUN|RUN/model.keras",
                        help="the run folder, or its saved model")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER|HDF5",
                        help="PNG files or folders searched recursively for PNGs; for a run trained on "
                             "arrays: HDF5 files, folders or globs")
    parser.add_argument("--x-key", metavar="KEY[,KEY...]",
                        help="arrays: the image key(s) in these files (default: the training keys)")
    parser.add_argument("--resample", action="store_true",
                        help="arrays: accept files whose grid (rows x cols of a key) differs from the training "
                             "files' and resample them onto the training grid, conserving each cell's energy "
                             "(default: refuse them, since the scores change)")
    parser.add_argument("--out", metavar="FILE.csv|.parquet|.root",
                        help="write the scores here, in the format of the suffix (default: print them as CSV): "
                             ".csv and .parquet (needs pyarrow) one row per input; .root a tree Events with "
                             "one entry per entry of each source NanoAOD file, in its order (entries without "
                             "an image: NaN scores, scored 0), with run, luminosityBlock and event from the "
                             "images' manifest.csv and the source file, to add as a friend tree; branches "
                             "score_<class> with characters other than letters, digits and _ turned into _")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per batch (default: 64)")
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                        help="Keras backend to score with; a model saved under one loads under any "
                             "(default: $KERAS_BACKEND, else tensorflow)")
    return parser


def run(argv: list[str]) -> int:
    args = build_predict_parser().parse_args(argv)
    from transfer.deploy.predict import predict
    from transfer.deploy.score_files import score_format, write_scores

    if args.out:
        score_format(args.out)   # a bad suffix, folder or missing library: before scoring everything

    table = predict(args.model, args.inputs, args.batch_size, x_key=args.x_key, resample=args.resample,
                    backend=args.backend)
    if args.out:
        rows, notes = write_scores(table, args.out, args.model)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"{len(table)} inputs scored: {args.out}" + (f" ({rows} entries)" if rows != len(table) else ""))
    else:
        sys.stdout.write(table.to_csv(index=False, float_format="%.9g"))
    return 0
