"""Small noisy samples end to end: an over-capacity run is told it memorises (console, report.md, metrics.json),
and --scale log's knee, fitted on the training events, is saved and reapplied by predict."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("keras")

from imgen.arrays import ArrayTransform, open_arrays, synth
from transfer.cli import main
from transfer.deploy.predict import predict


@pytest.mark.slow
def test_an_over_capacity_run_is_warned_of_overfitting_and_its_log_knee_round_trips(tmp_path, capsys):
    data = tmp_path / "towers"
    synth.write_realistic_towers(data, 40, seed=5, files_per_class=1)
    out = tmp_path / "run"
    # mlp (about 260k parameters) on 64 training events, no augmentation, no early stop: it memorises them
    assert main(["--data", f"multijet={data}/multijet", f"signal={data}/signal", "--x-key", "gTowerEt",
                 "--backbone", "mlp", "--scale", "log", "--no-augment-on-the-fly", "--epochs", "12",
                 "--patience", "0", "--batch-size", "16", "--baseline", "none", "--verbose", "0", "--seed", "2",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    fit = metrics["health"]["fit"]
    assert fit["overfitting"] and fit["train_accuracy_last"] > 0.95 and fit["gap_last"] > 0.1
    assert "OVERFITTING" in printed and "OVERFITTING" in (out / "report.md").read_text()

    transform = ArrayTransform.from_dict(json.loads((out / "arrays.json").read_text())["transform"])
    train = pd.read_csv(out / "split.csv").query("split == 'train'")["path"]
    with open_arrays([f"multijet={data}/multijet", f"signal={data}/signal"], "gTowerEt") as ds:
        ids = np.asarray(ds.event_sources())
        x, _ = ds.read_batch(np.flatnonzero(np.isin(ids, train)))
    assert transform.log_knee == pytest.approx((x.astype(np.float64).std(),), rel=1e-5)
    expected = pd.read_csv(out / "predictions.csv").set_index("path")
    scored = predict(out / "model.keras", [str(data / "multijet"), str(data / "signal")]).set_index("path")
    columns = ["score_multijet", "score_signal"]
    np.testing.assert_allclose(scored.loc[expected.index, columns].to_numpy(), expected[columns].to_numpy(),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("n_train", "batch", "dropped"), [(1602, 32, True), (794, 32, False), (1600, 32, False),
                                                            (20, 32, False), (49, 32, False), (47, 32, True), (33, 32, True)])
def test_a_last_batch_of_a_few_events_is_left_out_of_each_epoch(n_train, batch, dropped):
    from transfer.training.stages import drops_small_last_batch

    assert drops_small_last_batch(n_train, batch) is dropped
