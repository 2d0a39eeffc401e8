"""transfer: fine-tune pretrained CNN backbones (or train compact networks from scratch) on event
images and HDF5 calorimeter arrays, and report.

The folders say where each part lives: ``cli/`` (one module per subcommand), ``data/`` (the data kinds),
``models/`` (backbones, compact networks, the classifier), ``weights/`` (``--weights``), ``training/`` (plan,
runner, stages, devices), ``experiments/`` (folds, scans, grids, lr-find, pretraining, ensembles),
``evaluation/`` (metrics, baseline, intervals, health, plots, report) and ``deploy/`` (predict, export);
``config.py`` holds the options, ``run_folder.py`` every file a run writes.

The entry points are importable from the package itself, loaded on first use (they need Keras)::

    from transfer import TrainConfig, run_experiment, predict
    result = run_experiment(TrainConfig(data="images/", backbone="smallcnn", epochs=5, out="runs/cnn"))
    scores = predict("runs/cnn/model.keras", ["new_images/"])
"""
from imgen._version import __version__

#: Public names -> the module that defines them, imported on first use (``--help`` stays instant).
_LAZY = {
    "TrainConfig": "transfer.config",
    "run_experiment": "transfer.experiments",
    "run_training": "transfer.training.runner",
    "run_grid": "transfer.experiments.grid",
    "lr_find": "transfer.experiments.lr_find",
    "pretrain": "transfer.experiments.pretrain",
    "ensemble_runs": "transfer.experiments.ensemble",
    "predict": "transfer.deploy.predict",
    "export_model_files": "transfer.deploy.export",
    "explain_run": "transfer.evaluation.explain",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'transfer' has no attribute {name!r}")
