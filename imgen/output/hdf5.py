"""The HDF5 output (``--format hdf5|both``): the whole dataset in one file, images and their manifest columns.

HDF5 never sees a failed write. When the disk fills, a write that fails inside the HDF5 library leaves its
objects half-flushed, and h5py then crashes while freeing them (``Exception ignored in ... __dealloc__``, then a
segmentation fault). So the file is written through h5py's ``fileobj`` driver onto :class:`_FailSafeFile`, which
records the first failed write (a full disk) and discards the rest: HDF5 closes cleanly, and the writer raises
the recorded ``OSError`` itself, from Python, after removing the temporary file.
"""
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


class _FailSafeFile:
    """The file object under h5py's ``fileobj`` driver: writes that fail are recorded, never raised into HDF5.

    After the first failure (``error``) writes are dropped and the file keeps a
    virtual size, so that HDF5 goes on and closes without an error; reads past
    what reached the disk are zeros. The writer checks ``error`` after every
    image and at the end.
    """

    def __init__(self, path: Path):
        self.path = path
        self._raw = open(path, "r+b", buffering=0)
        self._position = 0
        self._size = 0
        self.error: OSError | None = None

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            self.error = OSError(exc.errno, exc.strerror or os.strerror(exc.errno or 0), str(self.path))

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        if self.error is None:
            try:
                done = 0
                while done < size:
                    done += os.pwrite(self._raw.fileno(), view[done:], self._position + done)
            except OSError as exc:
                self._fail(exc)
        self._position += size
        self._size = max(self._size, self._position)
        return size

    def read(self, size: int = -1) -> bytes:
        size = self._size - self._position if size is None or size < 0 else size
        data = os.pread(self._raw.fileno(), size, self._position) if size > 0 else b""
        data += bytes(size - len(data))
        self._position += size
        return data

    def truncate(self, size: int | None = None) -> int:
        size = self._position if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self._raw.fileno(), size)
            except OSError as exc:
                self._fail(exc)
        self._size = size
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        try:
            self._raw.close()
        except OSError as exc:
            self._fail(exc)


#: The per-event weight datasets, written when an event carries a weight (the manifest's columns of the same
#: names): ``weight`` float64 (NaN for an event without one) and ``weight_source`` text (``genWeight``, ``xsec``,
#: empty for an event without one). ``transfer --event-weight genWeight|xsec`` reads them.
WEIGHT_KEY, WEIGHT_SOURCE_KEY = "weight", "weight_source"


class Hdf5Writer:
    """``X`` uint8 (N, H, W, 3), ``y`` class index, ``event``, ``split``,
    ``path``, ``source``, and, once an event carries a weight, ``weight`` and ``weight_source``
    (:data:`WEIGHT_KEY`); attribute ``classes``. One gzip chunk per image,
    compressed by the workers (:func:`compress_image`) and written as is."""

    def __init__(self, path: str | os.PathLike, size: int, classes: Sequence[str], attrs: Mapping[str, str]):
        import h5py  # only runs that write HDF5 pay for the import

        self.path = Path(path)
        fd, self._tmp = temp_file_beside(self.path, prefix=TMP_PREFIX, suffix=".h5")
        os.close(fd)
        self._sink = _FailSafeFile(self._tmp)
        self._file = h5py.File(self._sink, "w")
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
        self._weights: dict | None = None   # WEIGHT_KEY, WEIGHT_SOURCE_KEY datasets, made at the first weight
        self._buffer: list[tuple] = []
        self.count = 0
        self._mark = 0

    def _check(self) -> None:
        """Raise the write that failed (a full disk), naming the file."""
        if self._sink.error is not None:
            raise self._sink.error

    def append(self, class_name: str, event: str, split: str, path: str, source: str, chunk: bytes,
               weight: float | None = None, weight_source: str | None = None) -> None:
        self._check()
        index = self.count
        if index >= self._x.shape[0]:
            self._x.resize(max(1024, 2 * index), axis=0)
        self._x.id.write_direct_chunk((index, 0, 0, 0), chunk)
        self._buffer.append((self.classes[class_name], event, split, path, source,
                             np.nan if weight is None else float(weight), weight_source or ""))
        self.count += 1
        if len(self._buffer) >= 4096:
            self._flush()

    def _weight_columns(self) -> dict:
        """The weight datasets, made at the first event with a weight; the rows before it get none (NaN, "")."""
        if self._weights is None:
            import h5py

            self._weights = {
                WEIGHT_KEY: self._file.create_dataset(WEIGHT_KEY, (0,), maxshape=(None,), dtype="f8", chunks=(4096,),
                                                      fillvalue=np.nan),
                WEIGHT_SOURCE_KEY: self._file.create_dataset(WEIGHT_SOURCE_KEY, (0,), maxshape=(None,), chunks=(4096,),
                                                             dtype=h5py.string_dtype("utf-8"), fillvalue=b""),
            }
        return self._weights

    def _flush(self) -> None:
        if not self._buffer:
            return
        start = self.count - len(self._buffer)
        columns = dict(self._columns)
        if self._weights is not None or any(row[-1] or not np.isnan(row[-2]) for row in self._buffer):
            columns.update(self._weight_columns())
        for i, (name, dataset) in enumerate(columns.items()):
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
        for dataset in (*self._columns.values(), *(self._weights or {}).values()):
            dataset.resize(self.count, axis=0)
        self._close()
        try:
            self._check()
        except OSError:
            self._tmp.unlink(missing_ok=True)
            raise
        return move_into_place(self._tmp, self.path)

    def _close(self) -> None:
        """Close the HDF5 file, then the file under it (in that order: HDF5 flushes into it)."""
        self._columns.clear()
        self._weights = None
        self._x = None
        try:
            self._file.close()
        finally:
            self._sink.close()

    def abort(self) -> None:
        """Drop the unfinished file; the error that stopped the run is the one reported."""
        try:
            self._close()
        except Exception:  # noqa: BLE001 - the run is failing already; the temporary file goes either way
            pass
        finally:
            self._tmp.unlink(missing_ok=True)


def compress_image(image: np.ndarray) -> bytes:
    """One HDF5 chunk of ``X``: the image as the gzip (deflate) filter stores it."""
    import zlib

    return zlib.compress(np.ascontiguousarray(image).tobytes(), 1)
