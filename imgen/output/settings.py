"""The run configuration written beside the images (``imgen-config.json``): what decides the pixels, checked on
resume so that images of different settings never mix in one folder."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Mapping

from imgen.errors import ImgenError
from imgen.output.images import atomic_write_bytes

CONFIG_NAME = "imgen-config.json"


def write_run_counts(out: str | os.PathLike, counts: Mapping[str, object]) -> Path:
    """Add what the last run left out (objects outside eta, duplicate events) to ``imgen-config.json``."""
    path = Path(out) / CONFIG_NAME
    record = json.loads(path.read_text(encoding="utf-8"))
    record["last_run"] = dict(counts)
    atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path


def fingerprint(pixels: Mapping[str, object]) -> str:
    """Stable digest of everything that decides pixels."""
    text = json.dumps(pixels, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def check_and_write_config(out: str | os.PathLike, config: Mapping[str, object], pixels: Mapping[str, object],
                           overwrite: bool) -> Path:
    """Refuse to mix images of different settings in ``out``; then record ``config``.

    ``pixels`` is the part of the configuration that changes images (render
    settings, object cuts); split fractions and seed may change freely.
    """
    out = Path(out)
    path = out / CONFIG_NAME
    digest = fingerprint(pixels)
    if path.is_file() and not overwrite:
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ImgenError(f"{path}: unreadable run configuration ({exc}); remove it or use --overwrite") from None
        if previous.get("fingerprint") != digest:
            before, now = previous.get("pixels", {}), dict(pixels)
            changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            raise ImgenError(f"{out}: holds images rendered with other settings (changed: "
                             f"{', '.join(changed) or 'renderer version'}); use --overwrite to re-render "
                             f"them, or another --out")
    record = {**config, "pixels": dict(pixels), "fingerprint": digest}
    atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path
