"""``python -m transfer explain RUN``: where a trained network's score comes from, class by class, and whether
the maps mean anything.

For the run's test events (or labelled ``--data`` read the way the run reads new data), every method of
:data:`transfer.evaluation.attribution.METHODS` asked for gives a map per event of the log-odds of its true
class, ln[p_c / sum of the other p] (the run's discriminant). The maps are averaged per true class,
separately over the events the network got right and those it got wrong, and drawn beside the class's mean
input, one panel per calorimeter layer or channel (event images as one eta-phi picture). The ``--events N``
most confidently right and most confidently wrong events get maps of their own, for the class the network
chose.

Before a map is shown it must pass the sanity check of Adebayo et al. 2018 (:mod:`~transfer.evaluation.attribution`):
the same maps for the network with its weights drawn again must differ clearly. Two correlations are
measured: of the class-averaged maps (what the figures show; averaging removes the speckle of any one
set of weights, so an untrained network's averages look like a random network's) and of the maps event
by event (the paper's rank correlation). A method at or above the limit in either is reported as failed
and its figures are not drawn; its arrays are kept in ``explain.npz`` with the flag.

Everything goes into ``RUN/explain/`` (names in :mod:`transfer.run_folder`) and a section of ``report.md``.
Gradients come from :mod:`transfer.evaluation.gradients`, so the run's ``model.keras`` is explained under
whichever Keras backend this process runs (TensorFlow or JAX).

Example::

    from transfer.evaluation.explain import explain_run
    result = explain_run("runs/calo-rcnn", methods=["saliency", "integrated_gradients"], events=4)
    for sanity in result.explanation.sanity.values():
        print(sanity.text())
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transfer import run_folder as rf
from transfer.errors import DataError, RunFolderError, TransferError
from transfer.evaluation.attribution import (DEFAULT_METHODS, METHODS, SANITY_EVENTS, SANITY_LIMIT, Inputs,
                                             class_means, completeness, path_steps, randomized_copy, sanity_check)

log = logging.getLogger(__name__)

#: Events explained at most (a stratified sample: the same number per class where they have it).
DEFAULT_MAX_EVENTS = 300
#: Most confidently right and most confidently wrong events drawn one by one.
DEFAULT_EVENT_COUNT = 4
#: Files every explained run folder must hold, and those only the test split needs.
NEEDED_FILES = (rf.MODEL_FILE, rf.CLASSES_FILE, rf.METRICS_FILE, rf.CONFIG_FILE)
TEST_SPLIT_FILES = (rf.PREDICTIONS_FILE,)
KIND_FILES = {"arrays": (rf.ARRAYS_FILE,), "images": ()}


# --------------------------------------------------------------------------
# What is explained: events, and how to draw them
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Geometry:
    """How an event is drawn: its channels, and the eta-phi extent of a rendered event image.

    ``extent`` is ``(eta_min, eta_max, phi_min, phi_max)`` for images ``imgen`` rendered (eta horizontal,
    phi = +pi on the top row, :mod:`imgen.render`); ``None`` draws cells (column along eta, row along
    phi, row 0 on top, as ``imgen arrays`` exports them). ``combined``: the channels are the colours of
    one picture (event images), drawn as one panel; otherwise one panel per channel (calorimeter layers).
    """

    kind: str
    channel_names: tuple
    extent: tuple | None = None
    combined: bool = False


@dataclass
class Events:
    """The events to explain, as ``model.keras`` takes them."""

    inputs: np.ndarray
    labels: np.ndarray
    ids: list
    origin: str
    geometry: Geometry


def _stratified(labels: np.ndarray, max_events: int | None, seed: int) -> np.ndarray:
    """Up to ``max_events`` indices, as many per class as it has up to an equal share; sorted."""
    if not max_events or len(labels) <= max_events:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    share = max_events // len(classes)
    chosen = [rng.permutation(np.flatnonzero(labels == k))[:share] for k in classes]
    left = max_events - sum(len(c) for c in chosen)
    rest = np.setdiff1d(np.arange(len(labels)), np.concatenate(chosen))
    chosen.append(rng.permutation(rest)[:left])
    return np.sort(np.concatenate(chosen))


def _class_ids(names, class_names: list[str], where: str) -> np.ndarray:
    ids = {name: k for k, name in enumerate(class_names)}
    unknown = sorted({str(n) for n in names} - set(ids))
    if unknown:
        raise DataError(f"{where}: class(es) {', '.join(unknown)} are not among the run's classes "
                        f"{', '.join(class_names)}")
    return np.array([ids[str(n)] for n in names], dtype=np.int64)


def _image_geometry(root: Path | None, channels: int) -> Geometry:
    """Event images ``imgen`` rendered get their eta-phi extent from its imgen-config.json."""
    from imgen.errors import ImgenError
    from imgen.features import read_imgen_config

    names = ("grey",) if channels == 1 else ("red", "green", "blue")[:channels]
    try:
        render = (read_imgen_config(root) or {}).get("render") if root is not None else None
    except ImgenError:
        render = None
    extent = None
    if render:
        eta = float(render.get("eta_max", 3.0))
        extent = (-eta, eta, -math.pi, math.pi)
    return Geometry("images", names, extent, combined=True)


def _array_geometry(info: dict) -> Geometry:
    return Geometry("arrays", tuple(info.get("channel_names") or ()), None, combined=False)


def _test_split(model_path: Path, info: dict, max_events: int | None, seed: int) -> Events:
    """The run's test events (``predictions.csv``), a stratified sample, read as export reads them."""
    import pandas as pd

    from transfer.deploy.export import EVENT_READERS

    kind = info.get("data_kind", "images")
    path = model_path.with_name(rf.PREDICTIONS_FILE)
    table = pd.read_csv(path)
    if table.empty or not {"path", "true_class"} <= set(table.columns):
        raise RunFolderError(f"{path}: expected the test events with columns path, true_class")
    labels = _class_ids(table["true_class"], info["classes"], str(path))
    keep = _stratified(labels, max_events, seed)
    table = table.iloc[keep].reset_index(drop=True)
    inputs = EVENT_READERS[kind](model_path, table, info)
    if kind == "images":
        data = rf.read_config(model_path).get("data")
        root = Path(data[0] if isinstance(data, list) else data) if data else None
        geometry = _image_geometry(root, inputs.shape[-1])
    else:
        geometry = _array_geometry(info)
    return Events(inputs, labels[keep], list(table["path"]), f"test split of {model_path.parent}", geometry)


def _array_data(model_path: Path, info: dict, data: list, x_key, y_key, resample: bool,
                max_events: int | None, seed: int) -> Events:
    """Labelled HDF5 files (``CLASS=FILE``, or files with ``y_key`` labelled in the run's class order), read
    with the run's keys and grid and its saved transform; another grid is refused unless ``resample``."""
    from imgen.arrays import ArrayTransform, open_arrays, split_keys
    from imgen.errors import ImgenError
    from transfer.data.arrays import check_prediction_grids

    saved = rf.read_arrays_info(model_path)
    arrays, transform = saved["arrays"], ArrayTransform.from_dict(saved["transform"])
    where = f"--data {' '.join(map(str, data))}"
    try:
        keys = split_keys(x_key) if x_key else tuple(arrays["x_keys"])
        with open_arrays([str(d) for d in data], keys, y_key, info["classes"] if y_key else None,
                         grid=tuple(arrays["grid"])) as dataset:
            if list(dataset.channel_names) != list(arrays["channel_names"]):
                raise DataError(f"{where}: channels {list(dataset.channel_names)}, but the run was trained on "
                                f"{list(arrays['channel_names'])} ({model_path.with_name(rf.ARRAYS_FILE)})")
            if not resample:
                check_prediction_grids(dataset, arrays, where, model_path.with_name(rf.ARRAYS_FILE))
            labels = _class_ids([dataset.classes[k] for k in dataset.labels], info["classes"], where)
            keep = _stratified(labels, max_events, seed)
            x, _ = dataset.read_batch(keep)
            ids = dataset.event_sources(keep)
    except ImgenError as exc:
        raise DataError(f"{where}: {exc}") from None
    return Events(transform(x), labels[keep], ids, where, _array_geometry(info))


def _image_data(model_path: Path, info: dict, data: list, x_key, y_key, resample: bool,
                max_events: int | None, seed: int) -> Events:
    """A folder of class subfolders of PNGs (``imgen``'s output among them), classes named as the run's."""
    from PIL import Image

    from transfer.data.images import check_images

    for given, flag in ((x_key, "--x-key"), (y_key, "--y-key"), (resample, "--resample")):
        if given:
            raise DataError(f"{flag}: {model_path.parent} was trained on images, not HDF5 arrays")
    if len(data) != 1 or not Path(data[0]).is_dir():
        raise DataError(f"--data {' '.join(map(str, data))}: images come from one folder of class subfolders")
    root = Path(data[0])
    files, names = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        pngs = sorted(folder.glob("*.png"))
        files += pngs
        names += [folder.name] * len(pngs)
    if not files:
        raise DataError(f"--data {root}: no class subfolders of PNG images")
    labels = _class_ids(names, info["classes"], f"--data {root}")
    keep = _stratified(labels, max_events, seed)
    files = [files[i] for i in keep]
    shape = check_images(files)
    if list(shape) != list(info["image_shape"]):
        raise DataError(f"--data {root}: images are {shape[0]}x{shape[1]} px with {shape[2]} channel(s), but "
                        f"the run was trained on {'x'.join(map(str, info['image_shape']))}")
    images = []
    for path in files:
        with Image.open(path) as handle:
            image = np.asarray(handle)
        images.append(image[..., None] if image.ndim == 2 else image)
    return Events(np.stack(images).astype(np.uint8), labels[keep], [p.relative_to(root).as_posix() for p in files],
                  f"--data {root}", _image_geometry(root, shape[2]))


#: classes.json ``data_kind`` -> reader of labelled ``--data`` for explain.
DATA_READERS = {"arrays": _array_data, "images": _image_data}


def check_run(run: str | os.PathLike, need_test_split: bool = True) -> Path:
    """The run's ``model.keras`` once every file explain reads is there and the run did not collapse.

    Raises:
        RunFolderError: missing files, all named in one line.
        TransferError: a collapsed run (its maps would explain a network that learned nothing).
    """
    if not Path(run).exists():
        raise RunFolderError(f"{run}: no such run folder (or model.keras)")
    model_path = rf.model_file(run)
    folder = model_path.parent
    kind = None
    if (folder / rf.CLASSES_FILE).is_file():
        kind = rf.data_kind(model_path, DATA_READERS)
    needed = NEEDED_FILES + (TEST_SPLIT_FILES if need_test_split else ()) + KIND_FILES.get(kind, ())
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise RunFolderError(f"{folder}: not a complete run folder, {', '.join(missing)} missing (explain needs "
                             "the model, its classes, metrics and options"
                             + (", and the test events of predictions.csv unless --data is given" if
                                rf.PREDICTIONS_FILE in missing else "") + ")")
    health = rf.read_metrics(folder).get("health") or {}
    if health.get("collapsed"):
        raise TransferError(f"{folder}: the network collapsed (metrics.json, report.md: it learned nothing), so "
                            "maps of where its score comes from would explain nothing; retrain it first")
    return model_path


def read_events(run: str | os.PathLike, data: list | None = None, x_key: str | None = None,
                y_key: str | None = None, resample: bool = False, max_events: int | None = DEFAULT_MAX_EVENTS,
                seed: int = 0) -> Events:
    """The events :func:`explain_run` explains: the run's test split, or labelled ``data``."""
    model_path = check_run(run, need_test_split=not data)
    info = rf.read_classes(model_path)
    if not data:
        return _test_split(model_path, info, max_events, seed)
    return DATA_READERS[info.get("data_kind", "images")](model_path, info, list(data), x_key, y_key, resample,
                                                         max_events, seed)


# --------------------------------------------------------------------------
# The maps
# --------------------------------------------------------------------------

@dataclass
class Explanation:
    """Every map and number of one explanation (what ``explain.npz`` and ``explain.json`` hold).

    Attributes:
        class_names: in score order.
        labels, scores, predicted: per explained event.
        mean_input: (classes, H, W, C) mean input of each true class.
        maps: method -> {"right": (classes, H, W, C), "wrong": ..., "random": ...}: the mean map of the
            events of each true class the network got right and wrong, and of all of them for the network
            with re-initialised weights.
        counts: (classes, 2) events right and wrong per class.
        event_ids, event_maps, event_inputs, event_classes: the per-event figures, for "right" and "wrong".
        sanity: method -> :class:`Sanity`.
        completeness: integrated gradients' relative completeness error (None without it).
    """

    class_names: list
    labels: np.ndarray
    scores: np.ndarray
    predicted: np.ndarray
    mean_input: np.ndarray
    maps: dict
    counts: np.ndarray
    sanity: dict
    event_ids: dict = field(default_factory=dict)
    event_maps: dict = field(default_factory=dict)
    event_inputs: dict = field(default_factory=dict)
    event_classes: dict = field(default_factory=dict)
    event_labels: dict = field(default_factory=dict)
    event_scores: dict = field(default_factory=dict)
    completeness: float | None = None
    ig_steps: int | None = None

    @property
    def shown(self) -> list[str]:
        """The methods that passed the sanity check, whose figures are drawn."""
        return [name for name, check in self.sanity.items() if check.passed]


def explain_model(model, inputs: np.ndarray, labels: np.ndarray, class_names: list,
                  methods=DEFAULT_METHODS, events: int = DEFAULT_EVENT_COUNT, seed: int = 0) -> Explanation:
    """The maps of ``methods`` for ``model`` on ``inputs`` (as the model takes them) with true ``labels``.

    Callable on any classifier of this package (a loaded ``model.keras``); :func:`explain_run` reads a run
    folder and writes the files. ``methods="all"``: every method that applies to ``model``.
    """
    methods = _method_names(methods, model)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise TransferError(f"--methods {','.join(methods)}: choose from {', '.join(METHODS)}, or all")
    labels = np.asarray(labels, dtype=np.int64)
    k = len(class_names)
    x = np.asarray(inputs, dtype=np.float32)
    scores = np.asarray(model.predict(x, batch_size=64, verbose=0), np.float64)
    predicted = scores.argmax(axis=1)
    right = predicted == labels
    everything = np.ones(len(x), bool)
    reference = Inputs.of(x, seed)
    if "integrated_gradients" in methods:
        import dataclasses

        steps, _ = path_steps(model, x, labels, reference)
        reference = dataclasses.replace(reference, steps=steps)
    randomized = randomized_copy(model, seed + 1)
    explanation = Explanation(
        class_names=list(class_names), labels=labels, scores=scores, predicted=predicted,
        mean_input=class_means(x, labels, everything, k), maps={},
        counts=np.array([[int(((labels == c) & right).sum()), int(((labels == c) & ~right).sum())]
                         for c in range(k)]), sanity={})
    picks = _confident_events(scores, labels, events)
    for name in methods:
        method = METHODS[name]
        log.info("explain: %s on %d events (and on the re-initialised network)", name, len(x))
        own = method.compute(model, x, labels, reference)
        other = method.compute(randomized, x, labels, reference)
        explanation.sanity[name] = sanity_check(method, own, other, labels, k)
        explanation.maps[name] = {"right": class_means(own, labels, right, k),
                                  "wrong": class_means(own, labels, ~right, k),
                                  "random": class_means(other, labels, everything, k)}
        n = min(len(x), SANITY_EVENTS)
        if name == "integrated_gradients":
            explanation.completeness = completeness(model, x[:n], labels[:n], own[:n], reference)
            explanation.ig_steps = reference.steps
        for which, rows in picks.items():
            if len(rows):
                explanation.event_maps.setdefault(which, {})[name] = method.compute(
                    model, x[rows], predicted[rows], reference)
    for which, rows in picks.items():
        explanation.event_ids[which] = rows
        explanation.event_inputs[which] = x[rows]
        explanation.event_classes[which] = predicted[rows]
        explanation.event_labels[which] = labels[rows]
        explanation.event_scores[which] = scores[rows]
    return explanation


def _method_names(methods, model=None) -> list[str]:
    """``methods`` as a list of names; ``"all"``: those of :data:`METHODS` that apply to ``model`` (kept as
    ``["all"]`` until the model is known)."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if list(methods) == ["all"] and model is not None:
        return [name for name, method in METHODS.items() if method.applies(model)]
    return list(methods)


def _confident_events(scores: np.ndarray, labels: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """The ``n`` most confidently right events (highest score of the true class) and the ``n`` most
    confidently wrong ones (highest score of the class chosen instead)."""
    predicted = scores.argmax(axis=1)
    confidence = scores.max(axis=1)
    out = {}
    for which, mask in (("right", predicted == labels), ("wrong", predicted != labels)):
        rows = np.flatnonzero(mask)
        out[which] = rows[np.argsort(-confidence[rows], kind="stable")[:n]]
    return out


# --------------------------------------------------------------------------
# The run folder: explain/ and report.md
# --------------------------------------------------------------------------

@dataclass
class ExplainResult:
    """What :func:`explain_run` returns; the files are in ``folder``."""

    folder: Path
    explanation: Explanation
    events: Events
    files: list

    def summary_lines(self) -> list[str]:
        e = self.explanation
        lines = [f"explained {len(e.labels)} events ({self.events.origin}): {self.folder}"]
        lines += [check.text() for check in e.sanity.values()]
        if e.completeness is not None:
            lines.append(f"integrated gradients ({e.ig_steps} steps): the maps sum to the change of the log-odds "
                         f"from the empty-detector baseline within {e.completeness:.1%} (completeness)")
        return lines


def _save_arrays(path: Path, explanation: Explanation, events: Events) -> None:
    arrays = {"class_names": np.array(explanation.class_names), "labels": explanation.labels,
              "scores": explanation.scores, "predicted": explanation.predicted, "ids": np.array(events.ids),
              "mean_input": explanation.mean_input, "counts": explanation.counts,
              "channel_names": np.array(events.geometry.channel_names)}
    for name, groups in explanation.maps.items():
        for group, values in groups.items():
            arrays[f"{name}/{group}"] = values
        check = explanation.sanity[name]
        arrays[f"{name}/sanity"] = np.array([check.correlation, check.per_event, check.per_event_spread])
        arrays[f"{name}/passed"] = np.array(check.passed)
    for which, methods in explanation.event_maps.items():
        arrays[f"events_{which}/rows"] = explanation.event_ids[which]
        arrays[f"events_{which}/inputs"] = explanation.event_inputs[which]
        for name, values in methods.items():
            arrays[f"events_{which}/{name}"] = values
    from imgen.atomic import atomic_path

    with atomic_path(path, prefix=f".{path.stem}-", suffix=".npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def _summary(explanation: Explanation, events: Events, methods) -> dict:
    return {"events": len(explanation.labels), "origin": events.origin, "classes": explanation.class_names,
            "right_wrong_per_class": {c: {"right": int(r), "wrong": int(w)}
                                      for c, (r, w) in zip(explanation.class_names, explanation.counts)},
            "explained_quantity": "ln[p(true class) / sum of the other p]; per-event figures: of the chosen class",
            "methods": {name: {"description": METHODS[name].description, "signed": METHODS[name].signed,
                               "sanity": explanation.sanity[name].as_dict(),
                               "figure": rf.explain_class_maps_png(name) if explanation.sanity[name].passed
                               else None} for name in methods},
            "sanity_limit": SANITY_LIMIT,
            "integrated_gradients_completeness": explanation.completeness,
            "integrated_gradients_steps": explanation.ig_steps}


def report_lines(explanation: Explanation, events: Events) -> list[str]:
    """The ``report.md`` section: what was explained, the sanity check, the figures of the methods that passed."""
    d = rf.EXPLAIN_DIR
    lines = ["## What the network looks at (`python -m transfer explain`)", "",
             f"{len(explanation.labels)} events ({events.origin}). Each map is where the log-odds of the event's "
             "true class, ln[p_c / Σ p_other], come from; averaged over the events of a class the network got "
             "right and over those it got wrong, beside the class's mean input.", "",
             "| method | averaged maps vs re-initialised network (Pearson) | event by event (rank) | sanity check |",
             "|---|---|---|---|"]
    for name, check in explanation.sanity.items():
        lines.append(f"| {name} | {check.correlation:.2f} | {check.per_event:.2f} ± {check.per_event_spread:.2f} | "
                     f"{'passes' if check.passed else '**fails: not shown**'} |")
    lines += ["", f"A method fails (Adebayo et al. 2018) when its maps correlate with those of the same network "
                  f"with re-initialised weights at {SANITY_LIMIT} or more: it then draws the input, not what the "
                  f"network learned. The comparison: `{d}/{rf.EXPLAIN_SANITY_PNG}`.", ""]
    for name in explanation.shown:
        lines += [f"![{METHODS[name].title} per class]({d}/{rf.explain_class_maps_png(name)})", ""]
    for which, png in rf.EXPLAIN_EVENTS_PNG.items():
        if explanation.shown and len(explanation.event_ids.get(which, [])):
            lines += [f"![most confidently {which} events]({d}/{png})", ""]
    lines += [f"![sanity check]({d}/{rf.EXPLAIN_SANITY_PNG})", "",
              f"Arrays: `{d}/{rf.EXPLAIN_ARRAYS}`; numbers: `{d}/{rf.EXPLAIN_SUMMARY}`.", ""]
    return lines


def explain_run(run: str | os.PathLike, data: list | None = None, x_key: str | None = None,
                y_key: str | None = None, resample: bool = False, methods=DEFAULT_METHODS,
                events: int = DEFAULT_EVENT_COUNT, max_events: int | None = DEFAULT_MAX_EVENTS,
                seed: int = 0) -> ExplainResult:
    """Explain the run in ``run`` (its folder or its ``model.keras``): maps, sanity check, ``RUN/explain/``
    and a section of ``report.md``.

    ``data`` (labelled, as training takes it: ``CLASS=FILE`` items or files with ``y_key``; an image folder
    of class subfolders) replaces the test split; arrays on another grid are refused unless ``resample``.

    Raises:
        RunFolderError: missing or damaged run files.
        TransferError: a collapsed run, data that do not fit the run, an unknown method.
    """
    from transfer.evaluation.plot_style import plot_style
    from transfer.evaluation.report import replace_section
    from transfer.files import write_text_atomic

    methods = _method_names(methods)
    unknown = [m for m in methods if m not in METHODS and m != "all"]
    if unknown or not methods:
        raise TransferError(f"--methods {','.join(methods)}: choose from {', '.join(METHODS)}, or all")
    chosen = read_events(run, data, x_key, y_key, resample, max_events, seed)
    model_path = rf.model_file(run)
    model = rf.load_model(model_path)
    methods = _method_names(methods, model)
    if tuple(model.input_shape[1:]) != tuple(chosen.inputs.shape[1:]):
        raise DataError(f"{chosen.origin}: events of shape {chosen.inputs.shape[1:]}, but {model_path} takes "
                        f"{tuple(model.input_shape[1:])}")
    explanation = explain_model(model, chosen.inputs, chosen.labels, rf.read_classes(model_path)["classes"],
                                methods, events, seed)
    folder = model_path.parent / rf.EXPLAIN_DIR
    folder.mkdir(exist_ok=True)
    methods = list(explanation.sanity)
    files = [folder / rf.EXPLAIN_ARRAYS, folder / rf.EXPLAIN_SUMMARY, folder / rf.EXPLAIN_SANITY_PNG]
    _save_arrays(files[0], explanation, chosen)
    import json

    write_text_atomic(files[1], json.dumps(_summary(explanation, chosen, methods), indent=2) + "\n")
    options = rf.read_config(model_path, missing_ok=True)   # the run's --plot-style (plain before it existed)
    with plot_style(options.get("plot_style"), options.get("plot_energy")):
        _draw(folder, files, explanation, chosen)
    replace_section(model_path.with_name(rf.REPORT_FILE), "explain", report_lines(explanation, chosen))
    return ExplainResult(folder, explanation, chosen, files)


def _draw(folder: Path, files: list, explanation, chosen) -> None:
    """The figures of :func:`explain_run` into ``folder`` (appended to ``files``); stale ones removed."""
    from transfer.evaluation.explain_plots import draw_class_maps, draw_events, draw_sanity

    draw_sanity(files[2], explanation, chosen.geometry)
    for name in METHODS:
        png = folder / rf.explain_class_maps_png(name)
        if name in explanation.shown:
            files.append(draw_class_maps(png, name, explanation, chosen.geometry))
        elif png.exists():
            png.unlink()  # an earlier explanation's figure, of a method not asked for or failing now
    for which, png in rf.EXPLAIN_EVENTS_PNG.items():
        if explanation.shown and len(explanation.event_ids.get(which, [])):
            files.append(draw_events(folder / png, which, explanation, chosen.geometry, [chosen.ids[i] for i in
                                                                                         explanation.event_ids[which]]))
        elif (folder / png).exists():
            (folder / png).unlink()
