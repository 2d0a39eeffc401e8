"""Issue 11, the data side: imgen and augment cases run as a user would, through their commands.

Each test asserts the message (naming the file and the problem), the exit status, and that
nothing partial or stale is left. Real JSON events, real PNGs, tiny sizes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augment.__main__ import main as augment_main
from imgen.__main__ import main as imgen_main
from imgen.output.manifest import read_manifest, write_manifest
from tests.conftest import CMS_SHORT_JSON


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def _dataset(root: Path, per_class: int = 6, size: int = 8) -> Path:
    """Two classes of RGB PNGs with a manifest (train, validation, test)."""
    rng = np.random.default_rng(0)
    rows = []
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            path = f"{name}/{name}_{i}.png"
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / path)
            split = "train" if i < per_class - 2 else ("validation" if i == per_class - 2 else "test")
            rows.append({"path": path, "class": name, "event": str(i), "source": "s.json", "split": split})
    write_manifest(root, rows)
    return root


# --- augment -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["grayscale", "truncated"])
def test_augment_checks_validation_and_test_images_before_writing(tmp_path, capsys, damage):
    data = _dataset(tmp_path / "images")
    held = next(r["path"] for r in read_manifest(data) if r["split"] == "test")
    if damage == "grayscale":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(data / held)
    else:
        raw = (data / held).read_bytes()
        (data / held).write_bytes(raw[: len(raw) // 2])
    out = tmp_path / "aug"
    assert augment_main([str(data), "--out", str(out), "--no-progress"]) == 2
    err = _error(capsys)
    assert held in err and ("channel" in err if damage == "grayscale" else "not a readable PNG" in err)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".aug")]


# --- imgen options -------------------------------------------------------------------------------------

def test_absurd_shard_counts_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert imgen_main([str(CMS_SHORT_JSON), "--out", str(out), "--shard", "0/99999999999999999999",
                       "--no-progress"]) == 2
    assert "--shard" in _error(capsys) and not out.exists()


# --- imgen: resume, stale images, shards, counts, lock ---------------------------------------------------

def _events() -> dict:
    return json.loads(CMS_SHORT_JSON.read_text())["Event"]


def _write_events(path: Path, events: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"Event": events}))
    return path


def _pngs(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.glob("*/*.png")}


def _run(*args) -> int:
    return imgen_main([*map(str, args), "--size", "16", "--workers", "1", "--no-progress"])


def test_resume_never_reuses_an_image_of_another_source(tmp_path, capsys):
    first = _write_events(tmp_path / "a" / "W.json", _events())
    events = _events()
    numbers = sorted(events)
    second_events = {numbers[0]: events[numbers[1]], numbers[1]: events[numbers[0]], "99": events[numbers[2]]}
    second = _write_events(tmp_path / "b" / "W.json", second_events)       # overlapping numbers, other pixels
    out = tmp_path / "images"
    assert _run(first, "--out", out) == 0
    before = {p: (out / p).read_bytes() for p in _pngs(out)}
    manifest_before = (out / "manifest.csv").read_bytes()
    capsys.readouterr()
    assert _run(second, "--out", out) == 2
    err = _error(capsys)
    assert f"W_{numbers[0]}.png" in err and str(first.resolve()) in err and str(second) in err
    assert "--overwrite" in err
    assert {p: (out / p).read_bytes() for p in _pngs(out)} == before        # nothing replaced
    assert (out / "manifest.csv").read_bytes() == manifest_before          # still describes the disk
    assert _run(second, "--out", out, "--overwrite") == 0
    rows = read_manifest(out)
    assert {r["source"] for r in rows} == {second.as_posix()}
    assert {r["path"] for r in rows} == _pngs(out) == {f"W/W_{n}.png" for n in second_events}
    assert "removed 2 image(s) of an earlier run" in capsys.readouterr().out


def test_resume_reuses_the_images_of_the_same_source(tmp_path, capsys):
    out = tmp_path / "images"
    assert _run(CMS_SHORT_JSON, "--out", out) == 0
    capsys.readouterr()
    assert _run(CMS_SHORT_JSON, "--out", out) == 0
    assert "images: 4 (0 rendered at 0/s, 4 already there)" in capsys.readouterr().out


def _sharded(tmp_path: Path) -> Path:
    events = {str(1000 + i): _events()[n] for i, n in enumerate(sorted(_events()) * 5)}
    source = _write_events(tmp_path / "json" / "W.json", events)
    out = tmp_path / "images"
    for index in range(2):
        assert _run(source, "--out", out, "--shard", f"{index}/2") == 0
    return out


@pytest.mark.parametrize("cut", ["line", "mid-line"])
def test_merge_shards_refuses_a_shard_manifest_cut_short(tmp_path, capsys, cut):
    out = _sharded(tmp_path)
    shard = out / "manifest-shard-1-of-2.csv"
    lines = shard.read_bytes().splitlines(keepends=True)
    assert len(lines) > 3
    shard.write_bytes(b"".join(lines[:-2]) + (lines[-2][:-8] if cut == "mid-line" else b""))
    capsys.readouterr()
    assert imgen_main(["merge-shards", str(out)]) == 2
    err = _error(capsys)
    assert "shard 1 of 2" in err and "manifest-shard-1-of-2.csv" in err
    assert not (out / "manifest.csv").exists()


def test_merge_shards_refuses_a_row_whose_image_is_missing(tmp_path, capsys):
    out = _sharded(tmp_path)
    row = read_manifest(out, check_files=False) if (out / "manifest.csv").exists() else None
    assert row is None
    first = (out / "manifest-shard-0-of-2.csv").read_text().splitlines()[1].split(",")[0]
    (out / first).unlink()
    capsys.readouterr()
    assert imgen_main(["merge-shards", str(out)]) == 2
    err = _error(capsys)
    assert "shard 0 of 2" in err and first in err and "does not exist" in err
    assert not (out / "manifest.csv").exists()


def test_merge_shards_joins_complete_shards(tmp_path, capsys):
    out = _sharded(tmp_path)
    assert imgen_main(["merge-shards", str(out)]) == 0
    assert {r["path"] for r in read_manifest(out)} == _pngs(out) and len(_pngs(out)) == 20
    assert imgen_main(["--merge-shards", str(out)]) == 0  # the former spelling still works


def test_objects_outside_the_eta_range_are_counted(tmp_path, capsys):
    out = tmp_path / "images"
    assert _run(CMS_SHORT_JSON, "--out", out, "--eta-max", "1.0") == 0
    expected_objects = expected_events = 0
    for event in _events().values():
        etas = [o["eta"] for group in ("jet", "electron", "muon") for o in event.get(group, {}).values()]
        outside = sum(abs(eta) > 1.0 for eta in etas)
        expected_objects += outside
        expected_events += outside > 0
    assert expected_objects == 6 and expected_events == 3                  # the fixture, counted by hand
    text = capsys.readouterr().out
    assert f"objects outside |eta| < 1 (not drawn; their events are kept): {expected_objects} in " \
           f"{expected_events} event(s)" in text
    recorded = json.loads((out / "imgen-config.json").read_text())["last_run"]["outside_eta"]
    assert recorded == {"eta_max": 1.0, "objects": expected_objects, "events": expected_events, "events_kept": True}


def test_duplicate_event_numbers_in_a_class_name_both_files(tmp_path, capsys):
    one = _write_events(tmp_path / "json" / "part1.json", _events())
    two = _write_events(tmp_path / "json" / "part2.json", dict(list(_events().items())[:3]))
    out = tmp_path / "images"
    assert _run("--class", f"W={tmp_path / 'json' / 'part*.json'}", "--out", out) == 0
    text = capsys.readouterr().out
    assert f"duplicate event numbers in class W: {two.as_posix()} repeats 3 of {one.as_posix()}" in text
    recorded = json.loads((out / "imgen-config.json").read_text())["last_run"]["duplicate_events"]
    assert recorded == [{"class": "W", "first_read_from": one.as_posix(), "repeated_in": two.as_posix(),
                         "events": 3}]
    assert len(read_manifest(out)) == 4 and len(_pngs(out)) == 4


def test_a_second_run_on_the_same_output_is_refused_naming_the_holder(tmp_path):
    import os
    import subprocess
    import sys

    from imgen.output.lock import output_lock

    out = tmp_path / "images"
    out.mkdir()
    with output_lock(out):
        done = subprocess.run([sys.executable, "-m", "imgen", str(CMS_SHORT_JSON), "--out", str(out), "--size", "16",
                               "--no-progress"], capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and f"process {os.getpid()}" in done.stderr and str(out) in done.stderr
    assert _pngs(out) == set() and not (out / "manifest.csv").exists()
    assert imgen_main([str(CMS_SHORT_JSON), "--out", str(out), "--size", "16", "--no-progress"]) == 0  # released
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_a_class_folder_that_cannot_be_written_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "images"
    out.mkdir()
    (out / "short").write_text("a file where the class folder belongs")
    assert _run(CMS_SHORT_JSON, "--out", out) == 2
    err = _error(capsys)
    assert str(out / "short") in err and "class folder" in err
    assert not (out / "manifest.csv").exists() and _pngs(out) == set()
    (out / "short").unlink()                                   # fixed: the same command resumes from staging
    assert _run(CMS_SHORT_JSON, "--out", out) == 0
    assert "4 already there" in capsys.readouterr().out
    assert {r["path"] for r in read_manifest(out)} == _pngs(out) and not (out / ".imgen-staging").exists()


# --- issue 24 --------------------------------------------------------------------------------------------

def test_a_class_name_too_long_for_a_file_name_is_refused_before_rendering(tmp_path, capsys):
    out = tmp_path / "images"
    name = "W" * 300
    assert _run("--class", f"{name}={CMS_SHORT_JSON}", "--out", out) == 2
    err = _error(capsys)
    assert "is 300 bytes long" in err and "at most 200" in err and "--class NAME=GLOB" in err
    assert len(err) < 600 and not out.exists()


def test_a_failed_first_render_leaves_no_configuration_to_refuse_the_next(tmp_path, capsys):
    broken = tmp_path / "json" / "W.json"
    broken.parent.mkdir()
    broken.write_text('{"Event": {"1": ')                    # cut short: the run fails on it
    out = tmp_path / "images"
    assert _run(broken, "--out", out) == 2
    assert "W.json" in _error(capsys)
    assert not out.exists()                                  # not even the folder, nor imgen-config.json
    out.mkdir()                                              # a configuration left by an older version, no images
    (out / "imgen-config.json").write_text(json.dumps({"fingerprint": "0" * 24, "pixels": {"size": 16}}))
    _write_events(broken, _events())
    assert imgen_main([str(broken), "--out", str(out), "--size", "32", "--workers", "1", "--no-progress"]) == 0
    assert json.loads((out / "imgen-config.json").read_text())["render"]["size"] == 32
    assert len(read_manifest(out)) == 4
