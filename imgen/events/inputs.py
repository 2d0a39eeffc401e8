"""Which event files to read (CMS JSON or NanoAOD ROOT), and the class of each.

The kind of a file comes from its name (:data:`FILE_KINDS`: ``.json`` and
``.json.gz`` are JSON, ``.root`` is NanoAOD); :mod:`imgen.events.readers` holds one
reader per kind. A ``.root`` argument may also be a URL (``root://...``,
``https://...``): it is passed on to uproot as it is, classed by its file name.

The class of an event comes from its file, by these rules (first match wins):

1. ``--class NAME=GLOB`` (``classes={"NAME": "GLOB"}`` in Python): every file
   the pattern matches is of class NAME, whatever its name or folder; a
   pattern that matches a folder takes that folder's event files.
2. A file argument (or a file a glob matches): the file name's stem, without
   its suffix and without a trailing ``_json``
   (``Wjets_json.json`` gives ``Wjets``, ``TTjets.root`` gives ``TTjets``).
3. A folder argument: its direct event files are classed by their own
   stems (rule 2), and the event files in its direct sub-folders by the
   sub-folder's name (``json_files/Wjets/part1.json`` gives ``Wjets``).
   Deeper folders are not searched.

Class names become folder names, so they are limited to letters, digits and
``_ . + -``. Files are returned sorted by (class, path), so that a run is the
same whatever the order of the arguments.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from imgen.errors import ImgenError
from imgen.output.images import class_name_problem

JSON_SUFFIXES = (".json", ".json.gz")
#: File name suffix -> kind of event file (a key of :data:`imgen.events.readers.READERS`); longest first.
FILE_KINDS = {".json.gz": "json", ".json": "json", ".root": "nanoaod"}
EVENT_SUFFIXES = tuple(FILE_KINDS)
CLASS_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")
#: ``scheme://`` at the start of an argument: a remote file, handed to uproot as it is
URL_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, order=True)
class InputFile:
    """One event file and the class of all its events; ``url`` is set for a remote file."""

    class_name: str
    path: Path
    url: str = ""

    @property
    def location(self) -> str:
        """What the file is opened by, and the ``source`` column of the manifest."""
        return self.url or self.path.as_posix()

    @property
    def kind(self) -> str:
        return file_kind(self.url or self.path.name)

    def size(self) -> int:
        """Bytes on disk (0 for a remote file), for the progress bar."""
        return 0 if self.url else self.path.stat().st_size


def file_kind(name: str | os.PathLike) -> str | None:
    """``"json"`` or ``"nanoaod"`` from the file name (a URL's query is ignored); None if neither."""
    name = os.fspath(name).split("?", 1)[0]
    for suffix, kind in FILE_KINDS.items():
        if name.endswith(suffix):
            return kind
    return None


def is_json(path: Path) -> bool:
    return path.name.endswith(JSON_SUFFIXES)


def is_event_file(path: Path) -> bool:
    return file_kind(path.name) is not None


def class_from_file(path: str | os.PathLike) -> str:
    """``Wjets_json.json`` -> ``Wjets``; ``TTjets.json.gz`` -> ``TTjets``; ``DY.root`` -> ``DY``."""
    name = Path(os.fspath(path).split("?", 1)[0]).name
    for suffix in EVENT_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name.endswith("_json") and len(name) > len("_json"):
        name = name[: -len("_json")]
    return name


def check_class_name(name: str, origin: str) -> str:
    if not CLASS_PATTERN.match(name):
        raise ImgenError(f"{origin}: class name {name!r} is not usable as a folder name "
                         f"(letters, digits, '_', '.', '+', '-'); name it with --class NAME=GLOB")
    problem = class_name_problem(name)
    if problem:
        raise ImgenError(f"{origin[:80]}{'...' if len(origin) > 80 else ''}: {problem} (name it with "
                         "--class NAME=GLOB)")
    return name


def _event_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_event_file(p))


def _expand_folder(folder: Path) -> list[tuple[str, Path]]:
    found = [(class_from_file(p), p) for p in _event_files(folder)]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found += [(sub.name, p) for p in _event_files(sub)]
    if not found:
        raise ImgenError(f"{folder}: folder holds no {', '.join(EVENT_SUFFIXES)} files "
                         f"(searched it and its direct sub-folders)")
    return found


def _expand(argument: str) -> list[tuple[str, Path]]:
    if URL_PATTERN.match(argument):
        if file_kind(argument) != "nanoaod":
            raise ImgenError(f"{argument}: only .root files are read by URL (through uproot)")
        return [(class_from_file(argument), _Remote(argument))]
    path = Path(argument)
    if path.is_file():
        return [(class_from_file(path), path)]
    if path.is_dir():
        return _expand_folder(path)
    matches = sorted(glob.glob(argument, recursive=True))
    if not matches:
        raise ImgenError(f"{argument}: no such file or folder, and no file matches it as a pattern")
    found: list[tuple[str, Path]] = []
    for match in map(Path, matches):
        if match.is_dir():
            found += _expand_folder(match)
        elif is_event_file(match):
            found.append((class_from_file(match), match))
    if not found:
        raise ImgenError(f"{argument}: pattern matches no {', '.join(EVENT_SUFFIXES)} file")
    return found


class _Remote(str):
    """A URL among the paths :func:`_expand` returns (kept apart from local paths)."""

    def resolve(self) -> "_Remote":
        return self


def parse_class_option(spec: str) -> tuple[str, str]:
    """``"Wjets=data/W*.json"`` -> ``("Wjets", "data/W*.json")``."""
    name, sep, pattern = spec.partition("=")
    if not sep or not name.strip() or not pattern.strip():
        raise ImgenError(f"--class {spec!r}: expected NAME=GLOB, e.g. Wjets='json/W*.json'")
    return check_class_name(name.strip(), f"--class {spec}"), pattern.strip()


def resolve_inputs(inputs: Iterable[str | os.PathLike] = (),
                   classes: Mapping[str, str | Sequence[str]] | Sequence[str] | None = None
                   ) -> list[InputFile]:
    """Files to read with their classes (rules in the module docstring).

    ``classes`` maps NAME -> GLOB (or several globs), or is a list of
    ``"NAME=GLOB"`` strings as given on the command line.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    overrides: dict[Path, tuple[str, Path]] = {}
    pairs: list[tuple[str, str]] = []
    if isinstance(classes, str):
        classes = [classes]
    if isinstance(classes, Mapping):
        for name, patterns in classes.items():
            for pattern in [patterns] if isinstance(patterns, (str, os.PathLike)) else patterns:
                pairs.append((check_class_name(name, f"class {name}"), os.fspath(pattern)))
    else:
        pairs = [parse_class_option(spec) for spec in classes or ()]
    for name, pattern in pairs:
        for _, path in _expand(pattern):
            overrides[path.resolve()] = (name, path)
    chosen: dict[Path, tuple[str, Path]] = {}
    for argument in inputs:
        for name, path in _expand(os.fspath(argument)):
            chosen.setdefault(path.resolve(), (name, path))
    chosen.update(overrides)
    if not chosen:
        raise ImgenError("no input: give JSON or ROOT files, folders or globs, or --class NAME=GLOB")
    files = []
    for name, path in chosen.values():
        if isinstance(path, _Remote):
            files.append(InputFile(check_class_name(name, path), Path(path), str(path)))
        else:
            files.append(InputFile(check_class_name(name, str(path)), path))
    return sorted(files)
