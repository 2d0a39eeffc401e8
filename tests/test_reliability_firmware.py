"""Issue 24, point 2: hls4ml firmware that computes what the model computes, through ``python -m transfer export``.

A network trained from scratch on event images (uint8 pixels up to 255) was exported with one ``ap_fixed<16,6>``
for everything (range +-32): the inputs wrapped, the firmware's AUC fell far below the float model's, and the
command exited 0. Now the types come from the data and the command fails, with the numbers, when the firmware
disagrees beyond the margin. Real runs, real hls4ml builds with the system g++ (about a minute each: few and tiny).
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

pytest.importorskip("keras")
pytest.importorskip("hls4ml")
if shutil.which("g++") is None:
    pytest.skip("hls4ml's C++ emulation needs the system g++", allow_module_level=True)

from tests._transfer_data import make_blob_dataset  # noqa: E402
from transfer.cli import main  # noqa: E402
from transfer.deploy.export import firmware_failure  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    """An MLP trained from scratch on 8x8 PNGs whose pixels reach about 240."""
    work = tmp_path_factory.mktemp("firmware")
    data = make_blob_dataset(work / "blobs", classes=("a", "b"), per_class=40, size=8)
    out = work / "mlp"
    assert main(["--data", str(data), "--backbone", "mlp", "--epochs", "5", "--baseline", "none", "--verbose", "0",
                 "--out", str(out)]) == 0
    return out


def test_one_narrow_type_for_everything_fails_with_the_numbers(image_run, tmp_path, capsys):
    out = tmp_path / "narrow"
    assert main(["export", "--model", str(image_run), "--format", "hls4ml", "--precision", "ap_fixed<16,6>",
                 "--out", str(out)]) == 3
    captured = capsys.readouterr()
    error = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "Traceback" not in captured.err
    check = json.loads((out / "export_check.json").read_text())        # written, for inspection
    agreement = check["formats"]["hls4ml"]["agreement"]
    assert agreement["within_margin"] is False and agreement["auc_loss"] > 0.01
    assert f"{agreement['fixed_point_test_auc']:.3f}" in error[0] and f"{agreement['float_test_auc']:.3f}" in error[0]
    assert "margin 0.01" in error[0] and "--accept-auc-loss" in error[0] and "exit status 3" in error[0]
    assert captured.out.strip().splitlines()[-1].startswith("hls4ml fixed-point agreement")
    assert "BEYOND the margin" in captured.out.strip().splitlines()[-1]
    agreement["accepted"] = True                                        # what --accept-auc-loss records
    assert firmware_failure(check) is None


def test_types_chosen_from_the_data_agree_with_the_model(image_run, tmp_path, capsys, caplog):
    out = tmp_path / "auto"
    with caplog.at_level(logging.INFO):
        assert main(["export", "--model", str(image_run), "--format", "hls4ml", "--part", "xc7z020clg400-1",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    result = json.loads((out / "export_check.json").read_text())["formats"]["hls4ml"]
    agreement = result["agreement"]
    assert agreement["within_margin"] is True and agreement["auc_loss"] <= 0.01
    assert agreement["same_predicted_class"] >= 0.95
    # the input type holds the pixels: 255 needs 9 integer bits and a sign, doubled for headroom
    image_type = result["chosen_precision"]["image"]["result"]
    assert int(image_type.split(",")[1].rstrip(">")) >= 10, image_type
    assert printed[-1].startswith("hls4ml fixed-point agreement on ") and "within the margin 0.01" in printed[-1]
    # the build says what it does (minutes for real networks) and that the design is too big for the part
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("hls4ml (1/3): measuring the range") for m in messages)
    assert any(m.startswith("hls4ml (3/3): compiling the C++ emulation") for m in messages)
    assert result["resources"]["fits_part"] is False and result["resources"]["part_resources"]["dsp"] == 220
    assert any("has 220: the design does not fit" in line for line in printed)
