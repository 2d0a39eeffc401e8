"""transfer.evaluation.physics on hand-computable examples."""
from __future__ import annotations

import math

import numpy as np
import pytest

from transfer.evaluation.physics import likelihood_ratio_discriminant, rejection_at_efficiency


def test_rejection_interpolates_on_the_roc_curve():
    # ROC points (fpr, tpr): (0,0) (0,.5) (.5,.5) (.5,1) (1,1)
    y, score = [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]
    result = rejection_at_efficiency(y, score, efficiencies=(0.5, 0.75, 1.0))
    assert result[0.5] is None  # half the signal passes with no background: infinite rejection
    assert result[0.75] == pytest.approx(4.0)  # FPR 0.25, halfway between (0, .5) and (.5, 1)
    assert result[1.0] == pytest.approx(2.0)


def test_rejection_on_a_larger_example():
    # 10 signal at scores 0.55..1.0, 100 background uniform on 0..0.99: cut 0.55 keeps all signal
    # and lets the 45 background at or above 0.55 through (45 %): rejection 100 / 45.
    signal = np.arange(55, 101, 5) / 100  # same floats as the background's ties
    background = np.arange(100) / 100
    y = np.r_[np.ones(10), np.zeros(100)]
    result = rejection_at_efficiency(y, np.r_[signal, background], efficiencies=(1.0, 0.5))
    assert result[1.0] == pytest.approx(100 / 45)
    # 50 % efficiency: the cut at 0.80 keeps 5 signal and 20 background (0.80..0.99): 100 / 20
    assert result[0.5] == pytest.approx(5.0)
    assert rejection_at_efficiency(y, np.r_[signal, background])[0.9] == pytest.approx(100 / 40)


def test_rejection_rejects_bad_input():
    with pytest.raises(ValueError, match="both 0"):
        rejection_at_efficiency([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="labels but"):
        rejection_at_efficiency([1, 0], [0.2])
    with pytest.raises(ValueError, match="efficiency"):
        rejection_at_efficiency([1, 0], [0.9, 0.1], efficiencies=(0.0,))


def test_likelihood_ratio_discriminant():
    p = np.array([[0.8, 0.2], [0.5, 0.5]])
    np.testing.assert_allclose(likelihood_ratio_discriminant(p, 0), [math.log(4), 0.0])
    three = np.array([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3]])
    np.testing.assert_allclose(likelihood_ratio_discriminant(three, 0), [0.0, math.log(0.1 / 0.9)])
    np.testing.assert_allclose(likelihood_ratio_discriminant(three, 1), [math.log(0.25 / 0.75), math.log(1.5)])
    saturated = likelihood_ratio_discriminant(np.array([[1.0, 0.0], [0.0, 1.0]]), 0, eps=1e-7)
    assert np.isfinite(saturated).all()
    np.testing.assert_allclose(saturated, [math.log((1 - 1e-7) / 1e-7), math.log(1e-7 / (1 - 1e-7))])
    with pytest.raises(ValueError, match="signal_index"):
        likelihood_ratio_discriminant(three, 3)
