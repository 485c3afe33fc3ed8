"""A stored (uncompressed) zip whose layout is fixed when it is made: every member's name and
size are given up front, so each member's local header and data have their offsets before a
byte is written. Members' bytes may then be written in any order, from several threads at
once (pwrite at the member's offset; its CRC-32 computed on that thread and patched into its
local header), and close() writes the central directory. The file is the same bytes whatever
order the writes come in.

This is what a torch checkpoint needs (formats/torchzip.py): data starts at a multiple of
`align` (torch's 64), padded with the extra field torch itself uses (id "FB"); zip64 records
where a size or an offset needs them (APPNOTE 4.5.3), with the same threshold as zipfile
(zipfile.ZIP64_LIMIT). Member times are 1980-01-01 00:00, as torch.save writes them.
"""
from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass

from ..ir.errors import FormatError, UsageError
from ..ir.ranges import crc32
from .partial import copy_extent, pwrite_at

_LOCAL = struct.Struct("<4sHHHHHLLLHH")          # APPNOTE 4.3.7
_CENTRAL = struct.Struct("<4sBBHHHHHLLLHHHHHLL")  # 4.3.12
_END = struct.Struct("<4sHHHHLLH")               # 4.3.16
_END64 = struct.Struct("<4sQHHLLQQQQ")           # 4.3.14
_LOCATOR64 = struct.Struct("<4sLQL")             # 4.3.15
_MAX16, _MAX32 = 0xFFFF, 0xFFFFFFFF
_DOS_DATE = (0 << 9) | (1 << 5) | 1              # 1980-01-01
_VERSION, _VERSION64 = 20, 45                    # 2.0 (stored), 4.5 (zip64)
_UNIX = 3


@dataclass(slots=True)
class _Member:
    name: bytes
    size: int
    header: int          # offset of the local header
    data: int            # offset of the first data byte
    zip64: bool          # sizes in a zip64 extra
    crc: int | None = None


def _padding(length: int) -> bytes:
    """An extra field of exactly `length` (>= 4) bytes that says nothing (torch's "FB")."""
    return b"FB" + struct.pack("<H", length - 4) + b"Z" * (length - 4)


class LaidOutZip:
    """Members `(name, size)` in file order, written to `path` (created now, sparse until its
    members are written). write(i, data) puts member i's bytes; close() needs every one."""

    def __init__(self, path: str, members: list[tuple[str, int]], align: int = 64):
        self.path = path
        self._members: list[_Member] = []
        at = 0
        for name, size in members:
            raw = name.encode("utf-8")
            zip64 = size * 1.05 > zipfile.ZIP64_LIMIT        # zipfile's own rule
            fixed = _LOCAL.size + len(raw) + (20 if zip64 else 0)
            pad = -(at + fixed + 4) % align + 4             # room for an extra field's header
            self._members.append(_Member(raw, size, at, at + fixed + pad, zip64))
            at += fixed + pad + size
        self._end = at
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(self._fd, at)
            for m in self._members:
                self._put_header(m, 0)
        except BaseException:
            self.abort()
            raise

    def _flag(self, m: _Member) -> int:
        return 0 if m.name.isascii() else 0x800          # bit 11: the name is UTF-8

    def _put_header(self, m: _Member, crc: int) -> None:
        sizes = (_MAX32, _MAX32) if m.zip64 else (m.size, m.size)
        extra = struct.pack("<HHQQ", 1, 16, m.size, m.size) if m.zip64 else b""
        extra += _padding(m.data - m.header - _LOCAL.size - len(m.name) - len(extra))
        header = _LOCAL.pack(b"PK\x03\x04", _VERSION64 if m.zip64 else _VERSION, self._flag(m),
                             0, 0, _DOS_DATE, crc, *sizes, len(m.name), len(extra))
        pwrite_at(self._fd, header + m.name + extra, m.header)

    @property
    def sizes(self) -> list[int]:
        return [m.size for m in self._members]

    def write(self, index: int, data) -> None:
        """Member `index`'s bytes (a buffer of exactly its size), from any thread."""
        m = self._members[index]
        view = memoryview(data).cast("B")
        if len(view) != m.size:
            raise UsageError(f"zip member {m.name.decode()!r}: {len(view)} bytes but declared {m.size}",
                             path=self.path)
        pwrite_at(self._fd, view, m.data)
        crc = crc32(view)
        if crc:
            pwrite_at(self._fd, struct.pack("<L", crc), m.header + 14)
        m.crc = crc

    def copy(self, index: int, extent, name: str) -> None:
        """Member `index`'s bytes from where they lie (Tensor.extent: a file range, an IR
        stream's pipe), the CRC-32 taken as they are copied (read back from this file for a
        pipe's, spliced in)."""
        m = self._members[index]
        crc = copy_extent(extent, self._fd, m.data, m.size, name, crc32)
        if crc is None:
            raise FormatError(f"zip member {m.name.decode()!r}: its bytes did not all arrive", path=self.path)
        if crc:
            pwrite_at(self._fd, struct.pack("<L", crc), m.header + 14)
        m.crc = crc

    def missing(self) -> list[str]:
        return [m.name.decode() for m in self._members if m.crc is None]

    def close(self) -> None:
        """Write the central directory and the end records; every member must be written."""
        if self.missing():
            raise UsageError(f"zip members never written: {self.missing()!r}", path=self.path)
        directory = bytearray()
        for m in self._members:
            big = [v for v in (m.size, m.size, m.header) if v >= _MAX32 or m.zip64]
            size = _MAX32 if m.zip64 or m.size >= _MAX32 else m.size
            offset = _MAX32 if m.header >= _MAX32 or m.zip64 else m.header
            extra = struct.pack(f"<HH{len(big)}Q", 1, 8 * len(big), *big) if big else b""
            version = _VERSION64 if big else _VERSION
            directory += _CENTRAL.pack(b"PK\x01\x02", version, _UNIX, version, self._flag(m),
                                       0, 0, _DOS_DATE, m.crc, size, size, len(m.name), len(extra),
                                       0, 0, 0, 0o600 << 16, offset) + m.name + extra
        start, count = self._end, len(self._members)
        tail = bytes(directory)
        if count >= _MAX16 or start >= _MAX32 or len(directory) >= _MAX32:
            at64 = start + len(directory)
            tail += _END64.pack(b"PK\x06\x06", _END64.size - 12, _VERSION64, _VERSION64, 0, 0,
                                count, count, len(directory), start)
            tail += _LOCATOR64.pack(b"PK\x06\x07", 0, at64, 1)
        tail += _END.pack(b"PK\x05\x06", 0, 0, min(count, _MAX16), min(count, _MAX16),
                          min(len(directory), _MAX32), min(start, _MAX32), 0)
        pwrite_at(self._fd, tail, start)
        fd, self._fd = self._fd, None
        os.close(fd)

    def abort(self) -> None:
        """Close and remove the file."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        if os.path.exists(self.path):
            os.remove(self.path)
