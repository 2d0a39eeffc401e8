"""The errors of the ``transfer`` package: one base, a subclass per kind of problem.

Every problem a user can fix (a bad option, a bad data folder, missing
weights, a damaged run folder) raises a :class:`TransferError`;
``python -m transfer`` catches that one class and prints it as
``error: ...`` with exit status 2. Its message names the file or option and
what was expected. The subclasses let a caller (a notebook, a grid of runs)
tell the kinds apart, e.g. skip a cell whose weights cannot be had but stop
on a bad option::

    try:
        run_experiment(config)
    except WeightsUnavailable:      # a TransferError
        ...
    except OptionError:
        raise
"""
from __future__ import annotations

from pathlib import Path


class TransferError(ValueError):
    """A bad input to ``transfer``: the message says which and why."""


class OptionError(TransferError):
    """An option (a flag, a ``TrainConfig`` field, a YAML key) has a value that cannot be used."""


class DataError(TransferError):
    """The data (``--data`` and the options that read it) cannot be trained on as given."""


class RunFolderError(TransferError):
    """A run folder (``model.keras`` and the files beside it) is missing, incomplete or damaged."""


class WeightsUnavailable(TransferError):
    """ImageNet weights are neither in the Keras cache nor downloadable."""

    def __init__(self, message: str, reason: str, file: str, folder: Path):
        super().__init__(message)
        self.reason, self.file, self.folder = reason, file, folder
