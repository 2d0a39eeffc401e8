"""Where an image came from, stored inside the PNG, so that resume can trust what it reuses.

Each PNG that ``imgen`` writes carries one ``tEXt`` chunk, keyword
``hepvision``, right after its header: JSON with the ``source`` file (resolved
path), the ``event`` number and the ``fingerprint`` of the settings that
decide pixels (:func:`imgen.output.settings.fingerprint`). A resumed run reuses an
existing image only when all three match the event it would render; a file
that exists is not proof that it is the right image. Readers (Pillow,
``tf.io.decode_png``) ignore the chunk.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from typing import Mapping

KEYWORD = b"hepvision"
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_AFTER_IHDR = 8 + 8 + 13 + 4          # signature, IHDR length+type, IHDR data, CRC
_READ_LIMIT = 64 * 1024


def provenance(source: str, event: str, fingerprint: str) -> dict[str, str]:
    """The record of one image: resolved source path, event number, settings fingerprint."""
    return {"source": os.path.realpath(source), "event": str(event), "fingerprint": fingerprint}


def with_provenance(png: bytes, record: Mapping[str, str]) -> bytes:
    """``png`` with the ``hepvision`` tEXt chunk holding ``record`` inserted after IHDR."""
    if png[:8] != _SIGNATURE or png[12:16] != b"IHDR":
        raise ValueError("not a PNG with an IHDR chunk first")
    data = KEYWORD + b"\x00" + json.dumps(dict(record), sort_keys=True, ensure_ascii=True).encode("ascii")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return png[:_AFTER_IHDR] + chunk + png[_AFTER_IHDR:]


def without_provenance(png: bytes) -> bytes:
    """``png`` without its ``hepvision`` chunk: the bytes of the image alone (what encode_png wrote)."""
    if png[:8] != _SIGNATURE or png[_AFTER_IHDR + 4:_AFTER_IHDR + 8] != b"tEXt":
        return png
    length = struct.unpack(">I", png[_AFTER_IHDR:_AFTER_IHDR + 4])[0]
    if not png[_AFTER_IHDR + 8:_AFTER_IHDR + 8 + length].startswith(KEYWORD + b"\x00"):
        return png
    return png[:_AFTER_IHDR] + png[_AFTER_IHDR + 12 + length:]


def read_provenance(path: str | os.PathLike) -> dict[str, str] | None:
    """The record of the PNG at ``path``, or None (no record, not a PNG, unreadable)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_READ_LIMIT)
    except OSError:
        return None
    if head[:8] != _SIGNATURE:
        return None
    offset = 8
    while offset + 8 <= len(head):
        length, kind = struct.unpack(">I4s", head[offset:offset + 8])
        if kind in (b"IDAT", b"IEND"):
            return None
        data = head[offset + 8:offset + 8 + length]
        if kind == b"tEXt" and data.startswith(KEYWORD + b"\x00"):
            try:
                record = json.loads(data[len(KEYWORD) + 1:].decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                return None
            return record if isinstance(record, dict) else None
        offset += 12 + length
    return None


def describe(record: Mapping[str, str] | None) -> str:
    """``file.json event 12`` for messages; what a PNG without a record is."""
    if not record:
        return "an image without imgen's record of its source (written by another tool or an earlier imgen version)"
    return f"{record.get('source')} event {record.get('event')}"
