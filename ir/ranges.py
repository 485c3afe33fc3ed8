"""Checksums of a byte range of an open file, read a MiB at a time into one small buffer (the
bytes stay in the cache between the read and the checksum): for data that reached a file
without passing through this process (a kernel copy, a splice), checked or summed there."""
from __future__ import annotations

import os
from typing import Callable

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
