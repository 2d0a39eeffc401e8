"""Small, learnable image datasets for the transfer tests and benchmarks.

Each class puts a bright Gaussian blob at its own place on a noisy dark
background (a jet-like deposit at a class-dependent eta-phi position), with a
jitter, so that a network can learn the classes from a few images. Real PNGs,
real manifest (``imgen.output.manifest.write_manifest``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from imgen.output.manifest import write_manifest

#: Blob centres (row, column as fractions of the image) per class index.
CENTRES = [(0.25, 0.25), (0.75, 0.75), (0.25, 0.75), (0.75, 0.25), (0.5, 0.5)]


def blob_image(rng: np.random.Generator, label: int, size: int, channels: int = 1) -> np.ndarray:
    """One uint8 image of class ``label``: blob at ``CENTRES[label]`` plus noise."""
    rows, cols = np.mgrid[0:size, 0:size] / size
    centre_row, centre_col = CENTRES[label % len(CENTRES)]
    centre_row += rng.normal(0, 0.04)
    centre_col += rng.normal(0, 0.04)
    blob = np.exp(-((rows - centre_row) ** 2 + (cols - centre_col) ** 2) / (2 * 0.08 ** 2))
    image = 200 * blob * rng.uniform(0.7, 1.0) + rng.uniform(0, 40, (size, size))
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image if channels == 1 else np.repeat(image[..., None], channels, axis=-1)


def make_blob_dataset(root, classes=("a", "b", "c"), per_class: int = 20, size: int = 32,
                      channels: int = 1, manifest: bool = True, seed: int = 0,
                      split=(0.6, 0.2, 0.2)) -> Path:
    """Write ``root/<class>/<class>_<i>.png`` (and ``manifest.csv`` when ``manifest``)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    n_train = int(round(per_class * split[0]))
    n_val = int(round(per_class * split[1]))
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = f"{name}/{name}_{i:04d}.png"
            Image.fromarray(blob_image(rng, label, size, channels)).save(root / path)
            part = "train" if i < n_train else "validation" if i < n_train + n_val else "test"
            rows.append({"path": path, "class": name, "event": str(i), "source": "synthetic", "split": part})
    if manifest:
        write_manifest(root, rows)
    return root


def run_transfer_cli(args, env=None, timeout: float = 600):
    """``python -m transfer ARGS`` in a fresh process (own KERAS_HOME etc. via ``env``)."""
    import os
    import subprocess
    import sys

    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "transfer", *map(str, args)], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=Path(__file__).resolve().parents[1])
