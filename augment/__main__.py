"""``python -m augment IMAGES``: expand the training split of an imgen folder with Augmentor.

Only parses arguments and calls :func:`augment.pipeline.augment_dataset`.
"""
from __future__ import annotations

import argparse
import logging
import sys
import textwrap

from imgen._version import __version__

from .pipeline import DEFAULT_FACTOR, DEFAULT_PRESET, DEFAULT_SEED, OPERATIONS, PRESETS, AugmentError, augment_dataset


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def _epilog() -> str:
    """The operation table, generated from the registry."""
    width = max(len(name) for name in OPERATIONS)
    lines = ["operations for --ops (name, default probability, whether the result is still a possible event):"]
    for name, info in OPERATIONS.items():
        head = f"  {name:<{width}}  p={info.default_probability:<4g} {'physics' if info.physical else 'not physics':<11}  "
        lines += textwrap.wrap(info.description, width=100, initial_indent=head,
                               subsequent_indent=" " * len(head))
    lines += ["", textwrap.fill(
        "rotate, shear and skew fill the area they bring in from outside the image with the image's "
        "background (its most common pixel value: black for intensity images, white for a white "
        "style). Every operation keeps the image's size and mode (L, LA, RGB, RGBA) and writes PNG.",
        width=100)]
    lines += ["", "example: python -m augment images/ --per-class 2000 --seed 1"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m augment",
        description=textwrap.fill(
            "Expand the training images of each class of a folder written by `python -m imgen` with "
            "Augmentor, and write a complete dataset (validation and test images copied unchanged, "
            "manifest.csv with an augmented_from column) that `python -m transfer` reads like any other.", width=100),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="IMAGES",
                        help="image folder written by imgen: <class>/<class>_<event>.png plus manifest.csv")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default: IMAGES_augmented next to IMAGES); never inside IMAGES")
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--per-class", metavar="N", type=int, default=None,
                       help="number of training images each class ends with, originals included, so classes "
                            "come out balanced; a class with N or more keeps all its originals and gets none")
    count.add_argument("--factor", metavar="F", type=float, default=None,
                       help=f"multiply each class's training count by F (rounded; F >= 1). "
                            f"Default when neither is given: --factor {DEFAULT_FACTOR:g}")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=list(PRESETS), default=DEFAULT_PRESET,
                       help=_escape("operations to use (default: %s). " % DEFAULT_PRESET
                                    + " ".join(f"{name}: {desc}." for name, (desc, _) in PRESETS.items())))
    which.add_argument("--ops", metavar="LIST", default=None,
                       help="your own operations instead of a preset, comma-separated NAME[:PROBABILITY] "
                            "applied in order, e.g. \"phi_shift:1.0,eta_flip:0.5,rotate:1.0\"; "
                            "names below")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"random seed (default {DEFAULT_SEED}); the same seed and input give "
                             "byte-identical output")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out if it exists (only a folder written by augment, or an empty one)")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.add_argument("--version", action="version", version=f"hepvision {__version__}",
                        help="print the version and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from imgen.cli_guard import run_command

    def run() -> int:
        summary = augment_dataset(
            args.input, args.out, preset=args.preset, ops=args.ops, per_class=args.per_class,
            factor=args.factor, seed=args.seed, overwrite=args.overwrite, progress=not args.no_progress)
        print(summary.format())
        return 0

    return run_command(run, (AugmentError,), folder=args.out or args.input)


if __name__ == "__main__":
    sys.exit(main())
