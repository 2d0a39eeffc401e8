"""transfer.training.plan and its runner (transfer.training.runner.run_plan, run_plans): runs decided before they start.

Planning needs no TensorFlow; the runner trains tiny networks (one epoch, a few images).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from tests._transfer_data import make_blob_dataset
from transfer import run_folder as rf
from transfer.config import TrainConfig
from transfer.data import open_data
from transfer.errors import OptionError, TransferError
from transfer.training.plan import ExperimentPlan, Part, output_folder, plan_experiment, plan_run, recorded_config

FAST = dict(backbone="mlp", weights="none", epochs=1, patience=0, verbose=0, baseline="none", batch_size=16)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_blob_dataset(tmp_path_factory.mktemp("plan") / "images", classes=("a", "b"), per_class=10,
                             size=12)


def _config(images, **options) -> TrainConfig:
    return TrainConfig(data=str(images), **{**FAST, **options})


def test_a_plan_is_frozen_and_records_what_the_run_resolves(images, tmp_path):
    config = _config(images, out=str(tmp_path / "run"))
    with open_data(config) as source:
        plan = plan_run(config, source.view(), tmp_path / "run", facts={"fold": "1 of 2"}, info={"fold": 1})
    assert plan.image_size == (12, 12) and plan.from_scratch and plan.weights.used == "none"
    assert plan.record.classes == ["a", "b"] and plan.record.image_size == (12, 12)
    assert plan.record.out == str(tmp_path / "run") and plan.record.overwrite is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.out = tmp_path / "elsewhere"
    with pytest.raises(TypeError):
        plan.facts["fold"] = "2 of 2"  # read-only, like the rest of the plan


def test_everything_that_can_stop_a_run_stops_the_plan(images, tmp_path):
    with open_data(_config(images)) as source:
        view = source.view()
        with pytest.raises(OptionError, match="--signal c: not one of the classes a, b"):
            plan_run(_config(images, signal="c"), view, tmp_path / "x")
        with pytest.raises(TransferError, match="--image-size"):  # 12 px is below vgg19's minimum of 32
            plan_run(_config(images, backbone="vgg19"), view, tmp_path / "x")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "model.keras").write_text("a run")
    with pytest.raises(TransferError, match="already holds a run"):
        output_folder(_config(images, out=str(tmp_path / "taken")))
    assert output_folder(_config(images, out=str(tmp_path / "taken"), overwrite=True)) == tmp_path / "taken"
    assert output_folder(_config(images), "runs/lr-find-mlp") == Path("runs/lr-find-mlp")


def test_an_experiment_plans_every_part_with_one_resolution_of_the_weights(images, tmp_path):
    config = _config(images)
    with open_data(config) as source:
        parts = [Part(f"part-{i}", source.view(), info={"part": i}) for i in (1, 2)]
        plan = plan_experiment(config, tmp_path / "exp", parts)
    assert [run.name for run in plan.runs] == ["part-1", "part-2"]
    assert [run.out for run in plan.runs] == [tmp_path / "exp" / "part-1", tmp_path / "exp" / "part-2"]
    assert all(run.weights is plan.weights for run in plan.runs)
    assert all(run.record.out == str(tmp_path / "exp") for run in plan.runs)  # reproduces the experiment
    assert plan.record == recorded_config(config, tmp_path / "exp")


@pytest.mark.slow
def test_the_runner_runs_plans_over_one_view_into_one_folder(images, tmp_path):
    """Two runs with different learning rates over one data source and one split (a grid's use)."""
    pytest.importorskip("keras")
    from transfer.training.runner import run_plans

    out = tmp_path / "grid"
    with open_data(_config(images)) as source:
        view = source.view()
        runs = tuple(plan_run(_config(images, lr=lr, out=str(out)), view, out / name, name=name,
                              facts={"fold": name}, info={"cell": name})
                     for name, lr in (("fast", 1e-2), ("slow", 1e-4)))
        plan = ExperimentPlan(out=out, record=recorded_config(_config(images), out), weights=runs[0].weights,
                              runs=runs)
        seen = []

        def summarize(staging, planned, results):
            seen.append(sorted(p.name for p in staging.iterdir()))
            (staging / "summary.json").write_text(json.dumps([r.metrics["lr"] for r in results]))
            return len(results)

        results, summary = run_plans(plan, summarize)
    assert summary == 2 and seen == [["fast", "slow"]]
    assert [r.out_dir for r in results] == [out / "fast", out / "slow"]
    assert json.loads((out / "summary.json").read_text()) == [1e-2, 1e-4]
    for name in ("fast", "slow"):
        run = out / name
        assert set(rf.RUN_FILES) == {p.name for p in run.iterdir()}  # the list of a run folder's files is true
        metrics = rf.read_metrics(run)
        assert metrics["cell"] == name and metrics["image_size"] == [12, 12]
        recorded = yaml.safe_load((run / rf.CONFIG_FILE).read_text())
        assert recorded["fold"] == name and recorded["classes"] == ["a", "b"] and recorded["out"] == str(run)
    top = yaml.safe_load((out / rf.CONFIG_FILE).read_text())
    assert top["weights_used"] == "none" and top["out"] == str(out) and top.get("classes") is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_a_plan_given_its_weights_is_checked_before_anything_is_written(images, tmp_path):
    """plan_run with weights already resolved (what pretrain does) still checks the view first."""
    from transfer.models.backbones import get_backbone
    from transfer.training.plan import check_view, plan_run
    from transfer.weights import ResolvedWeights

    config = _config(images, signal="c")
    with open_data(config) as source:
        view = source.view()
        with pytest.raises(OptionError, match="--signal c"):
            plan_run(config, view, tmp_path / "x", weights=ResolvedWeights(None, "none"))
        assert check_view(get_backbone("mlp"), view, _config(images)) == (12, 12)
    assert not (tmp_path / "x").exists()
