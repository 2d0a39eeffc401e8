"""Errors of the JSON-to-image stage: every message names the file and the problem.

``ImgenError`` is what ``python -m imgen`` prints as ``error: ...`` before
exiting with status 2. ``BadEventError`` is one event that cannot be used; by
default the run skips and counts it, with ``--strict`` it stops the run. ``ManifestError`` is a dataset's
``manifest.csv`` that cannot be used (``augment`` and ``transfer`` read it).
"""
from __future__ import annotations


class ImgenError(ValueError):
    """Bad input or a refused run; the message names the file (and event)."""


class BadEventError(ImgenError):
    """One event that cannot be rendered.

    ``reason`` is a short category used to count skipped events in the run
    summary (e.g. ``"negative pt"``); the message says where and why.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # keep ``reason`` when sent between processes
        return (type(self), (str(self), self.reason))


class ManifestError(ImgenError):
    """A manifest is missing, malformed, or names files that do not exist."""
