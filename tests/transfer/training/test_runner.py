"""transfer.training.runner end to end: real backbones, real PNGs, real run folders.

Few, small runs (32 px, a few epochs), each checked in many ways; module-scoped
fixtures share them between tests.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

keras = pytest.importorskip("keras")

from tests._transfer_data import make_blob_dataset  # noqa: E402
from transfer.cli import main  # noqa: E402
from transfer.config import TrainConfig, load_config  # noqa: E402
from transfer.data.images import SPLIT_SOURCE  # noqa: E402
from transfer.deploy.predict import predict_images  # noqa: E402
from transfer.errors import TransferError  # noqa: E402
from transfer.training.runner import run_training  # noqa: E402

pytestmark = pytest.mark.slow
REPORT_FILES = ["metrics.json", "confusion_matrix.png", "confusion_matrix.csv", "roc.png", "history.csv",
                "training_curves.png", "predictions.csv", "model.keras", "classes.json", "report.md",
                "config.yaml", "split.csv"]
CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("transfer_train")


@pytest.fixture(scope="module")
def data(work) -> Path:
    """3 classes x 20 grey 32x32 PNGs with a manifest (12/4/4 per class)."""
    return make_blob_dataset(work / "data", per_class=20, size=32)


def backbone_weights_file(path: Path, application: str) -> Path:
    """A weights file for ``keras.applications.<application>`` at 32x32, with seeded random values."""
    keras.utils.set_random_seed(123)
    model = getattr(keras.applications, application)(include_top=False, weights=None,
                                                     input_shape=(32, 32, 3), pooling="avg")
    model.save_weights(path)
    return path


def saved_backbone(run: Path):
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    return model.get_layer("backbone").layer


def reference_backbone(application: str, weights: Path):
    return getattr(keras.applications, application)(include_top=False, weights=str(weights),
                                                    input_shape=(32, 32, 3), pooling="avg")


# --- Run A: resnet50 from a weights file, partial fine-tuning, through the CLI --------------------

@pytest.fixture(scope="module")
def resnet_weights(work) -> Path:
    return backbone_weights_file(work / "resnet50.weights.h5", "ResNet50")


@pytest.fixture(scope="module")
def resnet_run(work, data, resnet_weights):
    weights = resnet_weights
    out = work / "resnet-run"
    status = main(["--data", str(data), "--backbone", "resnet50", "--weights", str(weights),
                   "--fine-tune", "partial", "--unfreeze", "3", "--epochs", "3", "--fine-tune-epochs", "2",
                   "--optimizer", "rmsprop", "--batch-size", "12", "--patience", "0", "--seed", "7",
                   "--verbose", "0", "--out", str(out)])
    assert status == 0
    return out, weights


def test_run_folder_has_every_report_file(resnet_run):
    out, _ = resnet_run
    for name in REPORT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not list(out.parent.glob(".resnet-run.partial-*"))  # staging folder renamed into place
    report = (out / "report.md").read_text()
    for figure in ("confusion_matrix.png", "roc.png", "training_curves.png"):
        assert f"]({figure})" in report
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"{metrics['test']['accuracy']:.3f}" in report
    assert metrics["backbone"] == "resnet50" and metrics["weights_used"] == "file"
    assert set(metrics["timing"]) >= {"feature_extraction_s", "head_stage_s", "fine_tune_stage_s", "total_s"}
    assert json.loads((out / "classes.json").read_text())["classes"] == CLASSES


def test_partial_fine_tuning_opens_exactly_the_top_layers_and_keeps_batchnorm(resnet_run):
    out, weights = resnet_run
    trained, initial = saved_backbone(out), reference_backbone("ResNet50", weights)
    opened = json.loads((out / "metrics.json").read_text())["opened_layers"]
    assert opened == ["conv5_block3_1_conv", "conv5_block3_2_conv", "conv5_block3_3_conv"]
    changed = []
    for layer, before in zip(trained.layers, initial.layers):
        same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), before.get_weights()))
        if isinstance(layer, keras.layers.BatchNormalization):
            assert same, f"BatchNorm {layer.name} changed (moving statistics or gamma/beta)"
        elif not same:
            changed.append(layer.name)
    assert changed == opened


def test_metrics_agree_with_predictions_csv(resnet_run):
    from sklearn.metrics import (accuracy_score, confusion_matrix, log_loss, precision_score, recall_score,
                                 roc_auc_score)

    out, _ = resnet_run
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    table = pd.read_csv(out / "predictions.csv")
    assert list(table.columns) == ["path", "true_class", "score_a", "score_b", "score_c", "predicted_class"]
    assert len(table) == 12 and table["path"].str.match(r"^[abc]/[abc]_\d{4}\.png$").all()
    scores = table[[f"score_{c}" for c in CLASSES]].to_numpy()
    y_true = table["true_class"].map(CLASSES.index).to_numpy()
    y_pred = table["predicted_class"].map(CLASSES.index).to_numpy()
    assert np.array_equal(y_pred, scores.argmax(axis=1))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert metrics["loss"] == pytest.approx(log_loss(y_true, scores / scores.sum(1, keepdims=True)), rel=1e-5)
    auc = metrics["roc_auc"]
    assert auc["macro"] == pytest.approx(roc_auc_score(y_true, scores, multi_class="ovr"), abs=1e-6)
    assert auc["micro"] == pytest.approx(roc_auc_score(np.eye(3)[y_true], scores, average="micro"), abs=1e-6)
    for k, name in enumerate(CLASSES):
        assert auc["per_class"][name] == pytest.approx(roc_auc_score(y_true == k, scores[:, k]), abs=1e-6)
    assert list(metrics["precision"].values()) == pytest.approx(
        precision_score(y_true, y_pred, average=None, labels=[0, 1, 2], zero_division=0))
    assert list(metrics["recall"].values()) == pytest.approx(
        recall_score(y_true, y_pred, average=None, labels=[0, 1, 2], zero_division=0))
    assert metrics["events_per_class"] == {"a": 4, "b": 4, "c": 4}
    counts = confusion_matrix(y_true, y_pred, labels=[0, 1, 2])
    assert metrics["confusion_matrix"] == counts.tolist()
    confusion = pd.read_csv(out / "confusion_matrix.csv")
    count_rows = confusion[confusion["kind"] == "count"]
    assert count_rows["true_class"].tolist() == CLASSES
    assert np.array_equal(count_rows[[f"predicted_{c}" for c in CLASSES]].to_numpy(), counts)
    fractions = confusion[confusion["kind"] == "fraction_of_true_class"][[f"predicted_{c}" for c in CLASSES]]
    assert np.allclose(fractions.to_numpy().sum(axis=1), 1.0)


def test_history_covers_both_stages(resnet_run):
    out, _ = resnet_run
    history = pd.read_csv(out / "history.csv")
    assert history["stage"].tolist() == ["head"] * 3 + ["fine-tune"] * 2
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert history["learning_rate"].tolist() == pytest.approx([1e-3] * 3 + [1e-4] * 2)
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.columns)
    assert np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()


def test_config_yaml_reproduces_the_run(resnet_run):
    out, weights = resnet_run
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["weights_used"] == "file" and saved["weights_file"] == str(weights)
    config = load_config(out / "config.yaml")
    assert config == TrainConfig(data=config.data, out=str(out), backbone="resnet50", weights=str(weights),
                                 fine_tune="partial", unfreeze=3, epochs=3, fine_tune_epochs=2,
                                 optimizer="rmsprop", batch_size=12, patience=0, seed=7, verbose=0,
                                 classes=CLASSES, image_size=(32, 32))
    with pytest.raises(TransferError, match="already holds a run"):
        run_training(config)


def test_predict_gives_the_runs_scores(resnet_run, data, work):
    out, _ = resnet_run
    expected = pd.read_csv(out / "predictions.csv").set_index("path")
    table = predict_images(out / "model.keras", [data / p for p in expected.index])
    assert list(table.columns) == ["path", "score_a", "score_b", "score_c", "predicted_class"]
    table["path"] = [Path(p).relative_to(data).as_posix() for p in table["path"]]
    table = table.set_index("path").loc[expected.index]
    np.testing.assert_allclose(table[["score_a", "score_b", "score_c"]].to_numpy(),
                               expected[["score_a", "score_b", "score_c"]].to_numpy(), rtol=1e-5, atol=1e-6)
    assert (table["predicted_class"] == expected["predicted_class"]).all()

    scores_csv = work / "scores.csv"
    assert main(["predict", "--model", str(out / "model.keras"), str(data / "b"), "--out", str(scores_csv)]) == 0
    written = pd.read_csv(scores_csv)
    assert len(written) == 20 and written["path"].str.endswith(".png").all()


def test_predict_refuses_images_of_another_size(resnet_run, work, capsys):
    out, _ = resnet_run
    other = make_blob_dataset(work / "big", classes=("a",), per_class=2, size=40, manifest=False)
    assert main(["predict", "--model", str(out / "model.keras"), str(other)]) == 2
    assert "40x40 px with 1 channel(s), but" in capsys.readouterr().err


# --- Runs B and C: frozen vgg16 with and without the feature cache, no manifest ---------------------

@pytest.fixture(scope="module")
def frozen_runs(work):
    folders = make_blob_dataset(work / "folders", per_class=20, size=32, manifest=False, seed=1)
    weights = backbone_weights_file(work / "vgg16.weights.h5", "VGG16")
    runs = {}
    for cache in (True, False):
        config = TrainConfig(data=str(folders), backbone="vgg16", weights=str(weights), fine_tune="frozen",
                             epochs=3, batch_size=8, patience=0, seed=11, feature_cache=cache, verbose=0,
                             out=str(work / f"frozen-cache-{cache}"))
        runs[cache] = run_training(config)
    return runs, weights, folders


def test_feature_cache_gives_the_same_head_as_training_on_images(frozen_runs):
    runs, _, _ = frozen_runs
    cached, uncached = runs[True], runs[False]
    assert cached.metrics["feature_cache"] and not uncached.metrics["feature_cache"]
    assert "feature_extraction_s" in cached.metrics["timing"]
    a = pd.read_csv(cached.out_dir / "predictions.csv")
    b = pd.read_csv(uncached.out_dir / "predictions.csv")
    assert a["path"].tolist() == b["path"].tolist()
    np.testing.assert_allclose(a[["score_a", "score_b", "score_c"]], b[["score_a", "score_b", "score_c"]],
                               atol=2e-4)
    np.testing.assert_allclose(cached.history["loss"], uncached.history["loss"], rtol=1e-3)


def test_frozen_training_leaves_the_backbone_bit_identical(frozen_runs):
    runs, weights, _ = frozen_runs
    trained, initial = saved_backbone(runs[True].out_dir), reference_backbone("VGG16", weights)
    for a, b in zip(trained.get_weights(), initial.get_weights()):
        assert np.array_equal(a, b)
    assert runs[True].opened_layers == [] and set(runs[True].history["stage"]) == {"head"}


def test_split_without_manifest_is_recorded(frozen_runs):
    runs, _, folders = frozen_runs
    run = runs[True]
    split = pd.read_csv(run.out_dir / "split.csv")
    assert len(split) == 60 and set(split["split"]) == {"train", "validation", "test"}
    assert split.groupby("split").size().to_dict()["train"] > 30
    test_paths = split[split["split"] == "test"]["path"].tolist()
    assert sorted(pd.read_csv(run.out_dir / "predictions.csv")["path"]) == sorted(test_paths)
    assert run.metrics["split_source"] == SPLIT_SOURCE and run.class_names == CLASSES


# --- Run D: full fine-tuning with augmentation, under a tf.distribute strategy ----------------------

def test_full_fine_tuning_with_augmentation_under_mirrored_strategy(work, data):
    weights = backbone_weights_file(work / "vgg16-d.weights.h5", "VGG16")
    result = run_training(TrainConfig(
        data=str(data), backbone="vgg16", weights=str(weights), fine_tune="full", epochs=1, fine_tune_epochs=1,
        batch_size=12, augment_on_the_fly=True, distribute="mirrored", image_size=40, verbose=0,
        out=str(work / "augmented-mirrored")))
    metrics = result.metrics
    assert metrics["augment_on_the_fly"] and not metrics["feature_cache"]
    assert "feature_extraction_s" not in metrics["timing"]
    assert len(metrics["opened_layers"]) == 13 and metrics["image_size"] == [40, 40]
    assert metrics["image_shape"] == [32, 32, 1]
    assert keras.saving.load_model(result.model_path).input_shape == (None, 32, 32, 1)


# --- Bad input stops before training -------------------------------------------------------------

def test_bad_options_stop_before_training(work, data, resnet_weights, capsys):
    cases = [
        (["--backbone", "inceptionv3", "--image-size", "64"], "below the minimum of backbone 'inceptionv3'"),
        (["--backbone", "xception"], "image size 32x32 is below the minimum of backbone 'xception' (71x71); "
                                     "pass --image-size 71 or more"),
        (["--image-size", "16"], "16x16 is below the minimum of backbone 'vgg16'"),
        (["--optimizer", "adadelta"], "unknown optimizer 'adadelta'"),
        (["--backbone", "alexnet"], "unknown backbone 'alexnet'"),
        (["--weights", str(work / "nothing.h5")], "no such file"),
        (["--weights", str(resnet_weights), "--unfreeze", "2"], "does not fit backbone 'vgg16'"),
        (["--weights", str(backbone_weights_file(work / "vgg16-bad.weights.h5", "VGG16")), "--unfreeze", "99"],
         "--unfreeze 99: backbone 'vgg16' has only 13 layers"),
    ]
    for extra, message in cases:
        out = work / "never"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            status = main(["--data", str(data), "--backbone", "vgg16", "--weights", "none", "--verbose", "0",
                           "--out", str(out), *extra])
        err = capsys.readouterr().err
        assert status == 2 and err.startswith("error: ") and message in err, (extra, err)
        assert not out.exists() and not list(work.glob(".never.partial-*"))
        # the one error line alone: not Keras' warnings from the loading that failed (one per missing layer)
        assert not [w for w in caught if "Skipping nested container" in str(w.message)], extra


# --- Random weights: no frozen stage on a random backbone ----------------------------------------------

def test_random_weights_train_the_whole_network_from_the_start_and_say_so(work, data):
    from transfer.models.layers import InferenceMode

    result = run_training(TrainConfig(data=str(data), backbone="mobilenetv2", weights="none", epochs=1,
                                      batch_size=12, verbose=0, out=str(work / "random-mobilenet")))
    metrics = result.metrics
    assert metrics["training"] == "from scratch" and "not transfer learning" in metrics["training_reason"]
    assert set(result.history["stage"]) == {"from-scratch"} and metrics["feature_cache"] is False
    assert "not transfer learning" in (result.out_dir / "report.md").read_text()
    model = keras.saving.load_model(result.model_path)
    assert not any(isinstance(layer, InferenceMode) for layer in model.layers)
    assert "baseline" in metrics and "health" in metrics
