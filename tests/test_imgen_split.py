"""Deterministic splits and shards, and where each file's class comes from."""
import os
from collections import Counter
from pathlib import Path

import pytest

from imgen.errors import ImgenError
from imgen.inputs import class_from_file, resolve_inputs
from imgen.split import assign_shard, assign_split, parse_fractions, parse_shard


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
