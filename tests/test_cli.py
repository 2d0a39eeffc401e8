"""The three commands start from a fresh install: --help explains, --version answers."""
from __future__ import annotations

import re
import subprocess

import pytest

from imgen import __version__

COMMANDS = ("imgen", "augment", "transfer")
HELP_WITHOUT_TENSORFLOW = """
import runpy, sys
sys.argv = [{package!r}, "--help"]
try:
    runpy.run_module({package!r}, run_name="__main__")
except SystemExit as done:
    assert done.code in (0, None), done.code
print("TENSORFLOW-IMPORTED" if "tensorflow" in sys.modules else "TENSORFLOW-NOT-IMPORTED")
"""


def unexplained_options(help_text: str) -> list[str]:
    """Options in argparse's help whose entry carries no explanation."""
    lines = help_text.splitlines()
    missing = []
    for i, line in enumerate(lines):
        match = re.match(r"^  (-{1,2}[\w-]+)", line)
        if not match:
            continue
        same_line = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        following = lines[i + 1] if i + 1 < len(lines) else ""
        explained_below = following.startswith(" " * 8) and not following.strip().startswith("-")
        if len(same_line) < 2 and not explained_below:
            missing.append(match.group(1))
    return missing


@pytest.mark.parametrize("package", COMMANDS)
def test_help_explains_every_option(package: str, python: str):
    done = subprocess.run([python, "-m", package, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")
    assert "--version" in done.stdout
    assert unexplained_options(done.stdout) == []


def test_unexplained_option_detector_can_fail():
    text = "options:\n  --explained N  does a thing\n  --bare\n  --other  fine\n"
    assert unexplained_options(text) == ["--bare"]


@pytest.mark.parametrize("package", COMMANDS)
def test_help_does_not_import_tensorflow(package: str, python: str):
    done = subprocess.run([python, "-c", HELP_WITHOUT_TENSORFLOW.format(package=package)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("TENSORFLOW-NOT-IMPORTED")


@pytest.mark.parametrize("package", COMMANDS)
def test_version_prints_the_package_version(package: str, python: str):
    done = subprocess.run([python, "-m", package, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"hepvision {__version__}"


def test_version_comes_from_the_installed_distribution():
    from importlib.metadata import version

    assert version("hepvision") == __version__
