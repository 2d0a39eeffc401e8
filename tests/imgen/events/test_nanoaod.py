"""NanoAOD ROOT input: the same events as JSON give the same images; every bad file is refused cleanly.

The ROOT files are written here, with uproot, from the toy generator's events
and from the real JSON sample (``tests/data``): no download.
"""
import csv
import json
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot

from imgen.__main__ import main
from imgen.errors import ImgenError
from imgen.events import nanoaod
from imgen.events.cms_json import read_events
from imgen.events.inputs import InputFile
from imgen.events.nanoaod import NanoAODOptions, NanoAODStream
from imgen.events.nanoaod_write import events_of_json, write_nanoaod
from imgen.output.manifest import read_manifest
from imgen.output.shards import merge_shard_manifests
from imgen.output.staging import STAGING
from imgen.pipeline import render_files
from imgen.synth import generate_events, write_class_file
from tests.conftest import CMS_SHORT_JSON

SIZE = 32
#: the JSON CSV score goes to Jet_btagCSVV2; its cut is the JSON one, so both routes tag the same jets
AS_JSON = {"btag_branch": "Jet_btagCSVV2", "btag_cut": 0.679}
pytestmark = pytest.mark.slow  # end-to-end runs (a few seconds in all)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The same toy events twice: ``json/<class>.json`` and ``root/<class>.root``."""
    base = tmp_path_factory.mktemp("toy")
    for name, n in (("TTjets", 24), ("Wjets", 20)):
        write_class_file(base / "json" / f"{name}.json", name, n, seed=3, indent=None)
        (base / "root").mkdir(exist_ok=True)
        write_nanoaod(base / "root" / f"{name}.root", events_of_json(generate_events(name, n, seed=3)))
    return base


@pytest.fixture(scope="module")
def short_root(tmp_path_factory):
    """The real JSON sample (4 events, no met_phi) as a NanoAOD-layout file."""
    path = tmp_path_factory.mktemp("short") / "short.root"
    return write_nanoaod(path, read_events(CMS_SHORT_JSON, strict=True))


def pngs(root: Path) -> dict[str, bytes]:
    """Every PNG's bytes, less the provenance chunk (it names the source file, which differs by route)."""
    from imgen.output.provenance import read_provenance, without_provenance

    found = {}
    for p in sorted(root.rglob("*.png")):
        assert read_provenance(p) is not None, p
        found[p.relative_to(root).as_posix()] = without_provenance(p.read_bytes())
    return found


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(".tmp-*")) + ([STAGING] if (root / STAGING).exists() else [])


def without_source(rows):
    """Rows less what differs by route: the source file, and the weight (JSON: the sample's xsec; these
    NanoAOD files: no genWeight)."""
    return [{k: v for k, v in r.items() if k not in ("source", "weight", "weight_source")} for r in rows]


def test_toy_events_render_byte_identical_from_json_and_root(toy, tmp_path):
    from_json = render_files([toy / "json"], tmp_path / "j", size=SIZE, workers=1)
    from_root = render_files([toy / "root"], tmp_path / "r", size=SIZE, workers=2, batch_size=5, **AS_JSON)
    assert from_json.n_rendered == from_root.n_rendered == 44
    assert pngs(tmp_path / "j") == pngs(tmp_path / "r")
    json_rows, root_rows = read_manifest(tmp_path / "j"), read_manifest(tmp_path / "r")
    assert without_source(json_rows) == without_source(root_rows)
    assert root_rows[0]["source"].endswith("root/TTjets.root") and root_rows[0]["event"] == "1"
    assert {r["run"] for r in root_rows} == {"1"} and root_rows[0]["lumi"] == "1"
    assert from_json.cut_flow.rows() == from_root.cut_flow.rows()
    text = from_root.format()
    assert "NanoAOD tree Events: b-tag Jet_btagCSVV2 > 0.679" in text and "Muon_pfRelIso04_all" in text
    assert leftovers(tmp_path / "r") == []


def test_real_sample_renders_byte_identical_from_json_and_root(short_root, tmp_path):
    from_json = render_files([CMS_SHORT_JSON], tmp_path / "j", size=SIZE, workers=1, style="outline")
    from_root = render_files([short_root], tmp_path / "r", size=SIZE, workers=1, style="outline", **AS_JSON)
    assert list(pngs(tmp_path / "r")) == [f"short/short_{n}.png" for n in (10924, 10925, 10926, 10931)]
    assert pngs(tmp_path / "j") == pngs(tmp_path / "r")
    rows = read_manifest(tmp_path / "r")
    assert without_source(read_manifest(tmp_path / "j")) == without_source(rows)
    assert [(r["event"], r["run"], r["lumi"]) for r in rows][0] == ("10924", "1", "34")
    # no MET_phi branch, as the JSON has no met_phi: MET is not drawn, and both say so
    assert from_json.missing_met_phi == from_root.missing_met_phi == 4


def test_gen_weight_round_trip_into_the_manifest(tmp_path):
    """genWeight (signed, as NLO generators write it) lands in the manifest's weight column; JSON gives its xsec;
    a file without the branch leaves the column empty."""
    import dataclasses

    events = list(events_of_json(generate_events("TTjets", 12, seed=5)))
    gen = [1.5, -0.75] * 6
    (tmp_path / "in").mkdir()
    (tmp_path / "plain").mkdir()
    weighted = [dataclasses.replace(e, weight=w, weight_source="genWeight") for e, w in zip(events, gen)]
    write_nanoaod(tmp_path / "in" / "TTjets.root", weighted)
    write_nanoaod(tmp_path / "plain" / "TTjets.root", events)
    render_files([tmp_path / "in"], tmp_path / "w", size=SIZE, workers=1, **AS_JSON)
    rows = read_manifest(tmp_path / "w")
    assert rows and {r["weight_source"] for r in rows} == {"genWeight"}
    by_event = {e.event_id: w for e, w in zip(events, gen)}
    assert [float(r["weight"]) for r in rows] == [by_event[r["event"]] for r in rows]
    assert any(float(r["weight"]) < 0 for r in rows)
    render_files([tmp_path / "plain"], tmp_path / "p", size=SIZE, workers=1, **AS_JSON)
    assert {(r["weight"], r["weight_source"]) for r in read_manifest(tmp_path / "p")} == {("", "")}
    render_files([CMS_SHORT_JSON], tmp_path / "j", size=SIZE, workers=1)
    assert {(r["weight"], r["weight_source"]) for r in read_manifest(tmp_path / "j")} == {("784265.1875", "xsec")}


def test_paper_selection_hdf5_and_shards_match_json(toy, tmp_path):
    kwargs = dict(size=SIZE, workers=1, selection="paper", format="both")
    from_json = render_files([toy / "json"], tmp_path / "j", **kwargs)
    from_root = render_files([toy / "root"], tmp_path / "r", **kwargs, **AS_JSON)
    assert from_json.cut_flow.rows() == from_root.cut_flow.rows()
    assert 0 < from_root.n_rendered < 44
    with h5py.File(tmp_path / "j" / "images.h5") as a, h5py.File(tmp_path / "r" / "images.h5") as b:
        assert (a["X"][:] == b["X"][:]).all() and (a["event"][:] == b["event"][:]).all()
    # shards of the ROOT route cover it, and the merged manifest keeps run and lumi
    for i in range(2):
        render_files([toy / "root"], tmp_path / "s", shard=f"{i}/2", **kwargs, **AS_JSON)
    merge_shard_manifests(tmp_path / "s")
    merged = read_manifest(tmp_path / "s")
    assert sorted(map(json.dumps, merged)) == sorted(map(json.dumps, read_manifest(tmp_path / "r")))
    assert "lumi" in merged[0]
    # resume: nothing is rendered twice
    again = render_files([toy / "root"], tmp_path / "r", **kwargs, **AS_JSON)
    assert again.n_rendered == 0 and again.n_existing == from_root.n_rendered


def test_chunks_are_stitched_in_order(toy, monkeypatch):
    item = InputFile("TTjets", toy / "root" / "TTjets.root")
    with NanoAODStream(item, NanoAODOptions(**AS_JSON)) as stream:
        whole = list(stream)
    monkeypatch.setattr(nanoaod, "STEP_SIZE", 5)             # 5 entries a chunk: 5 chunks
    with NanoAODStream(item, NanoAODOptions(**AS_JSON)) as stream:
        chunked = list(stream)
        assert stream.position() == item.size()
    assert chunked == whole and [e for e, _ in whole] == [str(i) for i in range(1, 25)]
    import dataclasses

    json_events = list(read_events(toy / "json" / "TTjets.json", strict=True))
    assert {e.weight_source for e in json_events} == {"xsec"}  # the JSON's cross section; no genWeight in ROOT
    assert [event for _, event in whole] == [dataclasses.replace(e, weight=None, weight_source=None)
                                             for e in json_events]


def test_url_is_passed_to_uproot(short_root, tmp_path):
    url = short_root.resolve().as_uri()                       # file:///..., as uproot opens root:// or https://
    summary = render_files([url], tmp_path / "o", size=SIZE, workers=1, **AS_JSON)
    rows = read_manifest(tmp_path / "o")
    assert summary.n_rendered == 4 and {r["class"] for r in rows} == {"short"}
    assert rows[0]["source"] == url


# --------------------------------------------------------------------------
# Bad files: an error naming the file (tree, branch), nothing partial left
# --------------------------------------------------------------------------

def rewrite(good: Path, path: Path, change, counter=lambda name: "n" + name.split("_", 1)[0]) -> Path:
    """Copy a NanoAOD-layout file with its arrays changed by ``change(dict) -> dict``."""
    arrays = uproot.open(good)["Events"].arrays(library="ak")
    data = change({name: arrays[name] for name in arrays.fields if not name.startswith("n")})
    with uproot.recreate(path) as f:
        tree = f.mktree("Events", {name: str(a.type.content) for name, a in data.items()}, counter_name=counter)
        tree.extend(data)
    return path


def drop(name):
    return lambda data: {k: v for k, v in data.items() if k != name}


def disagreeing_jet_eta(data):
    eta = ak.to_list(data["Jet_eta"])
    eta[2] = eta[2] + [0.5]                                    # one jet eta too many in entry 2
    return {**data, "Jet_eta": ak.values_astype(ak.Array(eta), np.float32)}


BAD_FILES = {
    "missing branch": (lambda good, bad: rewrite(good, bad, drop("Muon_pt")), {},
                       ["tree Events: no branch 'Muon_pt'", "nearest it has: ", "Muon_phi"]),
    "missing b-tag branch": (lambda good, bad: bad.write_bytes(good.read_bytes()), {"btag_branch": "Jet_btagDeepB"},
                             ["no branch 'Jet_btagDeepB' (or give --btag-branch)", "Jet_btagCSVV2"]),
    "no such tree": (lambda good, bad: bad.write_bytes(good.read_bytes()), {"tree": "Evts"},
                     ["no tree 'Evts' (trees in the file: Events)", "--tree"]),
    "empty tree": (lambda good, bad: write_nanoaod(bad, []), {}, ["tree Events is empty (0 entries)"]),
    "truncated": (lambda good, bad: bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2]), {},
                  ["truncated ROOT file"]),
    "not ROOT": (lambda good, bad: bad.write_text('{"Event": {}}'), {}, ["not a ROOT file", "b'{\"Event\""]),
    "counts disagree": (lambda good, bad: rewrite(good, bad, disagreeing_jet_eta,
                                                  counter=lambda n: "nJetEta" if n == "Jet_eta" else
                                                  "n" + n.split("_", 1)[0]), {},
                        ["tree Events: branch Jet_eta has 5 value(s) in entry 2 (event 3) but nJet says 4"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_names_file_and_branch_and_leaves_nothing(case, toy, tmp_path, monkeypatch):
    make, options, words = BAD_FILES[case]
    data = tmp_path / "in"
    data.mkdir()
    good = toy / "root" / "TTjets.root"
    for name in ("TTjets", "Wjets"):
        (data / f"{name}.root").write_bytes((toy / "root" / f"{name}.root").read_bytes())
    bad = data / "Zbad.root"                                   # read last: the good files come first
    make(good, bad)
    monkeypatch.setattr(nanoaod, "STEP_SIZE", 2)               # a late error comes after images were staged
    out = tmp_path / "images"
    with pytest.raises(ImgenError) as info:
        render_files([data], out, size=SIZE, workers=1, **{**AS_JSON, **options})
    message = str(info.value)
    named = data / "TTjets.root" if options else bad            # an option is wrong for the first file already
    assert message.startswith(f"{named.as_posix()}: "), message
    for word in words:
        assert word in message, message
    assert not (out / "Zbad").exists() and leftovers(out) == [] and not (out / "manifest.csv").exists()
    if not options:
        assert len(pngs(out)) == 44                            # the good files are complete and kept


def test_bad_values_are_bad_events_counted_or_fatal(toy, tmp_path):
    def nan_and_negative(data):
        pt = ak.to_list(data["Jet_pt"])
        pt[1][0] = float("nan")
        met = ak.to_numpy(data["MET_pt"]).copy()
        met[4] = -3.0
        return {**data, "Jet_pt": ak.values_astype(ak.Array(pt), np.float32), "MET_pt": ak.Array(met)}

    bad = rewrite(toy / "root" / "TTjets.root", tmp_path / "TTjets.root", nan_and_negative)
    summary = render_files([bad], tmp_path / "o", size=SIZE, workers=2, batch_size=3, **AS_JSON)
    assert summary.n_rendered == 22 and summary.bad == {"non-finite value": 1, "negative pt": 1}
    assert f"{bad.as_posix()}: event 2: Jet_pt[0] is nan (NaN or infinite)" in summary.bad_examples
    assert f"{bad.as_posix()}: event 5: negative MET_pt -3 GeV" in summary.bad_examples
    with pytest.raises(ImgenError, match=r"event 2: Jet_pt\[0\] is nan .*--strict"):
        render_files([bad], tmp_path / "strict", size=SIZE, workers=1, strict=True, **AS_JSON)


def test_btag_thresholds(toy, tmp_path):
    with pytest.raises(ImgenError, match="different b-tag thresholds .*json 0.679, nanoaod 0.8484"):
        render_files([toy / "json" / "Wjets.json", toy / "root" / "TTjets.root"], tmp_path / "o",
                     btag_branch="Jet_btagCSVV2", dry_run=True)
    mixed = render_files([toy / "json" / "Wjets.json", toy / "root" / "TTjets.root"], tmp_path / "o",
                         dry_run=True, **AS_JSON)
    assert mixed.events_read == 44
    with pytest.raises(ImgenError, match="--btag-branch Jet_myTagger: no known working point; give --btag-cut"):
        render_files([toy / "root"], tmp_path / "o", btag_branch="Jet_myTagger", dry_run=True)
    assert "0.8484" in render_files([toy / "root"], tmp_path / "o", btag_branch="Jet_btagCSVV2",
                                    dry_run=True).format()


def test_cli_reads_root_and_reports_branches(toy, tmp_path, capsys):
    out = tmp_path / "images"
    assert main([str(toy / "root"), "--out", str(out), "--size", "32", "--workers", "1", "--no-progress",
                 "--btag-branch", "Jet_btagCSVV2", "--btag-cut", "0.679"]) == 0
    printed = capsys.readouterr().out
    assert "NanoAOD tree Events: b-tag Jet_btagCSVV2 > 0.679; branches run, luminosityBlock, event" in printed
    with open(out / "manifest.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["path", "class", "event", "source", "split", "run", "lumi", "weight",
                                            "weight_source"]
    assert main([str(toy / "root"), "--out", str(tmp_path / "x"), "--workers", "1", "--tree", "Evts"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {(toy / 'root' / 'TTjets.root').as_posix()}: no tree 'Evts'")


def test_classes_from_folders_and_class_option(toy, tmp_path):
    nested = tmp_path / "nano" / "ttbar"
    nested.mkdir(parents=True)
    (nested / "part1.root").write_bytes((toy / "root" / "TTjets.root").read_bytes())
    summary = render_files([tmp_path / "nano"], tmp_path / "o", dry_run=True,
                           classes=[f"wjets={toy / 'root' / 'W*.root'}"], **AS_JSON)
    assert set(summary.cut_flow.rows()[0][1]) == {"ttbar", "wjets", "total"}
    assert [(c, n) for _, c, n in summary.files] == [("ttbar", 24), ("wjets", 20)]
    with pytest.raises(ImgenError, match="only .root files are read by URL"):
        render_files(["https://example.org/events.json"], tmp_path / "o", dry_run=True)
