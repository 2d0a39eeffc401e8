"""``python -m transfer``: train (default), ``grid``, ``predict``, ``export``, ``lr-find``, ``ensemble``, ``fetch-weights``, ``pretrain``.

Only argument parsing lives here; the work is done by
:func:`transfer.experiments.run_experiment` (a run, ``--folds`` or
``--train-fraction``), :func:`transfer.predict.predict`, :func:`transfer.export.export_model_files`,
:func:`transfer.lr_find.lr_find`, :func:`transfer.ensemble.ensemble_runs`, :func:`transfer.grid.run_grid` and
:func:`transfer.weights.fetch_weights`, which a notebook calls with the same
names. TensorFlow is imported only once a command runs, so ``--help`` is
instant.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from imgen._version import __version__
from transfer.backbones import BACKBONES, format_backbone_table
from transfer.config import OPTION_GROUPS, TrainConfig, cli_options, load_config, read_config_file
from transfer.errors import TransferError

PROG = "python -m transfer"
#: Exit status of a training run whose network collapsed (learned nothing): results were written, but are not one.
EXIT_COLLAPSED = 3
COMPACT = ", ".join(sorted(name for name, spec in BACKBONES.items() if not spec.pretrained))

EXAMPLES = f"""\
subcommands:
  {PROG} predict --model RUN/model.keras IMAGES_OR_FOLDERS|HDF5_FILES [--x-key X] [--out scores.csv]
  {PROG} export --model RUN/model.keras --format onnx,savedmodel,tflite,hls4ml --out DIR   (deploy)
  {PROG} lr-find --data ... --backbone NAME [training options] [--steps 100]   (learning-rate range test)
  {PROG} ensemble RUN RUN [RUN ...] --out DIR   (average the test scores of runs with the same test set)
  {PROG} fetch-weights --backbone NAME [NAME ...]   (download ImageNet weights ahead of time)
  {PROG} grid --data ... --backbones A,B --optimizers adam,rmsprop --fine-tune frozen,partial,full --out DIR
      (every combination, same split, resumable, with a heat-map summary)
  {PROG} pretrain --backbone NAME --image-size N --out DIR   (pretrain on simulated events; then --weights DIR)
  run "{PROG} SUBCOMMAND --help" for their options.

examples:
  {PROG} --data images/ --backbone vgg19 --optimizer rmsprop --out runs/vgg19-rmsprop
  {PROG} --config runs/vgg19-rmsprop/config.yaml --out runs/vgg19-rmsprop-again
  {PROG} --data images/ --backbone mobilenetv2 --weights none --fine-tune full
  {PROG} --data electron=e.h5 photon=g.h5 --x-key X --backbone cnn --weights none --scale log
  {PROG} --data all.h5 --x-key X --y-key y --classes electron,photon --backbone resnet15 --weights none
  {PROG} --data eplus=e.h5 gamma=g.h5 piplus=p.h5 --x-key layer_0,layer_1,layer_2 --backbone smallcnn \\
      --weights none --scale standardize --folds 5 --out runs/calo-cv
  {PROG} --data electron=e.h5 photon=g.h5 --x-key X --backbone vgg16 --image-size 64 --channels energy

input scaling (the same rule for every run, applied inside the saved model):
  uint8 images: pretrained backbones get their own keras.applications preprocess_input; compact
    networks trained from scratch ({COMPACT}) get each channel standardised with the training
    split's mean and std (inside the model).
  HDF5 arrays (float32, never converted to PNG): --channels, --min-value, --crop and --scale are
    applied first (fitted on the training split only, saved as arrays.json); compact networks then
    standardise each channel with the training split's mean and std inside the model, so raw MeV,
    sign-log and standardised inputs all train; pretrained backbones get each channel mapped
    linearly from the training split's minimum..maximum onto 0..255, then their own
    preprocess_input. For their 3 input channels, 1 channel is repeated, 2 become
    (c0, c1, (c0 + c1) / 2), more are refused.
  A pretrained backbone with --weights none is trained whole from the start in one stage (a
    frozen random backbone would be meaningless); the report says so.

results you can trust: every run also fits gradient-boosted trees (--baseline trees) on the same
train/validation/test events and reports them beside the network, with 68 % bootstrap intervals on
the test figures; a network that collapses (constant predictions, loss at the chance value ln K) is
reported as COLLAPSED on the console, at the top of report.md and in metrics.json's health section,
and the command exits with status 3.

Every run folder holds model.keras, classes.json, config.yaml, metrics.json (with background
rejection at 50/80/90 % signal efficiency), predictions.csv, history.csv, split.csv,
confusion_matrix.csv/.png, roc.png, discriminant.png, training_curves.png and report.md (and
arrays.json for HDF5 data). --folds K writes OUT/fold-1 ... OUT/fold-K and OUT/folds_summary.json/.md;
--train-fraction writes OUT/fraction-F/ per fraction and OUT/train_fraction_scan.csv/.png.
"""


TRAIN_DESCRIPTION = (
    "Fine-tune a pretrained CNN backbone on eta-phi event images or HDF5 calorimeter arrays, in two stages "
    "(head on a frozen backbone, then fine-tuning at a lower learning rate), or train a compact network "
    f"from scratch ({COMPACT}), and write a run folder with the model, metrics, plots and a report.")


def build_train_parser(prog: str = PROG, description: str = TRAIN_DESCRIPTION,
                       epilog: str | None = EXAMPLES) -> argparse.ArgumentParser:
    """The training options (the default action): one flag per TrainConfig field, generated from the
    fields' declarations (:func:`transfer.config.cli_options`), so a new option is one field."""
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog,
        argument_default=argparse.SUPPRESS, description=description)
    parser.add_argument("--version", action="version", version=f"hepvision {__version__}")
    parser.add_argument("--list-backbones", action="store_true",
                        help="print the backbones with their input size limits and ImageNet weights "
                             "files (compact networks marked from scratch), then exit")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="read options from this YAML file (e.g. a run's config.yaml); flags given "
                             "on the command line override it")

    groups = {key: parser.add_argument_group(title) for key, title in OPTION_GROUPS.items()}
    order = list(OPTION_GROUPS)
    for option in sorted(cli_options(), key=lambda option: order.index(option.group)):  # usage line by group
        groups[option.group].add_argument(option.flag, **option.arguments)
    return parser


def build_predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} predict",
        description="Score PNG images or HDF5 arrays with a trained run's model.keras (class names from "
                    "the classes.json beside it; arrays are read and scaled as the run's arrays.json "
                    "says, and their channel names must match): one row per image or event with a "
                    "score per class and the predicted class.")
    parser.add_argument("--model", required=True, metavar="RUN/model.keras", help="the saved model")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER|HDF5",
                        help="PNG files or folders searched recursively for PNGs; for a run trained on "
                             "arrays: HDF5 files, folders or globs")
    parser.add_argument("--x-key", metavar="KEY[,KEY...]",
                        help="arrays: the image key(s) in these files (default: the training keys)")
    parser.add_argument("--resample", action="store_true",
                        help="arrays: accept files whose grid (rows x cols of a key) differs from the training "
                             "files' and resample them onto the training grid, conserving each cell's energy "
                             "(default: refuse them, since the scores change)")
    parser.add_argument("--out", metavar="CSV", help="write the scores here (default: print them)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per batch (default: 64)")
    return parser


def build_export_parser() -> argparse.ArgumentParser:
    from transfer.export import DEFAULT_PRECISION, FORMATS, HLS_BACKENDS, IO_TYPES

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


def build_lr_find_parser() -> argparse.ArgumentParser:
    parser = build_train_parser(
        f"{PROG} lr-find", epilog=None,
        description="Learning-rate range test: train what --lr applies to (the head on the frozen "
                    "backbone's features; compact networks: the whole network), one batch per step, "
                    "with the learning rate growing exponentially, and record the loss; stop once it "
                    "diverges. Writes lr_find.csv, lr_find.png (loss against learning rate, log x) and "
                    "lr_find.json into --out (default runs/lr-find-BACKBONE), and prints the suggested "
                    "learning rate (lowest smoothed loss / 10) and the one of steepest descent. Takes "
                    "the training options.")
    group = parser.add_argument_group("range test")
    group.add_argument("--start-lr", type=float, default=1e-7, metavar="RATE", help="first rate (default: 1e-7)")
    group.add_argument("--end-lr", type=float, default=1.0, metavar="RATE", help="last rate (default: 1)")
    group.add_argument("--steps", type=int, default=100, metavar="N", help="batches (default: 100)")
    group.add_argument("--divergence", type=float, default=4.0, metavar="F",
                       help="stop when the smoothed loss exceeds F x its minimum (default: 4)")
    return parser


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


def build_fetch_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} fetch-weights",
        description="Download ImageNet weights into the Keras cache ($KERAS_HOME/models, default "
                    "~/.keras/models) ahead of time; copy that folder to machines without internet.")
    parser.add_argument("--backbone", nargs="+", required=True, metavar="NAME",
                        help=f"backbones to fetch, or all ({', '.join(sorted(BACKBONES))})")
    parser.add_argument("--image-size", type=int, metavar="N",
                        help="input size the weights are for (matters for mobilenetv2 only, whose "
                             "weights file depends on it; default: 224)")
    return parser


#: Where ``python -m imgen`` writes by default: ``--data`` when it is not given and this holds imgen's output.
DEFAULT_DATA = "images"


def _config(args: dict) -> TrainConfig:
    path = args.pop("config")
    if "data" not in args and not (path and read_config_file(path).get("data")):
        found = default_data()
        if found:
            print(f"--data not given: using {found}/ ({found}/manifest.csv, written by python -m imgen)",
                  flush=True)
            args["data"] = found
    return load_config(path, **args)


def default_data(folder: str = DEFAULT_DATA) -> str | None:
    """``folder`` when it holds a manifest.csv (imgen's output), so the README's two commands run in sequence."""
    from imgen.manifest import manifest_path

    return folder if manifest_path(folder).is_file() else None


def _train(argv: list[str]) -> int:
    args = vars(build_train_parser().parse_args(argv))
    if args.pop("list_backbones", False):
        from transfer.weights import weights_cache_dir

        print(format_backbone_table(str(weights_cache_dir())))
        return 0
    config = _config(args)
    from transfer.experiments import run_experiment

    result = run_experiment(config)
    print("\n".join(result.summary_lines()))
    runs = getattr(result, "runs", None) or [result]
    collapsed = sum(bool(r.metrics.get("health", {}).get("collapsed")) for r in runs)
    if collapsed:
        print(f"error: {collapsed} of {len(runs)} trained network(s) COLLAPSED (learned nothing): see the "
              f"health section of report.md; exit status {EXIT_COLLAPSED}", file=sys.stderr)
        return EXIT_COLLAPSED
    return 0


# --- python -m transfer grid (transfer.grid) ---------------------------------------------------------------
#: Exit status of a grid with failed cells (the others were trained; run the command again to retry them).
EXIT_FAILED_CELLS = 1

GRID_DESCRIPTION = (
    "Train every combination of --backbones x --optimizers x --fine-tune on the same data, options and seed "
    "(so the same train/validation/test split), one complete run folder per cell in OUT/<backbone>-<optimizer>-"
    "<mode>, and compare them in OUT/grid_summary.csv/.md/.png: a heat map of the test ROC AUC (accuracy for more "
    "than two classes) per backbone x optimizer, one panel per fine-tuning regime, with intervals, the matched "
    "baseline as reference, collapsed cells marked and the best cell (by validation) named. Every other training "
    "option applies to every cell. Everything is checked before the first cell trains; missing ImageNet weights "
    "stop the grid unless --on-missing-weights random. Frozen-stage features of a backbone are computed once and "
    "shared by its cells. Networks trained from scratch (compact networks, or no pretrained weights) have no "
    "frozen stage: their regimes are identical by construction and share one run, OUT/<backbone>-<optimizer>-"
    "scratch. Resumable: run the same command again and complete cells are skipped; a failing cell is recorded "
    "with its message and the others go on (exit status 1).")

GRID_EXAMPLES = f"""\
examples:
  {PROG} grid --data images/ --backbones vgg16,vgg19,inceptionv3,resnet50,inceptionresnetv2 \\
      --optimizers adam,rmsprop --fine-tune frozen,partial,full --out runs/grid
  {PROG} grid --data images/ --backbones smallcnn,cnn,mlp --optimizers adam,rmsprop --out runs/compact
  {PROG} grid --config runs/grid/grid.yaml --cells 'vgg19-*'   (resume, or train a subset)
"""


def build_grid_parser() -> argparse.ArgumentParser:
    """The training options (each applies to every cell) plus the grid's axes."""
    from transfer.config import FINE_TUNE_MODES
    from transfer.grid import GRID_FILE
    from transfer.optimizers import OPTIMIZERS

    defaults = TrainConfig.__dataclass_fields__
    parser = build_train_parser(f"{PROG} grid", GRID_DESCRIPTION, GRID_EXAMPLES)
    parser.conflict_handler = "resolve"  # the grid's --fine-tune (a list) and --out replace the single run's
    grid = parser.add_argument_group("grid (every other option applies to every cell)")
    grid.add_argument("--backbones", metavar="NAME[,NAME...]",
                      help=f"backbones, comma-separated, from {', '.join(sorted(BACKBONES))} (default: --backbone, "
                           f"{defaults['backbone'].default})")
    grid.add_argument("--optimizers", metavar="NAME[,NAME...]",
                      help=f"optimizers, comma-separated, from {', '.join(OPTIMIZERS)} (default: --optimizer, "
                           f"{defaults['optimizer'].default})")
    grid.add_argument("--fine-tune", metavar="MODE[,MODE...]",
                      help=f"fine-tuning regimes, comma-separated, from {', '.join(FINE_TUNE_MODES)} "
                           f"(default: {defaults['fine_tune'].default})")
    grid.add_argument("--cells", metavar="CELL[,CELL...]",
                      help="train only these cells (names like vgg19-adam-partial or shell patterns like 'vgg19-*'); "
                           "the summary lists every cell, the others as not run")
    grid.add_argument("--out", metavar="DIR",
                      help=f"the grid's folder (default: runs/grid); holds {GRID_FILE}, which --config takes to "
                           "resume or extend the grid; other training options into the same folder are refused")
    grid.add_argument("--overwrite", action=argparse.BooleanOptionalAction,
                      help="retrain every selected cell, complete or not (default: skip complete cells)")
    grid.add_argument("--verbose", type=int, choices=(0, 1, 2), metavar="0|1|2",
                      help="Keras progress inside each cell: 0 silent, 1 bars, 2 one line per epoch (default in a "
                           "grid: 0; the grid logs one line per cell and shows its own progress bar)")
    return parser


def _grid(argv: list[str]) -> int:
    from transfer.grid import GRID_KEYS

    args = vars(build_grid_parser().parse_args(argv))
    if args.pop("list_backbones", False):
        return _train(["--list-backbones"])
    path = args.pop("config")
    values = read_config_file(path, extra=GRID_KEYS) if path else {}
    values.update(args)
    if "data" not in values and default_data():
        print(f"--data not given: using {default_data()}/ (written by python -m imgen)", flush=True)
        values["data"] = default_data()
    from transfer.grid import run_grid

    result = run_grid(**values)
    print("\n".join(result.summary_lines()))
    if result.failures:
        print(f"error: {len(result.failures)} run(s) of the grid failed (see {result.out_dir}/grid_summary.md); "
              f"run the same command again to retry them; exit status {EXIT_FAILED_CELLS}", file=sys.stderr)
        return EXIT_FAILED_CELLS
    if result.collapsed:
        print(f"error: {len(result.collapsed)} run(s) COLLAPSED (learned nothing): {', '.join(result.collapsed)}; "
              f"exit status {EXIT_COLLAPSED}", file=sys.stderr)
        return EXIT_COLLAPSED
    return 0


def _predict(argv: list[str]) -> int:
    args = build_predict_parser().parse_args(argv)
    from transfer.predict import predict

    table = predict(args.model, args.inputs, args.batch_size, x_key=args.x_key, resample=args.resample)
    text = table.to_csv(index=False, float_format="%.9g")
    if args.out:
        from transfer.files import write_text_atomic

        write_text_atomic(args.out, text)
        print(f"{len(table)} inputs scored: {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _export(argv: list[str]) -> int:
    args = build_export_parser().parse_args(argv)
    from transfer.export import HlsOptions, export_model_files, summary_lines

    hls = HlsOptions(precision=args.precision, reuse_factor=args.reuse_factor, io_type=args.io_type,
                     backend=args.backend, part=args.part)
    check = export_model_files(args.model, args.format, args.out, hls=hls, max_events=args.max_events,
                               overwrite=args.overwrite)
    print("\n".join(summary_lines(check, args.out)))
    return 0


def _lr_find(argv: list[str]) -> int:
    args = vars(build_lr_find_parser().parse_args(argv))
    args.pop("list_backbones", None)
    test = {name: args.pop(name) for name in ("start_lr", "end_lr", "steps", "divergence")}
    config = _config(args)
    from transfer.lr_find import lr_find

    print("\n".join(lr_find(config, **test).summary_lines()))
    return 0


def _ensemble(argv: list[str]) -> int:
    args = build_ensemble_parser().parse_args(argv)
    from transfer.ensemble import ensemble_runs

    print("\n".join(ensemble_runs(args.runs, args.out, args.signal, args.overwrite).summary_lines()))
    return 0


def _pretrain(argv: list[str]) -> int:
    from transfer.pretrain import main_pretrain

    return main_pretrain(argv)


def _fetch(argv: list[str]) -> int:
    args = build_fetch_parser().parse_args(argv)
    from transfer.weights import fetch_weights

    names = sorted(n for n, s in BACKBONES.items() if s.pretrained) if args.backbone == ["all"] else args.backbone
    size = (args.image_size, args.image_size) if args.image_size else None
    for path in fetch_weights(names, size):
        print(path)
    return 0


COMMANDS = {"grid": _grid, "predict": _predict, "export": _export, "lr-find": _lr_find, "ensemble": _ensemble,
            "fetch-weights": _fetch, "pretrain": _pretrain, "train": _train}


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m transfer`` with ``argv``; returns the exit status (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command = COMMANDS.get(argv[0]) if argv else None
    from imgen.cli_guard import run_command

    return run_command(lambda: command(argv[1:]) if command else _train(argv), (TransferError,),
                       folder=_out_given(argv))


def _out_given(argv: list[str]) -> str | None:
    """The ``--out`` of ``argv`` (named when a full disk is reported without a file name)."""
    for i, arg in enumerate(argv):
        if arg == "--out" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--out="):
            return arg.split("=", 1)[1]
    return None


if __name__ == "__main__":
    sys.exit(main())
