"""The one rule for a dataset's PNG files, applied by every reader (``augment``, ``transfer``).

Every image is opened and its chunks checked (Pillow ``verify``), its mode
must be one ``tf.io.decode_png`` turns into a known channel count, and all
images must share one size and channel count. ``augment`` applies it to every
image it copies before it writes anything, so that it never produces a folder
``transfer`` refuses.
"""
from __future__ import annotations

import os
from typing import Sequence

from imgen.errors import ImgenError

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
