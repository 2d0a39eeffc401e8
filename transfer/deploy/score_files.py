"""Score files of ``python -m transfer predict --out``: one writer per suffix, every one atomic.

:data:`SCORE_FORMATS` maps the suffix of ``--out`` to its :class:`ScoreFormat`,
so a new format is one entry, and an unknown suffix is refused before any
scoring (:func:`score_format`). CSV and Parquet hold predict's table as it is
(one row per input, sorted by path); ROOT holds the event table of
:func:`transfer.deploy.event_identity.event_table` (one entry per entry of each
source file, in its order), so that it can be added as a friend tree of the
input NanoAOD, as weaver-core's ``--predict-output x.root`` is used.

ROOT layout: tree ``Events`` with ``scored`` (bool: 0 for entries without an
image or not given to predict, whose scores are NaN), ``score_<class>``
(float32; class names turned into valid branch names by
:func:`branch_name`), ``predicted_class``, ``path``, ``source`` (strings),
``entry`` (the entry in the source file), and ``run``, ``luminosityBlock``
(uint32) and ``event`` (uint64) as NanoAOD has them. A column missing in some
rows is written as int64 with -1 there, or as a string when its values are
not all integers (JSON event numbers); a column missing in every row is left out.
Files are written under a temporary name beside ``--out`` and renamed when
complete, so an error leaves nothing half-written.
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from imgen import atomic
from transfer.errors import TransferError

#: Permissions of a score file: as any file the user writes (the umask decides).
PERMISSIONS = 0o666 & ~atomic.UMASK
ROOT_TREE = "Events"
#: column -> branch type where every value is present (NanoAOD's types for the event identity)
ROOT_TYPES = {"run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64, "entry": np.int64,
              "scored": np.bool_}
PARQUET_ENGINES = ("pyarrow", "fastparquet")


def _nothing(path: Path) -> None:
    return None


@dataclass(frozen=True)
class ScoreFormat:
    """How one suffix is written: ``write(table, path)``, and ``check(path)`` before any scoring.

    ``events``: the writer takes the event table (:mod:`transfer.deploy.event_identity`), not predict's."""

    write: Callable
    check: Callable = _nothing
    events: bool = False


def write_csv(table, path: Path) -> None:
    from transfer.files import write_text_atomic

    write_text_atomic(path, table.to_csv(index=False, float_format="%.9g"))


def check_parquet_engine(path: Path) -> None:
    """Parquet needs pyarrow or fastparquet, which are not dependencies: say so before scoring."""
    if not any(importlib.util.find_spec(engine) for engine in PARQUET_ENGINES):
        raise TransferError(f"--out {path}: writing Parquet needs pyarrow, which is not installed: "
                            "pip install pyarrow (or write .csv or .root)")


def write_parquet(table, path: Path) -> None:
    check_parquet_engine(path)
    with atomic.atomic_path(path, prefix=f".{path.name}-", suffix=".parquet", permissions=PERMISSIONS) as tmp:
        table.to_parquet(tmp, index=False)


def branch_name(column: str) -> str:
    """``column`` as a ROOT branch name usable in TTree::Draw and RDataFrame: every character other than
    letters, digits and ``_`` becomes ``_`` (class ``tt+jets`` gives ``score_tt_jets``)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", column)
    return name if not name[0].isdigit() else "_" + name


def _root_branch(column: str, values) -> object | None:
    """One column as what uproot writes: numbers as ``ROOT_TYPES`` says, strings, or None (all missing)."""
    import awkward as ak

    if values.dtype.kind == "f":
        return values.to_numpy(dtype=np.float32)
    present = [v for v in values.tolist() if v is not None]
    if not present:
        return None
    if all(isinstance(v, (bool, int, np.integer, np.bool_)) for v in present):
        if len(present) == len(values):
            return np.asarray(values.tolist(), dtype=ROOT_TYPES.get(column, np.int64))
        return np.array([-1 if v is None else v for v in values.tolist()], dtype=np.int64)
    return ak.Array(["" if v is None else str(v) for v in values.tolist()])


def write_root(table, path: Path) -> None:
    """Tree ``Events`` of the event table (layout in the module docstring)."""
    import uproot

    branches: dict[str, object] = {}
    origin: dict[str, str] = {}
    for column in table.columns:
        name = branch_name(column)
        if name in origin:
            raise TransferError(f"--out {path}: columns {origin[name]!r} and {column!r} both become branch "
                                f"{name!r}; rename a class (letters, digits and _ only)")
        origin[name] = column
        branch = _root_branch(column, table[column])
        if branch is not None:
            branches[name] = branch
    with atomic.atomic_path(path, prefix=f".{path.name}-", suffix=".root", permissions=PERMISSIONS) as tmp:
        with uproot.recreate(tmp) as handle:   # mktree: assigning a dict writes an RNTuple, not a TTree
            types = {k: v.dtype if isinstance(v, np.ndarray) else v.type.content for k, v in branches.items()}
            handle.mktree(ROOT_TREE, types).extend(branches)


#: suffix of ``--out`` (lower case) -> its format
SCORE_FORMATS: dict[str, ScoreFormat] = {
    ".csv": ScoreFormat(write_csv),
    ".parquet": ScoreFormat(write_parquet, check=check_parquet_engine),
    ".root": ScoreFormat(write_root, events=True),
}


def score_format(path: str | os.PathLike) -> ScoreFormat:
    """The format of ``path`` by its suffix, checked (writable folder, its library there) before any scoring."""
    from transfer.files import check_output_file

    path = check_output_file(path)
    found = SCORE_FORMATS.get(path.suffix.lower())
    if found is None:
        what = f"unknown suffix {path.suffix!r}" if path.suffix else "no suffix"
        raise TransferError(f"--out {path}: {what}; scores are written as {', '.join(SCORE_FORMATS)} (the suffix "
                            "names the format)")
    found.check(path)
    return found


def write_scores(table, path: str | os.PathLike, model_path: str | os.PathLike) -> tuple[int, list[str]]:
    """Write predict's ``table`` (scores of the run at ``model_path``) to ``path`` in the format of its suffix.

    Returns the number of rows written and notes on the events (ROOT: which
    events were identified and how), one line each.
    """
    path = Path(path)
    fmt = score_format(path)
    notes: list[str] = []
    if fmt.events:
        from transfer.deploy.event_identity import event_table

        events = event_table(model_path, table)
        table, notes = events.table, events.notes
    fmt.write(table, path)
    return len(table), notes
