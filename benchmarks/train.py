"""Frozen-stage throughput of ``transfer`` with and without the feature cache.

    python benchmarks/train.py                                  # 3 x 250 events, 64 px, vgg16, 20 epochs
    python benchmarks/train.py --per-class 120 --size 32 --epochs 20

1. Generates the bundled sample: toy CMS events (``imgen.synth``) rendered in
   the physics style by ``imgen`` (split 0.8/0.1/0.1 from the manifest).
2. Trains the frozen stage (``--fine-tune frozen``, random initialisation,
   no early stopping) twice on it with the same seed: with the feature cache
   (backbone outputs computed once, head trained on them) and without it
   (every epoch runs the backbone on every image).
3. Prints, for each, the frozen stage's wall time and its rate in training
   images x epochs per second (feature extraction included), and the ratio
   (target: >= 10x for a 20-epoch frozen stage).

Numbers depend on the machine and on what else runs on it: compare rates from
the same run only.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=250, help="events per class (3 classes; default: 250)")
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (default: 64)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the frozen stage (default: 20)")
    parser.add_argument("--backbone", default="vgg16", help="backbone (default: vgg16)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the sample and the runs (default: 42)")
    parser.add_argument("--work", help="folder for the sample and the runs (default: a temporary folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from imgen.pipeline import render_files
    from imgen.synth import generate
    from transfer.config import TrainConfig
    from transfer.training.runner import run_training

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(args.work or tmp)
        events = generate(work / "events", events=args.per_class, seed=args.seed)
        data = work / "images"
        render_files(list(map(str, events.values())), data, style="physics", size=args.size, seed=args.seed,
                     overwrite=True)
        print(f"sample: 3 x {args.per_class} toy events rendered at {args.size}x{args.size} px; "
              f"backbone {args.backbone}; "
              f"frozen stage of {args.epochs} epochs, batch {args.batch_size}")
        rates = {}
        for cache in (True, False):
            config = TrainConfig(data=str(data), backbone=args.backbone, weights="none", fine_tune="frozen",
                                 epochs=args.epochs, batch_size=args.batch_size, patience=0, verbose=0,
                                 seed=args.seed,
                                 feature_cache=cache, overwrite=True,
                                 out=str(work / f"run-cache-{'on' if cache else 'off'}"))
            started = time.perf_counter()
            result = run_training(config)
            timing = result.metrics["timing"]
            n_train = sum(result.metrics["events_per_class"]["train"].values())
            rates[cache] = timing["head_stage_images_per_s"]
            extraction = timing.get("feature_extraction_s")
            print(f"feature cache {'on ' if cache else 'off'}: frozen stage {timing['head_stage_s']:7.1f} s "
                  f"({n_train} training images x {len(result.history)} epochs"
                  + (f", of which {extraction:.1f} s computing the features once" if extraction else "")
                  + f"): {rates[cache]:8.0f} images/s   (whole run {time.perf_counter() - started:.0f} s)")
        print(f"ratio with / without the feature cache: {rates[True] / rates[False]:.1f}x (target >= 10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
