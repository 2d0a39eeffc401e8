"""``python -m transfer``: train (default), ``grid``, ``predict``, ``export``, ``lr-find``, ``ensemble``,
``fetch-weights``, ``pretrain``, ``explain``; one module per subcommand, each with its parser and ``run(argv) -> int``.

Only argument parsing lives here; the work is done by library functions that a notebook calls with the same
names: :func:`transfer.experiments.run_experiment` (a run, ``--folds`` or ``--train-fraction``),
:func:`transfer.experiments.grid.run_grid`, :func:`transfer.deploy.predict.predict`,
:func:`transfer.deploy.export.export_model_files`, :func:`transfer.experiments.lr_find.lr_find`,
:func:`transfer.experiments.ensemble.ensemble_runs`, :func:`transfer.weights.imagenet.fetch_weights`,
:func:`transfer.experiments.pretrain.pretrain` and :func:`transfer.evaluation.explain.explain_run`. A subcommand's module is imported only when it runs, and
TensorFlow only once its work starts, so ``--help`` is instant.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

PROG = "python -m transfer"

#: subcommand -> the module of :mod:`transfer.cli` that parses and runs it; training is the default.
COMMANDS = {"train": "train", "grid": "grid", "predict": "predict", "export": "export", "lr-find": "lr_find",
            "ensemble": "ensemble", "fetch-weights": "fetch_weights", "pretrain": "pretrain", "explain": "explain"}
#: Subcommands that continue where an interrupted run stopped; the others write their output whole or not at
#: all, and say that running them again starts over.
RESUMING = ("grid",)


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m transfer`` with ``argv``; returns the exit status (2 for bad input)."""
    from imgen.cli_guard import INTERRUPTED, INTERRUPTED_RESTART, run_command
    from transfer.errors import TransferError

    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("jax").setLevel(logging.WARNING)  # "Unable to initialize backend 'tpu'" and the like
    name = COMMANDS.get(argv[0]) if argv else None
    command = importlib.import_module(f"transfer.cli.{name or 'train'}").run
    return run_command(lambda: command(argv[1:] if name else argv), (TransferError,), folder=_out_given(argv),
                       interrupted=INTERRUPTED if argv and argv[0] in RESUMING else INTERRUPTED_RESTART)


def _out_given(argv: list[str]) -> str | None:
    """The ``--out`` of ``argv`` (named when a full disk is reported without a file name)."""
    for i, arg in enumerate(argv):
        if arg == "--out" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--out="):
            return arg.split("=", 1)[1]
    return None
