"""Deterministic splits and shards, and where each file's class comes from."""
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from imgen.errors import ImgenError
from imgen.events.inputs import class_from_file, resolve_inputs
from imgen.split import SPLITS, assign_shard, assign_split, image_event_id, parse_fractions, parse_shard


def test_split_is_deterministic_and_independent_of_order():
    ids = [str(i) for i in range(2000)]
    first = [assign_split(i, "Wjets", 7, (0.8, 0.1, 0.1)) for i in ids]
    again = [assign_split(i, "Wjets", 7, (0.8, 0.1, 0.1)) for i in reversed(ids)][::-1]
    assert first == again
    assert assign_split(10924, "Wjets", 7) == assign_split("10924", "Wjets", 7)


def test_split_roughly_follows_fractions():
    counts = Counter(assign_split(i, "TTjets", 0, (0.6, 0.3, 0.1)) for i in range(20000))
    assert abs(counts["train"] / 20000 - 0.6) < 0.02
    assert abs(counts["validation"] / 20000 - 0.3) < 0.02
    assert abs(counts["test"] / 20000 - 0.1) < 0.02


def test_seed_and_class_change_the_split():
    a = [assign_split(i, "W", 0) for i in range(500)]
    assert a != [assign_split(i, "W", 1) for i in range(500)]
    assert a != [assign_split(i, "DY", 0) for i in range(500)]


def test_known_values_never_change():
    """Re-rendering must never move an event: pin a few assignments."""
    assert [assign_split(i, "Wjets", 0) for i in range(8)] == \
        ["validation", "train", "train", "validation", "train", "train", "test", "train"]
    assert [assign_shard(i, "Wjets", 4) for i in range(8)] == [1, 1, 0, 2, 3, 0, 1, 2]


@pytest.mark.parametrize("bad", ["0.8,0.1", "0.8,0.1,0.2", "a,b,c", "-0.1,0.6,0.5"])
def test_bad_fractions(bad):
    with pytest.raises(ImgenError, match="summing to 1"):
        parse_fractions(bad)


def test_shards_are_disjoint_and_cover():
    events = [("W", str(i)) for i in range(3000)] + [("T", str(i)) for i in range(3000)]
    parts = [{e for e in events if assign_shard(e[1], e[0], 3) == k} for k in range(3)]
    assert sum(map(len, parts)) == len(events) and set().union(*parts) == set(events)
    assert all(1800 < len(p) < 2200 for p in parts)


@pytest.mark.parametrize("bad", ["3/3", "1", "a/b", "-1/2", "0/0"])
def test_bad_shard(bad):
    with pytest.raises(ImgenError, match="I/N"):
        parse_shard(bad)


def test_class_from_file_name():
    assert class_from_file("a/Wjets_json.json") == "Wjets"
    assert class_from_file("TTjets.json.gz") == "TTjets"
    assert class_from_file("DY.json") == "DY"


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"Event": {}}')
    return path


def test_class_rules(tmp_path):
    touch(tmp_path / "json" / "Wjets_json.json")
    touch(tmp_path / "json" / "TTjets" / "part1.json")
    touch(tmp_path / "json" / "TTjets" / "part2.json")
    touch(tmp_path / "json" / "notes.txt")
    touch(tmp_path / "json" / "TTjets" / "deeper" / "ignored.json")
    found = [(f.class_name, f.path.name) for f in resolve_inputs([tmp_path / "json"])]
    assert found == [("TTjets", "part1.json"), ("TTjets", "part2.json"), ("Wjets", "Wjets_json.json")]
    # a glob, and --class overriding everything
    found = resolve_inputs([str(tmp_path / "json" / "*" / "*.json")], classes=[f"top={tmp_path}/json/TTjets/part2*"])
    assert [(f.class_name, f.path.name) for f in found] == [("part1", "part1.json"), ("top", "part2.json")]
    # a folder named by --class gives its files and those of its direct sub-folders
    found = resolve_inputs(classes={"top": str(tmp_path / "json" / "TTjets")})
    assert [(f.class_name, f.path.name) for f in found] == [("top", "ignored.json"), ("top", "part1.json"),
                                                            ("top", "part2.json")]


def test_input_errors(tmp_path):
    with pytest.raises(ImgenError, match="no such file or folder"):
        resolve_inputs([tmp_path / "missing.json"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImgenError, match="holds no"):
        resolve_inputs([tmp_path / "empty"])
    with pytest.raises(ImgenError, match="NAME=GLOB"):
        resolve_inputs(classes=["justaname"])
    touch(tmp_path / "bad name.json")
    with pytest.raises(ImgenError, match="not usable as a folder name"):
        resolve_inputs([tmp_path / "bad name.json"])
    with pytest.raises(ImgenError, match="no input"):
        resolve_inputs([])
    assert os.path.exists(tmp_path / "bad name.json")


# --------------------------------------------------------------------------
# One rule on every route: an event's split does not depend on how it is read
# --------------------------------------------------------------------------

def _csv_splits(path: Path, key: str) -> dict[str, str]:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return {row[key]: row["split"] for row in csv.DictReader(handle)}


def test_rendered_events_keep_their_split_without_the_manifest(tmp_path):
    """JSON render (manifest) and transfer on the same images without manifest.csv agree."""
    from imgen.pipeline import render_files
    from imgen.synth import generate
    from transfer.data.images import load_image_dataset

    generate(tmp_path / "json", events=15, seed=1)
    render_files([tmp_path / "json"], tmp_path / "img", size=16, workers=1)
    rendered = _csv_splits(tmp_path / "img" / "manifest.csv", "path")
    rows = list(__import__("csv").DictReader(open(tmp_path / "img" / "manifest.csv", encoding="utf-8")))
    assert all(assign_split(r["event"], r["class"]) == r["split"] for r in rows)
    (tmp_path / "img" / "manifest.csv").unlink()
    folder = load_image_dataset(tmp_path / "img")
    assert dict(zip(folder.files, folder.splits)) == rendered
    assert set(rendered.values()) == {"train", "validation", "test"}


@pytest.mark.parametrize("layout", ["combined", "per-class"])
def test_hdf5_rows_have_one_split_on_every_route(tmp_path, layout):
    """``imgen arrays`` (manifest source) and ``transfer`` on the HDF5 (split.csv path) agree, by default
    seed and with another one, and both follow ``assign_split`` over (class, ``file#row``)."""
    from imgen.arrays import open_arrays, synth
    from imgen.arrays.export import export_pngs
    from transfer.config import TrainConfig
    from transfer.data import open_data

    if layout == "combined":
        data = [str(synth.write_electron_photon_combined(tmp_path / "all.h5", 40))]
        keys = {"y_key": "y", "classes": "electron,photon"}
    else:
        files = synth.write_electron_photon_per_class(tmp_path, 40)
        data = [f"{name}={path}" for name, path in files.items()]
        keys = {}
    for seed in (None, 5):
        given = {} if seed is None else {"seed": seed}
        with open_arrays(data, "X", keys.get("y_key"), keys.get("classes")) as ds:
            export_pngs(ds, tmp_path / f"png-{seed}", progress=False, **given)
        exported = _csv_splits(tmp_path / f"png-{seed}" / "manifest.csv", "source")
        with open_data(TrainConfig(data=data, x_key="X", **keys, **given)) as source:
            (tmp_path / "split.csv").write_text(source.view().split_table(), encoding="utf-8")
        trained = _csv_splits(tmp_path / "split.csv", "path")
        assert exported == trained and len(trained) == 80
        assert set(trained.values()) == {"train", "validation", "test"}
        classes = {r["path"]: r["class"] for r in __import__("csv").DictReader(open(tmp_path / "split.csv"))}
        for path, split in trained.items():
            file, row = path.rsplit("#", 1)
            assert assign_split(f"{Path(file).name}#{row}", classes[path], seed or 0) == split


def test_an_array_rows_identity_does_not_depend_on_how_the_path_is_typed(tmp_path, monkeypatch):
    from imgen.arrays import file_event_names, open_arrays, split_indices, synth

    synth.write_electron_photon_combined(tmp_path / "all.h5", 20)
    monkeypatch.chdir(tmp_path)
    with open_arrays("all.h5", "X", "y", "electron,photon") as a, \
            open_arrays(str(tmp_path / "all.h5"), "X", "y", "electron,photon") as b:
        assert a.event_ids()[:2] == b.event_ids()[:2] == ["all.h5#0", "all.h5#1"]
        assert all(np.array_equal(split_indices(a)[s], split_indices(b)[s]) for s in SPLITS)
    assert file_event_names(["data/electron/a.h5", "data/photon/a.h5"]) == ["electron/a.h5", "photon/a.h5"]


def test_image_event_id_is_the_rendered_event():
    assert image_event_id("Wjets/Wjets_10924.png", "Wjets") == "10924"
    assert image_event_id("cats/photo 1.png", "cats") == "photo 1"
    assert image_event_id("W/W_.png", "W") == "W_"
