"""HDF5 image arrays -> PNG class folders + manifest (``python -m imgen arrays``).

For users who want to look at array data or augment it like rendered events.
Values become uint8 per channel against a maximum ``vmax`` (``--max-value``,
or the ``--percentile`` of the positive training values):

* ``--intensity log`` (default): ``vmax / 10**decades .. vmax`` spread
  logarithmically over grey levels 1..255, so a 50 GeV core and a 0.2 GeV
  halo are both visible whatever the unit (MeV or GeV);
* ``--intensity linear``: ``0 .. vmax`` spread linearly.

Values at or below zero (including noise-subtracted negative cells) are 0,
values above ``vmax`` are 255. One channel is written as grayscale, two or
three as RGB (a missing third channel is 0). Array rows are image rows, array
columns image columns, unflipped. Event ids (the ``event`` column and the
file names) are global indices in the ``--data`` order; the ``source`` column
names the row (``file#row``), and the split comes from the project's one rule,
:func:`imgen.arrays.reader.split_indices` over (seed, class, ``file#row``), so it is the
split ``transfer`` makes when training on the same arrays directly.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from imgen._version import __version__
from imgen.arrays.files import ArrayDataError
from imgen.arrays.reader import ArrayDataset, split_indices
from imgen.arrays.transform import ArrayTransform, fit_transform
from imgen.atomic import staged_folder
from imgen.output.images import class_name_problem, image_relpath
from imgen.output.manifest import write_manifest
from imgen.split import DEFAULT_FRACTIONS, DEFAULT_SEED, SPLITS

log = logging.getLogger(__name__)
#: Written beside manifest.csv: how the arrays were mapped to pixels.
EXPORT_INFO = "arrays_export.json"
#: Events sampled (from the training split) to find the percentile maxima.
PERCENTILE_SAMPLE = 5000


def _log_levels(x: np.ndarray, vmax: np.ndarray, decades: float) -> np.ndarray:
    ratio = np.maximum(x, 1e-30) / vmax
    return np.where(x > 0, np.clip(1 + np.log10(ratio) / decades, 1 / 255, 1.0), 0.0)


def _linear_levels(x: np.ndarray, vmax: np.ndarray, decades: float) -> np.ndarray:
    return np.clip(x / vmax, 0.0, 1.0)


#: Intensity mappings to [0, 1] before quantisation to 0..255.
INTENSITIES: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "log": _log_levels,
    "linear": _linear_levels,
}


def to_uint8(x: np.ndarray, vmax: Sequence[float], intensity: str = "log", decades: float = 3.0) -> np.ndarray:
    """(N, H, W, C) values -> uint8 of the same shape, channel c against ``vmax[c]``."""
    vmax = np.asarray(vmax, dtype=np.float64)
    if np.any(vmax <= 0):
        raise ArrayDataError(f"maximum values must be positive, got {vmax.tolist()}")
    levels = INTENSITIES[intensity](np.asarray(x, np.float64), vmax, decades)
    return np.rint(levels * 255).astype(np.uint8)


def to_image(event: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 -> grayscale for one channel, RGB for two or three."""
    channels = event.shape[-1]
    if channels == 1:
        return Image.fromarray(np.ascontiguousarray(event[..., 0]))
    if channels <= 3:
        rgb = np.zeros(event.shape[:2] + (3,), np.uint8)
        rgb[..., :channels] = event
        return Image.fromarray(rgb)
    raise ArrayDataError(f"{channels} channels cannot be one PNG: choose up to three with --channels")


def percentile_vmax(dataset: ArrayDataset, transform: ArrayTransform, indices: np.ndarray,
                    percentile: float, seed: int = 0) -> list[float]:
    """Per channel, the ``percentile`` of positive values over a sample of ``indices``."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(indices, min(len(indices), PERCENTILE_SAMPLE), replace=False))
    x = transform(dataset.read_batch(sample)[0])
    out = []
    for c in range(x.shape[-1]):
        values = x[..., c][x[..., c] > 0]
        out.append(float(np.percentile(values, percentile)) if len(values) else 1.0)
    return out


@dataclass
class ExportSummary:
    """What an export wrote: counts per class and split, the pixel mapping."""

    out: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    vmax: list[float] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())


def export_pngs(dataset: ArrayDataset, out: str | os.PathLike, *, channels: str | None = None,
                min_value: float | None = None, crop: bool = False, intensity: str = "log",
                decades: float = 3.0, max_value: Sequence[float] | None = None,
                percentile: float = 99.5, limit: int | None = None, seed: int = DEFAULT_SEED,
                fractions: Sequence[float] = DEFAULT_FRACTIONS, overwrite: bool = False,
                progress: bool = True) -> ExportSummary:
    """Write ``out/<class>/<class>_<event>.png`` and ``out/manifest.csv`` atomically.

    The first ``limit`` events of each class (file order) are exported. Crop
    box and percentile maxima come from the training split of those events.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ArrayDataError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ArrayDataError(f"{out}: folder exists and is not empty (use --overwrite to replace it)")
    for name in dataset.classes:
        problem = class_name_problem(name)
        if problem:
            raise ArrayDataError(f"--data: {problem}")
    labels = dataset.labels
    chosen = np.sort(np.concatenate([np.flatnonzero(labels == c)[:limit] for c in range(len(dataset.classes))]))
    splits = {int(i): split for split, rows in split_indices(dataset, seed, fractions).items() for i in rows}
    train = np.array([i for i in chosen if splits[int(i)] == "train"] or chosen, dtype=np.int64)
    transform = fit_transform(dataset, train, channels=channels, min_value=min_value, crop=crop)
    n_channels = transform.output_shape(dataset.event_shape)[-1]
    if n_channels > 3:
        raise ArrayDataError(f"{n_channels} channels {list(transform.channel_names)} cannot be one PNG: "
                             "choose up to three with --channels")
    if max_value is None:
        vmax = percentile_vmax(dataset, transform, train, percentile, seed)
    else:
        vmax = list(max_value) * (n_channels if len(max_value) == 1 else 1)
        if len(vmax) != n_channels:
            raise ArrayDataError(f"--max-value has {len(max_value)} values for {n_channels} channels")
    summary = ExportSummary(out, {c: dict.fromkeys(SPLITS, 0) for c in dataset.classes}, vmax)
    with staged_folder(out, prefix=f".{out.name}-") as tmp:
        for name in dataset.classes:
            (tmp / name).mkdir()
        rows = []
        with tqdm(total=len(chosen), unit="img", disable=not progress, desc="arrays -> png") as bar:
            for idx, x, y in dataset.iter_chunks(chosen):
                pixels = to_uint8(transform(x), vmax, intensity, decades)
                for i, event, label in zip(idx, pixels, y):
                    name, split = dataset.classes[label], splits[int(i)]
                    rel = image_relpath(name, str(int(i)))
                    to_image(event).save(tmp / rel, format="PNG")
                    rows.append({"path": rel, "class": name, "event": int(i),
                                 "source": dataset.event_source(int(i)), "split": split})
                    summary.counts[name][split] += 1
                bar.update(len(idx))
        write_manifest(tmp, rows)
        summary.info = {"version": __version__, "dataset": dataset.config(), "transform": transform.to_dict(),
                        "intensity": intensity, "decades": decades, "vmax": vmax,
                        "percentile": None if max_value is not None else percentile,
                        "limit": limit, "seed": seed, "fractions": list(fractions)}
        (tmp / EXPORT_INFO).write_text(json.dumps(summary.info, indent=2) + "\n", encoding="utf-8")
    return summary
