"""What tests/transfer/training/test_backends.py runs under Keras' JAX backend, in one process (one start-up).

``python tests/transfer/training/jax_session.py WORK IMAGES ARRAYS TF_MODEL``: trains from scratch on the images,
fine-tunes from that run in two stages (feature cache), a 2x1x1 grid, a run on HDF5 arrays weighted with their
per-event ``w`` (``--event-weight w``: the loss's sample weights under JAX, at no extra run), an lr-find; scores
the images with the JAX run and with TF_MODEL (a model saved under TensorFlow; ``-`` where there is none);
writes WORK/session.json. One epoch each: compiling dominates on a CPU.
Every call is the library's own (the commands call the same functions).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from transfer import TrainConfig, lr_find, predict, run_experiment, run_grid  # noqa: E402


def main(work: str, images: str, arrays: str, tf_model: str) -> None:
    work = Path(work)
    common = dict(epochs=1, batch_size=12, verbose=0, baseline="none", backend="jax")
    scratch = run_experiment(TrainConfig(data=images, backbone="resnet15", out=str(work / "scratch"), **common))
    two_stage = run_experiment(TrainConfig(data=images, backbone="resnet15", weights=str(scratch.out_dir),
                                           fine_tune="full", fine_tune_epochs=1, out=str(work / "two-stage"),
                                           **common))
    grid = run_grid(images, backbones="cnn,mlp", optimizers="adam", out=str(work / "grid"), progress=False,
                    epochs=1, batch_size=12, baseline="none", backend="jax")
    arrays_run = run_experiment(TrainConfig(data=arrays, x_key="X", y_key="y", classes="electron,photon",
                                            backbone="cnn", event_weight="w", out=str(work / "arrays"), **common))
    found = lr_find(TrainConfig(data=images, backbone="cnn", out=str(work / "lr-find"), batch_size=12, verbose=0,
                                backend="jax"), steps=8)
    predict(scratch.model_path, [images]).to_csv(work / "scratch_under_jax.csv", index=False)
    if tf_model != "-":
        predict(tf_model, [images]).to_csv(work / "tf_model_under_jax.csv", index=False)
    predict(arrays_run.model_path, [arrays], x_key="X").to_csv(work / "arrays_under_jax.csv", index=False)
    import keras

    summary = {
        "keras_backend": keras.backend.backend(),
        "scratch": scratch.metrics, "two_stage": two_stage.metrics, "arrays": arrays_run.metrics,
        "grid": {"trained": grid.trained, "failures": grid.failures, "folder": str(grid.out_dir)},
        "lr_find": {"steps": len(found.table), "suggested": found.suggested_lr},
    }
    (work / "session.json").write_text(json.dumps(summary, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:5])
