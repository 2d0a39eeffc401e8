"""transfer: fine-tune pretrained CNN backbones (or train compact networks from scratch) on event
images and HDF5 calorimeter arrays, and report.

Entry points: :func:`transfer.experiments.run_experiment` (a run, ``folds``
or ``train_fraction``), :func:`transfer.train.run_training`,
:func:`transfer.crossval.run_folds`, :func:`transfer.scan.run_train_fraction_scan`,
:func:`transfer.lr_find.lr_find`, :func:`transfer.ensemble.ensemble_runs`,
:func:`transfer.predict.predict`, :func:`transfer.export.export_model_files`,
:func:`transfer.pretrain.pretrain`.

TensorFlow is imported lazily (inside functions), so ``--help`` is instant.
"""
from imgen._version import __version__

__all__ = ["__version__"]
