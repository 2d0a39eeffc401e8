"""transfer.run_folder: a run folder's files written and read back, and the errors that name them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._transfer_data import make_blob_dataset
from transfer import run_folder as rf
from transfer.config import RECORDED_KEYS, TrainConfig
from transfer.data import open_data
from transfer.errors import RunFolderError, TransferError
from transfer.weights import ResolvedWeights


@pytest.fixture()
def view(tmp_path):
    data = make_blob_dataset(tmp_path / "images", classes=("b", "a"), per_class=5, size=8)
    with open_data(TrainConfig(data=str(data), backbone="smallcnn")) as source:
        yield source.view()


def test_classes_json_round_trip(tmp_path, view):
    path = rf.write_classes(tmp_path, view)
    assert path == tmp_path / rf.CLASSES_FILE and path.read_text().endswith("}\n")
    info = rf.read_classes(tmp_path / rf.MODEL_FILE)
    assert info["classes"] == ["a", "b"] and info["ids"] == {"a": 0, "b": 1}
    assert info["image_shape"] == [8, 8, 1] and info["data_kind"] == "images" and info["input_dtype"] == "uint8"
    assert rf.data_kind(tmp_path / rf.MODEL_FILE, ("images",)) == "images"
    with pytest.raises(RunFolderError, match="unknown data_kind 'images'"):
        rf.data_kind(tmp_path / rf.MODEL_FILE, ("arrays",))


@pytest.mark.parametrize("text, words", [
    (None, ["classes.json: not found", "beside model.keras"]),
    ("{not json", ["classes.json: not valid JSON"]),
    ('{"ids": {}}', ["classes.json: expected a JSON object with the keys classes"]),
    ('{"classes": "a,b"}', ['expected "classes" to be a list']),
])
def test_a_bad_classes_json_is_named(tmp_path, text, words):
    if text is not None:
        (tmp_path / rf.CLASSES_FILE).write_text(text)
    with pytest.raises(RunFolderError) as caught:
        rf.read_classes(tmp_path / rf.MODEL_FILE)
    assert isinstance(caught.value, TransferError)  # what the CLIs catch
    for word in words:
        assert word in str(caught.value)
    assert str(tmp_path) in str(caught.value)


def test_arrays_and_metrics_files(tmp_path):
    rf.write_json(tmp_path, rf.ARRAYS_FILE, {"arrays": {"x_keys": ["X"]}, "transform": {}})
    assert rf.read_arrays_info(tmp_path / rf.MODEL_FILE)["arrays"]["x_keys"] == ["X"]
    rf.write_json(tmp_path, rf.ARRAYS_FILE, {"arrays": {}})
    with pytest.raises(RunFolderError, match="keys arrays, transform"):
        rf.read_arrays_info(tmp_path / rf.MODEL_FILE)
    rf.write_metrics(tmp_path, {"test": {"accuracy": 0.5}})
    assert rf.read_metrics(tmp_path)["test"]["accuracy"] == 0.5  # a folder or its model.keras
    assert rf.read_metrics(tmp_path / rf.MODEL_FILE) == rf.read_metrics(tmp_path)


def test_recorded_class_names_fall_back_to_metrics_then_none(tmp_path):
    assert rf.recorded_class_names(tmp_path) is None
    rf.write_metrics(tmp_path, {"classes": ["x", "y"]})
    assert rf.recorded_class_names(tmp_path) == ["x", "y"]
    (tmp_path / rf.CLASSES_FILE).write_text(json.dumps({"classes": ["p", "q"]}))
    assert rf.recorded_class_names(tmp_path) == ["p", "q"]


def test_config_yaml_records_facts_that_reading_it_back_ignores(tmp_path):
    weights = ResolvedWeights(keras_arg=None, used="none", reason="offline")
    facts = rf.run_facts(weights, fold="1 of 3")
    assert set(facts) <= set(RECORDED_KEYS) and facts["weights_reason"] == "offline"
    config = TrainConfig(data="images", backbone="mlp", lr=0.01, out=str(tmp_path / "run"))
    rf.write_config(tmp_path, config, facts)
    text = (tmp_path / rf.CONFIG_FILE).read_text()
    assert "fold: 1 of 3" in text and "weights_used: none" in text
    options = rf.read_config(tmp_path / rf.MODEL_FILE)
    assert options["lr"] == 0.01 and options["backbone"] == "mlp" and "fold" not in options
    assert rf.read_config(tmp_path / "elsewhere" / rf.MODEL_FILE, missing_ok=True) == {}


def test_missing_and_damaged_models_are_named(tmp_path):
    missing = tmp_path / "run" / rf.MODEL_FILE
    with pytest.raises(RunFolderError, match=f"--model {missing}: no such file"):
        rf.require_model(missing)
    with pytest.raises(RunFolderError, match="no such file"):
        rf.load_model(missing)
    broken = tmp_path / rf.MODEL_FILE
    broken.write_bytes(b"PK\x03\x04 not really a zip archive")
    with pytest.raises(RunFolderError, match="truncated or damaged"):
        rf.check_keras_archive(broken)
    assert rf.model_file(tmp_path) == broken and rf.model_file(broken) == broken


def test_a_saved_model_loads_back(tmp_path):
    keras = pytest.importorskip("keras")
    import numpy as np

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = rf.save_model(tmp_path, model)
    assert path == tmp_path / rf.MODEL_FILE
    loaded = rf.load_model(path)
    x = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert getattr(loaded, "optimizer", None) is None  # saved without its training state


def test_every_name_is_a_plain_file_name():
    assert len(set(rf.RUN_FILES)) == len(rf.RUN_FILES)
    assert all(Path(name).name == name for name in (*rf.RUN_FILES, rf.ARRAYS_FILE))
