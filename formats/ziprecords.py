"""The records of a torch checkpoint, read with their sizes and checksums checked.

A torch zip's central directory is checked against the file before any member is trusted:
no duplicate names, every local header inside the file and naming the same member, no two
members' bytes overlapping, a stored member's sizes equal, a compressed member's declared size
reachable from its compressed size. Every record read is checked against its zip CRC-32; the
checksum (ir/ranges.crc32) is computed on a second thread while the next chunk is read (it and
readinto both release the GIL), so verifying costs no wall time on a large read. Legacy (pre-1.6)
checkpoints have records too (each storage's bytes in the stream) but no checksum.
"""
from __future__ import annotations

import queue
import struct
import threading
import zipfile
import zlib
from dataclasses import dataclass
from typing import Callable, ContextManager

from ..ir.errors import FormatError, IrconvError
from ..ir.limits import open_regular
from ..ir.ranges import checked_range_reader, crc32, range_reader
from ..ir.stages import stage

CHUNK = 16 << 20            # read (and checksum) a record this much at a time
THREADED = 4 << 20          # records from this size on are checksummed on a second thread
# deflate cannot expand data by more than 1032:1, and torch stores records uncompressed; a
# member declaring more than this per compressed byte is lying (or a bomb).
MAX_RATIO = 1032

_LOCAL = struct.Struct("<4s2B4HL2L2H")      # zipfile's local file header
_LOCAL_SIG = b"PK\x03\x04"


@dataclass(frozen=True, slots=True)
class Record:
    name: str                   # full zip member name (legacy: "storage <key>")
    size: int                   # uncompressed bytes
    data_offset: int | None     # where the bytes start in the file; None: compressed
    crc: int | None = None      # zip CRC-32; None: legacy storage (no checksum)


def members(path: str, f, zf: zipfile.ZipFile) -> dict[str, tuple[zipfile.ZipInfo, Record]]:
    """Every member of an opened zip, checked against the file: name -> (info, record)."""
    infos = zf.infolist()
    seen: set[str] = set()
    for info in infos:
        if info.filename in seen:
            raise FormatError(f"zip central directory lists {info.filename!r} twice (corrupt or "
                              f"crafted archive)", path=path)
        seen.add(info.filename)
    size = f.seek(0, 2)
    end_of_data = getattr(zf, "start_dir", size)
    spans, out = [], {}
    for info in infos:
        what = f"record {info.filename!r}"
        if info.header_offset + _LOCAL.size > end_of_data:
            raise FormatError(f"{what}: its local header offset {info.header_offset:,} is past the "
                              f"members' end ({end_of_data:,} bytes; corrupt zip)", path=path)
        f.seek(info.header_offset)
        header = _LOCAL.unpack(f.read(_LOCAL.size))
        name_len, extra_len = header[-2:]
        raw_name = f.read(name_len)
        expected = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "replace")
        if header[0] != _LOCAL_SIG or raw_name != expected:
            raise FormatError(f"{what}: no local zip header for it at offset {info.header_offset:,} "
                              f"(corrupt zip)", path=path)
        data_offset = info.header_offset + _LOCAL.size + name_len + extra_len
        if data_offset + info.compress_size > end_of_data:
            raise FormatError(f"{what}: its {info.compress_size:,} bytes at offset {data_offset:,} "
                              f"run past the members' end ({end_of_data:,}; truncated?)", path=path)
        if info.flag_bits & 1:
            raise FormatError(f"{what} is encrypted", path=path)
        stored = info.compress_type == zipfile.ZIP_STORED
        if stored and info.compress_size != info.file_size:
            raise FormatError(f"{what} is stored uncompressed but declares {info.file_size:,} "
                              f"bytes in {info.compress_size:,} (corrupt zip)", path=path)
        if info.file_size > MAX_RATIO * info.compress_size + 1024:
            raise FormatError(f"{what} declares {info.file_size:,} bytes from "
                              f"{info.compress_size:,} compressed: more than compression can "
                              f"produce (a zip bomb or corrupt zip)", path=path)
        spans.append((info.header_offset, data_offset + info.compress_size, info.filename))
        out[info.filename] = (info, Record(info.filename, info.file_size,
                                           data_offset if stored else None, info.CRC))
    spans.sort()
    for (_, end, name), (start, _, other) in zip(spans, spans[1:]):
        if start < end:
            raise FormatError(f"records {name!r} and {other!r} overlap in the file (crafted or "
                              f"corrupt zip)", path=path)
    return out


class _Crc:
    """CRC-32 (ir/ranges.crc32) over the chunks fed to it, in order; on a thread for large records."""

    def __init__(self, threaded: bool):
        self.value = 0
        self._queue: queue.Queue | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=4)    # bounds the chunks held ahead of the thread
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self):
        while (chunk := self._queue.get()) is not None:
            self.value = crc32(chunk, self.value)

    def feed(self, chunk) -> None:
        if self._queue is None:
            self.value = crc32(chunk, self.value)
        else:
            self._queue.put(chunk)

    def result(self) -> int:
        if self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None
        return self.value


class RecordFile:
    """Reads byte ranges of a checkpoint's records. The first read of a record with a CRC
    reads all of it (keeping only the range asked for) and checks the CRC; later reads of
    that record read only their range."""

    def __init__(self, path: str, records: dict[str, Record]):
        self.path = path
        self.records = records
        self._verified: set[str] = set()

    def read(self, key: str, start: int, length: int, what: str) -> bytearray:
        with stage("read", length):
            return self._read(key, start, length, what)

    def _read(self, key: str, start: int, length: int, what: str) -> bytearray:
        record = self.records[key]
        if start + length > record.size:
            raise FormatError(f"{what}: needs bytes {start:,}..{start + length:,} of a "
                              f"{record.size:,}-byte record", path=self.path)
        if record.data_offset is None:
            return self._read_compressed(record, start, length, what)
        check = record.crc is not None and record.name not in self._verified
        with open_regular(self.path) as f:
            out = bytearray(length)
            if not check:
                f.seek(record.data_offset + start)
                self._fill(f, memoryview(out), what)
                return out
            crc = _Crc(threaded=record.size >= THREADED)
            try:
                f.seek(record.data_offset)
                for lo, hi in ((0, start), (start, start + length), (start + length, record.size)):
                    for pos in range(lo, hi, CHUNK):
                        n = min(CHUNK, hi - pos)
                        if lo == start and hi == start + length:
                            chunk = memoryview(out)[pos - start:pos - start + n]
                        else:
                            chunk = memoryview(bytearray(n))    # fresh: the thread may hold it
                        self._fill(f, chunk, what)
                        crc.feed(chunk)
            finally:
                got = crc.result()
        if got != record.crc:
            raise FormatError(f"{what}: CRC-32 mismatch (the zip says {record.crc:08x}, the bytes "
                              f"give {got:08x}): the data is corrupt", path=self.path)
        self._verified.add(record.name)
        return out

    def covers(self, key: str, start: int, length: int) -> bool:
        """Whether strips() can read these bytes of record `key`: it is stored (not deflated),
        and they are all of it or it has no CRC (a legacy storage), so the CRC is checked."""
        record = self.records[key]
        return record.data_offset is not None and (record.crc is None or (start, length) == (0, record.size))

    def strips(self, key: str, start: int, length: int, name: str) -> ContextManager[Callable]:
        """Tensor.strips of bytes [start, start + length) of record `key` (covers() says which):
        fill(buffer, at) reads them in order, the record's CRC-32 taken as they pass and
        checked on exit, before what was read into is used."""
        record = self.records[key]
        if not self.covers(key, start, length):
            raise IrconvError(f"tensor {name!r}: bytes {start}..{start + length} of record "
                              f"{record.name!r} cannot be read in strips")
        extent = (self.path, record.data_offset + start)
        if record.crc is None:          # a legacy storage: nothing to check
            return range_reader(extent, length, name)

        def check(got: int) -> None:
            if got != record.crc:
                raise FormatError(f"tensor {name!r} (record {record.name!r}): CRC-32 mismatch (the zip "
                                  f"says {record.crc:08x}, the bytes give {got:08x}): the data "
                                  "is corrupt", path=self.path)
            self._verified.add(record.name)
        return checked_range_reader(extent, length, name, crc32, check)

    def _fill(self, f, view: memoryview, what: str) -> None:
        got = 0
        while got < len(view):  # one read() may return less (Linux caps a read at ~2 GiB)
            k = f.readinto(view[got:])
            if not k:
                raise FormatError(f"{what}: file ends {len(view) - got:,} bytes early (truncated?)",
                                  path=self.path)
            got += k

    def _read_compressed(self, record: Record, start: int, length: int, what: str) -> bytearray:
        # Never written by torch; zipfile inflates it (at most record.size bytes, whose ratio to
        # the compressed size was checked) and checks its CRC on reaching the end.
        out = bytearray()
        try:
            with open_regular(self.path) as f, zipfile.ZipFile(f) as zf, zf.open(record.name) as m:
                pos = 0
                while chunk := m.read(CHUNK):
                    out += chunk[max(start - pos, 0):max(start + length - pos, 0)]
                    pos += len(chunk)
        except (zipfile.BadZipFile, RuntimeError, EOFError, ValueError, zlib.error) as e:
            raise FormatError(f"{what}: cannot read the record ({e})", path=self.path) from e
        if pos != record.size:
            raise FormatError(f"{what}: the record inflates to {pos:,} bytes, not the {record.size:,} "
                              f"it declares", path=self.path)
        return out
