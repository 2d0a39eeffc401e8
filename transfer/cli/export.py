"""``python -m transfer export``: ONNX, SavedModel, TFLite and hls4ml files of a run (:func:`transfer.deploy.export.export_model_files`)."""
from __future__ import annotations

import argparse

from transfer.cli import PROG


def build_export_parser() -> argparse.ArgumentParser:
    from transfer.deploy.export import FORMATS
    from transfer.deploy.firmware import DEFAULT_PRECISION, HLS_BACKENDS, IO_TYPES

    parser = argparse.ArgumentParser(
        prog=f"{PROG} export",
        description="Export a trained run for deployment: ONNX (onnxruntime, e.g. in CMSSW/Athena), TF "
                    "SavedModel, TFLite, and hls4ml firmware (an HLS project for FPGAs, compact networks "
                    "only). Each export is run in its own runtime on the run's test events and compared with "
                    "Keras (export_check.json; ONNX, SavedModel and TFLite must agree to 1e-4). DIR also gets "
                    "preprocessing.json and a README.md with how to run each file. Needs the export extra: "
                    "pip install 'hepvision[export]'.")
    parser.add_argument("--model", required=True, metavar="RUN/model.keras",
                        help="the saved model; classes.json, config.yaml, predictions.csv (the test events) and, "
                             "for arrays, arrays.json are read beside it")
    parser.add_argument("--format", required=True, metavar="F[,F...]",
                        help=f"one or more of {', '.join(FORMATS)}, comma-separated")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the exports to")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DIR")
    parser.add_argument("--max-events", type=int, metavar="N",
                        help="check on the first N test events only (default: all)")
    hls = parser.add_argument_group("hls4ml (compact networks trained from scratch; not ImageNet backbones)")
    hls.add_argument("--precision", default=DEFAULT_PRECISION, metavar="TYPE",
                     help=f"fixed-point type of weights and activations (default: {DEFAULT_PRECISION}: 16 bits, "
                          "6 of them integer, sign included)")
    hls.add_argument("--reuse-factor", type=int, default=1, metavar="N",
                     help="each multiplier is used N times per event: N times fewer DSPs, about N clock cycles "
                          "between events (default: 1, fully parallel)")
    hls.add_argument("--io-type", choices=IO_TYPES, default="io_parallel",
                     help="io_parallel (all values at once, lowest latency; small networks) or io_stream "
                          "(pixel streams, for larger convolutional networks) (default: io_parallel)")
    hls.add_argument("--backend", choices=HLS_BACKENDS, default="Vitis",
                     help="vendor HLS tool the project is written for (default: Vitis)")
    hls.add_argument("--part", metavar="FPGA", help="FPGA part number (default: hls4ml's for the backend)")
    return parser


def run(argv: list[str]) -> int:
    args = build_export_parser().parse_args(argv)
    from transfer.deploy.export import export_model_files, summary_lines
    from transfer.deploy.firmware import HlsOptions

    hls = HlsOptions(precision=args.precision, reuse_factor=args.reuse_factor, io_type=args.io_type,
                     backend=args.backend, part=args.part)
    check = export_model_files(args.model, args.format, args.out, hls=hls, max_events=args.max_events,
                               overwrite=args.overwrite)
    print("\n".join(summary_lines(check, args.out)))
    return 0
