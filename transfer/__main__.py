"""``python -m transfer``: train (default), ``predict``, ``fetch-weights``.

Only argument parsing lives here; the work is done by
:func:`transfer.train.run_training`, :func:`transfer.predict.predict_images`
and :func:`transfer.weights.fetch_weights`, which a notebook calls with the
same names. TensorFlow is imported only once a command runs, so ``--help``
is instant.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from imgen._version import __version__
from transfer.backbones import BACKBONES, format_backbone_table
from transfer.config import (AUTO_ON_OFF, DISTRIBUTE, FINE_TUNE_MODES, ON_MISSING_WEIGHTS, TrainConfig,
                             load_config)
from transfer.errors import TransferError
from transfer.optimizers import OPTIMIZERS

PROG = "python -m transfer"
DEFAULTS = TrainConfig.__dataclass_fields__

EXAMPLES = f"""\
subcommands:
  {PROG} predict --model RUN/model.keras IMAGES_OR_FOLDERS [--out scores.csv]
  {PROG} fetch-weights --backbone NAME [NAME ...]   (download ImageNet weights ahead of time)
  run "{PROG} predict --help" or "{PROG} fetch-weights --help" for their options.

examples:
  {PROG} --data images/ --backbone vgg19 --optimizer rmsprop --out runs/vgg19-rmsprop
  {PROG} --config runs/vgg19-rmsprop/config.yaml --out runs/vgg19-rmsprop-again
  {PROG} --data images/ --backbone mobilenetv2 --weights none --fine-tune full

Every run folder holds model.keras, classes.json, config.yaml, metrics.json,
predictions.csv, history.csv, confusion_matrix.csv/.png, roc.png,
training_curves.png and report.md.
"""


def _default(name: str) -> str:
    value = DEFAULTS[name].default
    if isinstance(value, tuple):
        value = ",".join(f"{v:g}" for v in value)
    return f"default: {value}"


def build_train_parser() -> argparse.ArgumentParser:
    """The training options (the default action); every one maps to a TrainConfig field."""
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        argument_default=argparse.SUPPRESS,
        description="Fine-tune a pretrained CNN backbone on eta-phi event images, in two stages "
                    "(head on a frozen backbone, then fine-tuning at a lower learning rate), and "
                    "write a run folder with the model, metrics, plots and a report.")
    parser.add_argument("--version", action="version", version=f"hepvision {__version__}")
    parser.add_argument("--list-backbones", action="store_true",
                        help="print the backbones with their input size limits and ImageNet weights "
                             "files, then exit")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="read options from this YAML file (e.g. a run's config.yaml); flags given "
                             "on the command line override it")

    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="DIR",
                      help="image folder: with manifest.csv (its train/validation/test split is used) "
                           "or with one subfolder of PNGs per class (a stratified split is made)")
    data.add_argument("--classes", metavar="A,B,...",
                      help="class names, in label order (may be a subset); default: all, sorted. For two "
                           "classes the second is the signal class of the ROC plots")
    data.add_argument("--split", metavar="TRAIN,VAL,TEST",
                      help="fractions of the stratified split made when there is no manifest.csv; "
                           f"recorded in the run folder as split.csv ({_default('split')})")
    data.add_argument("--image-size", metavar="N|HxW",
                      help="size the backbone sees, in pixels: images are resized on the fly inside the "
                           "model, which still takes images of their own size; sizes below the "
                           "backbone's minimum (see --list-backbones) are refused (default: the "
                           "images' own size)")
    data.add_argument("--augment-on-the-fly", action=argparse.BooleanOptionalAction,
                      help="light physics augmentation of training images inside tf.data: random roll "
                           "along phi, flips eta->-eta and phi->-phi. Turns the frozen-stage feature "
                           "cache off, so the head stage is much slower (default: off)")

    model = parser.add_argument_group("model and weights")
    model.add_argument("--backbone", metavar="NAME",
                       help=f"one of {', '.join(sorted(BACKBONES))} ({_default('backbone')}); "
                            "see --list-backbones")
    model.add_argument("--weights", metavar="imagenet|none|PATH",
                       help="backbone initialisation: ImageNet weights through Keras' cache "
                            "($KERAS_HOME/models, default ~/.keras/models; downloaded when missing), "
                            "none (random), or a weights file for this backbone "
                            f"({_default('weights')})")
    model.add_argument("--on-missing-weights", choices=ON_MISSING_WEIGHTS,
                       help="when ImageNet weights cannot be had: error (stop, naming the file to "
                            "seed the cache with) or random (train from random initialisation, with "
                            "a warning, recorded as weights_used: none) "
                            f"({_default('on_missing_weights')})")
    model.add_argument("--head-units", type=int, metavar="N",
                       help=f"units of the head's hidden dense layer, 0 for none ({_default('head_units')})")
    model.add_argument("--dropout", type=float, metavar="P",
                       help=f"dropout rate in the head ({_default('dropout')})")

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
                          help=f"learning rate of the head stage ({_default('lr')})")
    training.add_argument("--epochs", type=int, metavar="N",
                          help=f"maximum epochs of the head stage ({_default('epochs')})")
    training.add_argument("--fine-tune-epochs", type=int, metavar="N",
                          help=f"maximum epochs of the fine-tuning stage ({_default('fine_tune_epochs')})")
    training.add_argument("--batch-size", type=int, metavar="N",
                          help=f"global batch size ({_default('batch_size')})")
    training.add_argument("--patience", type=int, metavar="N",
                          help="stop a stage after N epochs without a lower validation loss, and halve "
                               "the learning rate after N/2; 0 turns both off. The weights with the "
                               "lowest validation loss over both stages are kept "
                               f"({_default('patience')})")
    training.add_argument("--seed", type=int,
                          help=f"seed of the split, shuffling, augmentation and initialisation ({_default('seed')})")
    training.add_argument("--feature-cache", action=argparse.BooleanOptionalAction,
                          help="frozen stage: compute the backbone's outputs once and train the head on "
                               "them (off with --augment-on-the-fly) (default: on)")

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
        description="Score PNG images with a trained run's model.keras (class names from the "
                    "classes.json beside it): one row per image with a score per class and the "
                    "predicted class.")
    parser.add_argument("--model", required=True, metavar="RUN/model.keras", help="the saved model")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help="PNG files, or folders searched recursively for PNGs")
    parser.add_argument("--out", metavar="CSV", help="write the scores here (default: print them)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per batch (default: 64)")
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


def _train(argv: list[str]) -> int:
    args = vars(build_train_parser().parse_args(argv))
    if args.pop("list_backbones", False):
        from transfer.weights import weights_cache_dir

        print(format_backbone_table(str(weights_cache_dir())))
        return 0
    config = load_config(args.pop("config"), **args)
    from transfer.train import run_training

    result = run_training(config)
    m = result.metrics
    print(f"run folder: {result.out_dir}")
    print(f"backbone {m['backbone']}, weights used: {m['weights_used']}"
          + (f" ({m['weights_reason']})" if m.get("weights_reason") else ""))
    for split in ("validation", "test"):
        auc = m[split]["roc_auc"]
        auc = auc.get("macro") if isinstance(auc, dict) else auc
        print(f"{split}: accuracy {m[split]['accuracy']:.3f}, loss {m[split]['loss']:.3f}, ROC AUC "
              + ("n/a" if auc is None else f"{auc:.3f}"))
    return 0


def _predict(argv: list[str]) -> int:
    args = build_predict_parser().parse_args(argv)
    from transfer.predict import predict_images

    table = predict_images(args.model, args.inputs, args.batch_size)
    text = table.to_csv(index=False, float_format="%.9g")
    if args.out:
        from transfer.files import write_text_atomic

        write_text_atomic(args.out, text)
        print(f"{len(table)} images scored: {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _fetch(argv: list[str]) -> int:
    args = build_fetch_parser().parse_args(argv)
    from transfer.weights import fetch_weights

    names = sorted(n for n, s in BACKBONES.items() if s.pretrained) if args.backbone == ["all"] else args.backbone
    size = (args.image_size, args.image_size) if args.image_size else None
    for path in fetch_weights(names, size):
        print(path)
    return 0


COMMANDS = {"predict": _predict, "fetch-weights": _fetch, "train": _train}


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m transfer`` with ``argv``; returns the exit status (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command = COMMANDS.get(argv[0]) if argv else None
    try:
        return command(argv[1:]) if command else _train(argv)
    except TransferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
