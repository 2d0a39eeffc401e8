"""``python -m transfer pretrain``, ``--weights RUN_FOLDER`` and ``--weights toy-cms``.

Real runs throughout: a smallcnn pretrained for one epoch on a few dozen
generated 16 px events, real image folders rendered by imgen, real Keras models.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

pytest.importorskip("tensorflow")
import keras  # noqa: E402

from imgen import synth  # noqa: E402
from imgen.pipeline import render_files  # noqa: E402
from tests._transfer_data import make_blob_dataset  # noqa: E402
from transfer.config import TrainConfig  # noqa: E402
from transfer.errors import TransferError  # noqa: E402
from transfer.experiments.pretrain import ensure_toy_cms, pretrain  # noqa: E402
from transfer.models.backbones import get_backbone  # noqa: E402
from transfer.models.classifier import build_transfer_model
from transfer.models.freezing import is_batch_norm  # noqa: E402
from transfer.models.layers import InferenceMode
from transfer.training.runner import run_training  # noqa: E402
from transfer.weights import resolve_weights  # noqa: E402
from transfer.weights.run import BACKBONE_WEIGHTS, PRETRAINED_RECORD, extract_backbone  # noqa: E402
from transfer.weights.toy_cms import TOY_CMS_EPOCHS_ENV, TOY_CMS_EVENTS_ENV

SIZE = 16
QUICK = {"baseline": "none", "patience": 0}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A smallcnn pretrained on 12 generated events per process at 16 px, one epoch."""
    out = tmp_path_factory.mktemp("pretrain") / "pre"
    pretrain("smallcnn", SIZE, out=out, events=12, epochs=1, verbose=0, progress=False, **QUICK)
    return out


def _render(tmp_path, style="physics", seed=7):
    events = tmp_path / f"events-{seed}"
    synth.generate(events, events=10, seed=seed)
    images = tmp_path / f"images-{style}"
    render_files([events], images, style=style, size=SIZE, workers=1)
    return images


def _backbone_weights(path):
    return extract_backbone(path).get_weights()


def test_pretrain_writes_weights_that_weights_loads(pretrained):
    record = json.loads((pretrained / PRETRAINED_RECORD).read_text())
    assert record["backbone"] == "smallcnn" and record["style"] == "physics"
    assert record["image_size"] == [SIZE, SIZE] and record["channels"] == 3
    assert record["data"]["generator"] == "imgen.synth"
    assert record["data"]["generator_version"] == synth.GENERATOR_VERSION and record["data"]["seed"] == 42
    assert (pretrained / BACKBONE_WEIGHTS).is_file() and (pretrained / "report.md").is_file()
    expected = _backbone_weights(pretrained / "model.keras")
    spec = get_backbone("smallcnn")
    for reference in (str(pretrained), str(pretrained / "model.keras")):
        weights = resolve_weights(spec, reference, (SIZE, SIZE))
        assert weights.used == "run" and "imgen.synth" in weights.pretrained_on
        parts = build_transfer_model(spec, (SIZE, SIZE, 3), 2, weights=weights.keras_arg)
        loaded = parts.backbone.get_weights()
        assert len(loaded) == len(expected)
        for a, b in zip(loaded, expected):
            np.testing.assert_array_equal(a, b)
    fresh = build_transfer_model(spec, (SIZE, SIZE, 3), 2).backbone.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(fresh, expected))  # loading did something


def test_run_of_another_backbone_channels_or_style_is_refused(pretrained, tmp_path):
    with pytest.raises(TransferError, match=r"'smallcnn'.*'cnn'"):
        resolve_weights(get_backbone("cnn"), str(pretrained), (SIZE, SIZE))
    grey = make_blob_dataset(tmp_path / "grey", per_class=6, size=SIZE, channels=1)
    config = TrainConfig(data=str(grey), backbone="smallcnn", weights=str(pretrained), out=str(tmp_path / "r1"),
                         epochs=1, verbose=0, **QUICK)
    with pytest.raises(TransferError, match=r"3-channel inputs.*have 1 "):
        run_training(config)
    outline = _render(tmp_path, style="outline")
    config = TrainConfig(data=str(outline), backbone="smallcnn", weights=str(pretrained), out=str(tmp_path / "r2"),
                         epochs=1, verbose=0, **QUICK)
    with pytest.raises(TransferError, match=r"trained on physics inputs.*are outline"):
        run_training(config)
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_fine_tuning_from_pretrained_weights_keeps_batchnorm_in_inference_mode(pretrained, tmp_path):
    images = _render(tmp_path)
    config = TrainConfig(data=str(images), backbone="smallcnn", weights=str(pretrained), out=str(tmp_path / "ft"),
                         fine_tune="full", epochs=1, fine_tune_epochs=1, verbose=0, **QUICK)
    result = run_training(config)
    metrics = result.metrics
    assert metrics["training"] == "two-stage transfer" and metrics["weights_used"] == "run"
    assert "imgen.synth" in metrics["weights_pretrained_on"]
    assert "pretrained on imgen.synth" in (result.out_dir / "report.md").read_text()
    # a small sample of event images: both stages on images rolled and flipped on the fly (auto), no feature cache
    assert not metrics["feature_cache"] and metrics["augmented_stages"] == ["head", "fine-tune"]
    assert "augmented on the fly | phi roll and eta, phi flips in the head, fine-tune stage(s)" in \
        (result.out_dir / "report.md").read_text()
    assert result.opened_layers and not any("batch_normalization" in name for name in result.opened_layers)
    model = keras.saving.load_model(result.out_dir / "model.keras", compile=False)
    assert any(isinstance(layer, InferenceMode) for layer in model.layers)
    before = extract_backbone(pretrained / "model.keras")
    after = extract_backbone(result.out_dir / "model.keras")
    norms = [(a, b) for a, b in zip(before.layers, after.layers) if is_batch_norm(a)]
    assert norms
    for a, b in norms:  # gamma, beta and the moving statistics: untouched by both stages
        for x, y in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(x, y)


def test_toy_cms_builds_once_then_reuses_the_cache(tmp_path, monkeypatch, caplog):
    from keras.src.backend import config as keras_config

    home = tmp_path / "keras-home"
    home.mkdir()
    # Keras fixes KERAS_HOME when it is imported: point both the variable and Keras' own setting here
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    monkeypatch.setenv(TOY_CMS_EVENTS_ENV, "10")
    monkeypatch.setenv(TOY_CMS_EPOCHS_ENV, "1")
    spec = get_backbone("smallcnn")
    with pytest.raises(TransferError, match="no smallcnn backbone pretrained at .* yet"):  # resolving never trains
        resolve_weights(spec, "toy-cms", (SIZE, SIZE))
    config = TrainConfig(data="unused", backbone="smallcnn", weights="toy-cms", image_size=SIZE)
    with caplog.at_level(logging.INFO, logger="transfer.experiments.pretrain"):
        ensure_toy_cms(config)  # what python -m transfer and run_experiment do first
    assert "pretraining it now" in caplog.text
    first = resolve_weights(spec, "toy-cms", (SIZE, SIZE))
    assert first.used == "toy-cms" and str(home / "models" / "hepvision-toy-cms") in first.file
    built = (home / "models" / "hepvision-toy-cms").iterdir().__next__()
    assert "10ev" in built.name and (built / PRETRAINED_RECORD).is_file()
    stamp = (built / BACKBONE_WEIGHTS).stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="transfer.experiments.pretrain"):
        ensure_toy_cms(config)
    assert "pretraining it now" not in caplog.text and "using the cached" in caplog.text
    second = resolve_weights(spec, "toy-cms", (SIZE, SIZE))
    assert second.file == first.file and (built / BACKBONE_WEIGHTS).stat().st_mtime_ns == stamp


def test_pretrain_cli_refuses_bad_input_with_status_2(tmp_path, capsys):
    from transfer.cli import main

    assert main(["pretrain", "--backbone", "nonet", "--out", str(tmp_path / "x")]) == 2
    assert "unknown backbone 'nonet'" in capsys.readouterr().err
    assert main(["pretrain", "--backbone", "cnn", "--data", str(tmp_path), "--task", "bjets",
                 "--out", str(tmp_path / "y")]) == 2
    assert "--task bjets" in capsys.readouterr().err
