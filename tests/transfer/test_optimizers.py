"""Learning-rate schedules (``--lr-schedule``): what each stage's rate does, on real Keras runs."""
from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tests._transfer_data import make_blob_dataset  # noqa: E402
from transfer.config import TrainConfig  # noqa: E402
from transfer.errors import OptionError, TransferError  # noqa: E402
from transfer.optimizers import LR_SCHEDULES, resolve_lr_schedule  # noqa: E402
from transfer.training.runner import run_training  # noqa: E402


def test_auto_is_cosine_from_scratch_and_plateau_for_pretrained_stages():
    assert resolve_lr_schedule("auto", from_scratch=True) == "cosine"
    assert resolve_lr_schedule("auto", from_scratch=False) == "plateau"
    assert resolve_lr_schedule("plateau", from_scratch=True) == "plateau"
    with pytest.raises(TransferError, match="step"):
        resolve_lr_schedule("step", from_scratch=True)
    with pytest.raises(OptionError, match="lr_schedule"):
        TrainConfig(data="x", backbone="smallcnn", lr_schedule="step")


def test_cosine_warms_up_over_one_epoch_then_decays_to_zero():
    schedule = LR_SCHEDULES["cosine"].rate(3e-3, 10, 20)   # 10 epochs of 20 steps
    rate = [float(schedule(step)) for step in range(201)]
    assert math.isclose(rate[0], 3e-4, rel_tol=1e-5)           # peak / 10
    assert math.isclose(rate[20], 3e-3, rel_tol=1e-5)          # peak after the first epoch
    assert max(rate) <= 3e-3 * (1 + 1e-6)
    assert all(a <= b + 1e-12 for a, b in zip(rate[:20], rate[1:21]))      # rising
    assert all(a >= b - 1e-12 for a, b in zip(rate[20:200], rate[21:201]))  # then falling
    assert rate[200] < 1e-8
    assert LR_SCHEDULES["plateau"].rate(3e-3, 10, 20) == 3e-3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_blob_dataset(tmp_path_factory.mktemp("schedules") / "data", per_class=10, size=16)


@pytest.mark.parametrize("mode", ["auto", "plateau"])
def test_a_run_records_and_follows_its_schedule(data, tmp_path, mode):
    config = TrainConfig(data=str(data), backbone="mlp", epochs=5, batch_size=6, patience=0, seed=3, verbose=0,
                         lr=2e-3, lr_schedule=mode, baseline="none", out=str(tmp_path / mode))
    result = run_training(config)
    rates = result.history["learning_rate"].to_numpy()   # read from the optimizer at each epoch's end
    assert len(rates) == 5
    if mode == "auto":   # from scratch: cosine, falling to about 0 at the end of the last epoch
        assert result.metrics["lr_schedule"] == {"from-scratch": "cosine"}
        assert "lr 0.002, cosine schedule |" in (result.out_dir / "report.md").read_text()
        assert np.all(np.diff(rates) < 0) and rates[0] <= 2e-3 and rates[-1] < 1e-6
    else:                # patience 0: nothing halves it
        assert result.metrics["lr_schedule"] == {"from-scratch": "plateau"}
        np.testing.assert_allclose(rates, 2e-3, rtol=1e-6)
