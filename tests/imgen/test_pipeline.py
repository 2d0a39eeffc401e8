"""End to end through ``render_files``: outputs, resume, bad input, shards, HDF5."""
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from imgen.errors import ImgenError
from imgen.events.cms_json import parse_event
from imgen.output.manifest import read_manifest
from imgen.output.shards import merge_shard_manifests
from imgen.output.staging import STAGING
from imgen.pipeline import render_files
from imgen.render import RenderConfig, decode_png, render_event
from imgen.selection import build_selection
from tests.conftest import CMS_SHORT_JSON as SHORT

SIZE = 32
pytestmark = pytest.mark.slow  # end-to-end runs (about a second in all)


def event(i, n_leptons=1, met_phi=True):
    ev = {"jet": {str(j): {"pt": 40.0 + j, "eta": 0.3 * j - 1, "phi": 0.5 * j - 2, "CSV": 0.9 if j == 0 else 0.1,
                           "tightID": True} for j in range(i % 4)},
          "met": 25.0 + i, "run": 1, "lumi": 2}
    if n_leptons:
        ev["muon"] = {str(k): {"pt": 30.0 + k, "eta": 0.5, "phi": 1.0 + k + 0.01 * i, "tightID": True,
                               "tightIso": True} for k in range(n_leptons)}
    if met_phi:
        ev["met_phi"] = 0.1 * (i % 30) - 1.5
    return ev


def write_json(path: Path, events: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"Event": events}, indent=1))
    return path


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "json"
    write_json(folder / "Wjets_json.json", {str(100 + i): event(i) for i in range(40)})
    write_json(folder / "TTjets.json", {str(200 + i): event(i, n_leptons=i % 3, met_phi=i % 5 != 0) for i in range(30)})
    return folder


def pngs(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(".tmp-*")) + ([STAGING] if (root / STAGING).exists() else [])


def test_real_sample_renders_with_manifest(tmp_path):
    out = tmp_path / "images"
    summary = render_files([SHORT], out, size=SIZE, workers=1)
    assert pngs(out) == [f"short/short_{n}.png" for n in (10924, 10925, 10926, 10931)]
    rows = read_manifest(out)
    assert [(r["path"], r["class"], r["event"]) for r in rows] == \
        [(f"short/short_{n}.png", "short", str(n)) for n in (10924, 10925, 10926, 10931)]
    assert all(r["source"].endswith("short.json") and r["split"] in ("train", "validation", "test") for r in rows)
    assert summary.events_read == 4 and summary.n_rendered == 4
    assert summary.missing_met_phi == 4          # this production has no met_phi
    assert summary.phi_from_momentum == 3
    assert "events without met_phi (MET not drawn): 4" in summary.format()
    # the file on disk is exactly the rendered event
    first = parse_event("10924", json.loads(SHORT.read_text())["Event"]["10924"])
    on_disk = decode_png((out / "short/short_10924.png").read_bytes())
    assert (on_disk == render_event(first, RenderConfig(size=SIZE))).all()
    assert leftovers(out) == []


def test_resume_and_overwrite(data, tmp_path):
    out = tmp_path / "images"
    first = render_files([data], out, size=SIZE, workers=1)
    assert first.n_rendered == 70 and first.n_existing == 0
    before = {p: (out / p).read_bytes() for p in pngs(out)}
    (out / "Wjets" / "Wjets_105.png").unlink()       # as if the run had stopped before this one
    again = render_files([data], out, size=SIZE, workers=1)
    assert (again.n_rendered, again.n_existing) == (1, 69)
    assert len(read_manifest(out)) == 70              # the manifest lists skipped images too
    assert {p: (out / p).read_bytes() for p in pngs(out)} == before
    assert render_files([data], out, size=SIZE, workers=1).n_rendered == 0
    redo = render_files([data], out, size=SIZE, workers=1, overwrite=True)
    assert (redo.n_rendered, redo.n_existing) == (70, 0)
    assert {p: (out / p).read_bytes() for p in pngs(out)} == before  # same bytes again
    assert leftovers(out) == []


def test_other_settings_are_refused_in_the_same_folder(data, tmp_path):
    out = tmp_path / "images"
    render_files([data], out, size=SIZE, workers=1)
    with pytest.raises(ImgenError, match=r"other settings \(changed: style\).*--overwrite"):
        render_files([data], out, size=SIZE, style="outline", workers=1)
    # the split and the seed do not change pixels: allowed, and the manifest follows
    summary = render_files([data], out, size=SIZE, workers=1, seed=5, split="0.5,0.25,0.25")
    assert summary.n_rendered == 0
    assert render_files([data], out, size=SIZE, style="outline", workers=1, overwrite=True).n_rendered == 70


def test_interrupted_staging_is_checked_before_reuse(data, tmp_path):
    """A killed run leaves staged images; a truncated one, or one of another event, is rendered again."""
    out = tmp_path / "images"
    render_files([data], out, size=SIZE, workers=1)
    good = (out / "Wjets" / "Wjets_101.png").read_bytes()
    from imgen.output.staging import Staging
    staging = Staging(out, data / "Wjets_json.json", None)
    folder = staging.folder("Wjets")
    good_102 = (out / "Wjets" / "Wjets_102.png").read_bytes()
    for name in ("Wjets_101.png", "Wjets_102.png"):
        (out / "Wjets" / name).unlink()
    (folder / "Wjets_101.png").write_bytes(good[: len(good) // 2])     # truncated by the kill
    (folder / "Wjets_102.png").write_bytes((out / "Wjets" / "Wjets_103.png").read_bytes())  # another event's
    summary = render_files([data], out, size=SIZE, workers=1)
    assert summary.n_rendered == 2 and summary.n_existing == 68          # only an event's own image is reused
    assert (out / "Wjets" / "Wjets_101.png").read_bytes() == good
    assert (out / "Wjets" / "Wjets_102.png").read_bytes() == good_102
    assert leftovers(out) == []


def test_parallel_workers_give_the_same_output(data, tmp_path):
    one = render_files([data], tmp_path / "one", size=SIZE, workers=1)
    two = render_files([data], tmp_path / "two", size=SIZE, workers=2, batch_size=7)
    assert (tmp_path / "one" / "manifest.csv").read_text() == (tmp_path / "two" / "manifest.csv").read_text()
    assert all((tmp_path / "one" / p).read_bytes() == (tmp_path / "two" / p).read_bytes()
               for p in pngs(tmp_path / "one"))
    assert one.cut_flow.rows() == two.cut_flow.rows() and one.missing_met_phi == two.missing_met_phi == 6


def test_summary_counts_and_paper_cut_flow(data, tmp_path):
    summary = render_files([data], tmp_path / "images", size=SIZE, workers=1, selection="paper")
    # Wjets: 40 events, all one tight 30 GeV muon -> all pass; TTjets: i % 3 muons -> 10 with exactly one
    assert summary.cut_flow.rows() == [("in", {"TTjets": 30, "Wjets": 40, "total": 70}),
                                       ("leptons == 1", {"TTjets": 10, "Wjets": 40, "total": 50}),
                                       ("out", {"TTjets": 10, "Wjets": 40, "total": 50})]
    assert summary.n_rendered == 50 and len(pngs(tmp_path / "images")) == 50
    images = summary.images
    assert sum(images["Wjets"].values()) == 40 and set(images) == {"TTjets", "Wjets"}
    # TTjets events with exactly one muon are i = 1, 4, ..., 28; met_phi missing where i % 5 == 0: i = 10, 25
    assert summary.missing_met_phi == 2
    text = summary.format()
    assert "leptons == 1" in text and "events/s" in text


def test_selection_options_match_cli_names(data, tmp_path):
    summary = render_files([data], tmp_path / "x", size=SIZE, workers=1, dry_run=True,
                           selection=build_selection("none", n_jets="2+"))
    # Wjets and TTjets events have i % 4 jets: 2 or 3 jets for i % 4 in (2, 3) -> 20 of 40, 14 of 30
    assert dict(summary.cut_flow.rows())["out"] == {"TTjets": 14, "Wjets": 20, "total": 34}
    assert not (tmp_path / "x").exists()   # dry run writes nothing


BAD = {
    "malformed": ('{"Event": {"1": {"met": 5.0}, "2": {"met": 6.0, "jet": {"0": {"pt": 4',
                  "malformed JSON after event 1"),
    "empty": ("", "empty file"),
    "no Event key": ('{"Evnt": {"1": {"met": 5.0}}}', 'no "Event" key'),
    "non-numeric pt": ('{"Event": {"1": {"met": 5.0}, "2": {"jet": {"0": {"pt": "high", "eta": 0, "phi": 0}}}}}',
                       "event 2: jet 0: pt is 'high', not a number"),
    "NaN": ('{"Event": {"1": {"met": 5.0}, "2": {"muon": {"0": {"pt": NaN, "eta": 0, "phi": 0}}}}}',
            "event 2: muon 0: pt is 'NaN' (NaN or infinite)"),
    "infinite": ('{"Event": {"1": {"met": 5.0}, "2": {"met": Infinity, "met_phi": 0}}}',
                 "event 2: met is 'Infinity' (NaN or infinite)"),
    "negative pt": ('{"Event": {"1": {"met": 5.0}, "2": {"electron": {"0": {"pt": -2, "eta": 0, "phi": 0}}}}}',
                    "event 2: electron 0: negative pt -2 GeV"),
}
EVENT_LEVEL = ("non-numeric pt", "NaN", "infinite", "negative pt")


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_error_names_file_and_event_and_leaves_nothing(case, data, tmp_path):
    text, words = BAD[case]
    bad = tmp_path / "json" / "Zbad.json"          # read last: the good files come first
    bad.write_text(text)
    out = tmp_path / "images"
    with pytest.raises(ImgenError) as info:
        render_files([data], out, size=SIZE, workers=2, strict=True)
    assert str(info.value).startswith(f"{bad.as_posix()}: ") or str(info.value).startswith(f"{bad}: ")
    assert words in str(info.value)
    assert not (out / "Zbad").exists()             # no image of the bad file, staged or not
    assert leftovers(out) == []
    assert not (out / "manifest.csv").exists()     # no manifest of a failed run
    assert len(pngs(out)) == 70                    # the good files are complete and kept
    if case in EVENT_LEVEL:                        # without --strict: skipped, counted, quoted
        summary = render_files([data], out, size=SIZE, workers=1)
        assert summary.skipped == 1 and summary.n_rendered == 1 and summary.n_existing == 70
        assert words in summary.bad_examples[0] and bad.name in summary.bad_examples[0]
        assert words in summary.format()
        assert "Zbad/Zbad_1.png" in [r["path"] for r in read_manifest(out)]


def test_duplicate_event_numbers_are_bad_events(tmp_path):
    write_json(tmp_path / "json" / "W" / "a.json", {"1": event(1), "2": event(2)})
    write_json(tmp_path / "json" / "W" / "b.json", {"2": event(3), "3": event(4)})
    summary = render_files([tmp_path / "json"], tmp_path / "images", size=SIZE, workers=1)
    assert summary.n_rendered == 3 and summary.bad == {"duplicate event number": 1}
    assert "b.json: event 2: duplicate event number in class W" in summary.bad_examples[0]


def test_shards_are_disjoint_cover_and_merge(data, tmp_path):
    whole = tmp_path / "whole"
    render_files([data], whole, size=SIZE, workers=1)
    out = tmp_path / "sharded"
    parts = []
    for i in range(3):
        summary = render_files([data], out, size=SIZE, workers=1, shard=f"{i}/3")
        parts.append({r["path"] for r in _rows(out / f"manifest-shard-{i}-of-3.csv")})
        assert summary.n_rendered == len(parts[-1]) and summary.other_shards == 70 - len(parts[-1])
    assert sum(map(len, parts)) == 70 and set().union(*parts) == set(pngs(whole))
    merged = merge_shard_manifests(out)
    assert sorted(r["path"] for r in read_manifest(out)) == sorted(pngs(whole))
    assert merged == out / "manifest.csv"
    assert {r["path"]: r["split"] for r in read_manifest(out)} == {r["path"]: r["split"] for r in read_manifest(whole)}


def _rows(path):
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_merge_refuses_missing_shard(data, tmp_path):
    render_files([data], tmp_path / "o", size=SIZE, workers=1, shard="1/2")
    with pytest.raises(ImgenError, match="shard\\(s\\) 0 of 2"):
        merge_shard_manifests(tmp_path / "o")


def test_hdf5_round_trip(data, tmp_path):
    out = tmp_path / "images"
    summary = render_files([data], out, size=SIZE, workers=2, format="both", batch_size=16)
    assert summary.hdf5 == out / "images.h5"
    rows = read_manifest(out)
    with h5py.File(out / "images.h5") as f:
        X, y = f["X"][:], f["y"][:]
        classes = list(f.attrs["classes"])
        assert X.shape == (70, SIZE, SIZE, 3) and X.dtype == np.uint8 and f["X"].chunks == (1, SIZE, SIZE, 3)
        assert classes == ["TTjets", "Wjets"]
        paths = [p.decode() for p in f["path"][:]]
        assert paths == [r["path"] for r in rows]
        assert [s.decode() for s in f["split"][:]] == [r["split"] for r in rows]
        assert [e.decode() for e in f["event"][:]] == [r["event"] for r in rows]
        assert [classes[i] for i in y] == [r["class"] for r in rows]
        assert "config" in f.attrs
    for i in (0, 37, 69):  # the arrays are the PNGs
        assert (X[i] == decode_png((out / paths[i]).read_bytes())).all()
    # hdf5 alone: no PNG, no manifest; resumed runs rebuild the file whole
    only = tmp_path / "h5only"
    render_files([data], only, size=SIZE, workers=1, format="hdf5")
    assert pngs(only) == [] and not (only / "manifest.csv").exists()
    with h5py.File(only / "images.h5") as f:
        assert (f["X"][:] == X).all()
    assert leftovers(out) == [] and leftovers(only) == []


def test_copied_folder_of_classes(data, tmp_path):
    """A folder whose sub-folders are classes (json_files/Wjets/part1.json)."""
    nested = tmp_path / "nested"
    (nested / "W").mkdir(parents=True)
    shutil.copy(data / "Wjets_json.json", nested / "W" / "part1.json")
    summary = render_files([nested], tmp_path / "images", size=SIZE, workers=1, classes={"Wlabel": str(nested / "W")})
    assert set(summary.images) == {"Wlabel"} and summary.n_rendered == 40


def test_seen_events_remember_across_merges():
    from imgen.pipeline import _SeenEvents

    seen = _SeenEvents(buffer=4)
    assert all(seen.add("W", str(i), i % 3) is None for i in range(50))    # several merges into the sorted array
    assert [seen.add("W", str(i)) for i in range(50)] == [i % 3 for i in range(50)]  # the file read first
    assert seen.add("T", "3", 7) is None and seen.add("T", "3") == 7


def test_staging_commit_moves_every_class_and_cleans_up(tmp_path):
    from imgen.output.images import write_staged
    from imgen.output.staging import Staging

    staging = Staging(tmp_path, tmp_path / "in.json", (0, 2))
    for name in ("A", "B"):
        write_staged(str(staging.folder(name) / f"{name}_1.png"), b"png")
    staging.folder("C")                                         # nothing staged: no OUT/C
    assert staging.commit() == 2
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == \
        ["A", "A/A_1.png", "B", "B/B_1.png"]
