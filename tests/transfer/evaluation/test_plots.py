"""The figures of a run folder (issue 24: an empty rejection panel said nothing; long class names left the figure)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from transfer.evaluation.plots import NAME_CHARS, plot_roc, short_name, unmeasured_rejection  # noqa: E402


def _scores(separated: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.array([0] * 20 + [1] * 20)
    signal = np.where(y == 1, 0.8, 0.2) + (0 if separated else rng.normal(0, 0.3, 40))
    return y, np.column_stack([1 - signal, signal])


def test_a_rejection_that_no_background_event_measures_is_said():
    from sklearn.metrics import roc_curve

    for separated, expected in ((True, 20), (False, None)):
        y, scores = _scores(separated)
        fpr, tpr, _ = roc_curve(y == 1, scores[:, 1])
        assert unmeasured_rejection(fpr, tpr, int((y == 0).sum())) == expected


def test_long_class_names_are_cut_in_the_figures(tmp_path):
    long = "W" * 300
    assert len(short_name(long)) == NAME_CHARS and short_name("TTjets") == "TTjets"
    assert short_name("a" * 30 + "b" * 30).startswith("a") and short_name("a" * 30 + "b" * 30).endswith("b")
    y, scores = _scores(True)
    path = plot_roc(y, scores, [long, "background"], tmp_path / "roc.png")
    assert path.stat().st_size > 10_000
