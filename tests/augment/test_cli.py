"""python -m augment: help, version, a real run and the error path, through a subprocess and main()."""
import csv
import subprocess
import sys

import numpy as np
from PIL import Image

from augment.__main__ import main
from augment.pipeline import OPERATIONS, PRESETS
from imgen._version import __version__
from imgen.output.manifest import write_manifest
from tests.conftest import REPO_ROOT

ROOT = REPO_ROOT


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "augment", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def small_dataset(root):
    rows = []
    for name in ("qcd", "top"):
        (root / name).mkdir(parents=True)
        for event, split in enumerate(("train", "train", "validation", "test")):
            array = np.zeros((32, 32), dtype=np.uint8)
            array[event * 5:event * 5 + 3, 10:12] = 200
            path = f"{name}/{name}_{event}.png"
            Image.fromarray(array).save(root / path)
            rows.append({"path": path, "class": name, "event": event, "source": "s.json", "split": split})
    write_manifest(root, rows)
    return root


def test_help_explains_every_option_and_lists_the_registry():
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for option in ("--out", "--per-class", "--factor", "--preset", "--ops", "--seed", "--overwrite",
                   "--no-progress", "--version"):
        assert option in out
    for name in [*OPERATIONS, *PRESETS]:
        assert name in out
    assert "mix eta with phi" in " ".join(out.split())         # the paper preset's warning


def test_version():
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"hepvision {__version__}"


def test_run_prints_summary_and_writes_the_dataset(tmp_path):
    data = small_dataset(tmp_path / "images")
    result = cli(data, "--per-class", 5, "--ops", "phi_shift:1,eta_flip:0.5", "--seed", 3, "--no-progress")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "images_augmented"
    assert str(out) in result.stdout and "qcd" in result.stdout
    with (out / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(r["split"] == "train" for r in rows) == 10
    assert sum(bool(r["augmented_from"]) for r in rows) == 6


def test_errors_print_error_and_exit_2_leaving_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "manifest.csv" in err
    assert not (tmp_path / "out").exists()

    data = small_dataset(tmp_path / "images")
    assert main([str(data), "--ops", "twirl:1", "--no-progress"]) == 2
    assert "twirl" in capsys.readouterr().err
    assert not (tmp_path / "images_augmented").exists()


def test_per_class_and_factor_are_exclusive(tmp_path):
    result = cli(tmp_path, "--per-class", 3, "--factor", 2)
    assert result.returncode == 2 and "not allowed with" in result.stderr
