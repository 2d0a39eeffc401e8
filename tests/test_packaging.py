"""hepvision installs and runs without the repository: ``python -m build`` makes a wheel and an sdist, and the
wheel, installed into a fresh virtual environment outside the checkout, renders events and trains a network.

Why: every other test imports the checkout (``tests/conftest.py`` puts it on ``PYTHONPATH``), so a module or
data file that the wheel leaves out (``package_data``), or code that finds files through the repository
layout, would pass the whole suite and fail for every user who installs the wheel.

Kept fast (about 15-25 s, most of it TensorFlow starting for the one training epoch): the build runs
``--no-isolation`` (the running environment's setuptools, no download), the fresh environment gets no pip of
its own (the running pip installs into it with ``--python``), and the dependencies are the running
interpreter's, made visible by a ``.pth`` file instead of being installed again.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import CMS_SHORT_JSON, REPO_ROOT

pytest.importorskip("build")  # the dev extra

PACKAGES = ("imgen", "augment", "transfer")
#: What a checkout holds that the build reads: setup.py reads README.md (long description) and imgen/VERSION.
SOURCE_FILES = ("setup.py", "pyproject.toml", "README.md")
VERSION = (REPO_ROOT / "imgen" / "VERSION").read_text().strip()
#: The exit status of a training run whose network learned nothing: one epoch on 80 tiny images may be that,
#: and it still writes the whole run folder, which is what this test is about (tests/transfer check learning).
EXIT_COLLAPSED = 3


def _run(command, *, cwd, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output (not just an exit status) when it fails."""
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, command))} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _package_files(root: Path) -> set[str]:
    """Every file of the three packages under ``root`` (no bytecode), as POSIX paths relative to ``root``."""
    return {p.relative_to(root).as_posix() for package in PACKAGES for p in (root / package).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")}


def _dependency_dirs() -> list[str]:
    """The running interpreter's site-packages folders (never the checkout): where TensorFlow, Keras, NumPy ...
    already are. Listed in a .pth file as plain paths, so the .pth files inside them (an editable install of
    hepvision among them) are not run and cannot put a checkout on the path."""
    found = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    dirs = []
    for entry in found:
        path = Path(entry).resolve()
        if path.is_dir() and path != REPO_ROOT and str(path) not in dirs:
            dirs.append(str(path))
    return dirs


def _fresh_env(home: Path) -> dict[str, str]:
    """The environment of the fresh venv's commands: nothing pointing at the checkout or at another venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH")}
    env.update(PYTHONNOUSERSITE="1", KERAS_HOME=str(home / "keras"), MPLCONFIGDIR=str(home / "mpl"),
               MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="3")
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel, built by ``python -m build`` (wheel from the sdist, as PyPI users get it) from a
    copy of the checkout's packaging files, so the build leaves no build/ or egg-info/ in the repository."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    source.mkdir()
    for name in SOURCE_FILES:
        shutil.copy2(REPO_ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", root / "dist", source], cwd=root)
    sdists = list((root / "dist").glob("hepvision-*.tar.gz"))
    wheels = list((root / "dist").glob("hepvision-*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in (root / "dist").iterdir())
    return {"root": root, "source": source, "sdist": sdists[0], "wheel": wheels[0]}


@pytest.mark.slow
def test_sdist_and_wheel_hold_everything_and_carry_the_one_version(built):
    source_files = _package_files(built["source"])
    assert "imgen/VERSION" in source_files
    assert built["wheel"].name == f"hepvision-{VERSION}-py3-none-any.whl"
    assert built["sdist"].name == f"hepvision-{VERSION}.tar.gz"

    with zipfile.ZipFile(built["wheel"]) as wheel:
        in_wheel = set(wheel.namelist())
        metadata = wheel.read(f"hepvision-{VERSION}.dist-info/METADATA").decode()
        entry_points = wheel.read(f"hepvision-{VERSION}.dist-info/entry_points.txt").decode()
    # every module and data file of the packages: a data file not declared in package_data fails here
    assert sorted(source_files - in_wheel) == []
    assert f"\nVersion: {VERSION}\n" in metadata and "Provides-Extra: cpu" in metadata
    assert all(f"hepvision-{name}" in entry_points for name in PACKAGES)

    top = f"hepvision-{VERSION}"
    with tarfile.open(built["sdist"]) as sdist:
        in_sdist = {name.removeprefix(top + "/") for name in sdist.getnames()}
    assert {"README.md", "setup.py", "pyproject.toml", "PKG-INFO"} <= in_sdist
    assert sorted(source_files - in_sdist) == []


@pytest.mark.slow
def test_wheel_installed_outside_the_repository_renders_and_trains(built, tmp_path):
    pytest.importorskip("keras")
    venv = tmp_path / "venv"
    env = _fresh_env(tmp_path)
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    # the fresh environment here too: with the checkout on PYTHONPATH (tests/conftest.py), pip finds the editable
    # install's hepvision.egg-info there, says "already satisfied" and installs nothing
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--no-cache-dir",
          "--disable-pip-version-check", "--quiet", built["wheel"]], cwd=tmp_path, env=env)
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=tmp_path).stdout.strip())
    deps = _dependency_dirs()
    assert deps, "no site-packages folder of the running interpreter found"
    (purelib / "_hepvision_test_dependencies.pth").write_text("\n".join(deps) + "\n")

    work = tmp_path / "work"  # the current folder of every command: empty, nothing of the checkout in it
    work.mkdir()

    def fresh(*args, timeout=300):
        return _run([python, *args], cwd=work, env=env, timeout=timeout)

    where = json.loads(fresh("-c", "import json, sys, importlib.metadata as m, imgen, augment, transfer; "
                                   "print(json.dumps({'modules': [imgen.__file__, augment.__file__, transfer.__file__], "
                                   "'version': imgen.__version__, 'dist': m.version('hepvision'), "
                                   "'dist_path': str(m.distribution('hepvision').locate_file('')), "
                                   "'path': sys.path}))").stdout)
    for module in where["modules"]:
        assert Path(module).resolve().is_relative_to(purelib.resolve()), (module, where["path"])
    assert Path(where["dist_path"]).resolve() == purelib.resolve()
    assert where["version"] == where["dist"] == VERSION
    assert not any(entry and Path(entry).resolve() == REPO_ROOT for entry in where["path"]), where["path"]

    # toy events of two classes (the bundled sample has one), rendered, then one epoch of a tiny network on them;
    # the training (mostly TensorFlow starting) runs while the quick checks below do
    fresh("-m", "imgen", "synth", "--out", "events", "--events", "40", "--classes", "TTjets,Wjets", "--compact")
    fresh("-m", "imgen", "events", "--out", "images", "--size", "16", "--workers", "1", "--no-progress")
    training = subprocess.Popen([python, "-m", "transfer", "--data", "images", "--backbone", "mlp", "--epochs", "1",
                                 "--patience", "0", "--baseline", "none", "--verbose", "0", "--seed", "1",
                                 "--out", "run"], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        for package in PACKAGES:
            assert fresh("-m", package, "--help").stdout.startswith("usage:")
            script = _run([venv / "bin" / f"hepvision-{package}", "--version"], cwd=work, env=env)
            assert script.stdout.strip() == f"hepvision {VERSION}"
        # the bundled real CMS sample, rendered small
        (work / "cms").mkdir()
        shutil.copy2(CMS_SHORT_JSON, work / "cms" / CMS_SHORT_JSON.name)
        fresh("-m", "imgen", "cms", "--out", "cms_images", "--size", "16", "--workers", "1", "--no-progress")
        assert len(list((work / "cms_images").glob("*/*.png"))) == 4
        assert (work / "cms_images" / "manifest.csv").is_file()
        out, err = training.communicate(timeout=600)
    finally:
        if training.poll() is None:
            training.kill()
            training.communicate()
    assert training.returncode in (0, EXIT_COLLAPSED), out + err
    assert "Traceback" not in err, err
    for name in ("model.keras", "metrics.json", "report.md", "config.yaml"):
        assert (work / "run" / name).is_file(), name
