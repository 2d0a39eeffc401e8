"""The HDF5 output (``--format hdf5|both``): the whole dataset in one file, images and their manifest columns."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from imgen.atomic import move_into_place, temp_file_beside
from imgen.output.images import TMP_PREFIX
from imgen.output.shards import shard_suffix

HDF5_NAME = "images.h5"


def hdf5_name(shard: tuple[int, int] | None) -> str:
    return HDF5_NAME if shard is None else f"images{shard_suffix(shard)}.h5"


class Hdf5Writer:
    """``X`` uint8 (N, H, W, 3), ``y`` class index, ``event``, ``split``,
    ``path``, ``source``; attribute ``classes``. One gzip chunk per image,
    compressed by the workers (:func:`compress_image`) and written as is."""

    def __init__(self, path: str | os.PathLike, size: int, classes: Sequence[str], attrs: Mapping[str, str]):
        import h5py  # only runs that write HDF5 pay for the import

        self.path = Path(path)
        fd, self._tmp = temp_file_beside(self.path, prefix=TMP_PREFIX, suffix=".h5")
        os.close(fd)
        self._file = h5py.File(self._tmp, "w")
        self._file.attrs["classes"] = list(classes)
        for key, value in attrs.items():
            self._file.attrs[key] = value
        self.classes = {name: i for i, name in enumerate(classes)}
        self._x = self._file.create_dataset("X", shape=(0, size, size, 3), maxshape=(None, size, size, 3),
                                            chunks=(1, size, size, 3), dtype="u1",
                                            compression="gzip", compression_opts=1)
        text = h5py.string_dtype("utf-8")
        self._columns = {
            "y": self._file.create_dataset("y", (0,), maxshape=(None,), dtype="i4", chunks=(4096,)),
            **{name: self._file.create_dataset(name, (0,), maxshape=(None,), dtype=text, chunks=(4096,))
               for name in ("event", "split", "path", "source")},
        }
        self._buffer: list[tuple] = []
        self.count = 0
        self._mark = 0

    def append(self, class_name: str, event: str, split: str, path: str, source: str, chunk: bytes) -> None:
        index = self.count
        if index >= self._x.shape[0]:
            self._x.resize(max(1024, 2 * index), axis=0)
        self._x.id.write_direct_chunk((index, 0, 0, 0), chunk)
        self._buffer.append((self.classes[class_name], event, split, path, source))
        self.count += 1
        if len(self._buffer) >= 4096:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        start = self.count - len(self._buffer)
        for i, (name, dataset) in enumerate(self._columns.items()):
            if dataset.shape[0] < self.count:
                dataset.resize(self.count, axis=0)
            dataset[start:self.count] = [row[i] for row in self._buffer]
        self._buffer.clear()

    def mark(self) -> None:
        self._flush()
        self._mark = self.count

    def rollback(self) -> None:
        self._buffer.clear()
        self.count = self._mark

    def finish(self) -> Path:
        self._flush()
        self._x.resize(self.count, axis=0)
        for dataset in self._columns.values():
            dataset.resize(self.count, axis=0)
        self._file.close()
        return move_into_place(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the unfinished file. Closing may fail (a full disk): the error that stopped
        the run is the one to report, and the temporary file goes either way."""
        try:
            self._columns.clear()
            self._x = None
            self._file.close()
        except Exception:  # noqa: BLE001 - HDF5 cannot flush what the disk refused
            pass
        finally:
            self._tmp.unlink(missing_ok=True)


def compress_image(image: np.ndarray) -> bytes:
    """One HDF5 chunk of ``X``: the image as the gzip (deflate) filter stores it."""
    import zlib

    return zlib.compress(np.ascontiguousarray(image).tobytes(), 1)
