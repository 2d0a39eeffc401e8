"""ImageNet weights offline: Keras' own cache, seeded by the test; clear errors without it.

Keras fixes its cache folder ($KERAS_HOME) when it is imported, so every check
that needs its own cache runs ``python -m transfer`` in a fresh process with
KERAS_HOME pointing into tmp_path. The network is made unreachable (a dead
proxy), so that these tests behave the same with or without internet.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests._transfer_data import make_blob_dataset, run_transfer_cli
from transfer.models.backbones import BACKBONES

DEAD_PROXY = "http://127.0.0.1:9"


def offline_env(keras_home: Path) -> dict:
    keras_home.mkdir(parents=True, exist_ok=True)
    return {"KERAS_HOME": str(keras_home), "https_proxy": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY,
            "http_proxy": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY, "no_proxy": "", "NO_PROXY": ""}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_blob_dataset(tmp_path_factory.mktemp("weights") / "data", per_class=10, size=32)


def test_hashes_are_the_ones_in_keras_source():
    import importlib.util

    folder = Path(importlib.util.find_spec("keras").submodule_search_locations[0]) / "src" / "applications"
    source = "".join(path.read_text() for path in folder.glob("*.py"))
    for spec in BACKBONES.values():
        if spec.weights_hash:
            assert f'"{spec.weights_hash}"' in source, spec.name
    assert BACKBONES["mobilenetv2"].weights_hash is None  # Keras checks none for MobileNetV2


@pytest.mark.slow
def test_file_names_are_the_ones_keras_looks_for(tmp_path):
    """Build every application with weights="imagenet" offline: Keras' failure names the file it wanted."""
    script = """
import json, sys, keras
from transfer.models.backbones import BACKBONES
asked = {}
for name, spec in sorted(BACKBONES.items()):
    if not spec.pretrained:  # compact networks trained from scratch have no ImageNet weights
        continue
    try:
        spec.builder((75, 75, 3), "imagenet")
        asked[name] = "loaded?!"
    except Exception as exc:
        asked[name] = str(exc)
print(json.dumps(asked))
"""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**offline_env(tmp_path / "keras"), "PATH": "/usr/bin:/bin",
                               "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    asked = json.loads(done.stdout.strip().splitlines()[-1])
    for name, spec in BACKBONES.items():
        if not spec.pretrained:
            assert name not in asked
            continue
        url = spec.weights_url + spec.weights_file_for((75, 75))
        assert f"URL fetch failure on {url}" in asked[name], (name, asked[name])
    assert time.perf_counter() - started < 240


@pytest.fixture(scope="module")
def seeded_home(tmp_path_factory) -> tuple[Path, Path]:
    """A Keras home whose cache holds MobileNetV2's no-top file, written by the test itself."""
    keras = pytest.importorskip("keras")
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    home = tmp_path_factory.mktemp("seeded") / "keras"
    file = home / "models" / BACKBONES["mobilenetv2"].weights_file_for((32, 32))
    file.parent.mkdir(parents=True)
    keras.utils.set_random_seed(5)
    model = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                           pooling="avg")
    with h5py.File(file, "w") as handle:  # the legacy .h5 layout keras.applications loads
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    return home, file


@pytest.mark.slow
def test_seeded_cache_loads_imagenet_weights_offline(seeded_home, data, tmp_path):
    keras = pytest.importorskip("keras")
    home, file = seeded_home
    assert file.name == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    out = tmp_path / "run"
    done = run_transfer_cli(["--data", data, "--backbone", "mobilenetv2", "--weights", "imagenet",
                             "--fine-tune", "frozen", "--epochs", "1", "--verbose", "0", "--out", out],
                            env=offline_env(home))
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["weights_used"] == "imagenet" and metrics["weights_file"] == str(file)
    assert yaml.safe_load((out / "config.yaml").read_text())["weights_used"] == "imagenet"
    # frozen: the saved backbone holds exactly the seeded weights
    from transfer.deploy.predict import load_model

    saved = load_model(out / "model.keras").get_layer("backbone").layer
    seeded = keras.applications.MobileNetV2(include_top=False, weights=str(file), input_shape=(32, 32, 3),
                                            pooling="avg")
    assert len(saved.weights) == len(seeded.weights) == 260
    for a, b in zip(saved.get_weights(), seeded.get_weights()):
        assert np.array_equal(a, b)

    fetched = run_transfer_cli(["fetch-weights", "--backbone", "mobilenetv2"], env=offline_env(home))
    assert fetched.returncode == 0 and fetched.stdout.strip() == str(file)


def test_missing_weights_stop_with_the_file_folder_and_remedy(data, tmp_path):
    home = tmp_path / "keras"
    started = time.perf_counter()
    done = run_transfer_cli(["--data", data, "--backbone", "vgg19", "--out", tmp_path / "run"],
                            env=offline_env(home))
    assert time.perf_counter() - started < 60
    assert done.returncode == 2
    err = done.stderr
    assert "\nerror: ImageNet weights for backbone 'vgg19' are not available" in err
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in err
    assert str(home / "models") in err
    assert "python -m transfer fetch-weights --backbone vgg19" in err and "~/.keras/models" in err
    assert "127.0.0.1:9" in err  # why: the (proxy) server cannot be reached
    assert not (tmp_path / "run").exists()

    fetch = run_transfer_cli(["fetch-weights", "--backbone", "vgg19"], env=offline_env(home))
    assert fetch.returncode == 2 and "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in fetch.stderr


def test_cached_file_with_wrong_hash_is_reported(data, tmp_path):
    home = tmp_path / "keras"
    bad = home / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not the weights")
    done = run_transfer_cli(["--data", data, "--backbone", "vgg16", "--out", tmp_path / "run"],
                            env=offline_env(home))
    assert done.returncode == 2
    assert f"the cached {bad} does not have the hash Keras expects (6d6bbae143d832006294945121d1f1fc)" \
        in done.stderr


@pytest.mark.slow
def test_random_fallback_warns_once_and_is_recorded(data, tmp_path):
    out = tmp_path / "run"
    done = run_transfer_cli(["--data", data, "--backbone", "vgg19", "--on-missing-weights", "random",
                             "--fine-tune", "frozen", "--epochs", "1", "--verbose", "0", "--out", out],
                            env=offline_env(tmp_path / "keras"))
    # without the weights VGG19 is trained whole from random initialisation; one epoch on 60 blobs may teach
    # it nothing, and then it must say so (exit 3, COLLAPSED) rather than pass for a result
    assert done.returncode == 0 or (done.returncode == 3 and "COLLAPSED" in done.stderr), done.stderr[-3000:]
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line and "ImageNet" in line]
    assert len(warnings) == 1, done.stderr
    assert "vgg19" in warnings[0] and "unavailable" in warnings[0] and "random initialisation" in warnings[0]
    assert "not transfer learning" in warnings[0]
    config = yaml.safe_load((out / "config.yaml").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    for record in (config, metrics):
        assert record["weights_used"] == "none"
        assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in record["weights_reason"]
    assert config["weights"] == "imagenet" and config["on_missing_weights"] == "random"
    assert "random initialisation, not transfer learning" in (out / "report.md").read_text()
    assert "weights used: none" in done.stdout
