"""Which JSON files to read, and the class of each.

The class of an event comes from its file, by these rules (first match wins):

1. ``--class NAME=GLOB`` (``classes={"NAME": "GLOB"}`` in Python): every file
   the pattern matches is of class NAME, whatever its name or folder; a
   pattern that matches a folder takes that folder's JSON files.
2. A file argument (or a file a glob matches): the file name's stem, without
   ``.json``/``.json.gz`` and without a trailing ``_json``
   (``Wjets_json.json`` gives ``Wjets``).
3. A folder argument: its direct ``*.json`` files are classed by their own
   stems (rule 2), and the JSON files in its direct sub-folders by the
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

JSON_SUFFIXES = (".json", ".json.gz")
CLASS_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")


@dataclass(frozen=True, order=True)
class InputFile:
    """One JSON file and the class of all its events."""

    class_name: str
    path: Path


def is_json(path: Path) -> bool:
    return path.name.endswith(JSON_SUFFIXES)


def class_from_file(path: str | os.PathLike) -> str:
    """``Wjets_json.json`` -> ``Wjets``; ``TTjets.json.gz`` -> ``TTjets``."""
    name = Path(path).name
    for suffix in JSON_SUFFIXES[::-1]:
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
    return name


def _json_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_json(p))


def _expand_folder(folder: Path) -> list[tuple[str, Path]]:
    found = [(class_from_file(p), p) for p in _json_files(folder)]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found += [(sub.name, p) for p in _json_files(sub)]
    if not found:
        raise ImgenError(f"{folder}: folder holds no {' or '.join(JSON_SUFFIXES)} files "
                         f"(searched it and its direct sub-folders)")
    return found


def _expand(argument: str) -> list[tuple[str, Path]]:
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
        elif is_json(match):
            found.append((class_from_file(match), match))
    if not found:
        raise ImgenError(f"{argument}: pattern matches no {' or '.join(JSON_SUFFIXES)} file")
    return found


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
        raise ImgenError("no input: give JSON files, folders or globs, or --class NAME=GLOB")
    files = []
    for name, path in chosen.values():
        files.append(InputFile(check_class_name(name, str(path)), path))
    return sorted(files)
