"""python -m transfer on HDF5 arrays: the three layouts, float32 end to end, physics report, predict, errors.

Real HDF5 files from imgen.arrays.synth, real (tiny) trainings, one epoch each;
module-scoped fixtures share the runs between tests.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from imgen.arrays import SCALES, ArrayTransform, open_arrays, synth  # noqa: E402
from transfer.cli import main  # noqa: E402
from transfer.config import SCALES as CONFIG_SCALES  # noqa: E402
from transfer.config import TrainConfig, load_config  # noqa: E402
from transfer.data import open_data  # noqa: E402
from transfer.deploy.predict import predict  # noqa: E402
from transfer.errors import TransferError  # noqa: E402
from transfer.evaluation.physics import rejection_at_efficiency  # noqa: E402
from transfer.training.inputs import balanced_class_weights
from transfer.training.runner import run_training  # noqa: E402

pytestmark = pytest.mark.slow
N = 60  # events per class
CLASSES = ["electron", "photon"]
FAST = ["--epochs", "1", "--batch-size", "32", "--patience", "0", "--verbose", "0", "--weights", "none"]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("transfer_arrays")


@pytest.fixture(scope="module")
def egamma(work):
    """Layout 1 (one file, labels under /y) and the same events as one file per class."""
    combined = synth.write_electron_photon_combined(work / "all.h5", N, seed=1)
    per_class = synth.write_electron_photon_per_class(work / "per", N, seed=1)
    return combined, per_class


def per_class_args(per_class) -> list[str]:
    return [f"{name}={path}" for name, path in per_class.items()]


@pytest.fixture(scope="module")
def run_by_file(work, egamma):
    """Class from the file, standardized, smallcnn from scratch, through the CLI."""
    _, per_class = egamma
    out = work / "by-file"
    assert main(["--data", *per_class_args(per_class), "--x-key", "X", "--backbone", "smallcnn",
                 "--scale", "standardize", "--seed", "3", *FAST, "--out", str(out)]) == 0
    return out


# --- layouts --------------------------------------------------------------------------------------

def test_both_layouts_split_every_row_by_the_one_rule(egamma):
    """Labels from a key or one file per class: each row's split is imgen's rule over (class, file#row)."""
    from imgen.split import assign_split

    combined, per_class = egamma
    by_key = TrainConfig(data=str(combined), x_key="X", y_key="y", classes="electron,photon", seed=3)
    by_file = TrainConfig(data=per_class_args(per_class), x_key="X", seed=3)
    for config in (by_key, by_file):
        with open_data(config) as source:
            view = source.view()
            ids = source.ds.event_ids()
            assert sum(sum(c.values()) for c in view.counts().values()) == 2 * N
            for split in ("train", "validation", "test"):
                assert all(assign_split(ids[i], CLASSES[source.labels_all[i]], 3) == split
                           for i in view.splits[split])
                assert all(n > 0 for n in view.counts()[split].values())


def test_run_from_per_class_files_writes_the_full_report(run_by_file, egamma):
    out = run_by_file
    for name in ("metrics.json", "report.md", "predictions.csv", "roc.png", "discriminant.png",
                 "confusion_matrix.png", "training_curves.png", "model.keras", "arrays.json", "split.csv",
                 "config.yaml", "classes.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data_kind"] == "arrays" and metrics["training"] == "from scratch"
    assert metrics["image_shape"] == [32, 32, 2] and metrics["channel_names"] == ["energy", "time"]
    split = pd.read_csv(out / "split.csv")
    counts = split.groupby(["split", "class"]).size()
    assert metrics["events_per_class"] == {s: {c: int(counts[s, c]) for c in CLASSES}
                                           for s in ("train", "validation", "test")}
    report = (out / "report.md").read_text()
    for s in ("train", "test"):
        e, p = int(counts[s, "electron"]), int(counts[s, "photon"])
        assert f"| {s} | {e} | {p} | {e + p} |" in report
    assert "![Likelihood-ratio discriminant (test split)](discriminant.png)" in report
    assert "eff. 80%" in report
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert model.input_shape == (None, 32, 32, 2) and model.inputs[0].dtype == "float32"
    split = pd.read_csv(out / "split.csv")
    test_ids = split[split["split"] == "test"]["path"]
    assert sorted(pd.read_csv(out / "predictions.csv")["path"]) == sorted(test_ids)
    again = load_config(out / "config.yaml")  # reproduces the run: the array options are recorded
    assert again.data == [f"{n}={p}" for n, p in egamma[1].items()] and again.x_key == "X"
    assert again.scale == "standardize" and again.backbone == "smallcnn" and again.weights == "none"


def test_run_from_one_file_with_labels(work, egamma):
    combined, _ = egamma
    result = run_training(TrainConfig(data=str(combined), x_key="X", y_key="y", classes="electron,photon",
                                      backbone="mlp", weights="none", scale="log", channels="energy", epochs=1,
                                      batch_size=32, patience=0, verbose=0, seed=3, out=str(work / "by-key")))
    assert result.metrics["image_shape"] == [32, 32, 1] and result.metrics["channel_names"] == ["energy"]
    split = pd.read_csv(result.out_dir / "split.csv")
    test = split[split["split"] == "test"]
    assert result.metrics["events_per_class"]["test"] == {c: int((test["class"] == c).sum()) for c in CLASSES}
    predictions = pd.read_csv(result.out_dir / "predictions.csv")["path"]
    assert predictions.str.match(r".*all\.h5#\d+$").all() and sorted(predictions) == sorted(test["path"])


def test_run_from_calorimeter_layers(work):
    layers = synth.write_calo_layers(work / "calo", 20, seed=2)
    out = work / "layers"
    assert main(["--data", *[f"{n}={p}" for n, p in layers.items()], "--x-key", "layer_0,layer_1,layer_2",
                 "--backbone", "cnn", "--scale", "log", "--crop", *FAST, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["channel_names"] == ["layer_0", "layer_1", "layer_2"]
    assert metrics["image_shape"][2] == 3 and metrics["image_shape"][0] <= 12 and metrics["image_shape"][1] <= 96
    assert metrics["classes"] == ["eplus", "gamma", "piplus"]
    # several classes: rejection one vs rest for every class, and one discriminant panel each
    assert set(metrics["test"]["rejection"]) == {"eplus", "gamma", "piplus"}
    info = json.loads((out / "arrays.json").read_text())
    assert info["arrays"]["grid"] == [12, 96] and info["transform"]["scale"] == "log"


# --- standardisation saved and applied again at predict --------------------------------------------

def test_standardization_statistics_come_from_training_events_and_predict_reapplies_them(run_by_file, egamma):
    out = run_by_file
    _, per_class = egamma
    info = json.loads((out / "arrays.json").read_text())
    transform = ArrayTransform.from_dict(info["transform"])
    split = pd.read_csv(out / "split.csv")
    train = split[split["split"] == "train"]["path"]
    events = []
    for name, path in per_class.items():
        rows = sorted(int(p.rsplit("#", 1)[1]) for p in train if p.startswith(f"{path}#"))
        with h5py.File(path, "r") as handle:
            events.append(handle["X"][rows].astype(np.float64))
    events = np.concatenate(events)
    np.testing.assert_allclose(transform.mean, events.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(transform.std, events.std(axis=(0, 1, 2)), rtol=1e-6)

    expected = pd.read_csv(out / "predictions.csv").set_index("path")
    scored = predict(out / "model.keras", [str(p) for p in per_class.values()])
    assert len(scored) == 2 * N
    scored = scored.set_index("path").loc[expected.index]
    columns = [f"score_{c}" for c in CLASSES]
    np.testing.assert_allclose(scored[columns].to_numpy(), expected[columns].to_numpy(), rtol=1e-5, atol=1e-6)
    assert (scored["predicted_class"] == expected["predicted_class"]).all()


def test_predict_cli_and_channel_check(run_by_file, egamma, work, capsys):
    out = run_by_file
    _, per_class = egamma
    scores = work / "scores.csv"
    assert main(["predict", "--model", str(out / "model.keras"), str(per_class["photon"]), "--x-key", "X",
                 "--out", str(scores)]) == 0
    assert len(pd.read_csv(scores)) == N
    renamed = work / "renamed.h5"
    with h5py.File(per_class["photon"], "r") as source, h5py.File(renamed, "w") as handle:
        handle.create_dataset("X", data=source["X"][:5]).attrs["channel_names"] = ["e", "t"]
    assert main(["predict", "--model", str(out / "model.keras"), str(renamed)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "renamed.h5" in err and "['energy', 'time']" in err


# --- physics numbers ------------------------------------------------------------------------------

def test_rejection_in_metrics_agrees_with_a_recomputation(run_by_file):
    out = run_by_file
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["signal"] == "photon"
    table = pd.read_csv(out / "predictions.csv")
    expected = rejection_at_efficiency(table["true_class"] == "photon", table["score_photon"], (0.5, 0.8, 0.9))
    got = metrics["test"]["rejection"]["photon"]
    assert set(got) == {"0.5", "0.8", "0.9"}
    for efficiency, value in expected.items():
        assert got[f"{efficiency:g}"] == (None if value is None else pytest.approx(value))


def test_pretrained_architecture_on_two_channels_maps_them_to_rgb_inside_the_model(work, egamma):
    _, per_class = egamma
    result = run_training(TrainConfig(data=per_class_args(per_class), x_key="X", backbone="mobilenetv2",
                                      weights="none", image_size=32, scale="log", fine_tune="frozen", epochs=1,
                                      batch_size=32, patience=0, verbose=0, signal="electron",
                                      out=str(work / "mobilenet")))
    model = keras.saving.load_model(result.model_path, safe_mode=True)
    assert model.input_shape == (None, 32, 32, 2)  # the saved model takes the arrays' own two channels
    preprocess = model.get_layer("preprocess")
    assert preprocess.rgb and preprocess.pixels and len(preprocess.value_range) == 2
    x = np.random.default_rng(0).random((3, 32, 32, 2), dtype=np.float32)
    mapped = np.asarray(preprocess.__class__(None, None, rgb=True, value_range=[[0, 1], [0, 1]])(x))
    np.testing.assert_allclose(mapped[..., 2], (mapped[..., 0] + mapped[..., 1]) / 2, rtol=1e-5)
    assert result.metrics["signal"] == "electron" and set(result.metrics["test"]["rejection"]) == {"electron"}
    with pytest.raises(TransferError, match="takes 3 channels.*--channels"):
        run_training(TrainConfig(data=[f"a={_four_channels(work)}", f"b={_four_channels(work)}"], x_key="X",
                                 backbone="vgg16", weights="none", out=str(work / "never")))


def _four_channels(work: Path) -> Path:
    path = work / "four.h5"
    if not path.exists():
        with h5py.File(path, "w") as handle:
            handle["X"] = np.random.default_rng(0).random((30, 32, 32, 4), dtype=np.float32)  # every split gets events
    return path


# --- class weights --------------------------------------------------------------------------------

def test_balanced_class_weights():
    weights = balanced_class_weights(np.array([0] * 30 + [1] * 10), 2)
    assert weights == {0: pytest.approx(40 / (2 * 30)), 1: pytest.approx(40 / (2 * 10))}


def test_class_weight_balanced_on_an_imbalanced_set(work):
    x, y = synth.electron_photon_sample(60, seed=4)
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:15]]
    path = work / "imbalanced.h5"
    with h5py.File(path, "w") as handle:
        handle["X"], handle["y"] = x[keep], y[keep]
    result = run_training(TrainConfig(data=str(path), x_key="X", y_key="y", classes="electron,photon",
                                      backbone="mlp", weights="none", scale="log", class_weight="balanced",
                                      epochs=1, batch_size=32, patience=0, verbose=0, out=str(work / "weighted")))
    train = result.metrics["events_per_class"]["train"]
    n_e, n_p = train["electron"], train["photon"]
    assert n_e > 2 * n_p > 0  # about 48 and 12
    assert result.metrics["class_weight"] == {"electron": pytest.approx((n_e + n_p) / (2 * n_e)),
                                              "photon": pytest.approx((n_e + n_p) / (2 * n_p))}
    weights = f"electron {(n_e + n_p) / (2 * n_e):.3g}, photon {(n_e + n_p) / (2 * n_p):.3g}"
    assert f"class weights (balanced) | {weights}" in (result.out_dir / "report.md").read_text()


# --- bad input: a clear error before training -------------------------------------------------------

def _write(path: Path, **datasets) -> Path:
    with h5py.File(path, "w") as handle:
        for key, value in datasets.items():
            handle.create_dataset(key, data=value)
    return path


def test_bad_input_is_an_error_before_training(work, egamma, capsys):
    combined, _ = egamma
    bad = work / "bad"
    bad.mkdir()
    ones = np.ones((10, 8, 8), np.float32)
    nan = ones.copy()
    nan[7, 2, 3] = np.nan
    files = {
        "a": _write(bad / "a.h5", X=ones), "wide": _write(bad / "wide.h5", X=np.ones((10, 8, 9), np.float32)),
        "labels": _write(bad / "labels.h5", X=ones, y=np.array([0, 1, 2, 0, 1, 0, 1, 0, 1, 0])),
        "nan": _write(bad / "nan.h5", X=nan), "empty": _write(bad / "empty.h5", X=np.zeros((0, 8, 8), np.float32)),
    }
    cases = [
        ([str(combined), "--x-key", "images", "--y-key", "y", "--classes", "electron,photon"],
         ["all.h5", "'images'", "no such dataset", "X, y"]),
        ([f"a={files['a']}", f"b={files['wide']}", "--x-key", "X"], ["wide.h5", "(8, 9)", "(8, 8)"]),
        ([str(files["labels"]), "--x-key", "X", "--y-key", "y", "--classes", "a,b"],
         ["labels.h5", "label 2 of event 2", "outside the class list"]),
        ([f"a={files['a']}", f"b={files['nan']}", "--x-key", "X"], ["nan.h5", "NaN", "event 7"]),
        ([f"a={files['a']}", f"b={files['empty']}", "--x-key", "X"], ["empty.h5", "no events"]),
        ([f"a={files['a']}", f"b={files['a']}"], ["needs --x-key", "holds X"]),
        ([str(combined), "--x-key", "X", "--y-key", "y", "--classes", "electron,photon", "--backbone", "cnn",
          "--weights", "imagenet"], ["'cnn'", "trained from scratch", "--weights none"]),
        ([str(combined), "--x-key", "X", "--y-key", "y", "--classes", "electron,photon", "--signal", "muon"],
         ["--signal muon"]),
        ([str(combined), "--x-key", "X", "--y-key", "y", "--classes", "electron,photon", "--backbone", "xception"],
         ["below the minimum of backbone 'xception'", "--image-size 71"]),
    ]
    out = work / "never"
    for args, words in cases:
        model = [] if "--backbone" in args else ["--backbone", "smallcnn", "--weights", "none"]
        status = main(["--data", *args, *model, "--out", str(out)])
        err = capsys.readouterr().err
        assert status == 2 and err.startswith("error: "), (args, err)
        for word in words:
            assert word in err, (args, word, err)
        assert not out.exists()


def test_scale_choices_match_imgen_and_image_only_options_are_refused(tmp_path, capsys):
    from tests._transfer_data import make_blob_dataset

    assert tuple(SCALES) == CONFIG_SCALES
    images = make_blob_dataset(tmp_path / "images", classes=("a", "b"), per_class=5, manifest=False)
    assert main(["--data", str(images), "--scale", "log", "--weights", "none"]) == 2
    assert "--scale: only for HDF5 arrays" in capsys.readouterr().err


def test_opened_arrays_are_float32_never_uint8(egamma):
    combined, _ = egamma
    with open_arrays(str(combined), "X", "y", "electron,photon") as ds:
        x, _ = ds.read_batch([0, 1])
    assert x.dtype == np.float32 and not np.allclose(x, np.round(x))  # fractional GeV survive


def test_help_names_the_array_options_subcommands_and_input_scaling():
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "transfer", *args], capture_output=True, text=True, timeout=60)

    text = cli("--help").stdout
    for option in ("--x-key", "--y-key", "--channels", "--scale", "--min-value", "--crop", "--class-weight",
                   "--signal", "--folds", "--train-fraction", "lr-find", "ensemble", "input scaling"):
        assert option in text, option
    assert "(c0, c1, (c0 + c1) / 2)" in text and "standardised with the training" in text
    assert "--baseline" in text and "exits with status 3" in text
    listing = cli("--list-backbones").stdout
    rows = {line.split()[0]: line for line in listing.splitlines()[2:]}
    # a convolution needs 3x3 cells of input to see any (issue 11: smallcnn --image-size 2); the mlp takes any size
    minimum = {"cnn": "3", "resnet15": "3", "smallcnn": "3", "mlp": "1"}
    for name in ("cnn", "resnet15", "smallcnn", "mlp"):
        assert "from scratch" in rows[name] and rows[name].split()[1] == minimum[name]
    assert "from scratch" not in rows["vgg16"]
    for sub in ("lr-find", "ensemble", "predict"):
        done = cli(sub, "--help")
        assert done.returncode == 0 and done.stdout.startswith(f"usage: python -m transfer {sub}")
    assert "--steps" in cli("lr-find", "--help").stdout and "--x-key" in cli("predict", "--help").stdout
