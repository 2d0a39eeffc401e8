"""python -m transfer: help, version, backbone list, and bad input answered with 'error: ...' and exit 2."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from imgen import __version__
from tests._transfer_data import make_blob_dataset
from transfer.cli import main


def cli(*args):
    return subprocess.run([sys.executable, "-m", "transfer", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_help_version_and_backbone_list():
    done = cli("--help")
    assert done.returncode == 0
    for option in ("--data", "--backbone", "--weights", "--on-missing-weights", "--fine-tune", "--unfreeze",
                   "--fine-tune-lr-factor", "--optimizer", "--lr", "--epochs", "--fine-tune-epochs",
                   "--batch-size", "--image-size", "--patience", "--seed", "--config", "--mixed-precision",
                   "--distribute", "--augment-on-the-fly", "--classes", "--split", "--list-backbones"):
        assert option in done.stdout, option
    assert "feature" in done.stdout.split("--augment-on-the-fly")[2][:400]  # says the cache goes off
    assert "predict" in done.stdout and "fetch-weights" in done.stdout

    assert cli("--version").stdout.strip() == f"hepvision {__version__}"

    listing = cli("--list-backbones")
    assert listing.returncode == 0
    rows = {line.split()[0]: line.split()[1] for line in listing.stdout.splitlines()[2:]}
    assert rows["vgg19"] == "32" and rows["inceptionv3"] == "75" and rows["xception"] == "71"
    assert rows["inceptionresnetv2"] == "75" and rows["efficientnetb0"] == "32"
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in listing.stdout

    for sub in ("predict", "fetch-weights"):
        sub_help = cli(sub, "--help")
        assert sub_help.returncode == 0 and sub_help.stdout.startswith("usage: python -m transfer " + sub)


def _error(capsys, *args) -> str:
    status = main([*map(str, args)])
    err = capsys.readouterr().err
    assert status == 2, err
    line = [x for x in err.splitlines() if x.startswith("error: ")]
    assert line, err
    return err


def test_bad_data_is_an_error_before_training(tmp_path, capsys):
    one = make_blob_dataset(tmp_path / "one", classes=("only",), per_class=5, manifest=False)
    assert "at least two classes" in _error(capsys, "--data", one, "--weights", "none")

    empty = make_blob_dataset(tmp_path / "empty", classes=("a", "b"), per_class=5, manifest=False)
    (empty / "c").mkdir()
    assert "c/ holds no PNG images" in _error(capsys, "--data", empty)

    mixed = make_blob_dataset(tmp_path / "mixed", classes=("a", "b"), per_class=5, manifest=False)
    Image.fromarray(np.zeros((20, 32), np.uint8)).save(mixed / "a" / "wide.png")
    assert "wide.png" in _error(capsys, "--data", mixed)

    corrupt = make_blob_dataset(tmp_path / "corrupt", classes=("a", "b"), per_class=5, manifest=False)
    (corrupt / "b" / "bad.png").write_bytes(b"nothing")
    assert "bad.png: not a readable PNG" in _error(capsys, "--data", corrupt)

    assert "--data is required" in _error(capsys, "--backbone", "vgg16")
    assert "unknown backbone 'vgg17'" in _error(capsys, "--data", one, "--backbone", "vgg17")
    assert "unknown optimizer 'lbfgs'" in _error(capsys, "--data", one, "--optimizer", "lbfgs")
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {one}\nbackbone: vgg16\nepoch: 3\n")
    assert "unknown option(s) epoch" in _error(capsys, "--config", config)


def test_existing_run_folder_is_not_overwritten(tmp_path, capsys):
    data = make_blob_dataset(tmp_path / "d", classes=("a", "b"), per_class=5)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    assert "already holds a run" in _error(capsys, "--data", data, "--out", tmp_path / "run")
    assert (tmp_path / "run" / "metrics.json").read_text() == "{}"


def test_predict_input_errors(tmp_path, capsys):
    assert "no such file" in _error(capsys, "predict", "--model", tmp_path / "missing.keras", tmp_path)
    model = tmp_path / "model.keras"
    model.write_bytes(b"zip?")
    assert "classes.json" in _error(capsys, "predict", "--model", model, tmp_path)
    (tmp_path / "classes.json").write_text('{"classes": ["a", "b"]}')
    (tmp_path / "imgs").mkdir()
    assert "holds no PNG images" in _error(capsys, "predict", "--model", model, tmp_path / "imgs")
