"""transfer: fine-tune pretrained CNN backbones (or train compact networks from scratch) on event
images and HDF5 calorimeter arrays, and report.

Entry points: :func:`transfer.experiments.run_experiment` (a run, ``folds``
or ``train_fraction``; also ``transfer.run_experiment``), :func:`transfer.train.run_training`
(also ``transfer.run_training``), :func:`transfer.crossval.run_folds`,
:func:`transfer.scan.run_train_fraction_scan`, :func:`transfer.lr_find.lr_find`,
:func:`transfer.ensemble.ensemble_runs`, :func:`transfer.grid.run_grid`
(backbones x optimizers x fine-tuning regimes), :func:`transfer.predict.predict`,
:func:`transfer.export.export_model_files`,
:func:`transfer.pretrain.pretrain`. A run is planned (:mod:`transfer.plan`) and then
executed (:func:`transfer.train.run_plan`); :mod:`transfer.run_folder` names and reads its files.

TensorFlow is imported lazily (inside functions), so ``--help`` is instant.
"""
from imgen._version import __version__

__all__ = ["__version__", "run_experiment", "run_training"]

#: Public functions importable from the package itself, imported on first use (they need TensorFlow).
_LAZY = {"run_training": "transfer.train", "run_experiment": "transfer.experiments"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'transfer' has no attribute {name!r}")
