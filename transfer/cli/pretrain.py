"""``python -m transfer pretrain``: pretrain a backbone on simulated events (:func:`transfer.experiments.pretrain.pretrain`)."""
from __future__ import annotations

import argparse
import shlex

from transfer.experiments.pretrain import DEFAULT_TASK, pretrain
from transfer.run_folder import BACKBONE_WEIGHTS, PRETRAINED_RECORD
from transfer.weights.toy_cms import (DEFAULT_EPOCHS, DEFAULT_EVENTS, DEFAULT_IMAGE_SIZE, DEFAULT_SEED,
                                      TOY_CMS_EPOCHS_ENV, TOY_CMS_EVENTS_ENV, TOY_CMS_FOLDER)

#: Training options passed through to TrainConfig (for --data).
PASSED_OPTIONS = ("x_key", "y_key", "classes", "channels", "scale", "batch_size", "lr", "patience", "backend")


def build_pretrain_parser(prog: str = "python -m transfer pretrain") -> argparse.ArgumentParser:
    from transfer.data.generated import TASKS

    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Pretrain a backbone from scratch on simulated events (the bundled generator's, rendered in "
                    "memory in imgen's default physics style, or your own --data), and write a run folder plus "
                    f"{BACKBONE_WEIGHTS} (the backbone's weights) and {PRETRAINED_RECORD} (what it was pretrained "
                    "on). Fine-tune from it with --weights RUN_FOLDER; --weights toy-cms builds and caches one "
                    "with these defaults.",
        epilog="examples:\n"
               f"  {prog} --backbone mobilenetv2 --image-size 64 --out runs/pretrain-mnv2\n"
               "  python -m transfer --data images/ --backbone mobilenetv2 --image-size 64 "
               "--weights runs/pretrain-mnv2\n"
               f"  {prog} --backbone resnet15 --task process+bjets --events 5000 --out runs/pretrain-r15\n"
               f"  {prog} --backbone cnn --data big_simulation/ --image-size 64 --out runs/pretrain-cnn\n\n"
               f"The defaults ({DEFAULT_EVENTS} events per process, {DEFAULT_IMAGE_SIZE} px, {DEFAULT_EPOCHS} "
               "epochs) took MobileNetV2 25 minutes on 2 CPU cores (10 at 32 px), minutes "
               "on a GPU, which is used where there is one; fewer epochs train faster and transfer worse (README, "
               "Pretraining on simulated events).\n"
               "--weights toy-cms builds such a backbone at the run's --image-size into $KERAS_HOME/models/"
               f"{TOY_CMS_FOLDER}/ on first use (no download: fine offline); ${TOY_CMS_EVENTS_ENV} and "
               f"${TOY_CMS_EPOCHS_ENV} change its events per process and epochs.")
    parser.add_argument("--backbone", required=True, metavar="NAME", help="the network to pretrain (see "
                        "python -m transfer --list-backbones)")
    parser.add_argument("--image-size", default=str(DEFAULT_IMAGE_SIZE), metavar="N",
                        help=f"pixels per side of the rendered events, and the size the backbone sees "
                             f"(default: {DEFAULT_IMAGE_SIZE})")
    parser.add_argument("--out", metavar="DIR", help="run folder to create (default: runs/pretrain-BACKBONE-N)")
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, metavar="N",
                        help=f"generated events per process (default: {DEFAULT_EVENTS}; three processes)")
    parser.add_argument("--task", default=DEFAULT_TASK, choices=sorted(TASKS),
                        help="what the backbone learns to tell apart: "
                             + "; ".join(f"{k}: {v[1]}" for k, v in TASKS.items()) + f" (default: {DEFAULT_TASK})")
    parser.add_argument("--data", nargs="+", metavar="DIR|FILE|CLASS=FILE",
                        help="pretrain on this dataset instead of generated events (anything python -m transfer "
                             "--data reads: an image folder, HDF5 files with --x-key)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the generator, the split and the initialisation (default: {DEFAULT_SEED})")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, metavar="N",
                        help=f"maximum epochs, early stopping on the validation loss (default: {DEFAULT_EPOCHS})")
    data = parser.add_argument_group("with --data (as for training)")
    data.add_argument("--x-key", metavar="KEY[,KEY...]", help="HDF5 image key(s)")
    data.add_argument("--y-key", metavar="KEY", help="HDF5 label key (needs --classes)")
    data.add_argument("--classes", metavar="A,B,...", help="class names, in label order")
    data.add_argument("--channels", metavar="I|NAME,...", help="HDF5 channels to keep")
    data.add_argument("--scale", choices=("none", "log", "standardize"), help="HDF5 value scale")
    training = parser.add_argument_group("training")
    training.add_argument("--batch-size", type=int, metavar="N", help="batch size (default: 32)")
    training.add_argument("--lr", type=float, metavar="RATE", help="learning rate (default: 1e-3)")
    training.add_argument("--patience", type=int, metavar="N",
                          help="early-stopping patience in epochs (default: as for training from scratch)")
    training.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                          help="Keras backend to train with (default: $KERAS_BACKEND, else tensorflow)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2, metavar="0|1|2",
                        help="Keras progress: 0 silent, 1 bars, 2 one line per epoch (default: 2)")
    return parser


def run(argv: list[str]) -> int:
    """``python -m transfer pretrain ARGS``: pretrain, print where the weights are and how to use them."""
    args = vars(build_pretrain_parser().parse_args(argv))
    options = {name: args.pop(name) for name in PASSED_OPTIONS if args.get(name) is not None}
    for name in PASSED_OPTIONS:
        args.pop(name, None)
    data = args.pop("data")
    result = pretrain(args.pop("backbone"), args.pop("image_size"), args.pop("out"), args.pop("events"),
                      args.pop("task"), data if data is None or len(data) > 1 else data[0], args.pop("seed"),
                      args.pop("epochs"), overwrite=args.pop("overwrite"), verbose=args.pop("verbose"),
                      command=shlex.join(["python", "-m", "transfer", "pretrain", *argv]), **options)
    print("\n".join(result.summary_lines()))
    return 0

