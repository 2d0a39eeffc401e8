"""``python -m transfer``: train (default), ``predict``, ``export``, ``lr-find``, ``ensemble``, ``fetch-weights``, ``pretrain``.

Only argument parsing lives here; the work is done by
:func:`transfer.experiments.run_experiment` (a run, ``--folds`` or
``--train-fraction``), :func:`transfer.predict.predict`, :func:`transfer.export.export_model_files`,
:func:`transfer.lr_find.lr_find`, :func:`transfer.ensemble.ensemble_runs` and
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
from transfer.config import (AUTO_ON_OFF, BASELINES, CLASS_WEIGHTS, DISTRIBUTE, FINE_TUNE_MODES,
                             ON_MISSING_WEIGHTS, SCALES, TrainConfig, load_config, read_config_file)
from transfer.errors import TransferError
from transfer.optimizers import OPTIMIZERS

PROG = "python -m transfer"
#: Exit status of a training run whose network collapsed (learned nothing): results were written, but are not one.
EXIT_COLLAPSED = 3
DEFAULTS = TrainConfig.__dataclass_fields__
COMPACT = ", ".join(sorted(name for name, spec in BACKBONES.items() if not spec.pretrained))

EXAMPLES = f"""\
subcommands:
  {PROG} predict --model RUN/model.keras IMAGES_OR_FOLDERS|HDF5_FILES [--x-key X] [--out scores.csv]
  {PROG} export --model RUN/model.keras --format onnx,savedmodel,tflite,hls4ml --out DIR   (deploy)
  {PROG} lr-find --data ... --backbone NAME [training options] [--steps 100]   (learning-rate range test)
  {PROG} ensemble RUN RUN [RUN ...] --out DIR   (average the test scores of runs with the same test set)
  {PROG} fetch-weights --backbone NAME [NAME ...]   (download ImageNet weights ahead of time)
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


def _recipe(name: str) -> str:
    """The per-kind default of lr, epochs, patience (transfer.config.RECIPE_DEFAULTS)."""
    from transfer.config import RECIPE_DEFAULTS

    return (f"default: {RECIPE_DEFAULTS[True][name]:g} for pretrained backbones, {RECIPE_DEFAULTS[False][name]:g} "
            "for networks trained from scratch")


def _default(name: str) -> str:
    value = DEFAULTS[name].default
    if isinstance(value, tuple):
        value = ",".join(f"{v:g}" for v in value)
    return f"default: {value}"


TRAIN_DESCRIPTION = (
    "Fine-tune a pretrained CNN backbone on eta-phi event images or HDF5 calorimeter arrays, in two stages "
    "(head on a frozen backbone, then fine-tuning at a lower learning rate), or train a compact network "
    f"from scratch ({COMPACT}), and write a run folder with the model, metrics, plots and a report.")


def build_train_parser(prog: str = PROG, description: str = TRAIN_DESCRIPTION,
                       epilog: str | None = EXAMPLES) -> argparse.ArgumentParser:
    """The training options (the default action); every one maps to a TrainConfig field."""
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

    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="DIR|FILE|CLASS=FILE", nargs="+",
                      help="an image folder: with manifest.csv (its train/validation/test split is used) "
                           "or with one subfolder of PNGs per class (a stratified split is made); or HDF5 "
                           "arrays (when --x-key is given or the values are .h5/.hdf5 files): CLASS=FILE|"
                           "FOLDER|GLOB per class (the class from the file), FILE(s) with --y-key and "
                           "--classes (labels from a key), or a folder of class folders or files (default: ./images "
                           "when it holds manifest.csv, i.e. the output of python -m imgen)")
    data.add_argument("--classes", metavar="A,B,...",
                      help="class names, in label order (may be a subset for images; for HDF5 labels "
                           "from --y-key: the names of ids 0, 1, ...); default: all, sorted. For two "
                           "classes the second is the signal class unless --signal says otherwise")
    data.add_argument("--split", metavar="TRAIN,VAL,TEST",
                      help="fractions of the stratified split made when there is no manifest.csv (for "
                           "HDF5: per class, so labels from a key or from one file per class give the "
                           f"same split); recorded in the run folder as split.csv ({_default('split')})")
    data.add_argument("--image-size", metavar="N|HxW",
                      help="size the backbone sees, in pixels: images (and arrays) are resized on the fly "
                           "inside the model, which still takes inputs of their own size; sizes below the "
                           "backbone's minimum (see --list-backbones) are refused with the size to pass "
                           "here (default: the inputs' own size)")
    data.add_argument("--strict", action=argparse.BooleanOptionalAction,
                      help="refuse data whose validation or test split lacks a class (by default a warning: "
                           "that class's figures are reported as n/a) (default: off)")
    data.add_argument("--augment-on-the-fly", action=argparse.BooleanOptionalAction,
                      help="light physics augmentation of training images inside tf.data: random roll "
                           "along phi, flips eta->-eta and phi->-phi. Turns the frozen-stage feature "
                           "cache off, so the head stage is much slower (default: on for networks trained "
                           "from scratch on eta-phi images rendered by imgen, off otherwise)")

    arrays = parser.add_argument_group("HDF5 arrays (float32 all the way; fitted on the training split only)")
    arrays.add_argument("--x-key", metavar="KEY[,KEY...]",
                        help="dataset key of the images (N, rows, cols[, channels]); several keys "
                             "(e.g. layer_0,layer_1,layer_2) are resampled onto a common grid, conserving "
                             "each cell's energy, and stacked as channels")
    arrays.add_argument("--y-key", metavar="KEY", help="dataset key of the integer labels (needs --classes)")
    arrays.add_argument("--channels", metavar="I|NAME,...",
                        help="channels to keep, by index or name (e.g. 0 or energy); default: all")
    arrays.add_argument("--scale", choices=SCALES,
                        help="value scale: none, log (sign(x) log(1 + |x|)) or standardize (per channel, "
                             "mean and std of the training split, saved with the model so that predict "
                             f"applies the same) ({_default('scale')})")
    arrays.add_argument("--min-value", type=float, metavar="V",
                        help="zero suppression: values below V become 0 (default: none)")
    arrays.add_argument("--crop", action=argparse.BooleanOptionalAction,
                        help="drop the outer rows and columns that are zero in every training event "
                             "(default: off)")

    model = parser.add_argument_group("model and weights")
    model.add_argument("--backbone", metavar="NAME",
                       help=f"one of {', '.join(sorted(BACKBONES))} ({_default('backbone')}); "
                            f"{COMPACT} are compact networks trained from scratch (one stage, all layers, "
                            "--lr and --epochs; any input size and channel count; --weights none); "
                            "see --list-backbones")
    model.add_argument("--weights", metavar="auto|imagenet|none|toy-cms|RUN|PATH",
                       help="backbone initialisation: auto (imagenet for pretrained backbones, none for "
                            "networks trained from scratch), ImageNet weights through Keras' cache "
                            "($KERAS_HOME/models, default ~/.keras/models; downloaded when missing), "
                            "none (random), toy-cms (this network pretrained on the bundled generator's "
                            "events at --image-size, built into the Keras cache on first use: no download), "
                            "RUN (a run folder or RUN/model.keras, e.g. of pretrain: its backbone, refused when "
                            "its backbone, channels or rendering style do not fit), or a weights file for this "
                            "backbone. Pretrained weights are fine-tuned in two stages with BatchNorm in "
                            f"inference mode, also for compact networks ({_default('weights')})")
    model.add_argument("--on-missing-weights", choices=ON_MISSING_WEIGHTS,
                       help="when ImageNet weights cannot be had: error (stop, naming the file to "
                            "seed the cache with) or random (train from random initialisation, with "
                            "a warning, recorded as weights_used: none) "
                            f"({_default('on_missing_weights')})")
    model.add_argument("--head-units", type=int, metavar="N",
                       help="units of the head's hidden dense layer, 0 for none; not for compact networks, "
                            f"which keep their own classifier layers ({_default('head_units')})")
    model.add_argument("--dropout", type=float, metavar="P",
                       help=f"dropout rate in the head; not for compact networks ({_default('dropout')})")

    training = parser.add_argument_group("training")
    training.add_argument("--fine-tune", choices=FINE_TUNE_MODES,
                          help="after training the head on the frozen backbone: stop (frozen), open the "
                               "top --unfreeze layers (partial) or all layers (full) and train on at "
                               "the lower learning rate; the BatchNorm layers of pretrained backbones "
                               f"stay frozen and in inference mode ({_default('fine_tune')})")
    training.add_argument("--unfreeze", type=int, metavar="N",
                          help="partial: number of top backbone layers with weights to open, counted "
                               "from the output down, BatchNorm layers not counted (VGG19: 4 = block5) "
                               f"({_default('unfreeze')})")
    training.add_argument("--fine-tune-lr-factor", type=float, metavar="F",
                          help="fine-tuning learning rate = --lr x F "
                               f"({_default('fine_tune_lr_factor')})")
    training.add_argument("--optimizer", metavar="NAME",
                          help=f"one of {', '.join(OPTIMIZERS)} ({_default('optimizer')})")
    training.add_argument("--lr", type=float, metavar="RATE",
                          help="learning rate of the head stage, or of the whole network trained from scratch "
                               f"({_recipe('lr')})")
    training.add_argument("--epochs", type=int, metavar="N",
                          help=f"maximum epochs of the head stage, or of training from scratch ({_recipe('epochs')})")
    training.add_argument("--fine-tune-epochs", type=int, metavar="N",
                          help=f"maximum epochs of the fine-tuning stage ({_default('fine_tune_epochs')})")
    training.add_argument("--batch-size", type=int, metavar="N",
                          help=f"global batch size ({_default('batch_size')})")
    training.add_argument("--patience", type=int, metavar="N",
                          help="stop a stage after N epochs without a lower validation loss, and halve "
                               "the learning rate after N/2; 0 turns both off. The weights with the "
                               "lowest validation loss over both stages are kept "
                               f"({_recipe('patience')})")
    training.add_argument("--seed", type=int,
                          help=f"seed of the split, shuffling, augmentation and initialisation ({_default('seed')})")
    training.add_argument("--feature-cache", action=argparse.BooleanOptionalAction,
                          help="frozen stage: compute the backbone's outputs once and train the head on "
                               "them (off with --augment-on-the-fly) (default: on)")

    training.add_argument("--class-weight", choices=CLASS_WEIGHTS,
                          help="balanced: weight each training event by n / (classes x n_class) "
                               "(scikit-learn compute_class_weight), in every stage; auto: balanced when the "
                               f"largest class has over 1.5x the smallest's training events ({_default('class_weight')})")

    evaluation = parser.add_argument_group("evaluation and experiments")
    evaluation.add_argument("--baseline", choices=BASELINES,
                            help="trees: also fit gradient-boosted trees on the same train/validation/test "
                                 "events (physics objects of imgen's source events, pooled cells of arrays, "
                                 "else downsampled pixels) and report them beside the network; none: skip "
                                 f"({_default('baseline')})")
    evaluation.add_argument("--signal", metavar="CLASS",
                            help="two classes: the signal class of the background rejection at 50/80/90 %% "
                                 "signal efficiency, the ROC and the discriminant (default: the second "
                                 "class); more classes: each class in turn, one vs rest")
    evaluation.add_argument("--folds", type=int, metavar="K",
                            help="stratified K-fold cross-validation: OUT/fold-1 ... OUT/fold-K, every event "
                                 "tested once, plus OUT/folds_summary.json/.md with mean and std of every "
                                 "metric (default: off)")
    evaluation.add_argument("--train-fraction", metavar="F[,F...]",
                            help="training-set-size scan: one run per fraction of the training split "
                                 "(stratified subsets, same validation and test events) in OUT/fraction-F, "
                                 "plus OUT/train_fraction_scan.csv/.png (e.g. 0.1,0.3,1.0)")

    hardware = parser.add_argument_group("hardware")
    hardware.add_argument("--mixed-precision", choices=AUTO_ON_OFF,
                          help=f"float16 compute (auto: on with a GPU) ({_default('mixed_precision')})")
    hardware.add_argument("--xla", choices=AUTO_ON_OFF,
                          help="XLA compilation (jit_compile; auto: on with a GPU, off when "
                               f"distributed) ({_default('xla')})")
    hardware.add_argument("--distribute", choices=DISTRIBUTE,
                          help="tf.distribute strategy: mirrored (all local GPUs) or multiworker (the "
                               f"cluster in TF_CONFIG) ({_default('distribute')})")

    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="DIR",
                        help="run folder to create (default: runs/<backbone>-<optimizer>-<fine-tune>)")
    output.add_argument("--overwrite", action=argparse.BooleanOptionalAction,
                        help="replace an existing run folder (default: refuse)")
    output.add_argument("--verbose", type=int, choices=(0, 1, 2), metavar="0|1|2",
                        help=f"Keras progress: 0 silent, 1 bars, 2 one line per epoch ({_default('verbose')})")
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


COMMANDS = {"predict": _predict, "export": _export, "lr-find": _lr_find, "ensemble": _ensemble, "fetch-weights": _fetch,
            "pretrain": _pretrain, "train": _train}


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
