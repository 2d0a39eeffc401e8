"""imgen.atomic: temporary file or folder, then rename; nothing half-written on failure."""
from __future__ import annotations

import os
import stat

import h5py
import numpy as np
import pytest

from imgen.atomic import (FOLDER_PERMISSIONS, UMASK, atomic_file, atomic_path, move_into_place, staged_folder,
                          temp_file_beside, write_atomic)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class Boom(Exception):
    pass


# ------------------------------------------------------------------ files
@pytest.mark.parametrize("data", ["café\r\nline two\n", b"\x00\x01binary\xff"])
def test_write_atomic_gives_content_and_0644(tmp_path, data):
    path = tmp_path / "out.txt"
    assert write_atomic(path, data) == path
    assert path.read_bytes() == (data.encode("utf-8") if isinstance(data, str) else data)  # text as given
    assert mode(path) == 0o644                           # mkstemp's 0600 is not kept
    assert names(tmp_path) == ["out.txt"]


def test_write_atomic_replaces_an_existing_file_and_honours_permissions(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    write_atomic(path, "new", permissions=0o640)
    assert path.read_text() == "new" and mode(path) == 0o640
    assert names(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_atomic_file_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    path = tmp_path / "manifest.csv"
    path.write_text("old content\n")
    with pytest.raises(error):
        with atomic_file(path, "w", encoding="utf-8", prefix=".manifest-", suffix=".csv") as handle:
            handle.write("half of the new con")
            handle.flush()
            temporary = [p for p in tmp_path.iterdir() if p.name != "manifest.csv"]
            assert [p.name[:10] for p in temporary] == [".manifest-"] and temporary[0].suffix == ".csv"
            assert temporary[0].read_text() == "half of the new con"   # written beside the target
            raise error()
    assert path.read_text() == "old content\n"
    assert names(tmp_path) == ["manifest.csv"]


def test_atomic_file_failure_without_an_old_file_leaves_nothing(tmp_path):
    with pytest.raises(Boom):
        with atomic_file(tmp_path / "new.bin", "wb") as handle:
            handle.write(b"partial")
            raise Boom()
    assert names(tmp_path) == []


def test_atomic_file_writes_text_with_the_given_newline(tmp_path):
    path = tmp_path / "a.csv"
    with atomic_file(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("a,b\r\n1,2\r\n")
    assert path.read_bytes() == b"a,b\r\n1,2\r\n" and mode(path) == 0o644


def test_atomic_file_refuses_a_reading_or_appending_mode(tmp_path):
    for bad in ("r", "a", "x"):
        with pytest.raises(ValueError, match="mode must be"):
            with atomic_file(tmp_path / "f", bad):
                pass
    assert names(tmp_path) == []


def test_atomic_path_for_h5py(tmp_path):
    path = tmp_path / "data.h5"
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as handle:
        assert tmp.parent == tmp_path and tmp.name.startswith(".data.h5.") and tmp.suffix == ".h5"
        handle["X"] = np.arange(5)
    with h5py.File(path, "r") as handle:
        assert handle["X"][:].tolist() == [0, 1, 2, 3, 4]
    assert mode(path) == 0o644 and names(tmp_path) == ["data.h5"]
    with pytest.raises(Boom):
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
            handle["X"] = np.zeros(2)
            raise Boom()
    with h5py.File(path, "r") as handle:                 # the old file is intact
        assert handle["X"][:].tolist() == [0, 1, 2, 3, 4]
    assert names(tmp_path) == ["data.h5"]


def test_temp_file_beside_and_move_into_place(tmp_path):
    path = tmp_path / "images.h5"
    fd, tmp = temp_file_beside(path, prefix=".tmp-", suffix=".h5")
    os.write(fd, b"data")
    os.close(fd)
    assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-") and mode(tmp) == 0o600
    assert not path.exists()
    assert move_into_place(tmp, path) == path
    assert path.read_bytes() == b"data" and mode(path) == 0o644 and names(tmp_path) == ["images.h5"]


def test_a_missing_target_folder_is_an_error_not_created(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "f.txt", "x")
    assert names(tmp_path) == []


# ---------------------------------------------------------------- folders
def test_folder_permissions_follow_the_umask():
    assert FOLDER_PERMISSIONS == 0o777 & ~UMASK
    current = os.umask(UMASK)
    os.umask(current)
    assert current == UMASK


def test_staged_folder_creates_the_folder_with_mkdir_permissions(tmp_path):
    final = tmp_path / "nested" / "run"
    with staged_folder(final) as staging:
        assert staging.parent == final.parent and staging.name.startswith(".run.tmp-")
        assert not final.exists()
        (staging / "a").mkdir()
        (staging / "a" / "x.txt").write_text("x")
    assert (final / "a" / "x.txt").read_text() == "x"
    assert mode(final) == FOLDER_PERMISSIONS              # not mkdtemp's 0700
    assert names(final.parent) == ["run"]


def test_staged_folder_replaces_an_existing_folder(tmp_path):
    final = tmp_path / "out"
    (final / "old-class").mkdir(parents=True)
    (final / "old-class" / "old.png").write_bytes(b"old")
    with staged_folder(final, prefix=".out.partial-") as staging:
        assert staging.name.startswith(".out.partial-")
        (staging / "new.txt").write_text("new")
        assert (final / "old-class" / "old.png").exists()  # untouched until the block ends
    assert names(final) == ["new.txt"] and (final / "new.txt").read_text() == "new"
    assert names(tmp_path) == ["out"]                      # neither staging nor old copy left


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_staged_folder_failure_keeps_the_old_folder_and_leaves_nothing(tmp_path, error):
    final = tmp_path / "out"
    final.mkdir()
    (final / "keep.txt").write_text("previous run")
    with pytest.raises(error):
        with staged_folder(final) as staging:
            (staging / "sub").mkdir()
            (staging / "sub" / "half.png").write_bytes(b"\x89PNG")
            raise error()
    assert names(final) == ["keep.txt"] and (final / "keep.txt").read_text() == "previous run"
    assert names(tmp_path) == ["out"]


def test_staged_folder_failure_removes_the_parents_it_created(tmp_path):
    (tmp_path / "existing").mkdir()
    with pytest.raises(Boom):
        with staged_folder(tmp_path / "existing" / "new" / "deeper" / "out"):
            raise Boom()
    assert names(tmp_path) == ["existing"] and names(tmp_path / "existing") == []


def test_staged_folder_restores_the_old_folder_when_the_final_rename_fails(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "keep.txt").write_text("previous run")
    with pytest.raises(FileNotFoundError):
        with staged_folder(final) as staging:
            staging.rmdir()        # the rename of staging to out fails after out was set aside
    assert names(final) == ["keep.txt"] and (final / "keep.txt").read_text() == "previous run"
    assert names(tmp_path) == ["out"]


# ------------------------------------------------------- callers that write through it
def test_imgen_writer_files_are_readable_by_all(tmp_path):
    from imgen.output.hdf5 import Hdf5Writer, compress_image
    from imgen.output.images import atomic_write_bytes

    atomic_write_bytes(tmp_path / "imgen-config.json", b"{}\n")
    h5 = Hdf5Writer(tmp_path / "images.h5", 2, ["a"], {})
    h5.append("a", "1", "train", "a/a_1.png", "src.json", compress_image(np.zeros((2, 2, 3), np.uint8)))
    h5.finish()
    assert mode(tmp_path / "imgen-config.json") == 0o644 and mode(tmp_path / "images.h5") == 0o644
    assert names(tmp_path) == ["images.h5", "imgen-config.json"]
    aborted = Hdf5Writer(tmp_path / "other.h5", 2, ["a"], {})
    aborted.abort()
    assert names(tmp_path) == ["images.h5", "imgen-config.json"]


def test_write_manifest_under_another_name(tmp_path):
    from imgen.output.manifest import write_manifest

    path = write_manifest(tmp_path, [{"path": "a/a_1.png", "class": "a", "event": 1, "source": "s", "split": "test"}],
                          name="manifest-shard-0-of-2.csv")
    assert path == tmp_path / "manifest-shard-0-of-2.csv" and mode(path) == 0o644
    assert path.read_text().splitlines() == ["path,class,event,source,split", "a/a_1.png,a,1,s,test"]
    assert names(tmp_path) == ["manifest-shard-0-of-2.csv"]
