"""Which HDF5 files, keys and classes ``--data`` names: the one home of that knowledge.

HDF5 suffixes, ``CLASS=FILE|FOLDER|GLOB`` items, folders of files or of
class folders, listing a file's datasets for error messages, and the name of a
file in event identities (``file#row``, which decides the split). Both
``imgen arrays`` and ``transfer`` ask this module; neither keeps its own copy.
"""
from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from imgen.errors import ImgenError

log = logging.getLogger(__name__)

#: File suffixes of HDF5 files (taken from a folder, and what makes a ``--data`` value an HDF5 file).
H5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")


class ArrayDataError(ImgenError):
    """Bad array input; the message names the file, the key and the problem.

    An ``ImgenError`` (so a ``ValueError``): ``python -m imgen`` reports it as
    ``error: ...`` with exit status 2 like any other bad input.
    """


def where(path: os.PathLike | str, key: str | None = None) -> str:
    """``file`` or ``file, key 'X'``: how an error names the place of a problem."""
    return f"{path}" if key is None else f"{path}, key {key!r}"


# --------------------------------------------------------------------------
# Source: which files, which keys, which classes
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class ArrayPart:
    """One HDF5 file; ``class_id`` is None when labels come from ``y_key``."""

    path: Path
    class_id: int | None = None


@dataclass(frozen=True)
class ArraySource:
    """What to read: files, image key(s), label key, class names (in id order)."""

    parts: tuple[ArrayPart, ...]
    classes: tuple[str, ...]
    x_keys: tuple[str, ...]
    y_key: str | None = None

    def to_dict(self) -> dict:
        return {"files": [str(p.path) for p in self.parts],
                "class_ids": [p.class_id for p in self.parts],
                "classes": list(self.classes), "x_keys": list(self.x_keys), "y_key": self.y_key}


def file_event_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Each file's name in event identities: its path relative to the folder the files share.

    One file, or files in one folder: their names; class folders
    (``data/electron/a.h5``, ``data/photon/a.h5``): ``electron/a.h5``. Forward
    slashes; symbolic links are not followed.
    """
    absolute = [os.path.abspath(p) for p in paths]
    if not absolute:
        return []
    base = os.path.commonpath([os.path.dirname(a) for a in absolute])
    return [Path(os.path.relpath(a, base)).as_posix() for a in absolute]


def split_keys(x_key: str | Sequence[str]) -> tuple[str, ...]:
    """``"layer_0,layer_1"`` or a sequence -> a tuple of non-empty keys."""
    items = x_key.split(",") if isinstance(x_key, str) else list(x_key)
    keys = tuple(k.strip() for k in items if k.strip())
    if not keys:
        raise ArrayDataError(f"no image key given (x_key={x_key!r})")
    return keys


def _h5_files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_hdf5_name(p))


def expand_target(target: str | os.PathLike) -> list[Path]:
    """A file, a folder (its HDF5 files, sorted) or a glob (sorted matches)."""
    text = str(target)
    path = Path(text).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = _h5_files_in(path)
        if not files:
            raise ArrayDataError(f"{path}: folder holds no HDF5 files ({', '.join(H5_SUFFIXES)})")
        return files
    if glob.has_magic(text):
        files = sorted(Path(m) for m in glob.glob(os.path.expanduser(text)) if Path(m).is_file())
        if not files:
            raise ArrayDataError(f"{text}: pattern matches no file")
        return files
    raise ArrayDataError(f"{text}: no such file or folder")


def _order_classes(found: Sequence[str], classes: Sequence[str] | None, what: str) -> tuple[str, ...]:
    if classes is None:
        return tuple(found)
    classes = tuple(classes)
    if sorted(classes) != sorted(found) or len(set(classes)) != len(classes):
        raise ArrayDataError(f"classes {list(classes)} do not match the classes of {what}: {sorted(found)}")
    return classes


def resolve_source(data: str | os.PathLike | Sequence[str | os.PathLike],
                   x_key: str | Sequence[str],
                   y_key: str | None = None,
                   classes: str | Sequence[str] | None = None, unlabeled: bool = False) -> ArraySource:
    """Turn CLI-like ``--data`` items into an :class:`ArraySource`.

    * ``name=file|folder|glob`` (repeatable, one name may repeat): the class is
      the name; class ids follow the order given, or ``classes`` if given.
    * plain file(s) with ``y_key`` and ``classes``: labels are read from
      ``y_key`` and must lie in ``range(len(classes))``.
    * one plain folder without ``y_key``: each sub-folder holding HDF5 files is
      a class, or else each HDF5 file (class = file stem); sorted names.
    * ``unlabeled=True`` (prediction on new data): plain files, folders or
      globs, no class needed; every label is -1. ``classes`` is kept as given.

    Example: ``resolve_source(["electron=e.h5", "photon=p.h5"], "X")``.
    """
    items = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not items:
        raise ArrayDataError("no data given")
    keys = split_keys(x_key)
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    if unlabeled:
        paths = [p for item in items for p in expand_target(item)]
        return ArraySource(tuple(ArrayPart(p) for p in paths), tuple(classes or ()), keys, None)
    named = [named_item(item) for item in items]
    if all(named):
        if y_key is not None:
            log.info("classes come from the files (name=...); ignoring y_key %r", y_key)
        found: dict[str, list[Path]] = {}
        for name, target in named:  # type: ignore[misc]
            found.setdefault(name, []).extend(expand_target(target))
        order = _order_classes(list(found), classes, "--data")
        parts = tuple(ArrayPart(p, order.index(name)) for name, paths in found.items() for p in paths)
        parts = tuple(sorted(parts, key=lambda p: p.class_id))
        return ArraySource(parts, order, keys, None)
    if any(named):
        raise ArrayDataError(f"mix of name=file and plain items in --data {[str(i) for i in items]}: "
                             "use name=file for every item, or plain files with --y-key and --classes")
    if y_key is None and all(Path(item).is_file() and is_imgen_hdf5(item) for item in items):
        y_key = IMGEN_Y_KEY                   # imgen's own output: its labels and class names are in it
        log.info("%s: written by imgen: labels from its key %r, class names from its attribute %r",
                 ", ".join(map(str, items)), IMGEN_Y_KEY, CLASSES_ATTR)
    if y_key is not None:
        paths = [p for item in items for p in expand_target(item)]
        recorded = _recorded_classes(paths)
        if recorded is not None:
            if classes and tuple(classes) != recorded[1]:
                raise ArrayDataError(
                    f"--classes {','.join(classes)}: {recorded[0]} records its class names as "
                    f"{','.join(recorded[1])} (attribute {CLASSES_ATTR!r}: label k is the k-th name), so these "
                    f"names would go to the wrong events; leave --classes out, or give them in that order")
            classes = recorded[1]
        if not classes:
            raise ArrayDataError(f"labels from key {y_key!r} need the class names (--classes a,b,...)")
        return ArraySource(tuple(ArrayPart(p) for p in paths), tuple(classes), keys, y_key)
    if len(items) == 1 and Path(items[0]).is_dir():
        folder = Path(items[0])
        subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and _h5_files_in(d))
        groups = ({d.name: _h5_files_in(d) for d in subdirs} if subdirs
                  else {p.stem: [p] for p in _h5_files_in(folder)})
        if not groups:
            raise ArrayDataError(f"{folder}: no HDF5 files or class folders inside")
        order = _order_classes(sorted(groups), classes, str(folder))
        parts = tuple(ArrayPart(p, i) for i, name in enumerate(order) for p in groups[name])
        return ArraySource(parts, order, keys, None)
    raise ArrayDataError(f"cannot tell the class of {[str(i) for i in items]}: give name=file for each "
                         "class, or --y-key with --classes")


#: imgen's own HDF5 output (:mod:`imgen.output.hdf5`): the attribute with the class names (label k is the k-th),
#: the label key, and the datasets with each row's event number and split.
CLASSES_ATTR = "classes"
IMGEN_Y_KEY = "y"
EVENT_KEY = "event"
SPLIT_KEY = "split"


def recorded_class_names(path: str | os.PathLike, handle=None) -> tuple[str, ...] | None:
    """The class names a file records in its :data:`CLASSES_ATTR` attribute (imgen's output), or None."""
    import h5py
    import numpy as np

    if handle is None:
        try:
            with h5py.File(path, "r") as opened:
                return recorded_class_names(path, opened)
        except OSError as exc:
            raise ArrayDataError(f"{path}: not a readable HDF5 file ({exc})") from None
    value = handle.attrs.get(CLASSES_ATTR)
    if value is None:
        return None
    names = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value).tolist())
    return names or None


def is_imgen_hdf5(path: str | os.PathLike, handle=None) -> bool:
    """Whether the file is imgen's own output: class names, labels, and each row's event and split."""
    import h5py

    if handle is None:
        if not is_hdf5_name(path):
            return False
        try:
            with h5py.File(path, "r") as opened:
                return is_imgen_hdf5(path, opened)
        except OSError:
            return False
    return CLASSES_ATTR in handle.attrs and all(isinstance(handle.get(k), h5py.Dataset)
                                                for k in (IMGEN_Y_KEY, EVENT_KEY, SPLIT_KEY))


def _recorded_classes(paths: Sequence[Path]) -> tuple[Path, tuple[str, ...]] | None:
    """``(first file, names)`` when the files record their class names (they must agree), else None."""
    found = [(p, recorded_class_names(p)) for p in paths if is_hdf5_name(p)]
    found = [(p, names) for p, names in found if names is not None]
    if not found:
        return None
    for path, names in found[1:]:
        if names != found[0][1]:
            raise ArrayDataError(f"{path}: records the class names {','.join(names)}, but {found[0][0]} records "
                                 f"{','.join(found[0][1])} (attribute {CLASSES_ATTR!r}); the same label would mean "
                                 "two classes")
    return found[0]


def is_hdf5_name(name: str | os.PathLike) -> bool:
    """Whether ``name`` ends in an HDF5 suffix (:data:`H5_SUFFIXES`, any case)."""
    return str(name).lower().endswith(H5_SUFFIXES)


def named_item(spec: str | os.PathLike) -> tuple[str, str] | None:
    """``name=target`` -> (name, target); None for a plain path (also a path that exists and holds ``=``)."""
    spec = str(spec)
    name, sep, target = spec.partition("=")
    if not sep or not name or "/" in name or os.sep in name or Path(spec).exists():
        return None
    return name.strip(), target.strip()


def item_target(item: str | os.PathLike) -> str:
    """The file, folder or glob of a ``--data`` value: ``class=target`` -> target, else the value itself."""
    named = named_item(item)
    return str(item) if named is None else named[1]


def holds_hdf5(folder: str | os.PathLike) -> bool:
    """A folder (without ``manifest.csv``, which makes it an image folder) with HDF5 files in it or in its
    sub-folders."""
    folder = Path(folder)
    if not folder.is_dir() or (folder / "manifest.csv").is_file():
        return False
    return any(is_hdf5_name(p) for pattern in ("*", "*/*") for p in folder.glob(pattern))


def first_hdf5_file(item: str | os.PathLike) -> Path | None:
    """The first HDF5 file a ``--data`` value names (for messages that list its datasets), or None."""
    target = Path(item_target(item))
    if target.is_dir():
        found = sorted(p for pattern in ("*", "*/*") for p in target.glob(pattern) if p.is_file() and is_hdf5_name(p))
        return found[0] if found else None
    try:
        return expand_target(target)[0]
    except ArrayDataError:
        return None


def list_datasets(path: str | os.PathLike, handle=None) -> list[str]:
    """Names of the datasets in an HDF5 file (``handle``: an open ``h5py.File`` of it), for error messages."""
    import h5py

    names: list[str] = []

    def visit(handle) -> None:
        handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)

    if handle is not None:
        visit(handle)
        return names
    try:
        with h5py.File(path, "r") as opened:
            visit(opened)
    except OSError as exc:
        raise ArrayDataError(f"{path}: not a readable HDF5 file ({exc})") from None
    return names
