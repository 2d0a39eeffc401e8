"""Score new data with a saved run: ``model.keras`` plus ``classes.json`` (and ``arrays.json``) beside it.

Example::

    from transfer.deploy.predict import predict
    table = predict("runs/vgg19-rmsprop/model.keras", ["new_images/"])
    table[["path", "predicted_class"]]
    table = predict("runs/cnn/model.keras", ["new.h5"], x_key="X")   # a run trained on HDF5 arrays

:func:`predict` picks the reader by the kind of data the run was trained on
(``data_kind`` in classes.json, whose entry in :data:`transfer.data.DATA_KINDS`
names its predictor): images (:func:`predict_images`: the model holds its own
preprocessing, so it takes the PNGs as they are, uint8, the size and channel
count of the training images) or arrays
(:func:`transfer.data.arrays.predict_arrays`: the files are read and scaled
as the run's ``arrays.json`` says).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from transfer.data import DATA_KINDS
from transfer.data.images import check_images, image_batches
from transfer.errors import TransferError
from transfer.evaluation.metrics import predictions_table
from transfer.run_folder import data_kind, load_model, read_classes, require_model


def collect_images(inputs: list) -> list[Path]:
    """PNG files named in ``inputs``: files as given, folders searched recursively (sorted)."""
    paths: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() == ".png" and p.is_file())
            if not found:
                raise TransferError(f"{item}: folder holds no PNG images")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            raise TransferError(f"{item}: no such file or folder")
    if not paths:
        raise TransferError("no images given")
    return paths


def predict_images(model_path: str | os.PathLike, paths: list, batch_size: int = 64, model=None):
    """Scores of every image: a DataFrame with ``path``, ``score_<class>`` per class, ``predicted_class``.

    ``paths`` are PNG files or folders of them. ``model`` may be passed
    already loaded (it must be the one at ``model_path``).
    """
    if model is None:
        model_path = require_model(model_path)
    class_names = read_classes(model_path)["classes"]
    files = collect_images(paths)
    shape = check_images(files)
    model = model or load_model(model_path)
    expected = tuple(model.input_shape[1:])
    if shape != expected:
        raise TransferError(f"images are {shape[0]}x{shape[1]} px with {shape[2]} channel(s), but "
                            f"{model_path} takes {expected[0]}x{expected[1]} px with {expected[2]}")
    if model.output_shape[-1] != len(class_names):
        raise TransferError(f"{model_path} gives {model.output_shape[-1]} scores but classes.json "
                            f"names {len(class_names)} classes")
    batches = image_batches([str(p) for p in files], None, shape, batch_size)
    scores = np.asarray(model.predict(batches, verbose=0), dtype=np.float64)
    return predictions_table(files, scores, class_names)


def predict_image_inputs(model_path, inputs, batch_size, x_key=None, resample=False):
    """The ``images`` kind's predictor (:class:`transfer.data.DataKind`): refuses the array-only options."""
    for given, flag in ((x_key, "--x-key"), (resample, "--resample")):
        if given:
            raise TransferError(f"{flag}: {model_path} was trained on images, not HDF5 arrays")
    return predict_images(model_path, inputs, batch_size)


def predict(model_path: str | os.PathLike, inputs: list, batch_size: int = 64, x_key: str | None = None,
            resample: bool = False, backend: str | None = None):
    """Scores of new data as a DataFrame (``path``, ``score_<class>``..., ``predicted_class``).

    ``inputs`` are PNG files or folders for a run trained on images, HDF5
    files, folders or globs for a run trained on arrays (``x_key``: the image
    key(s), default the ones the run was trained with; ``resample``: accept
    files on another grid than the training files and resample them onto it).
    ``backend``: the Keras backend to score with (default: ``KERAS_BACKEND``, else
    TensorFlow; a model saved under one backend loads under any).
    """
    from transfer.training.devices import use_backend

    use_backend(backend)
    model_path = require_model(model_path)   # a run folder names its model.keras
    kind = data_kind(model_path, DATA_KINDS)
    return DATA_KINDS[kind].predict(model_path, inputs, batch_size, x_key=x_key, resample=resample)
