"""Which event each score belongs to, in the order of the file the event came from (``predict --out x.root``).

A score file meant as a ROOT friend of the input NanoAOD needs one entry per
entry of the input tree, in the input's order; the score table of
:func:`transfer.deploy.predict.predict` has one row per image, sorted by path.
:func:`event_table` turns the second into the first.

Images: the imgen output folder holding an image (the nearest folder above it
with ``manifest.csv``) gives its class, event, source file, run and lumi. The
manifest has no entry index, and the NanoAOD entry order is not the order of
(run, lumi, event) (events of a lumi block are not sorted), so the entry order
is read from the source file itself: its ``run``, ``luminosityBlock`` and
``event`` branches (three small branches, read with uproot). That also gives
the entries an imgen selection dropped or that were not given to predict: they
are written with NaN scores and ``scored`` 0, so the tree has exactly the
entries of the source tree. A NanoAOD source that cannot be opened (moved,
remote) and JSON sources are written in manifest order (imgen writes each
file's events in file order), scored events only, and the notes say so.
Images without a manifest keep their path and scores only.

Arrays (HDF5): ``path`` is ``file#row``; ``run``, ``luminosityBlock``
(or ``lumi``) and ``event`` come from datasets of those names in the file
when it has them, the row index always (``entry``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from imgen.errors import ImgenError
from imgen.events.inputs import URL_PATTERN, file_kind
from imgen.output.manifest import MANIFEST_NAME, read_manifest
from transfer.errors import TransferError
from transfer.evaluation.metrics import SCORE_PREFIX

#: Columns of the event table that say which event a row is, in output order (after ``scored`` and ``path``).
IDENTITY_COLUMNS = ("source", "entry", "run", "luminosityBlock", "event")
#: NanoAOD branches read from a source file for the entry order, and the tree they are read from.
ID_BRANCHES = ("run", "luminosityBlock", "event")
EVENTS_TREE = "Events"


@dataclass
class EventTable:
    """The rows to write (``table``) and what the user should know about them (``notes``: one line each)."""

    table: object                      # pandas.DataFrame
    notes: list[str] = field(default_factory=list)


def event_table(model_path: str | os.PathLike, scores) -> EventTable:
    """``scores`` (predict's table) with the identity of every event, in source-entry order (module docstring).

    The way events are identified follows the data the run was trained on
    (``data_kind`` of its classes.json, a key of :data:`IDENTIFIERS`).
    """
    from transfer.run_folder import data_kind, require_model

    return IDENTIFIERS[data_kind(require_model(model_path), IDENTIFIERS)](scores)


# --------------------------------------------------------------------------
# Images: manifest, then the source file's entries
# --------------------------------------------------------------------------

def dataset_root(image: Path, cache: dict[Path, Path | None]) -> Path | None:
    """The nearest folder above ``image`` holding ``manifest.csv`` (imgen's output folder), or None."""
    folder = image.resolve().parent
    walked = []
    while folder not in cache:
        walked.append(folder)
        if (folder / MANIFEST_NAME).is_file():
            cache[folder] = folder
            break
        if folder.parent == folder:
            cache[folder] = None
            break
        folder = folder.parent
    for f in walked:
        cache[f] = cache[folder]
    return cache[folder]


def _number(text: str | None):
    """A manifest value as an int where it is one (run, lumi, NanoAOD event), else the text; None if empty."""
    if text is None or text == "":
        return None
    return int(text) if text.isdigit() else text


def resolve_source(source: str, root: Path) -> str | None:
    """Where the source file of a manifest is now: as written (a URL, an absolute path, or a path relative to
    the folder imgen ran in, tried from here), or relative to the dataset folder or its parent; None if gone."""
    if URL_PATTERN.match(source):
        return source
    path = Path(source)
    candidates = [path] if path.is_absolute() else [path, root / path, root.parent / path]
    return next((str(p) for p in candidates if p.is_file()), None)


def _events_tree(handle, location: str):
    """``Events``, else the one tree with the :data:`ID_BRANCHES` (imgen's ``--tree``: not in the manifest)."""
    trees = [k.split(";")[0] for k, v in handle.classnames().items() if v == "TTree"]
    if EVENTS_TREE in trees:
        return EVENTS_TREE
    holding = [t for t in trees if all(b in handle[t] for b in ID_BRANCHES)]
    if len(holding) != 1:
        raise TransferError(f"{location}: no tree {EVENTS_TREE!r}, and {len(holding)} trees (of "
                            f"{', '.join(trees) or 'none'}) with branches {', '.join(ID_BRANCHES)}: cannot tell "
                            "which one the images come from, so its entry order cannot be read")
    return holding[0]


def read_entry_ids(location: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(run, luminosityBlock, event) of every entry of the NanoAOD ``Events`` tree, in entry order."""
    import uproot

    try:
        with uproot.open(location) as handle:
            name = _events_tree(handle, location)
            tree = handle[name]
            missing = [b for b in ID_BRANCHES if b not in tree]
            if missing:
                raise TransferError(f"{location}: tree {name} has no branch(es) {', '.join(missing)}, so its "
                                    "entry order cannot be read")
            arrays = tree.arrays(list(ID_BRANCHES), library="np")
    except TransferError:
        raise
    except Exception as exc:  # uproot raises many kinds; every one is "cannot read this file"
        raise TransferError(f"{location}: cannot read as a ROOT file ({type(exc).__name__}: {exc})") from None
    return tuple(np.asarray(arrays[b]) for b in ID_BRANCHES)


def _empty_row(n_scores: int) -> dict:
    return {"scored": False, "path": "", "scores": [math.nan] * n_scores, "predicted_class": "",
            "source": None, "entry": None, "run": None, "luminosityBlock": None, "event": None}


def _friend_block(location: str, source: str, rows: list[tuple[dict, dict]], n_scores: int) -> list[dict]:
    """One row per entry of the NanoAOD file at ``location``, the scored ones filled in from ``rows``
    ((manifest row, score row) pairs of images from that file)."""
    keys = list(zip(*(ids.tolist() for ids in read_entry_ids(location))))   # (run, lumi, event) per entry
    full: dict[tuple[int, int, int], int] = {}
    by_event: dict[int, int] = {}
    for i, key in enumerate(keys):
        full.setdefault(key, i)
        by_event[key[2]] = -1 if key[2] in by_event else i   # -1: the number repeats in the file
    block = []
    for i, (run, lumi, event) in enumerate(keys):
        row = _empty_row(n_scores)
        row.update(source=source, entry=i, run=run, luminosityBlock=lumi, event=event)
        block.append(row)
    for manifest, scored in rows:
        run, lumi, event = (_number(manifest.get(c)) for c in ("run", "lumi", "event"))
        if run is not None and lumi is not None:
            entry = full.get((run, lumi, event))
        else:  # a manifest older than its run and lumi columns: the event number alone, if unique in the file
            entry = by_event.get(event)
        if entry is None or entry < 0:
            what = "is not" if entry is None else "is not unique (give a manifest with run and lumi)"
            raise TransferError(f"{scored['path']}: its manifest says run {run}, lumi {lumi}, event {event} of "
                                f"{source}, which {what} in {location}: the file changed since the images were "
                                "rendered")
        if block[entry]["scored"]:
            raise TransferError(f"{source}: entry {entry} (event {event}) is scored twice, by "
                                f"{block[entry]['path']} and {scored['path']}; a friend tree holds one score per "
                                "entry: give each event's image once (an augmented copy is another image of it)")
        block[entry].update(scored, scored=True)
    return block


def image_events(scores) -> EventTable:
    """The :data:`IDENTIFIERS` entry of runs trained on images (module docstring)."""
    score_columns = [c for c in scores.columns if c.startswith(SCORE_PREFIX)]
    roots: dict[Path, Path | None] = {}
    manifests: dict[Path, dict[str, tuple[int, dict]]] = {}
    found: dict[tuple[Path, str], list[tuple[tuple[int, int], dict, dict]]] = {}
    unknown: list[dict] = []
    root_order: dict[Path, int] = {}
    for record in scores.to_dict("records"):
        scored = {"path": record["path"], "scores": [record[c] for c in score_columns],
                  "predicted_class": record["predicted_class"]}
        image = Path(record["path"])
        root = dataset_root(image, roots)
        if root is not None and root not in manifests:
            try:
                rows = read_manifest(root, check_files=False)
            except ImgenError as exc:
                raise TransferError(str(exc)) from None
            manifests[root] = {r["path"]: (i, r) for i, r in enumerate(rows)}
            root_order[root] = len(root_order)
        listed = manifests[root].get(image.resolve().relative_to(root).as_posix()) if root else None
        if listed is None:
            unknown.append(scored)
            continue
        number, manifest = listed
        found.setdefault((root, manifest["source"]), []).append(((root_order[root], number), manifest, scored))

    notes: list[str] = []
    out: list[dict] = []
    for (root, source), items in sorted(found.items(), key=lambda kv: min(i[0] for i in kv[1])):
        items.sort(key=lambda item: item[0])
        pairs = [(manifest, scored) for _, manifest, scored in items]
        location = resolve_source(source, root) if file_kind(source) == "nanoaod" else None
        if location is not None:
            try:
                out += _friend_block(location, source, pairs, len(score_columns))
                continue
            except TransferError as exc:
                if not URL_PATTERN.match(location):
                    raise
                notes.append(f"{exc}: its {len(pairs)} scored event(s) are written in manifest order, without "
                             "the entries that have no score: not a friend tree of that file")
        elif file_kind(source) == "nanoaod":
            notes.append(f"{source}: not found (from {root / MANIFEST_NAME}); its {len(pairs)} scored event(s) "
                         "are written in manifest order, without the entries that have no score: not a friend "
                         "tree of that file")
        for manifest, scored in pairs:
            row = _empty_row(len(score_columns))
            row.update(scored, scored=True, source=source, run=_number(manifest.get("run")),
                       luminosityBlock=_number(manifest.get("lumi")), event=_number(manifest.get("event")))
            out.append(row)
    if unknown:
        notes.append(f"{len(unknown)} image(s) (e.g. {unknown[0]['path']}): no {MANIFEST_NAME} lists them in "
                     "their folder or above it: event identity not found; written with path and scores only")
        for scored in unknown:
            row = _empty_row(len(score_columns))
            row.update(scored, scored=True)
            out.append(row)
    return EventTable(_frame(out, score_columns), notes)


def _frame(rows: list[dict], score_columns: list[str]):
    """The event table: ``scored``, ``path``, the score columns, ``predicted_class``, :data:`IDENTITY_COLUMNS`."""
    import pandas as pd

    scores = np.array([r["scores"] for r in rows], dtype=np.float64).reshape(len(rows), len(score_columns))
    table = pd.DataFrame({"scored": [r["scored"] for r in rows], "path": [r["path"] for r in rows]})
    for k, name in enumerate(score_columns):
        table[name] = scores[:, k]
    table["predicted_class"] = [r["predicted_class"] for r in rows]
    for name in IDENTITY_COLUMNS:
        table[name] = pd.Series([r[name] for r in rows], dtype=object)
    return table


# --------------------------------------------------------------------------
# Arrays: the HDF5 file's own datasets
# --------------------------------------------------------------------------

#: event table column -> dataset names looked for in an HDF5 file, first found wins
ARRAY_ID_DATASETS = {"run": ("run",), "luminosityBlock": ("luminosityBlock", "lumi"), "event": ("event",)}


def _dataset_values(handle, names: tuple[str, ...]) -> list | None:
    """The first of ``names`` that is a one-value-per-row dataset of ``handle``, as Python values."""
    for name in names:
        data = handle.get(name)
        if data is not None and getattr(data, "ndim", 0) == 1:
            values = data[()].tolist()
            return [_number(v.decode()) if isinstance(v, bytes) else _number(v) if isinstance(v, str) else v
                    for v in values]
    return None


def array_events(scores) -> EventTable:
    """The :data:`IDENTIFIERS` entry of runs trained on arrays: ``file#row`` paths, in predict's order."""
    import h5py

    score_columns = [c for c in scores.columns if c.startswith(SCORE_PREFIX)]
    ids: dict[str, dict[str, list | None]] = {}
    rows = []
    for record in scores.to_dict("records"):
        source, _, number = record["path"].rpartition("#")
        if source not in ids:
            with h5py.File(source, "r") as handle:
                ids[source] = {c: _dataset_values(handle, names) for c, names in ARRAY_ID_DATASETS.items()}
        row = _empty_row(len(score_columns))
        row.update(scored=True, path=record["path"], scores=[record[c] for c in score_columns],
                   predicted_class=record["predicted_class"], source=source, entry=int(number))
        for column, values in ids[source].items():
            row[column] = values[int(number)] if values is not None and int(number) < len(values) else None
        rows.append(row)
    notes = [] if all(v["event"] is not None for v in ids.values()) else [
        "HDF5 file(s) without an event dataset: events are identified by source file and row (entry) only"]
    return EventTable(_frame(rows, score_columns), notes)


#: data kind of a run (``data_kind`` in classes.json) -> how its scored rows find their events
IDENTIFIERS: dict[str, Callable] = {"images": image_events, "arrays": array_events}
