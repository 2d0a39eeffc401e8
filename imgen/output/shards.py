"""Shards of a batch farm: each writes ``manifest-shard-I-of-N.csv``; ``merge-shards`` checks them all and joins
them into ``manifest.csv``."""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from imgen.errors import ImgenError
from imgen.output.images import class_folder_pngs
from imgen.output.manifest import COLUMNS, MANIFEST_NAME, SPLITS, write_manifest

_SHARD_MANIFEST = re.compile(r"manifest-shard-(\d+)-of-(\d+)\.csv\Z")


def shard_suffix(shard: tuple[int, int] | None) -> str:
    return "" if shard is None else f"-shard-{shard[0]}-of-{shard[1]}"


def manifest_name(shard: tuple[int, int] | None) -> str:
    return MANIFEST_NAME if shard is None else f"manifest{shard_suffix(shard)}.csv"


def check_shard_manifest(out: Path, path: Path, index: int, total: int) -> list[dict[str, str]]:
    """The rows of one shard manifest, verified: complete, parseable, every image present, every image listed.

    A shard cut short (a copy interrupted, a full disk) may end on a line
    boundary and still parse; that is caught by the last check: every PNG in
    the class folders whose (class, event) falls in this shard must be listed.
    """
    from imgen.split import assign_shard

    where = f"merge-shards: shard {index} of {total} ({path})"
    raw = path.read_bytes()
    if not raw.endswith(b"\n"):
        raise ImgenError(f"{where}: ends in the middle of a line (cut short); render that shard again")
    try:
        rows = list(csv.DictReader(raw.decode("utf-8").splitlines()))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImgenError(f"{where}: not a readable manifest ({exc}); render that shard again") from None
    if not rows or any(c not in rows[0] for c in COLUMNS):
        raise ImgenError(f"{where}: no rows or missing columns; render that shard again")
    listed = set()
    for number, row in enumerate(rows, start=2):
        if row.get("split") not in SPLITS or not row.get("path") or None in row.values() or None in row:
            raise ImgenError(f"{where}, line {number}: incomplete row {row!r}; render that shard again")
        if not (out / row["path"]).is_file():
            raise ImgenError(f"{where}, line {number}: image {row['path']} does not exist; render that shard again")
        listed.add(row["path"])
    for png in class_folder_pngs(out):
        name = png.parent.name
        event = png.stem[len(name) + 1:] if png.stem.startswith(name + "_") else None
        if event and assign_shard(event, name, total) == index and png.relative_to(out).as_posix() not in listed:
            raise ImgenError(f"{where}: does not list {png.relative_to(out).as_posix()}, which belongs to this "
                             "shard (the manifest is cut short); render that shard again")
    return rows


def merge_shard_manifests(out: str | os.PathLike) -> Path:
    """Join ``manifest-shard-I-of-N.csv`` of all N shards into ``manifest.csv``.

    Refuses when a shard is missing, counts disagree, a shard manifest fails
    :func:`check_shard_manifest`, or two rows name the same image. The shard
    manifests are kept.
    """
    out = Path(out)
    found: dict[int, Path] = {}
    counts = set()
    for path in sorted(out.glob("manifest-shard-*-of-*.csv")):
        m = _SHARD_MANIFEST.match(path.name)
        if m:
            found[int(m[1])] = path
            counts.add(int(m[2]))
    if not found:
        raise ImgenError(f"{out}: no manifest-shard-I-of-N.csv to merge")
    if len(counts) != 1:
        raise ImgenError(f"{out}: shard manifests of different shard counts {sorted(counts)}")
    total = counts.pop()
    missing = sorted(set(range(total)) - set(found))
    if missing:
        raise ImgenError(f"{out}: shard(s) {', '.join(map(str, missing))} of {total} have no manifest yet")

    checked = [check_shard_manifest(out, found[index], index, total) for index in range(total)]
    seen: dict[str, int] = {}
    for index, rows in enumerate(checked):
        for row in rows:
            if row["path"] in seen:
                raise ImgenError(f"{found[index]}: image {row['path']} is also in shard {seen[row['path']]}")
            seen[row["path"]] = index
    with found[0].open(newline="", encoding="utf-8") as handle:
        columns = next(csv.reader(handle), None) or list(COLUMNS)  # NanoAOD shards add run, lumi
    return write_manifest(out, (row for rows in checked for row in rows), columns)
