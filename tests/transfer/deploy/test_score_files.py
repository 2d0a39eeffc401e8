"""python -m transfer predict --out x.root: scores as a friend tree of the input NanoAOD, and the other formats.

Real NanoAOD files (written with imgen.events.nanoaod_write: event numbers shuffled and two lumi blocks, so
that no sort of (run, lumi, event) gives the entry order), real imgen images with a selection that drops
events, a real Keras model (untrained, so that its scores differ from image to image) in a run folder.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import shutil

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")
uproot = pytest.importorskip("uproot")

from imgen.events.nanoaod_write import events_of_json, write_nanoaod  # noqa: E402
from imgen.pipeline import render_files  # noqa: E402
from imgen.selection import build_selection  # noqa: E402
from imgen.synth import generate_events  # noqa: E402
from transfer import run_folder  # noqa: E402
from transfer.cli import main  # noqa: E402

SIZE = 16
#: class names that are not branch names: the ROOT writer turns them into score_tt_jets, score_W_jets
CLASSES = ["tt+jets", "W.jets"]
EVENTS = 24


def _nanoaod(path, name: str, seed: int):
    rng = np.random.default_rng(seed)
    numbers = rng.permutation(np.arange(1000, 1000 + EVENTS))       # entry order != event order
    events = [dataclasses.replace(e, event_id=str(n), run=7, lumi=3 if i % 3 else 2)   # lumis interleaved
              for i, (e, n) in enumerate(zip(events_of_json(generate_events(name, EVENTS, seed=seed)), numbers))]
    return write_nanoaod(path, events)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Two NanoAOD files, their images (some events dropped by a two-jet selection), a run folder."""
    work = tmp_path_factory.mktemp("root_scores")
    (work / "nano").mkdir()
    sources = [_nanoaod(work / "nano" / f"{name}.root", name, seed) for seed, name in enumerate(("TTjets", "Wjets"))]
    summary = render_files([work / "nano"], work / "images", size=SIZE, workers=1,
                           selection=build_selection("none", n_jets="2+"),
                           btag_branch="Jet_btagCSVV2", btag_cut=0.679)
    assert 0 < summary.n_rendered < 2 * EVENTS   # the selection drops events: the friend tree still has them
    keras.utils.set_random_seed(1)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    run = work / "run"
    run.mkdir()
    run_folder.save_model(run, keras.Model(inputs, outputs))
    run_folder.write_json(run, run_folder.CLASSES_FILE,
                          run_folder.classes_info(CLASSES, (SIZE, SIZE, 3), "images", "uint8", "rgb"))
    return work, sources, run


@pytest.mark.slow   # end-to-end: NanoAOD, imgen, predict
def test_root_scores_are_a_friend_tree_of_the_input_nanoaod(scored, capsys):
    work, sources, run = scored
    images = work / "images"
    assert main(["predict", "--model", str(run), str(images), "--out", str(work / "s.csv")]) == 0
    assert main(["predict", "--model", str(run), str(images), "--out", str(work / "s.root")]) == 0
    csv = pd.read_csv(work / "s.csv").set_index("path")
    assert len(csv) > 0 and csv["score_tt+jets"].std() > 0   # scores differ from image to image
    with uproot.open(work / "s.root") as handle:
        assert handle.classnames() == {"Events;1": "TTree"}   # a TTree (a friend), not an RNTuple
        tree = handle["Events"].arrays(library="np")
    assert not [f for f in work.iterdir() if f.name.startswith(".s.root")]   # no temporary file left

    # one entry per entry of each source file, in its order (the sources in manifest order)
    start = 0
    for source in sources:
        with uproot.open(source) as handle:
            ids = handle["Events"].arrays(["run", "luminosityBlock", "event"], library="np")
        n = len(ids["event"])
        assert set(tree["source"][start:start + n]) == {source.as_posix()}
        np.testing.assert_array_equal(tree["entry"][start:start + n], np.arange(n))
        for name in ("run", "luminosityBlock", "event"):
            np.testing.assert_array_equal(tree[name][start:start + n], ids[name], err_msg=name)
            assert tree[name].dtype == ids[name].dtype, name   # NanoAOD's types, for friend-tree cuts
        start += n
    assert start == len(tree["event"])

    # every scored entry has the CSV's scores, for the image of its event; the others NaN and scored 0
    scored_rows = tree["scored"]
    assert scored_rows.sum() == len(csv) and 0 < (~scored_rows).sum()
    for i in np.flatnonzero(scored_rows):
        path = tree["path"][i]
        assert path.endswith(f"_{tree['event'][i]}.png")
        for column, branch in (("score_tt+jets", "score_tt_jets"), ("score_W.jets", "score_W_jets")):
            assert tree[branch][i] == pytest.approx(csv.loc[path, column], rel=1e-6)
        assert tree["predicted_class"][i] == csv.loc[path, "predicted_class"]
    assert np.isnan(tree["score_tt_jets"][~scored_rows]).all() and set(tree["path"][~scored_rows]) == {""}

    # images without a manifest: path and scores only, and the note says so
    loose = work / "loose"
    loose.mkdir()
    for path in list(csv.index)[:3]:
        shutil.copy(path, loose)
    capsys.readouterr()
    assert main(["predict", "--model", str(run), str(loose), "--out", str(work / "loose.root")]) == 0
    assert "event identity not found" in capsys.readouterr().err
    with uproot.open(work / "loose.root") as handle:
        loose_tree = handle["Events"]
        assert "event" not in loose_tree and loose_tree.num_entries == 3
        assert sorted(loose_tree["score_W_jets"].array(library="np").tolist()) == pytest.approx(
            sorted(csv["score_W.jets"][:3].tolist()), rel=1e-6)


@pytest.mark.slow
def test_an_unknown_suffix_is_refused_before_scoring(scored, capsys):
    work, _, run = scored
    missing = work / "no-such-images"   # scoring would fail on it: the suffix is refused first
    assert main(["predict", "--model", str(run), str(missing), "--out", str(work / "s.txt")]) == 2
    err = capsys.readouterr().err
    assert "s.txt: unknown suffix '.txt'; scores are written as .csv, .parquet, .root" in err
    assert not (work / "s.txt").exists()
    status = main(["predict", "--model", str(run), str(work / "images"), "--out", str(work / "s.parquet")])
    if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
        assert status == 2 and "pip install pyarrow" in capsys.readouterr().err
        assert not (work / "s.parquet").exists()
    else:
        assert status == 0 and len(pd.read_parquet(work / "s.parquet")) > 0


def test_array_scores_take_the_event_identity_of_the_hdf5_file(tmp_path):
    import h5py

    from transfer.deploy.event_identity import array_events
    from transfer.deploy.score_files import write_root
    from transfer.evaluation.metrics import predictions_table

    with h5py.File(tmp_path / "ids.h5", "w") as handle:   # imgen-like: run, lumi and event beside X
        handle["X"] = np.zeros((4, 2, 2), np.float32)
        handle["run"], handle["lumi"] = np.array([1, 1, 2, 2]), np.array([5, 5, 6, 6])
        handle["event"] = np.array([b"10", b"11", b"12", b"13"])
    with h5py.File(tmp_path / "bare.h5", "w") as handle:
        handle["X"] = np.zeros((3, 2, 2), np.float32)
    paths = [f"{tmp_path / 'ids.h5'}#2", f"{tmp_path / 'ids.h5'}#0", f"{tmp_path / 'bare.h5'}#1"]
    scores = np.array([[0.1, 0.9], [0.7, 0.3], [0.4, 0.6]])
    events = array_events(predictions_table(paths, scores, ["a", "b"]))
    table = events.table
    assert table["run"].tolist() == [2, 1, None] and table["event"].tolist() == [12, 10, None]
    assert table["entry"].tolist() == [2, 0, 1] and "row (entry) only" in events.notes[0]
    write_root(table, tmp_path / "s.root")
    with uproot.open(tmp_path / "s.root") as handle:
        tree = handle["Events"].arrays(library="np")
    assert tree["run"].tolist() == [2, 1, -1] and tree["luminosityBlock"].tolist() == [6, 5, -1]
    assert tree["event"].tolist() == [12, 10, -1] and tree["score_b"].tolist() == pytest.approx([0.9, 0.3, 0.6])
