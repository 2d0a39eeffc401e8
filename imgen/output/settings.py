"""The run configuration written beside the images (``imgen-config.json``): what decides the pixels, checked on
resume so that images of different settings never mix in one folder."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Mapping

from imgen.errors import ImgenError
from imgen.output.images import atomic_write_bytes, class_folder_pngs
from imgen.output.staging import STAGING

CONFIG_NAME = "imgen-config.json"


def holds_rendered_output(out: str | os.PathLike) -> bool:
    """Whether ``out`` holds anything a run rendered (images, staged images, a manifest, an HDF5 file): what
    its ``imgen-config.json`` describes. A configuration without any is stale (a run that failed first)."""
    out = Path(out)
    if not out.is_dir():
        return False
    if any(out.glob("manifest*.csv")) or any(out.glob("images*.h5")) or any((out / STAGING).glob("*/*/*.png")):
        return True
    return next(class_folder_pngs(out), None) is not None


def discard_stale_config(out: str | os.PathLike) -> bool:
    """Remove ``imgen-config.json`` when ``out`` holds nothing it describes (after a failed run); returns
    whether it was removed."""
    path = Path(out) / CONFIG_NAME
    if path.is_file() and not holds_rendered_output(out):
        path.unlink(missing_ok=True)
        return True
    return False


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
    settings, object cuts); split fractions and seed may change freely. A
    configuration that describes nothing (:func:`holds_rendered_output`) is replaced.
    """
    out = Path(out)
    path = out / CONFIG_NAME
    digest = fingerprint(pixels)
    if path.is_file() and not overwrite:
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ImgenError(f"{path}: unreadable run configuration ({exc}); remove it or use --overwrite") from None
        if previous.get("fingerprint") != digest and holds_rendered_output(out):
            before, now = previous.get("pixels", {}), dict(pixels)
            changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            raise ImgenError(f"{out}: holds images rendered with other settings (changed: "
                             f"{', '.join(changed) or 'renderer version'}); use --overwrite to re-render "
                             f"them, or another --out")
    record = {**config, "pixels": dict(pixels), "fingerprint": digest}
    atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path
