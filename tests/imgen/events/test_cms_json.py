"""Reading CMS JSON: the real sample, tolerance, and every kind of bad input."""
import gzip
import io
import json
import math
from pathlib import Path

import pytest

from imgen.errors import BadEventError, ImgenError
from imgen.events.cms_json import _TolerantReader, iter_raw_events, parse_event, read_events
from tests.conftest import CMS_SHORT_JSON as SHORT


def jet(pt=50.0, eta=0.5, phi=1.0, csv=-100.0, tight=True):
    return {"pt": pt, "eta": eta, "phi": phi, "CSV": csv, "tightID": tight}


def test_real_sample_reads_every_event_as_it_is():
    events = list(read_events(SHORT, strict=True))
    assert [e.event_id for e in events] == ["10924", "10925", "10926", "10931"]
    first = events[0]
    assert [o.kind for o in first.objects] == ["jet", "jet", "jet", "electron"]
    assert first.met == pytest.approx(9.4857196807861328)
    # this production has no met_phi: MET direction unknown, not an error
    assert all(e.met_phi is None for e in events)
    # CSV -100 means "no b-tag score"; 0.0 is a score
    assert events[1].objects[0].btag is None and first.objects[0].btag == 0.0
    assert first.objects[0].tight_id is True


def test_lepton_phi_zero_is_taken_from_px_py():
    """The sample's electrons have phi 0.0; atan2(py, px) agrees with their pt and eta."""
    electron = list(read_events(SHORT))[0].of_kind("electron")[0]
    assert electron.phi == pytest.approx(math.atan2(-3.5739932060241699, -3.2151896953582764))
    assert list(read_events(SHORT))[3].phi_from_momentum == 2


def test_missing_optional_keys_never_crash():
    event = parse_event("7", {"met": 12.0})  # no objects, no met_phi, no run/lumi
    assert event.objects == () and event.met == 12.0 and event.met_phi is None
    event = parse_event("8", {"jet": {"0": {"pt": 40, "eta": 0.1, "phi": 4.0}}})  # no CSV, no tightID
    obj = event.objects[0]
    assert obj.btag is None and obj.tight_id is False
    assert obj.phi == pytest.approx(4.0 - 2 * math.pi)  # wrapped into [-pi, pi)
    assert event.met is None


def test_tolerates_lists_and_numeric_strings():
    event = parse_event("9", {"muon": [{"pt": "31.5", "eta": "-1", "phi": 0.3, "tightID": 1, "tightIso": "true"}]})
    muon = event.objects[0]
    assert (muon.pt, muon.eta, muon.tight_id, muon.tight_iso) == (31.5, -1.0, True, True)


@pytest.mark.parametrize("raw, reason, words", [
    ({"jet": {"0": jet(pt="abc")}}, "non-numeric value", "jet 0: pt is 'abc', not a number"),
    ({"jet": {"0": jet(pt=float("nan"))}}, "non-finite value", "NaN or infinite"),
    ({"jet": {"0": jet(eta=float("inf"))}}, "non-finite value", "eta"),
    ({"muon": {"0": {"pt": -3.0, "eta": 0, "phi": 0}}}, "negative pt", "muon 0: negative pt -3"),
    ({"jet": {"0": {"pt": 3.0, "phi": 0}}}, "missing pt/eta/phi", "no eta"),
    ({"met": -1.0}, "negative pt", "negative met"),
    ({"met": 5.0, "met_phi": "north"}, "non-numeric value", "met_phi"),
    ([1, 2], "event is not an object", "expected an object"),
])
def test_bad_event_names_file_event_and_problem(raw, reason, words):
    with pytest.raises(BadEventError) as info:
        parse_event("1234", raw, "data/Wjets.json")
    message = str(info.value)
    assert message.startswith("data/Wjets.json: event 1234: ")
    assert words in message
    assert info.value.reason == reason


def test_event_number_must_be_usable_as_file_name():
    with pytest.raises(BadEventError, match="not usable in a file name"):
        parse_event("../../etc", {}, "x.json")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_nan_and_infinity_literals_are_one_bad_event_not_a_broken_file(tmp_path):
    # Python's json module writes NaN/Infinity, which yajl alone would reject for the whole file
    path = tmp_path / "W.json"
    path.write_text(json.dumps({"Event": {"1": {"met": float("nan")}, "2": {"met": float("inf"), "met_phi": 1.0},
                                          "3": {"met": 4.0, "met_phi": -0.5}}}))
    assert b"NaN" in path.read_bytes()
    raw = list(iter_raw_events(path))
    assert [k for k, _ in raw] == ["1", "2", "3"]
    with pytest.raises(BadEventError, match="event 1: met is 'NaN'"):
        parse_event(*raw[0], path)
    with pytest.raises(BadEventError, match="event 2: met is 'Infinity'"):
        parse_event(*raw[1], path)
    assert parse_event(*raw[2], path).met_phi == -0.5


def test_nan_rewrite_is_safe_across_read_boundaries():
    text = b'{"Event": {"1": {"a": NaN, "b": [1, -Infinity], "c": "NaN in text", "d": 2.5}}}'
    for size in (1, 2, 3, 5, 7, 64):
        reader = _TolerantReader(io.BytesIO(text))
        out = b"".join(iter(lambda: reader.read(size), b""))
        assert json.loads(out) == {"Event": {"1": {"a": "NaN", "b": [1, "-Infinity"], "c": "NaN in text", "d": 2.5}}}
        assert reader.bytes_read == len(text)


@pytest.mark.parametrize("text, words", [
    ("", "empty file"),
    ("  \n", "empty file"),
    ('{"Events": {"1": {}}}', "no \"Event\" key (top-level keys: 'Events')"),
    ('[{"Event": {}}]', "top level is an array"),
    ('{"Event": [{"met": 1}]}', "\"Event\" is an array"),
    ('{"Event": {"1": {"met": 1.0}, "2": {"met": 2.0, "jet": {"0": {"pt": 3', "malformed JSON after event 1"),
    ('{"Event": {"1": {"met": 1.0}}} trailing', "malformed JSON after event 1"),
    ('{"Event": {"1": {"met": 1.0,, }}}', "malformed JSON before the first event"),
])
def test_bad_file_names_the_file(tmp_path, text, words):
    path = write(tmp_path / "TTjets.json", text)
    with pytest.raises(ImgenError) as info:
        list(iter_raw_events(path))
    assert str(info.value).startswith(f"{path}: ")
    assert words in str(info.value)


def test_empty_event_object_is_an_empty_production(tmp_path):
    assert list(iter_raw_events(write(tmp_path / "W.json", '{"Event": {}}'))) == []


def test_gzip_input(tmp_path):
    path = tmp_path / "W.json.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(SHORT.read_text())
    assert [e.event_id for e in read_events(path)] == ["10924", "10925", "10926", "10931"]


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "W.json.gz"
    data = gzip.compress(SHORT.read_bytes())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImgenError, match=f"{path}: "):
        list(iter_raw_events(path))
