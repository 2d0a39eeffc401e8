"""``python -m transfer grid``: the training options plus the grid's axes; the work is :func:`transfer.experiments.grid.run_grid`."""
from __future__ import annotations

import argparse
import sys

from transfer.cli import PROG
from transfer.cli.train import EXIT_COLLAPSED, build_train_parser, default_data
from transfer.cli.train import run as run_train
from transfer.config import TrainConfig, read_config_file
from transfer.models.backbones import BACKBONES

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
    from transfer.experiments.grid import GRID_FILE
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


def run(argv: list[str]) -> int:
    from transfer.experiments.grid import GRID_KEYS

    args = vars(build_grid_parser().parse_args(argv))
    if args.pop("list_backbones", False):
        return run_train(["--list-backbones"])
    path = args.pop("config")
    values = read_config_file(path, extra=GRID_KEYS) if path else {}
    values.update(args)
    if "data" not in values and default_data():
        print(f"--data not given: using {default_data()}/ (written by python -m imgen)", flush=True)
        values["data"] = default_data()
    from transfer.experiments.grid import run_grid

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
