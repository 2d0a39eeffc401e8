"""Scores of a model while it trains, on this process: what validation, the collapse monitor, the frozen-feature
cache and the final evaluation read.

On one device that is the model itself. Data-parallel, a model's weights are spread over devices (with JAX, over
the processes of a job), and scoring through the distribution would need every batch to split evenly and every
process to take part; instead a :class:`Scorer` keeps a float32 copy of the model on this process's own device
(:func:`transfer.models.precision.float32_copy`), refreshes its weights and scores every event, whatever the
batch size.
"""
from __future__ import annotations

import numpy as np

from transfer.models.precision import float32_copy


class Scorer:
    """``scorer(batches) -> scores`` of ``model`` as it is now (see the module docstring)."""

    def __init__(self, model, distribution):
        self.model, self.distribution = model, distribution
        self._copy = None

    def current(self):
        """The model to score with: ``model`` itself, or its copy on this device with the current weights."""
        if not self.distribution.distributed:
            return self.model
        weights = self.model.get_weights()
        with self.distribution.outside():
            if self._copy is None:
                self._copy = float32_copy(self.model, weights)
            else:
                self._copy.set_weights(weights)
        return self._copy

    def __call__(self, batches) -> np.ndarray:
        model = self.current()
        with self.distribution.outside():
            return np.asarray(model.predict(batches, verbose=0))
