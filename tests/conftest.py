"""Shared test fixtures: paths to the team's real fixtures and a generated sample."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"

# Keep TensorFlow quiet and single-threaded enough to share 2 cores with xdist.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """``../shared/fixtures`` beside the checkout (CI lays it there)."""
    assert SHARED_FIXTURES.is_dir(), f"expected the shared fixtures at {SHARED_FIXTURES}"
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def cms_short_json(shared_fixtures: Path) -> Path:
    """A real CMS open-data JSON file with four events (no met_phi)."""
    return shared_fixtures / "cms_json" / "short.json"


@pytest.fixture(scope="session")
def python() -> str:
    """The interpreter running the tests, for subprocess CLI checks."""
    return sys.executable
