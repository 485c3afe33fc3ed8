"""The IR stream's framing (version 2, ir/stream.py's docstring), written here independently
of irconv so that tests can take a valid stream apart, change it, and put it back together.

    MAGIC, "H" u64 length u32 crc32c + msgpack header,
    "C" u32 tensor u32 chunk u32 length u32 crc32c + body ..., "E" u64 count u64 total
"""
from __future__ import annotations

import struct

import crc32c
import msgpack

MAGIC = b"IRCONV\x00\x02"
HEAD, CHUNK, END = struct.Struct("<cQI"), struct.Struct("<cIIII"), struct.Struct("<cQQ")


def parse(raw: bytes) -> tuple[dict, list[list], tuple]:
    """(header, [[tensor, chunk, body, crc], ...], (b"E", count, total)) of a whole stream."""
    assert raw[:len(MAGIC)] == MAGIC
    at = len(MAGIC)
    _, length, _ = HEAD.unpack_from(raw, at)
    at += HEAD.size
    header = msgpack.unpackb(raw[at:at + length], raw=False, strict_map_key=False)
    at += length
    chunks = []
    while raw[at:at + 1] == b"C":
        _, tensor, chunk, length, crc = CHUNK.unpack_from(raw, at)
        at += CHUNK.size
        chunks.append([tensor, chunk, raw[at:at + length], crc])
        at += length
    trailer = END.unpack_from(raw, at)
    assert at + END.size == len(raw)
    return header, chunks, trailer


def chunk_offsets(raw: bytes) -> list[int]:
    """Where each chunk frame starts in `raw`."""
    header, chunks, _ = parse(raw)
    at = len(MAGIC) + HEAD.size + len(msgpack.packb(header, use_bin_type=True))
    out = []
    for c in chunks:
        out.append(at)
        at += CHUNK.size + len(c[2])
    return out


def frame(header: dict, chunks: list[list], trailer: tuple | None) -> bytes:
    """A stream of these parts, the header's crc32c recomputed (each chunk keeps its own);
    trailer None leaves it out."""
    hb = msgpack.packb(header, use_bin_type=True)
    out = [MAGIC, HEAD.pack(b"H", len(hb), crc32c.crc32c(hb)), hb]
    for tensor, chunk, body, crc in chunks:
        out += [CHUNK.pack(b"C", tensor, chunk, len(body), crc), body]
    if trailer is not None:
        out.append(END.pack(*trailer))
    return b"".join(out)


def reframe(raw: bytes, edit) -> bytes:
    """`raw` with its header changed by edit(header) (crc recomputed)."""
    header, chunks, trailer = parse(raw)
    edit(header)
    return frame(header, chunks, trailer)
