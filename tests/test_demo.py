"""The README's main job, end to end at reduced size, exactly as `make demo` runs it."""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_demo_runs_every_stage_and_points_to_the_report(tmp_path: Path, python: str):
    out = tmp_path / "demo"
    done = subprocess.run(
        [python, str(REPO_ROOT / "scripts" / "demo.py"), "--out", str(out), "--events", "150",
         "--size", "32", "--epochs", "4", "--fine-tune-epochs", "1"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    for name in ("TTjets", "Wjets", "DYjets"):
        assert (out / "events" / f"{name}.json").stat().st_size > 0
    with (out / "images" / "manifest.csv").open() as handle:
        rendered = list(csv.DictReader(handle))
    assert {row["class"] for row in rendered} == {"TTjets", "Wjets", "DYjets"}
    with (out / "images_augmented" / "manifest.csv").open() as handle:
        augmented = list(csv.DictReader(handle))
    assert len(augmented) > len(rendered)

    # Offline here: the demo says, in one line, that without ImageNet weights it trains smallcnn instead.
    combined = done.stdout + done.stderr
    assert sum("ImageNet weights for vgg19" in line and "smallcnn" in line for line in combined.splitlines()) == 1
    run_dir = out / "runs" / "smallcnn-demo"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["training"] == "from scratch" and metrics["backbone"] == "smallcnn"
    assert metrics["baseline"]["inputs"].startswith("physics objects")
    assert metrics["health"]["collapsed"] is False
    assert metrics["augment_on_the_fly"] is True  # auto: a network from scratch on imgen's eta-phi images
    report_line = [line for line in done.stdout.splitlines() if line.startswith("Report: ")]
    assert report_line and Path(report_line[-1].removeprefix("Report: ")).is_file()
    assert "baseline (gradient-boosted trees)" in Path(report_line[-1].removeprefix("Report: ")).read_text()
