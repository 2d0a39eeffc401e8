"""Cuts and cut flow, with counts derived by hand."""
import pytest

from imgen.errors import ImgenError
from imgen.events.cms_json import parse_event
from imgen.selection import PRESETS, CountCut, apply_selection, build_selection, cut_flow_of, select_objects


def lepton(pt, tight_id=True, tight_iso=True, eta=0.3):
    return {"pt": pt, "eta": eta, "phi": 1.0, "tightID": tight_id, "tightIso": tight_iso}


def jet(pt, eta=0.5, tight=True):
    return {"pt": pt, "eta": eta, "phi": -1.0, "CSV": 0.1, "tightID": tight}


# Paper preset: leptons pt > 20 GeV, tight ID and iso; jets pt > 30 GeV, |eta| < 2.4, tight ID; exactly 1 lepton.
HAND_MADE = {
    # 1: one good electron; jets: kept, too soft, too forward, not tight -> 1 lepton (PASS), 1 jet kept of 4
    "1": {"electron": {"0": lepton(25)}, "jet": {"0": jet(40), "1": jet(25), "2": jet(50, eta=2.6),
                                                  "3": jet(60, tight=False)}},
    # 2: muon below 20 GeV -> 0 leptons (FAIL)
    "2": {"muon": {"0": lepton(15)}},
    # 3: electron not isolated -> 0 leptons (FAIL)
    "3": {"electron": {"0": lepton(30, tight_iso=False)}},
    # 4: two good muons -> 2 leptons (FAIL)
    "4": {"muon": {"0": lepton(25), "1": lepton(30)}},
    # 5: good muon + soft electron (removed) -> 1 lepton (PASS); jet at |eta| = 2.39 kept
    "5": {"muon": {"0": lepton(50)}, "electron": {"0": lepton(10)}, "jet": {"0": jet(35, eta=-2.39)}},
    # 6: no lepton at all (FAIL)
    "6": {"jet": {"0": jet(100)}},
    # 7: electron at exactly 20 GeV: the cut is strict (pt > 20) -> 0 leptons (FAIL)
    "7": {"electron": {"0": lepton(20.0)}},
    # 8: good electron, tight ID false on a second one -> 1 lepton (PASS)
    "8": {"electron": {"0": lepton(45), "1": lepton(45, tight_id=False)}},
}


def events():
    return [("W", parse_event(k, v)) for k, v in HAND_MADE.items()]


def test_paper_preset_cut_flow_by_hand():
    flow = cut_flow_of(events(), PRESETS["paper"])
    assert flow.rows() == [("in", {"W": 8, "total": 8}),
                           ("leptons == 1", {"W": 3, "total": 3}),
                           ("out", {"W": 3, "total": 3})]
    # electrons in: events 1, 3, 5, 7 one each, event 8 two -> 6; kept: one in event 1, one in event 8
    assert flow.objects_in["electron"] == 6 and flow.objects_kept["electron"] == 2
    assert flow.objects_in["muon"] == 4 and flow.objects_kept["muon"] == 3   # 2: 15 GeV removed
    assert flow.objects_in["jet"] == 6 and flow.objects_kept["jet"] == 3     # 40, 35, 100 kept
    assert "leptons == 1" in flow.format()


def test_no_selection_keeps_everything():
    flow = cut_flow_of(events(), PRESETS["none"])
    assert flow.rows() == [("in", {"W": 8, "total": 8}), ("out", {"W": 8, "total": 8})]
    event = events()[0][1]
    assert select_objects(event, PRESETS["none"]) is event


def test_count_cuts_apply_in_order_and_per_class():
    selection = build_selection("paper", n_jets="1+")
    flow = cut_flow_of(events() + [("T", parse_event("9", {"muon": {"0": lepton(30)}}))], selection)
    rows = dict(flow.rows())
    assert rows["in"] == {"T": 1, "W": 8, "total": 9}
    assert rows["leptons == 1"] == {"T": 1, "W": 3, "total": 4}
    assert rows["jets >= 1"] == {"T": 0, "W": 2, "total": 2}     # events 1 and 5 have a kept jet
    assert rows["out"] == rows["jets >= 1"]


def test_selected_event_has_objects_removed():
    selected = apply_selection(events()[0][1], PRESETS["paper"])
    assert [(o.kind, o.pt) for o in selected.objects] == [("jet", 40.0), ("electron", 25.0)]
    assert apply_selection(events()[1][1], PRESETS["paper"]) is None


def test_options_override_the_preset():
    selection = build_selection("paper", lepton_tight_iso=False, jet_pt_min=45)
    assert selection.lepton_tight_iso is False and selection.jet_pt_min == 45.0
    assert selection.lepton_pt_min == 20.0 and selection.n_leptons == CountCut(1, 1)
    flow = cut_flow_of(events(), selection)
    assert dict(flow.rows())["out"]["W"] == 4     # event 3 now passes too


@pytest.mark.parametrize("spec, expected", [("2", CountCut(2, 2)), ("2+", CountCut(2, None)),
                                            (">=3", CountCut(3, None)), ("<=1", CountCut(0, 1)), (0, CountCut(0, 0))])
def test_count_specs(spec, expected):
    assert CountCut.parse(spec) == expected


@pytest.mark.parametrize("bad", ["two", "-1", "1-3"])
def test_bad_count_spec(bad):
    with pytest.raises(ImgenError, match="expected N"):
        CountCut.parse(bad)


def test_unknown_preset_and_option():
    with pytest.raises(ImgenError, match="paper"):
        build_selection("thesis")
    with pytest.raises(ImgenError, match="unknown selection option"):
        build_selection("none", lepton_ptmin=3)
