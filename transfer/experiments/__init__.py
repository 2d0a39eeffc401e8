"""One entry point for everything ``python -m transfer`` trains: a run, a cross-validation, a scan.

:data:`EXPERIMENTS` maps a name to ``(applies(config), runner(config))``;
the first that applies runs. A plain run is the last entry and always
applies. Every result has ``out_dir`` and ``summary_lines()``.

Example::

    from transfer.config import TrainConfig
    from transfer.experiments import run_experiment
    result = run_experiment(TrainConfig(data="images/", backbone="smallcnn", weights="none", folds=5))
    print("\n".join(result.summary_lines()))
"""
from __future__ import annotations

from typing import Callable


def _folds(config):
    from transfer.experiments.crossval import run_folds

    return run_folds(config)


def _scan(config):
    from transfer.experiments.scan import run_train_fraction_scan

    return run_train_fraction_scan(config)


def _single(config):
    from transfer.training.runner import run_training

    return run_training(config)


#: name -> (applies(config), runner(config)), asked in order.
EXPERIMENTS: dict[str, tuple[Callable, Callable]] = {
    "folds": (lambda config: config.folds > 1, _folds),
    "train_fraction": (lambda config: bool(config.train_fraction), _scan),
    "single": (lambda config: True, _single),
}


def run_experiment(config):
    """Run what ``config`` asks for: ``--folds``, ``--train-fraction`` or one training run.

    ``--weights toy-cms`` is pretrained first when it is not in the Keras cache yet. Keras is set to
    ``config.backend`` before anything imports it. The output folder is locked from the start
    (:func:`transfer.files.output_lock`): a second run on the same ``out`` is refused before it opens any data;
    in a job of several processes only process 0, the one that writes, takes the lock.
    """
    import contextlib
    from pathlib import Path

    from transfer.experiments.pretrain import ensure_toy_cms
    from transfer.files import output_lock
    from transfer.training.devices import start_backend, writes_results

    start_backend(config)
    lock = output_lock(Path(config.out or config.default_out())) if writes_results(config) \
        else contextlib.nullcontext()
    with lock:
        ensure_toy_cms(config)
        for applies, runner in EXPERIMENTS.values():
            if applies(config):
                return runner(config)
    raise AssertionError("the single run always applies")
