"""What the streaming writers in formats/ share (safetensors, Keras h5, TensorBundle): every
tensor is declared up front, then written in any order, one array in memory at a time, into
`.partial` files that only a close() finding every declared tensor written renames into place.
abort(), or leaving a `with` block by an exception, drops the unfinished files.

Writers whose layout is fixed when they are made (safetensors, TensorBundle, Keras h5) put each
tensor's bytes at its own offset with pwrite_at() or copy_range(): in any order, from any thread.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import numpy as np

from ..ir.errors import DTypeError, FormatError, UsageError
from ..ir.limits import open_regular
from ..ir.ranges import crc_of_range
from ..ir.tensor import TensorSpec, as_bytes
from .sharding import write_errors


def check_array(path: str, name: str, spec: TensorSpec, array) -> np.ndarray:
    """`array` as a little-endian numpy array of exactly the declared dtype and shape."""
    array = np.asarray(array)
    if array.dtype.byteorder == ">":          # same values; every format here is little-endian
        array = array.astype(array.dtype.newbyteorder("<"))
    if not spec.dtype.carried_by(array.dtype):
        raise DTypeError(f"tensor {name!r}: array dtype {array.dtype} but declared "
                         f"{spec.dtype} ({spec.dtype.numpy_name}); convert it before writing", path=path)
    if tuple(array.shape) != spec.shape:
        raise UsageError(f"tensor {name!r}: array shape {list(array.shape)} but declared "
                         f"{list(spec.shape)}", path=path)
    return array


class PartialWriter:
    """The write()/close()/abort() bookkeeping. A subclass sets `self._specs` (name -> spec,
    in declaration order), calls `_accept` at the top of write() and `_wrote` once the bytes
    are down, `_missing_check` at the top of close(), and marks itself closed in close() and
    abort()."""

    path: str                                  # where errors point
    _specs: dict[str, TensorSpec]

    def __init__(self, path: str):
        self.path = path
        self._written: set[str] = set()
        self._closed = False

    def _accept(self, name: str, array) -> tuple[TensorSpec, np.ndarray]:
        if self._closed:
            raise UsageError(f"write({name!r}) after close", path=self.path)
        if name not in self._specs:
            raise UsageError(f"tensor {name!r} is not among the {len(self._specs)} declared "
                             "when the writer was made", path=self.path)
        if name in self._written:
            raise UsageError(f"tensor {name!r} written twice", path=self.path)
        spec = self._specs[name]
        return spec, check_array(self.path, name, spec, array)

    def _accept_copy(self, name: str, spec: TensorSpec) -> None:
        """_accept for a copy(): the tensor's bytes come from a file, of `spec`'s dtype and shape."""
        if self._closed or name not in self._specs or name in self._written:
            self._accept(name, np.empty(0))      # the same errors as write()
        mine = self._specs[name]
        if (mine.dtype, mine.shape) != (spec.dtype, spec.shape):
            raise UsageError(f"tensor {name!r}: {spec.dtype} {list(spec.shape)} but declared "
                             f"{mine.dtype} {list(mine.shape)}", path=self.path)

    def _wrote(self, name: str) -> None:
        self._written.add(name)

    def _missing_check(self) -> None:
        missing = [n for n in self._specs if n not in self._written]
        if missing:
            self.abort()
            raise FormatError(f"{len(missing)} tensor(s) never written: {missing!r}", path=self.path)

    @property
    def names(self) -> list[str]:
        """Tensor names in declaration order (what write() expects)."""
        return list(self._specs)

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class OneFileWriter(PartialWriter):
    """A PartialWriter of one file, written at `self._tmp` through `self._file` (opened by the
    subclass) and renamed onto `path` by close()."""

    _tmp: str
    _file = None

    def close(self) -> None:
        """Finish the file; raises (and leaves no file at `path`) if a tensor is missing."""
        if self._closed:
            return
        self._missing_check()
        try:
            with write_errors(self.path):
                self._file.close()      # flushes: the last write may fail here
                os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._file = None

    def abort(self) -> None:
        """Drop the unfinished file."""
        self._closed = True
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError:     # flushing a full disk fails again; the file goes anyway
                pass
        if os.path.exists(self._tmp):
            os.remove(self._tmp)




_locks: dict[tuple[int, int], threading.Lock] = {}
_locks_lock = threading.Lock()


@contextmanager
def one_writer(fd: int):
    """Hold the lock of the file `fd` is open on while writing to it from one thread. The
    kernel lets one buffered write into a file run at a time anyway (ext4 takes the inode's
    lock for all of a pwrite), and a thread that waits there spins on the core the others'
    relayouts and checksums need (6% of a 4 GB convert's CPU here); one waiting on this lock
    sleeps."""
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    with _locks_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        yield


def pwrite_at(fd: int, array, offset: int) -> None:
    """All of `array`'s bytes (an ndarray, or any buffer) to `fd` at `offset`, from a view (no
    copy of a large tensor) and without the file position, so threads may write at once."""
    data = memoryview(as_bytes(array) if isinstance(array, np.ndarray) else array).cast("B")
    done = 0
    with one_writer(fd):
        while done < len(data):
            done += os.pwrite(fd, data[done:], offset + done)


_COPY_PIECE = 1 << 20
_buffers = threading.local()


def _piece() -> memoryview:
    """This thread's copy buffer: a MiB stays in the cache between its read and its write."""
    buf = getattr(_buffers, "piece", None)
    if buf is None:
        buf = _buffers.piece = memoryview(bytearray(_COPY_PIECE))
    return buf


def copy_extent(extent, dst_fd: int, dst_offset: int, n: int, name: str, crc=None) -> int | None:
    """A tensor's n bytes from where they lie (Tensor.extent) into `dst_fd` at `dst_offset`:
    a (file, offset) range by copy_range, an IR stream's pipe by its own splice (which reads
    them back from `dst_fd` for their checksum: open it for reading too). With `crc`
    (zlib.crc32's signature), returns crc of the bytes copied, None if they did not all
    arrive (read back from `dst_fd` for a pipe's)."""
    if isinstance(extent, tuple):
        return copy_range(extent[0], extent[1], dst_fd, dst_offset, n, name, crc)
    extent.copy_into(dst_fd, dst_offset)
    if crc is not None:
        return crc_of_range(dst_fd, dst_offset, n, crc)
    return None


def copy_range(src: str, offset: int, dst_fd: int, dst_offset: int, n: int, name: str, crc=None) -> int | None:
    """n bytes of file `src` from `offset` to `dst_fd` at `dst_offset`, a MiB at a time through
    this thread's buffer; with `crc`, returns crc (zlib.crc32's signature) of them, taken while
    the piece is in the cache. Not os.copy_file_range, which is what `cp` does: its writes
    come a pipe's 64 KiB at a time, and at an offset that is not a multiple of that (every
    tensor's but a file's first) the page cache takes them a 4 KiB page at a time, 0.37 s a
    GB here against 0.25 for these pwrites, whose pieces it aligns."""
    value = 0
    with open_regular(src) as f:
        fd, done, buf = f.fileno(), 0, _piece()
        while done < n:
            want = min(len(buf), n - done)
            got = os.preadv(fd, [buf[:want]], offset + done)
            if got <= 0:
                raise FormatError(f"tensor {name!r}: the file ends {n - done:,} bytes early; it is "
                                  "truncated (changed since it was opened?)", path=src)
            if crc is not None:
                value = crc(buf[:got], value)
            pwrite_at(dst_fd, buf[:got], dst_offset + done)
            done += got
    return value if crc is not None else None
