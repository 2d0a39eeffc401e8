"""Issue 11, the data side: imgen and augment cases run as a user would, through their commands.

Each test asserts the message (naming the file and the problem), the exit status, and that
nothing partial or stale is left. Real JSON events, real PNGs, tiny sizes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augment.__main__ import main as augment_main
from imgen.__main__ import main as imgen_main
from imgen.manifest import read_manifest, write_manifest
from tests.conftest import CMS_SHORT_JSON


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def _dataset(root: Path, per_class: int = 6, size: int = 8) -> Path:
    """Two classes of RGB PNGs with a manifest (train, validation, test)."""
    rng = np.random.default_rng(0)
    rows = []
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            path = f"{name}/{name}_{i}.png"
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / path)
            split = "train" if i < per_class - 2 else ("validation" if i == per_class - 2 else "test")
            rows.append({"path": path, "class": name, "event": str(i), "source": "s.json", "split": split})
    write_manifest(root, rows)
    return root


# --- augment -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["grayscale", "truncated"])
def test_augment_checks_validation_and_test_images_before_writing(tmp_path, capsys, damage):
    data = _dataset(tmp_path / "images")
    held = next(r["path"] for r in read_manifest(data) if r["split"] == "test")
    if damage == "grayscale":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(data / held)
    else:
        raw = (data / held).read_bytes()
        (data / held).write_bytes(raw[: len(raw) // 2])
    out = tmp_path / "aug"
    assert augment_main([str(data), "--out", str(out), "--no-progress"]) == 2
    err = _error(capsys)
    assert held in err and ("channel" in err if damage == "grayscale" else "not a readable PNG" in err)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".aug")]


# --- imgen options -------------------------------------------------------------------------------------

def test_absurd_shard_counts_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert imgen_main([str(CMS_SHORT_JSON), "--out", str(out), "--shard", "0/99999999999999999999",
                       "--no-progress"]) == 2
    assert "--shard" in _error(capsys) and not out.exists()
