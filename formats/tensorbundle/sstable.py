"""The LevelDB-format table a TensorBundle `.index` is: blocks of prefix-compressed keys with
restart arrays, each with a masked CRC-32C trailer, an index block and a 48-byte footer."""
from __future__ import annotations

import os
import struct
from collections import deque
from typing import Callable, Iterator

from ...ir.errors import FormatError
from ...ir.limits import open_regular
from .protowire import _WireError, _get_varint, _put_varint
from .snappy import _snappy_decompress

BLOCK_SIZE = 262144                 # TF table_options.h block_size
BLOCK_RESTART_INTERVAL = 16
TABLE_MAGIC = 0xdb4775248b80fb57
FOOTER_SIZE = 48                    # two BlockHandles padded to 40 bytes, then the magic
BLOCK_TRAILER_SIZE = 5              # type byte + masked crc32c
_NO_COMPRESSION, _SNAPPY = 0, 1
_MASK_DELTA = 0xa282ead8


# --------------------------------------------------------------------------- checksums

def mask(crc: int) -> int:
    """LevelDB's masked CRC: a CRC stored next to data it covers is rotated and offset, so
    the CRC of a string holding CRCs does not degenerate."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _crc(data, value: int = 0) -> int:
    import crc32c       # here, not at import: it reads package metadata (~10 ms)
    return crc32c.crc32c(data, value=value)


# --------------------------------------------------------------------------- table reading

def _handle(buf, pos: int) -> tuple[int, int, int]:
    offset, pos = _get_varint(buf, pos)
    size, pos = _get_varint(buf, pos)
    return offset, size, pos


def _block(data: bytes, offset: int, size: int, what: str) -> bytes:
    """One block's contents after checking its trailer (TF's ReadBlock always verifies)."""
    if offset + size + BLOCK_TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise _WireError(f"{what} at [{offset}, {offset + size}) runs past the table "
                         f"({len(data)} bytes); the file is truncated")
    contents = data[offset:offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    actual = _crc(contents + bytes([kind]))
    if unmask(stored) != actual:
        raise _WireError(f"block checksum mismatch in the {what} at offset {offset} "
                         f"(stored {unmask(stored):#010x}, computed {actual:#010x}); the "
                         "file is corrupted")
    if kind == _NO_COMPRESSION:
        return contents
    if kind == _SNAPPY:
        return _snappy_decompress(contents)
    raise _WireError(f"{what} at offset {offset} has compression type {kind}; only none (0) "
                     "and snappy (1) are supported")


def _block_entries(block: bytes, what: str) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) pairs of one block, checking its restart array: offsets that
    increase from 0, each the start of an entry that shares nothing with the key before."""
    if len(block) < 4:
        raise _WireError(f"{what} is {len(block)} bytes, too short for its restart count")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if num_restarts == 0 or limit < 0:
        raise _WireError(f"{what} has a bad restart count {num_restarts}")
    restarts = struct.unpack_from(f"<{num_restarts}I", block, limit)
    if restarts[0] != 0 or any(b <= a for a, b in zip(restarts, restarts[1:])) \
            or (restarts[-1] >= limit and restarts != (0,)):
        raise _WireError(f"{what} has a corrupt restart array (points {list(restarts[:4])}"
                         f"{' ...' if num_restarts > 4 else ''} in {limit} bytes of entries)")
    pending = deque(restarts if limit else ())
    pos, key = 0, b""
    while pos < limit:
        at = pos
        shared, pos = _get_varint(block, pos)
        unshared, pos = _get_varint(block, pos)
        value_len, pos = _get_varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise _WireError(f"{what} has a corrupt entry at offset {at}")
        if pending and pending[0] == at:
            pending.popleft()
            if shared:
                raise _WireError(f"{what}: the entry at restart point {at} shares {shared} bytes "
                                 "with the key before it")
        elif pending and pending[0] < at:
            break
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + value_len]
        pos += value_len
    if pending:
        raise _WireError(f"{what} has a corrupt restart array: restart point {pending[0]} is "
                         "not the start of an entry")


def read_table(path) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a LevelDB-format table, in order, checking footer, block
    checksums, restart arrays, that keys strictly increase and that data blocks follow one
    another (so reading the table costs at most its size, however hostile its index)."""
    path = os.fspath(path)
    with open_regular(path, "a checkpoint index") as f:
        data = f.read()
    if len(data) < FOOTER_SIZE:
        raise FormatError(f"index is truncated: {len(data)} bytes, a table needs at least "
                          f"{FOOTER_SIZE} for its footer", path=path)
    (magic,) = struct.unpack_from("<Q", data, len(data) - 8)
    if magic != TABLE_MAGIC:
        raise FormatError(f"bad table magic {magic:#018x}, expected {TABLE_MAGIC:#018x}; "
                          "not a TensorFlow checkpoint index, or truncated", path=path)
    try:
        footer = data[len(data) - FOOTER_SIZE:]
        _, _, pos = _handle(footer, 0)            # metaindex: TF writes no filters
        index_offset, index_size, _ = _handle(footer, pos)
        out: list[tuple[bytes, bytes]] = []
        index = _block(data, index_offset, index_size, "index block")
        block_end, last_sep = 0, None
        for sep, handle in _block_entries(index, "index block"):
            offset, size, _ = _handle(handle, 0)
            if offset < block_end:
                raise _WireError(f"index block: data block at offset {offset} overlaps the one "
                                 f"before it (ending at {block_end})")
            if last_sep is not None and sep <= last_sep:
                raise _WireError(f"index key out of order: {sep!r} follows {last_sep!r}")
            block = _block(data, offset, size, "data block")
            block_end, last_sep = offset + size + BLOCK_TRAILER_SIZE, sep
            first = len(out)
            for key, value in _block_entries(block, f"data block at offset {offset}"):
                if out and key <= out[-1][0]:
                    raise _WireError(f"key out of order: {key!r} follows {out[-1][0]!r}")
                out.append((key, value))
            if len(out) == first:
                raise _WireError(f"data block at offset {offset} holds no entries")
            if sep < out[-1][0]:
                raise _WireError(f"key out of order: index key {sep!r} is below the last "
                                 f"key {out[-1][0]!r} of its block")
    except _WireError as e:
        raise FormatError(str(e), path=path) from None
    return out


# --------------------------------------------------------------------------- table writing

def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    """LevelDB BytewiseComparator::FindShortestSeparator: a short key in [start, limit)."""
    n = min(len(start), len(limit))
    i = 0
    while i < n and start[i] == limit[i]:
        i += 1
    if i < n and start[i] < 0xFF and start[i] + 1 < limit[i]:
        return start[:i] + bytes([start[i] + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    for i, b in enumerate(key):
        if b != 0xFF:
            return key[:i] + bytes([b + 1])
    return key


class _BlockBuilder:
    def __init__(self, restart_interval: int):
        self.interval = restart_interval
        self.reset()

    def reset(self) -> None:
        self.buf = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last = b""
        self.empty = True

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.interval:
            n = min(len(self.last), len(key))
            while shared < n and self.last[shared] == key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.counter = 0
        for v in (shared, len(key) - shared, len(value)):
            _put_varint(self.buf, v)
        self.buf += key[shared:]
        self.buf += value
        self.last = key
        self.counter += 1
        self.empty = False

    def size_estimate(self) -> int:
        return len(self.buf) + 4 * len(self.restarts) + 4

    def finish(self) -> bytes:
        return bytes(self.buf) + struct.pack(f"<{len(self.restarts)}I", *self.restarts) + \
            struct.pack("<I", len(self.restarts))


class _TableBuilder:
    """LevelDB TableBuilder with TF's options (no compression, no filter). Keys must be
    added in increasing bytewise order; this class does not check (tests rely on that)."""

    def __init__(self, f, block_size: int = BLOCK_SIZE,
                 compress: Callable[[bytes], bytes] | None = None):
        self.f = f
        self.offset = 0
        self.block_size = block_size
        self.compress = compress        # tests only: a snappy encoder
        self.data = _BlockBuilder(BLOCK_RESTART_INTERVAL)
        self.index = _BlockBuilder(1)
        self.pending: tuple[int, int] | None = None   # handle of the last flushed block
        self.last = b""

    def add(self, key: bytes, value: bytes) -> None:
        if self.pending is not None:
            self._index_entry(_shortest_separator(self.last, key))
        self.data.add(key, value)
        self.last = key
        if self.data.size_estimate() >= self.block_size:
            self._flush()

    def _index_entry(self, key: bytes) -> None:
        handle = bytearray()
        _put_varint(handle, self.pending[0])
        _put_varint(handle, self.pending[1])
        self.index.add(key, bytes(handle))
        self.pending = None

    def _write_block(self, contents: bytes, compressible: bool = True) -> tuple[int, int]:
        kind = _NO_COMPRESSION
        if self.compress is not None and compressible:
            contents, kind = self.compress(contents), _SNAPPY
        handle = (self.offset, len(contents))
        trailer = bytes([kind]) + struct.pack("<I", mask(_crc(contents + bytes([kind]))))
        self.f.write(contents)
        self.f.write(trailer)
        self.offset += len(contents) + len(trailer)
        return handle

    def _flush(self) -> None:
        if self.data.empty:
            return
        self.pending = self._write_block(self.data.finish())
        self.data.reset()

    def finish(self) -> None:
        self._flush()
        meta = self._write_block(_BlockBuilder(BLOCK_RESTART_INTERVAL).finish())
        if self.pending is not None:
            self._index_entry(_short_successor(self.last))
        index = self._write_block(self.index.finish())
        footer = bytearray()
        for h in (meta, index):
            _put_varint(footer, h[0])
            _put_varint(footer, h[1])
        footer += bytes(FOOTER_SIZE - 8 - len(footer))
        footer += struct.pack("<Q", TABLE_MAGIC)
        self.f.write(footer)
