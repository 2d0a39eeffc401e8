"""``python -m transfer fetch-weights``: ImageNet weights into the Keras cache ahead of time (:func:`transfer.weights.imagenet.fetch_weights`)."""
from __future__ import annotations

import argparse

from transfer.cli import PROG
from transfer.models.backbones import BACKBONES


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


def run(argv: list[str]) -> int:
    args = build_fetch_parser().parse_args(argv)
    from transfer.weights.imagenet import fetch_weights

    names = sorted(n for n, s in BACKBONES.items() if s.pretrained) if args.backbone == ["all"] else args.backbone
    size = (args.image_size, args.image_size) if args.image_size else None
    for path in fetch_weights(names, size):
        print(path)
    return 0
