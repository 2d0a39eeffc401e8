"""The one error class of the ``transfer`` package.

Every problem a user can fix (a bad option, a bad data folder, missing
weights) raises :class:`TransferError`; ``python -m transfer`` prints it as
``error: ...`` and exits with status 2. Its message names the file or option
and what was expected.
"""
from __future__ import annotations


class TransferError(ValueError):
    """A bad input to ``transfer``: the message says which and why."""
