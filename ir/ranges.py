"""Byte ranges of files read a piece at a time into one small buffer, so that the bytes stay
in the cache between the read and what uses them: checksums of data that reached a file
without passing through this process (an IR stream's bytes spliced in), and the strips of a tensor
lying as stored (Tensor.extent) that a relayout reads itself (ir/layout.transpose_2d_read)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

from .errors import FormatError, IrconvError
from .stages import stage

try:        # zip's CRC-32 by ISA-L: ~9 GB/s here, zlib's 1.2 (a .bin member's CRC-32 is most of its write)
    from isal.isal_zlib import crc32
except ImportError:         # no wheel for this platform: zlib's, the same values
    from zlib import crc32

PIECE = 1 << 20


def crc_of_range(fd: int, offset: int, n: int, crc: Callable) -> int | None:
    """crc(data, running) over n bytes of `fd` from `offset` (crc32c.crc32c, zlib.crc32);
    None if the file ends first."""
    buf = memoryview(bytearray(min(PIECE, max(n, 1))))
    value, at, end = 0, offset, offset + n
    while at < end:
        got = os.preadv(fd, [buf[:min(len(buf), end - at)]], at)
        if got <= 0:
            return None
        value = crc(buf[:got], value)
        at += got
    return value


@contextmanager
def range_reader(extent: tuple[str, int], n: int, name: str) -> Iterator[Callable]:
    """fill(buffer, at): buffer <- bytes [at, at + len(buffer)) of the n bytes of tensor `name`
    lying at extent = (file, offset); a file that ends first is a FormatError naming it."""
    from .limits import open_regular
    path, offset = extent
    with open_regular(path) as f:
        fd = f.fileno()

        def fill(buffer, at: int) -> None:
            want = len(buffer)
            with stage("read", want):
                got = os.preadv(fd, [buffer], offset + at) if want else 0
                while 0 < got < want:        # a short read that is not the end: go on
                    more = os.preadv(fd, [buffer[got:]], offset + at + got)
                    if more <= 0:
                        break
                    got += more
            if got != want:
                raise FormatError(f"tensor {name!r}: read {at + max(got, 0)} of {n} bytes at offset "
                                  f"{offset}; file is truncated (changed since it was opened?)", path=path)
        yield fill


@contextmanager
def checked_range_reader(extent: tuple[str, int], n: int, name: str, crc: Callable,
                         check: Callable[[int], None]) -> Iterator[Callable]:
    """range_reader() whose fill() must cover the n bytes in order, crc(data, running) taken
    as they pass; on exit, once all were read, check(value) raises if they are corrupt, so
    what was read into is used only after it passed (a TensorBundle entry's crc32c, a zip
    record's CRC-32)."""
    state = {"at": 0, "crc": 0}
    with range_reader(extent, n, name) as read:
        def fill(buffer, at: int) -> None:
            if at != state["at"]:
                raise IrconvError(f"tensor {name!r}: its strips must be read in order")
            read(buffer, at)
            with stage("checksum", len(buffer)):
                state["crc"] = crc(buffer, state["crc"])
            state["at"] += len(buffer)
        yield fill
    if state["at"] != n:
        raise IrconvError(f"tensor {name!r}: {state['at']} of its {n} bytes were read")
    check(state["crc"])
