"""imgen.arrays.export and ``python -m imgen arrays``: HDF5 arrays -> PNG folders + manifest, real files."""
from __future__ import annotations

import json
import subprocess

import h5py
import numpy as np
from PIL import Image

from imgen.__main__ import main as imgen_main
from imgen.arrays import ArrayTransform, open_arrays, synth
from imgen.arrays.export import EXPORT_INFO, to_uint8
from imgen.output.manifest import read_manifest


def main(argv: list[str]) -> int:
    return imgen_main(["arrays", *argv])


def test_help_runs_as_a_subcommand(python):
    result = subprocess.run([python, "-m", "imgen", "arrays", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--x-key" in result.stdout and "--data" in result.stdout and "manifest" in result.stdout
    assert "--split" in result.stdout and "--no-progress" in result.stdout
    assert "--fractions" not in result.stdout and "--quiet" not in result.stdout  # hidden former names


def test_to_uint8_log_and_linear():
    x = np.array([-5.0, 0.0, 0.01, 0.1, 1.0, 10.0, 100.0]).reshape(1, 1, 7, 1)
    log = to_uint8(x, [10.0], "log", decades=3)[0, 0, :, 0].tolist()
    # 10/1000 is the faintest grey level, 10 the brightest; <= 0 is black
    assert log == [0, 0, 1, 85, 170, 255, 255]
    assert to_uint8(x, [10.0], "linear")[0, 0, :, 0].tolist() == [0, 0, 0, 3, 26, 255, 255]


def test_export_round_trip_two_channels(tmp_path):
    data = synth.write_electron_photon_combined(tmp_path / "all.h5", 40, seed=5)
    out = tmp_path / "png"
    argv = ["--data", str(data), "--x-key", "X", "--y-key", "y", "--classes", "electron,photon",
            "--out", str(out), "--limit", "25", "--max-value", "20,1", "--no-progress"]
    assert main(argv) == 0
    rows = read_manifest(out)  # checks every image exists and every split is valid
    assert len(rows) == 50
    assert {r["class"] for r in rows} == {"electron", "photon"}
    assert {r["split"] for r in rows} <= {"train", "validation", "test"}
    assert all(r["path"] == f"{r['class']}/{r['class']}_{r['event']}.png" for r in rows)
    assert all(r["source"].startswith(str(data)) for r in rows)
    info = json.loads((out / EXPORT_INFO).read_text())
    assert info["vmax"] == [20.0, 1.0] and info["intensity"] == "log"
    row = rows[7]
    image = Image.open(out / row["path"])
    assert image.mode == "RGB" and image.size == (32, 32)
    with open_arrays(str(data), "X", y_key="y", classes="electron,photon") as ds:
        x, y = ds.read_batch([int(row["event"])])
        assert ds.classes[y[0]] == row["class"]
    pixels = np.asarray(image)
    expected = to_uint8(x, [20.0, 1.0], "log")[0]
    np.testing.assert_array_equal(pixels[..., :2], expected)
    assert (pixels[..., 2] == 0).all()
    # same command again: same splits (deterministic), folder replaced atomically
    assert main(argv + ["--overwrite"]) == 0
    assert [r["split"] for r in read_manifest(out)] == [r["split"] for r in rows]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".png-")]


def test_export_grayscale_cropped_towers(tmp_path, capsys):
    synth.write_trigger_towers(tmp_path / "towers", 15, seed=6, files_per_class=1)
    out = tmp_path / "towers_png"
    assert main(["--data", str(tmp_path / "towers"), "--x-key", "gTowerEt", "--crop", "--min-value", "0",
                 "--out", str(out), "--no-progress"]) == 0
    rows = read_manifest(out)
    assert len(rows) == 30
    image = Image.open(out / rows[0]["path"])
    assert image.mode == "L" and image.size == (32, 25)  # rows 0, 1 and 27 cropped
    info = json.loads((out / EXPORT_INFO).read_text())
    assert ArrayTransform.from_dict(info["transform"]).crop == (2, 27, 0, 32)
    summary = capsys.readouterr().out
    assert "wrote 30 images" in summary and "jets:" in summary and "pileup:" in summary


def test_errors_exit_2_with_message(tmp_path, capsys):
    data = synth.write_electron_photon_combined(tmp_path / "all.h5", 5, seed=5)
    out = tmp_path / "png"
    assert main(["--data", f"electron={data}", "--x-key", "images", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'images'" in err and "X, y" in err
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["--data", f"electron={data}", "--x-key", "X", "--out", str(out), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "keep.txt").exists()


def test_layers_as_rgb_and_too_many_channels(tmp_path, capsys):
    layers = synth.write_calo_layers(tmp_path / "calo", 4, seed=1)
    spec = [f"{name}={path}" for name, path in layers.items()]
    assert main(["--data", *spec, "--x-key", "layer_0,layer_1,layer_2", "--out", str(tmp_path / "a"),
                 "--no-progress"]) == 0
    image = Image.open(next((tmp_path / "a" / "gamma").iterdir()))
    assert image.mode == "RGB" and image.size == (96, 12)
    four = tmp_path / "four.h5"
    with h5py.File(four, "w") as handle:
        handle["X"] = np.random.default_rng(0).random((6, 8, 8, 4), dtype=np.float32)
    assert main(["--data", f"a={four}", "--x-key", "X", "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "--channels" in capsys.readouterr().err
    assert main(["--data", f"a={four}", "--x-key", "X", "--channels", "3", "--out", str(tmp_path / "b"),
                 "--no-progress"]) == 0
    assert Image.open(next((tmp_path / "b" / "a").iterdir())).mode == "L"


def test_former_option_names_still_work(tmp_path):
    data = synth.write_electron_photon_combined(tmp_path / "all.h5", 10, seed=5)
    common = ["--data", str(data), "--x-key", "X", "--y-key", "y", "--classes", "electron,photon"]
    assert main([*common, "--out", str(tmp_path / "new"), "--split", "0.5,0.5,0", "--no-progress"]) == 0
    assert main([*common, "--out", str(tmp_path / "old"), "--fractions", "0.5,0.5,0", "-q"]) == 0
    assert read_manifest(tmp_path / "new") == read_manifest(tmp_path / "old")
    assert {r["split"] for r in read_manifest(tmp_path / "new")} == {"train", "validation"}
