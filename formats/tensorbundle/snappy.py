"""Snappy raw-format decompression (LevelDB block type 1): TF never writes it, other tools may."""
from __future__ import annotations

from .protowire import _WireError, _get_varint

# The most a snappy byte can expand to: a 3-byte copy of 64 bytes.
MAX_EXPANSION = 22


def _snappy_decompress(data: bytes) -> bytes:
    """Snappy raw format (LevelDB block type 1). TF never writes it, other tools may."""
    n, pos = _get_varint(data, 0)
    end = len(data)
    if n > MAX_EXPANSION * end:
        raise _WireError(f"snappy block declares {n:,} bytes, more than its {end:,} compressed "
                         "bytes can hold")
    out = bytearray()
    while pos < end:
        if len(out) > n:
            break
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            length = tag >> 2
            if length >= 60:
                width = length - 59
                length = int.from_bytes(data[pos:pos + width], "little")
                pos += width
            length += 1
            if pos + length > end:
                raise _WireError("snappy literal runs past the end")
            out += data[pos:pos + length]
            pos += length
            continue
        if kind == 1:
            length = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | (data[pos] if pos < end else 0)
            pos += 1
        else:
            width = 2 if kind == 2 else 4
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + width], "little")
            pos += width
        if pos > end or not 0 < offset <= len(out):
            raise _WireError(f"snappy copy offset {offset} outside the {len(out)} bytes so far")
        start = len(out) - offset
        chunk = bytes(out[start:start + min(length, offset)])
        out += (chunk * (length // len(chunk) + 1))[:length]  # an overlapping copy repeats
    if len(out) != n:
        raise _WireError(f"snappy block decompressed to {len(out)} bytes, header says {n}")
    return bytes(out)
