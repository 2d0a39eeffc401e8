"""``python -m transfer lr-find``: the training options plus the range test's (:func:`transfer.experiments.lr_find.lr_find`)."""
from __future__ import annotations

import argparse

from transfer.cli import PROG
from transfer.cli.train import build_train_parser, config_from_args


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


def run(argv: list[str]) -> int:
    args = vars(build_lr_find_parser().parse_args(argv))
    args.pop("list_backbones", None)
    test = {name: args.pop(name) for name in ("start_lr", "end_lr", "steps", "divergence")}
    config = config_from_args(args)
    from transfer.experiments.lr_find import lr_find

    print("\n".join(lr_find(config, **test).summary_lines()))
    return 0
