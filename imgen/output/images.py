"""A dataset's image files: their names, how one is written, when one is complete, and the rule every
reader applies to them.

* Names: ``OUT/<class>/<class>_<event>.png`` (:func:`image_relpath`, the one place that spells it).
* Writes: a staged image is written directly (:func:`write_staged`; it reaches its class folder by rename),
  other files through a temporary name starting with :data:`TMP_PREFIX` (:func:`atomic_write_bytes`), which the
  next run removes if a killed one left it.
* The reading rule (:func:`check_images`), applied by every reader (``augment``, ``transfer``): every image is
  opened and its chunks checked (Pillow ``verify``), its mode must be one ``tf.io.decode_png`` turns into a
  known channel count, and all images must share one size and channel count. ``augment`` applies it to every
  image it copies before it writes anything, so that it never produces a folder ``transfer`` refuses.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

from imgen.atomic import write_atomic
from imgen.errors import ImgenError

#: Temporary files of a rendering run in ``OUT`` start with this (spooled manifests, HDF5, configuration).
TMP_PREFIX = ".tmp-"
#: Pillow image modes accepted, and the channels ``tf.io.decode_png`` returns for them.
DECODED_CHANNELS = {"L": 1, "LA": 1, "RGB": 3, "RGBA": 3, "P": 3}


def check_images(paths: Sequence[str | os.PathLike]) -> tuple[int, int, int]:
    """Read every PNG's header (and chunk checksums); return the common decoded (height, width, channels).

    Raises:
        ImgenError: naming the file, for an unreadable, corrupt or non-PNG
            file, an unsupported mode, or sizes/channel counts that differ.
    """
    from PIL import Image, UnidentifiedImageError

    if not paths:
        raise ImgenError("no images to read")
    kinds: dict[tuple, list] = {}
    for path in paths:
        try:
            with Image.open(path) as image:
                fmt, (width, height), mode = image.format, image.size, image.mode
                image.verify()
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
            raise ImgenError(f"{path}: not a readable PNG image ({exc})") from None
        if fmt != "PNG":
            raise ImgenError(f"{path}: is a {fmt} image, expected PNG")
        if mode not in DECODED_CHANNELS:
            raise ImgenError(f"{path}: PNG mode {mode!r} is not supported; expected 8-bit "
                             "grayscale (L) or RGB")
        kinds.setdefault((height, width, Image.getmodebands(mode)), []).append(path)
    if len(kinds) > 1:
        ordered = sorted(kinds.items(), key=lambda item: -len(item[1]))
        described = "; ".join(f"{len(p)} are {h}x{w} px with {b} channel(s) (e.g. {p[0]})"
                              for (h, w, b), p in ordered[:4])
        raise ImgenError(f"images must all have the same size and channel count, but {described}")
    (height, width, _), members = next(iter(kinds.items()))
    with Image.open(members[0]) as image:
        return height, width, DECODED_CHANNELS[image.mode]


#: Bytes of a class name at most: image files are ``<class>_<event>.png``, file systems allow 255 bytes per
#: name, and an event number has up to 20 digits (the class folder and staging names use it too).
MAX_CLASS_NAME_BYTES = 200


def class_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a class's images (too long for a file name), or None."""
    size = len(name.encode("utf-8"))
    if size > MAX_CLASS_NAME_BYTES:
        return (f"class name {name[:24]!r}... is {size} bytes long, but its images are named <class>_<event>.png "
                f"and file systems allow 255 bytes per name: use a class name of at most {MAX_CLASS_NAME_BYTES}")
    return None


def image_name(class_name: str, event_id: str) -> str:
    """``Wjets_10924.png``: the file name of an event's image, in its class folder."""
    return f"{class_name}_{event_id}.png"


def image_relpath(class_name: str, event_id: str) -> str:
    """``Wjets/Wjets_10924.png``: relative to the dataset root, forward slashes."""
    return f"{class_name}/{image_name(class_name, event_id)}"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder."""
    write_atomic(path, data, prefix=TMP_PREFIX)


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def is_complete_png(path: str | os.PathLike) -> bool:
    """True if the file starts with the PNG signature and ends with its IEND chunk."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            handle.seek(0, os.SEEK_END)
            if handle.tell() < 8 + len(_PNG_END):
                return False
            handle.seek(-len(_PNG_END), os.SEEK_END)
            return head == b"\x89PNG\r\n\x1a\n" and handle.read() == _PNG_END
    except OSError:
        return False


def write_staged(path: str, data: bytes) -> None:
    """Write a file in a staging folder: directly (it is moved into place later)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def class_folder_pngs(out: Path) -> Iterator[Path]:
    """The PNGs of ``OUT/<class>/`` folders, sorted (hidden files and folders left out)."""
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        yield from sorted(p for p in folder.glob("*.png") if not p.name.startswith("."))
