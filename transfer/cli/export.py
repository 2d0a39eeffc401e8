"""``python -m transfer export``: ONNX, SavedModel, TFLite and hls4ml files of a run (:func:`transfer.deploy.export.export_model_files`)."""
from __future__ import annotations

import argparse

from transfer.cli import PROG


#: Exit status of an export whose hls4ml firmware disagrees with the model beyond the margin: the files were
#: written (for inspection), but the firmware does not compute what the model computes.
EXIT_FIRMWARE_DISAGREES = 3


def build_export_parser() -> argparse.ArgumentParser:
    from transfer.deploy.export import FORMATS
    from transfer.deploy.firmware import (AUTO_PRECISION, DEFAULT_AUC_MARGIN, DEFAULT_PRECISION, FRACTION_BITS,
                                          HLS_BACKENDS, IO_TYPES, PROFILE_EVENTS)

    parser = argparse.ArgumentParser(
        prog=f"{PROG} export",
        description="Export a trained run for deployment: ONNX (onnxruntime, e.g. in CMSSW/Athena), TF "
                    "SavedModel, TFLite, and hls4ml firmware (an HLS project for FPGAs, compact networks "
                    "only). Each export is run in its own runtime on the run's test events and compared with "
                    "Keras (export_check.json; ONNX, SavedModel and TFLite must agree to 1e-4). DIR also gets "
                    "preprocessing.json and a README.md with how to run each file. Needs the export extra: "
                    "pip install 'hepvision[export]'.")
    parser.add_argument("--model", required=True, metavar="RUN|RUN/model.keras",
                        help="the run folder or its saved model; classes.json, config.yaml, predictions.csv (the "
                             "test events), split.csv and, for arrays, arrays.json are read beside it")
    parser.add_argument("--format", required=True, metavar="F[,F...]",
                        help=f"one or more of {', '.join(FORMATS)}, comma-separated")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the exports to")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DIR")
    parser.add_argument("--max-events", type=int, metavar="N",
                        help="check on the first N test events only (default: all)")
    parser.add_argument("--allow-collapsed", action="store_true",
                        help="export a run whose network COLLAPSED (learned nothing; refused by default)")
    hls = parser.add_argument_group("hls4ml (compact networks trained from scratch; not ImageNet backbones)")
    hls.add_argument("--precision", default=DEFAULT_PRECISION, metavar="auto|TYPE",
                     help=f"fixed-point types. {AUTO_PRECISION} (default): each layer's input, output and weights "
                          f"get the integer bits their largest values need on up to {PROFILE_EVENTS} training "
                          f"events of the run (doubled, for headroom) and {FRACTION_BITS} fractional bits; or one "
                          "type for every weight and activation, e.g. ap_fixed<16,6> (16 bits, 6 integer, sign "
                          "included: values beyond +-32 wrap)")
    hls.add_argument("--auc-margin", type=float, default=DEFAULT_AUC_MARGIN, metavar="D",
                     help="the export fails (exit status 3, files written for inspection) when the firmware's test "
                          f"ROC AUC is more than D below the float model's (default: {DEFAULT_AUC_MARGIN})")
    hls.add_argument("--accept-auc-loss", action="store_true",
                     help="accept the firmware whatever its AUC (the agreement is still printed)")
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
    import sys

    from transfer.deploy.export import export_model_files, firmware_failure, summary_lines
    from transfer.deploy.firmware import HlsOptions

    hls = HlsOptions(precision=args.precision, reuse_factor=args.reuse_factor, io_type=args.io_type,
                     backend=args.backend, part=args.part, auc_margin=args.auc_margin,
                     accept_auc_loss=args.accept_auc_loss)
    check = export_model_files(args.model, args.format, args.out, hls=hls, max_events=args.max_events,
                               overwrite=args.overwrite, allow_collapsed=args.allow_collapsed,
                               progress=sys.stderr.isatty())
    print("\n".join(summary_lines(check, args.out)))
    failure = firmware_failure(check)
    if failure:
        print(f"error: {failure}; exit status {EXIT_FIRMWARE_DISAGREES}", file=sys.stderr)
        return EXIT_FIRMWARE_DISAGREES
    return 0
