"""Test fixtures: the real CMS sample shipped in ``tests/data`` (see its README) and helpers."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real data shipped with the repository, so a fresh clone tests itself (origins in tests/data/README.md).
TEST_DATA = Path(__file__).resolve().parent / "data"
CMS_SHORT_JSON = TEST_DATA / "cms_json" / "short.json"

# Subprocesses and notebook kernels import this checkout, not another installation of the packages
# (an editable install of another clone would otherwise be what scripts/demo.py and the notebooks test).
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)

# Keep TensorFlow quiet and single-threaded enough to share 2 cores with xdist.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


def installed(*modules: str) -> bool:
    """Whether every one of ``modules`` imports (an optional extra, e.g. export's onnx, tf2onnx, hls4ml)."""
    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def cms_short_json() -> Path:
    """A real CMS open-data JSON file with four events (no met_phi), from ``tests/data``."""
    assert CMS_SHORT_JSON.is_file(), f"expected the bundled sample at {CMS_SHORT_JSON}"
    return CMS_SHORT_JSON


@pytest.fixture(scope="session")
def python() -> str:
    """The interpreter running the tests, for subprocess CLI checks."""
    return sys.executable
