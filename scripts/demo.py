"""The README's main job: the whole workflow end to end on the bundled sample.

Runs exactly the commands a user would type, one after the other, printing
each before it runs: generate toy CMS events (``imgen.synth``), render them
(``imgen``), expand the training split (``augment``), fine-tune a pretrained
backbone (``transfer``), then says where the report is. No download is
needed; where ImageNet weights cannot be had (no network), the transfer step
says so in one line and trains from random initialisation, because the demo
asks for that explicitly with ``--on-missing-weights random``. Real runs
without that flag stop with an error instead.

Usage: ``python scripts/demo.py [--out demo_output] [--events 400] [--epochs 6]``
(``make demo`` runs it with the defaults; sized for under 10 minutes on 2 CPU cores).
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_output", help="working folder (default: %(default)s)")
    parser.add_argument("--events", type=int, default=800, help="events per class (default: %(default)s)")
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (default: %(default)s)")
    parser.add_argument("--epochs", type=int,
                        help="epochs of the head stage (vgg19; default: 8), or of training from scratch "
                             "(smallcnn; default: 30 over the augmented training split, the rate decayed over them on a "
                             "cosine)")
    parser.add_argument("--fine-tune-epochs", type=int, default=2,
                        help="epochs with the top block unfrozen (default: %(default)s)")
    parser.add_argument("--backbone", default="auto",
                        help="backbone; auto: vgg19 fine-tuned from ImageNet when its weights are in the Keras "
                             "cache or can be downloaded, else the compact network smallcnn trained from "
                             "scratch (said in one line) (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="seed for every stage (default: %(default)s)")
    return parser


def run(step: str, command: list[str]) -> None:
    """Run one stage as the user would, stopping the demo if it fails."""
    print(f"\n==> {step}\n$ {shlex.join(command)}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command)
    if done.returncode != 0:
        sys.exit(f"demo: step '{step}' failed with exit status {done.returncode}")
    print(f"    ({time.perf_counter() - started:.0f} s)", flush=True)


def choose_backbone(requested: str) -> str:
    """``auto``: vgg19 where its ImageNet weights can be had, else smallcnn (a random VGG19 would have to be
    trained from scratch, far beyond the demo's 10 minutes on a CPU, and is no transfer learning)."""
    if requested != "auto":
        return requested
    from transfer.errors import WeightsUnavailable
    from transfer.models.backbones import get_backbone
    from transfer.weights.imagenet import ensure_imagenet_weights

    try:
        ensure_imagenet_weights(get_backbone("vgg19"))
        return "vgg19"
    except WeightsUnavailable as exc:
        print(f"ImageNet weights for vgg19 cannot be had here ({exc.reason}): the demo trains the compact "
              "network smallcnn from scratch instead (see the README, 'Pretrained weights on an offline "
              "cluster', to fine-tune vgg19).", flush=True)
        return "smallcnn"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.backbone = choose_backbone(args.backbone)
    out = Path(args.out)
    events, images = out / "events", out / "images"
    augmented, run_dir = out / "images_augmented", out / "runs" / f"{args.backbone}-demo"
    py, seed = sys.executable, str(args.seed)
    started = time.perf_counter()

    run("generate toy CMS events", [py, "-m", "imgen.synth", "--out", str(events),
                                    "--events", str(args.events), "--seed", seed])
    run("render eta-phi images", [py, "-m", "imgen", str(events), "--out", str(images),
                                  "--style", "physics", "--size", str(args.size), "--seed", seed])
    run("augment the training split", [py, "-m", "augment", str(images), "--out", str(augmented),
                                       "--preset", "physics", "--factor", "2", "--seed", seed])
    from transfer.models.backbones import get_backbone

    if get_backbone(args.backbone).pretrained:
        run("fine-tune a pretrained backbone", [
            py, "-m", "transfer", "--data", str(augmented), "--backbone", args.backbone, "--weights", "imagenet",
            "--fine-tune", "partial", "--unfreeze", "1", "--fine-tune-lr-factor", "0.01",
            "--optimizer", "adam", "--image-size", str(args.size),
            "--epochs", str(args.epochs or 8), "--fine-tune-epochs", str(args.fine_tune_epochs),
            "--seed", seed, "--out", str(run_dir)])
    else:
        epochs = ["--epochs", str(args.epochs or 30)]
        run("train a compact network from scratch", [
            py, "-m", "transfer", "--data", str(augmented), "--backbone", args.backbone, *epochs,
            "--seed", seed, "--out", str(run_dir)])

    report = next((run_dir / name for name in ("report.html", "report.md") if (run_dir / name).exists()),
                  run_dir)
    print(f"\nDemo finished in {time.perf_counter() - started:.0f} s.")
    print(f"Report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
