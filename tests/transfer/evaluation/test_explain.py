"""python -m transfer explain: on a trained network the maps sit where the label comes from, the sanity check
flags what an untrained network shows, the files and the report section are written (once), event images are
drawn in eta-phi, and a run it cannot explain ends in one line.

Real runs trained here: smallcnn on 8x8 arrays whose label depends only on the energy in one 4x4 block of
cells (class ``high`` has extra energy there, every cell carries the same noise and stray clusters in both
classes), and smallcnn on event images rendered by ``imgen`` from its toy events.
"""
from __future__ import annotations

import json
import math
import shutil

import h5py
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from transfer import run_folder as rf  # noqa: E402
from transfer.cli import main  # noqa: E402
from transfer.evaluation.explain import explain_run  # noqa: E402

pytestmark = pytest.mark.slow
#: The cells the label depends on (rows, columns of the 8x8 grid): a quarter of the cells.
BLOCK = (slice(0, 4), slice(4, 8))


def write_block_files(folder, n_per_class: int = 300, seed: int = 0, size: int = 8) -> list[str]:
    """``low=``/``high=`` items: noise in 30 % of the cells and a stray cluster anywhere, in both classes;
    ``high`` adds 0.5-1 (per cell) to the block, so the block's energy alone decides the class."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    items = []
    for k, name in enumerate(("low", "high")):
        x = (rng.exponential(1.0, (n_per_class, size, size)) * (rng.random((n_per_class, size, size)) < 0.3))
        for event in x:
            r, c = rng.integers(0, size, 2)
            event[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] += rng.exponential(1.5)
        if k:
            x[:, BLOCK[0], BLOCK[1]] += rng.uniform(0.5, 1.0, (n_per_class, 1, 1))
        with h5py.File(folder / f"{name}.h5", "w") as handle:
            handle["X"] = x.astype(np.float32)
        items.append(f"{name}={folder / f'{name}.h5'}")
    return items


@pytest.fixture(scope="module")
def block_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("block")
    items = write_block_files(root / "data")
    out = root / "run"
    assert main(["--data", *items, "--x-key", "X", "--backbone", "smallcnn", "--epochs", "20", "--baseline", "none",
                 "--verbose", "0", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def explained(block_run):
    return explain_run(block_run, methods=["saliency", "smoothgrad", "integrated_gradients"], events=2,
                       max_events=None)


def _block_share(maps: np.ndarray) -> np.ndarray:
    """Per class: the share of a map's magnitude inside the block."""
    mass = np.abs(maps).sum(axis=-1)
    return mass[:, BLOCK[0], BLOCK[1]].sum(axis=(1, 2)) / mass.sum(axis=(1, 2))


def test_the_maps_of_a_trained_network_sit_in_the_block(explained):
    e = explained.explanation
    right, wrong = e.counts.sum(axis=0)
    assert right > 0.85 * (right + wrong)  # the network learned the block
    low, high = 0, 1
    # integrated gradients (contributions to the log-odds, from an empty detector): what makes an event
    # "high" is its block energy, where most of the map's mass is, in a quarter of the cells
    assert _block_share(e.maps["integrated_gradients"]["right"])[high] > 0.6
    # saliency (sensitivity): what would change a "low" event's score most is energy in the block
    assert _block_share(e.maps["saliency"]["right"])[low] > 0.5
    # every method: far more in the block than the same network re-initialised puts there; for every class,
    # except plain saliency of "high", whose block already saturates the score (the cells that would change
    # it most need not be in the block: 0.29 against 0.23 for the one trained network measured)
    for method in e.maps:
        share, random = _block_share(e.maps[method]["right"]), _block_share(e.maps[method]["random"])
        classes = [low] if method == "saliency" else [low, high]
        assert (share[classes] > 1.3 * random[classes]).all(), (method, share, random)
    assert all(check.passed for check in e.sanity.values()), [c.text() for c in e.sanity.values()]
    assert e.completeness < 0.05


def test_the_sanity_check_flags_what_an_untrained_network_shows(block_run, tmp_path):
    """The same architecture with the same input statistics, never trained: SmoothGrad's class averages are then
    what any random network of the architecture gives, and it is reported as failing, not drawn."""
    from transfer.evaluation.attribution import randomized_copy

    run = tmp_path / "untrained"
    shutil.copytree(block_run, run, ignore=shutil.ignore_patterns(rf.EXPLAIN_DIR))
    rf.save_model(run, randomized_copy(rf.load_model(run / rf.MODEL_FILE), seed=11))
    result = explain_run(run, methods=["smoothgrad", "integrated_gradients"], events=1, max_events=None)
    check = result.explanation.sanity["smoothgrad"]
    assert not check.passed and check.correlation >= check.limit
    assert not (run / rf.EXPLAIN_DIR / rf.explain_class_maps_png("smoothgrad")).exists()
    summary = json.loads((run / rf.EXPLAIN_DIR / rf.EXPLAIN_SUMMARY).read_text())
    assert summary["methods"]["smoothgrad"]["sanity"]["passed"] is False
    assert summary["methods"]["smoothgrad"]["figure"] is None
    assert "| smoothgrad |" in (run / rf.REPORT_FILE).read_text() and "fails: not shown" in (run / rf.REPORT_FILE).read_text()
    assert any("smoothgrad" in line and "FAILS" in line for line in result.summary_lines())


def test_explain_writes_its_files_and_one_report_section(explained, block_run, capsys):
    folder = block_run / rf.EXPLAIN_DIR
    for name in (rf.EXPLAIN_ARRAYS, rf.EXPLAIN_SUMMARY, rf.EXPLAIN_SANITY_PNG, rf.EXPLAIN_EVENTS_PNG["right"],
                 *(rf.explain_class_maps_png(m) for m in ("saliency", "smoothgrad", "integrated_gradients"))):
        assert (folder / name).is_file(), name
    wrong = int(explained.explanation.counts[:, 1].sum())  # the most confidently wrong, when there are any
    assert (folder / rf.EXPLAIN_EVENTS_PNG["wrong"]).is_file() == (wrong > 0)
    arrays = np.load(folder / rf.EXPLAIN_ARRAYS)
    k = len(arrays["class_names"])
    assert arrays["mean_input"].shape == (k, 8, 8, 1) and arrays["saliency/right"].shape == (k, 8, 8, 1)
    assert arrays["events_right/inputs"].shape == (2, 8, 8, 1) and bool(arrays["saliency/passed"])
    report = (block_run / rf.REPORT_FILE).read_text()
    assert report.startswith("# Transfer-learning run")  # the training report is kept, the section added
    assert report.count("<!-- hepvision:explain -->") == 1
    for name in ("saliency", "integrated_gradients"):
        assert f"{rf.EXPLAIN_DIR}/{rf.explain_class_maps_png(name)}" in report
    # again from the command line, one method: the section is replaced, the other figures go
    assert main(["explain", str(block_run), "--methods", "saliency", "--events", "0", "--max-events", "40"]) == 0
    printed = capsys.readouterr().out
    assert "explained 40 events" in printed and "saliency" in printed
    # all: every method that applies to smallcnn (Grad-CAM does not)
    assert main(["explain", str(block_run), "--methods", "all", "--events", "0", "--max-events", "20"]) == 0
    printed = capsys.readouterr().out
    assert "smoothgrad" in printed and "integrated_gradients" in printed and "gradcam" not in printed
    assert main(["explain", str(block_run), "--methods", "saliency", "--events", "0", "--max-events", "40"]) == 0
    capsys.readouterr()
    report = (block_run / rf.REPORT_FILE).read_text()
    assert report.count("<!-- hepvision:explain -->") == 1 and "integrated_gradients" not in report
    assert not (folder / rf.explain_class_maps_png("integrated_gradients")).exists()
    assert not (folder / rf.EXPLAIN_EVENTS_PNG["right"]).exists()


@pytest.fixture(scope="module")
def resnet_run(block_run):
    """resnet15 on the same block data: its trunk ends in global average pooling, so Grad-CAM applies."""
    out = block_run.parent / "resnet15"
    items = [f"{name}={block_run.parent / 'data' / f'{name}.h5'}" for name in ("low", "high")]
    assert main(["--data", *items, "--x-key", "X", "--backbone", "resnet15", "--epochs", "8", "--baseline", "none",
                 "--verbose", "0", "--out", str(out)]) == 0
    return out


def test_gradcam_of_a_trained_resnet_finds_the_block(resnet_run, block_run, capsys):
    result = explain_run(resnet_run, methods=["gradcam"], events=0, max_events=None)
    check = result.explanation.sanity["gradcam"]
    assert check.passed, check.text()
    high = 1
    # coarse (the last maps are 4x4 cells for 8x8 inputs) and positive evidence only, but more of it in the
    # block than the block's share of the cells (a quarter) and than the re-initialised network puts there
    share = _block_share(result.explanation.maps["gradcam"]["right"])[high]
    assert share > max(0.25, _block_share(result.explanation.maps["gradcam"]["random"])[high]), share
    # a network without such a trunk is refused in one line
    assert main(["explain", str(block_run), "--methods", "gradcam"]) == 2
    assert "global average pooling" in capsys.readouterr().err


def test_explain_refuses_what_it_cannot_explain_in_one_line(block_run, tmp_path, capsys):
    def error(*args) -> str:
        assert main(["explain", *map(str, args)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        return lines[0]

    partial = tmp_path / "partial"
    partial.mkdir()
    for name in (rf.MODEL_FILE, rf.CLASSES_FILE, rf.CONFIG_FILE):
        shutil.copy(block_run / name, partial / name)
    message = error(partial)
    assert "metrics.json" in message and "predictions.csv" in message and "arrays.json" in message
    assert "missing" in message

    collapsed = tmp_path / "collapsed"
    shutil.copytree(block_run, collapsed, ignore=shutil.ignore_patterns(rf.EXPLAIN_DIR))
    metrics = json.loads((collapsed / rf.METRICS_FILE).read_text())
    metrics["health"] = {"collapsed": True, "warnings": ["COLLAPSED: the network learned nothing"]}
    (collapsed / rf.METRICS_FILE).write_text(json.dumps(metrics))
    assert "collapsed" in error(collapsed)

    other = write_block_files(tmp_path / "ten", n_per_class=20, size=10)
    message = error(block_run, "--data", *other)
    assert "10x10" in message and "8x8" in message and "--resample" in message

    assert "choose from saliency" in error(block_run, "--methods", "occlusion")
    assert "no such run folder" in error(tmp_path / "nowhere")


def test_labelled_data_of_the_same_grid_are_explained_with_their_own_labels(block_run, tmp_path):
    items = write_block_files(tmp_path / "new", n_per_class=20, seed=5)
    result = explain_run(block_run, data=items[1:], methods=["saliency"], events=0)  # the high class only
    assert result.events.origin.startswith("--data") and set(result.explanation.labels) == {1}
    assert result.explanation.counts[0].sum() == 0 and result.explanation.counts[1].sum() == 20


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """smallcnn on 24-px event images imgen rendered from its toy DYjets and TTjets events."""
    from imgen.pipeline import render_files
    from imgen.synth import generate

    root = tmp_path_factory.mktemp("images")
    generate(root / "events", events=80, seed=3, classes=["DYjets", "TTjets"])
    render_files([root / "events"], root / "images", size=24, workers=1, seed=1)
    out = root / "run"
    assert main(["--data", str(root / "images"), "--backbone", "smallcnn", "--epochs", "8", "--baseline", "none",
                 "--verbose", "0", "--out", str(out)]) == 0
    return out


def test_event_images_are_explained_in_eta_phi_through_their_uint8_pixels(image_run):
    result = explain_run(image_run, methods=["saliency", "integrated_gradients"], events=1)
    geometry = result.events.geometry
    assert geometry.combined and geometry.extent == pytest.approx((-3.0, 3.0, -math.pi, math.pi))
    assert result.events.inputs.dtype == np.uint8
    maps = result.explanation.maps["saliency"]["right"]
    assert maps.shape[1:] == (24, 24, 3) and np.abs(maps).max() > 0
    assert (result.folder / rf.EXPLAIN_SANITY_PNG).is_file()
    data = rf.read_config(image_run / rf.MODEL_FILE)["data"]  # the folder of class subfolders it trained on
    again = explain_run(image_run, data=data if isinstance(data, list) else [data], methods=["saliency"], events=0,
                        max_events=30)
    assert again.events.origin.startswith("--data") and len(again.explanation.labels) == 30
