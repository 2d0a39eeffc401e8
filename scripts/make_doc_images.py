"""Regenerate the README's pictures in docs/images/ with the library's own functions.

    python scripts/make_doc_images.py                 # all three; the report trains a small model (~1 min, 2 cores)
    python scripts/make_doc_images.py --run runs/x    # compose the report picture from an existing run folder
    python scripts/make_doc_images.py --grid W/runs/grid-toy32   # only the grid picture, from a grid folder

* ``style_outline.png``, ``style_physics.png``: toy events of each class (``imgen.synth``) that pass the
  paper's selection, drawn with ``imgen.render.render_event`` in each style, eta/phi axes labelled.
* ``report_example.png``: ``roc.png`` and ``confusion_matrix.png`` of a run folder side by side. Without
  ``--run``, a small demo run is trained first (VGG19, frozen backbone, 48-pixel toy images, ImageNet weights
  when they can be had, random initialisation otherwise: the script says which).
* ``grid_summary.png``: the ``grid_summary.png`` of a grid folder given with ``--grid``, e.g. the one that
  ``python benchmarks/quality.py --cases grid-toy32 --work W`` leaves in ``W/runs/grid-toy32`` (a grid takes
  several minutes, so it is never trained here; ``--grid`` makes this picture alone).

The PNGs are quantised to 256 colours to stay small (< 150 kB each).
"""
from __future__ import annotations

import argparse
import io
import math
import sys
import tempfile
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "images"

from PIL import Image  # noqa: E402

from imgen.events.cms_json import read_events  # noqa: E402
from imgen.render import RenderConfig, render_event  # noqa: E402
from imgen.selection import apply_selection, build_selection  # noqa: E402
from imgen.synth import generate  # noqa: E402


def save_small(image: Image.Image, path: Path, width: int | None = None) -> None:
    """Resize to ``width`` (keeping the aspect ratio), quantise to 256 colours, write an optimised PNG."""
    image = image.convert("RGB")
    if width and image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size / 1000:.0f} kB)")


def style_grid(style: str, json_files: dict[str, Path], path: Path, per_class: int = 4, size: int = 128) -> None:
    """A grid of selected events, one row per class, drawn in ``style``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    config, selection = RenderConfig(style=style, size=size), build_selection("paper")
    figure = Figure(figsize=(2.3 * per_class + 0.4, 2.25 * len(json_files) + 0.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(json_files), per_class, squeeze=False)
    for row, (name, json_path) in zip(axes, json_files.items()):
        selected = (apply_selection(event, selection) for event in read_events(json_path))
        for ax, event in zip(row, islice((e for e in selected if e is not None), per_class)):
            ax.imshow(render_event(event, config), interpolation="nearest", aspect="auto",
                      extent=(-config.eta_max, config.eta_max, -math.pi, math.pi))
            ax.set_yticks([-math.pi, 0, math.pi], ["−π", "0", "π"])
            ax.set_xticks([-3, 0, 3])
            ax.set_title(f"{name}, event {event.event_id}", fontsize=9)
        row[0].set_ylabel("φ (azimuth, rad)")
    for ax in axes[-1]:
        ax.set_xlabel("η (pseudorapidity)")
    figure.suptitle(f"imgen --style {style}: selected toy events, {size} x {size} px", fontsize=12)
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=80)
    save_small(Image.open(buffer), path)


def demo_run(work: Path, json_files: dict[str, Path]) -> Path:
    """Train the small run whose plots go into the report picture; returns its folder."""
    from imgen.pipeline import render_files
    from transfer.config import TrainConfig
    from transfer.training.runner import run_training

    render_files(list(json_files.values()), work / "images", style="physics", size=48, selection="paper")
    result = run_training(TrainConfig(data=str(work / "images"), out=str(work / "run"), backbone="vgg19",
                                      weights="imagenet", on_missing_weights="random", fine_tune="frozen",
                                      epochs=30, verbose=0))
    print(f"demo run: weights {result.weights.used}, test accuracy {result.metrics['test']['accuracy']:.3f}")
    return result.out_dir


def report_picture(run: Path, path: Path) -> None:
    """roc.png and confusion_matrix.png of ``run`` side by side, same height."""
    images = [Image.open(run / name).convert("RGB") for name in ("roc.png", "confusion_matrix.png")]
    height = min(image.height for image in images)
    images = [image.resize((round(image.width * height / image.height), height), Image.LANCZOS)
              for image in images]
    combined = Image.new("RGB", (sum(image.width for image in images), height), "white")
    x = 0
    for image in images:
        combined.paste(image, (x, 0))
        x += image.width
    save_small(combined, path, width=1500)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="run folder to take roc.png and confusion_matrix.png from "
                                                 "(default: train a small demo run)")
    parser.add_argument("--grid", type=Path, help="make only grid_summary.png, from this grid folder (python -m "
                                                  "transfer grid; e.g. benchmarks/quality.py --cases grid-toy32)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: docs/images)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.grid:
        save_small(Image.open(args.grid / "grid_summary.png"), args.out / "grid_summary.png", width=1400)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        json_files = generate(work / "events", events=400, seed=42)
        for style in ("outline", "physics"):
            style_grid(style, json_files, args.out / f"style_{style}.png")
        report_picture(args.run or demo_run(work, json_files), args.out / "report_example.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
