"""TensorFlow TensorBundle (V2) checkpoints, in numpy + crc32c only (FORMATS.md §3).

A checkpoint with prefix P is `P.index`, a LevelDB-format table mapping "" to a
BundleHeaderProto and every tensor key to a BundleEntryProto, plus data files
`P.data-0000k-of-0000N` holding the raw little-endian bytes each entry points at. Both the
table blocks and every tensor carry a masked CRC-32C, and the reader checks all of them,
as TF's BundleReader does. The few protobuf messages needed are coded by hand below, so
neither tensorflow nor protobuf is imported.

The writer fixes which shard each tensor goes to from the specs given up front; `write`
then appends one array at a time in any order (a data file is in write order, like TF's
`Add` order), and `close()` writes the sorted table. Every file goes to a `.partial` name
first and is renamed only once all of them are complete.

TF2 object-based checkpoints name tensors by object path (`layer_with_weights-0/kernel/
.ATTRIBUTES/VARIABLE_VALUE`); `variable_names` recovers the variables' graph names from the
`_CHECKPOINTABLE_OBJECT_GRAPH` string tensor and tells model weights from optimizer state.
"""
from __future__ import annotations

import math
import os
import re
import struct
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import crc32c as _crc32c
import numpy as np

from ..ir.dtypes import from_tf
from ..ir.errors import DTypeError, FormatError, UsageError
from ..ir.tensor import Tensor, TensorSpec, as_bytes
from .partial import PartialWriter
from .sharding import parse_size, plan_shards

INDEX_SUFFIX = ".index"
STATE_FILE = "checkpoint"                       # tf.train.CheckpointState, text format
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
ATTRIBUTES = "/.ATTRIBUTES/"
VARIABLE_VALUE = "VARIABLE_VALUE"
OPTIMIZER_SLOT = "/.OPTIMIZER_SLOT/"

BUNDLE_VERSION = 1                  # kTensorBundleVersion: what we write and can read
BLOCK_SIZE = 262144                 # TF table_options.h block_size
BLOCK_RESTART_INTERVAL = 16
TABLE_MAGIC = 0xdb4775248b80fb57
FOOTER_SIZE = 48                    # two BlockHandles padded to 40 bytes, then the magic
BLOCK_TRAILER_SIZE = 5              # type byte + masked crc32c
_NO_COMPRESSION, _SNAPPY = 0, 1
_MASK_DELTA = 0xa282ead8
DT_STRING = 7

_DATA_RE = re.compile(r"\.data-\d{5}-of-\d{5}$")

# types.proto, for error messages only (the dtypes irconv stores come from ir.dtypes).
_TF_DTYPE_NAMES = {
    1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8", 5: "DT_INT16", 6: "DT_INT8",
    7: "DT_STRING", 8: "DT_COMPLEX64", 9: "DT_INT64", 10: "DT_BOOL", 11: "DT_QINT8",
    12: "DT_QUINT8", 13: "DT_QINT32", 14: "DT_BFLOAT16", 15: "DT_QINT16", 16: "DT_QUINT16",
    17: "DT_UINT16", 18: "DT_COMPLEX128", 19: "DT_HALF", 20: "DT_RESOURCE", 21: "DT_VARIANT",
    22: "DT_UINT32", 23: "DT_UINT64", 24: "DT_FLOAT8_E5M2", 25: "DT_FLOAT8_E4M3FN",
    26: "DT_FLOAT8_E4M3FNUZ", 27: "DT_FLOAT8_E4M3B11FNUZ", 28: "DT_FLOAT8_E5M2FNUZ",
    29: "DT_INT4", 30: "DT_UINT4", 31: "DT_INT2", 32: "DT_UINT2", 33: "DT_FLOAT4_E2M1FN",
}


def tf_dtype_name(enum: int) -> str:
    return _TF_DTYPE_NAMES.get(enum, f"DataType {enum}")


# --------------------------------------------------------------------------- checksums

def mask(crc: int) -> int:
    """LevelDB's masked CRC: a CRC stored next to data it covers is rotated and offset, so
    the CRC of a string holding CRCs does not degenerate."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _crc(data, value: int = 0) -> int:
    return _crc32c.crc32c(data, value=value)


# --------------------------------------------------------------------------- protobuf wire

class _WireError(ValueError):
    """Malformed protobuf or table bytes; callers turn it into a FormatError naming the file."""


def _put_varint(out: bytearray, n: int) -> None:
    n &= 0xFFFFFFFFFFFFFFFF  # negative int32/int64 go out as 10-byte two's complement
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _get_varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise _WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _WireError("varint longer than 10 bytes")


def _signed(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def _fields(buf) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, int or bytes) of a serialized message, in wire order."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _get_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _WireError("field number 0")
        if wire == 0:
            value, pos = _get_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise _WireError("truncated fixed64")
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            n, pos = _get_varint(buf, pos)
            if pos + n > end:
                raise _WireError(f"length-delimited field {number} runs past the end")
            value, pos = bytes(buf[pos:pos + n]), pos + n
        elif wire == 5:
            if pos + 4 > end:
                raise _WireError("truncated fixed32")
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise _WireError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _expect(wire: int, want: int, number: int, message: str) -> None:
    if wire != want:
        raise _WireError(f"{message} field {number} has wire type {wire}, expected {want}")


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise _WireError(f"{what} {value!r} is not UTF-8") from None


class _Msg:
    """Proto3 encoder: fields in number order, zero scalars and empty strings omitted."""

    def __init__(self):
        self.buf = bytearray()

    def varint(self, number: int, value: int, always: bool = False) -> "_Msg":
        if value or always:
            _put_varint(self.buf, number << 3)
            _put_varint(self.buf, value)
        return self

    def fixed32(self, number: int, value: int) -> "_Msg":
        if value:
            _put_varint(self.buf, number << 3 | 5)
            self.buf += struct.pack("<I", value)
        return self

    def bytes(self, number: int, value: bytes | str, always: bool = False) -> "_Msg":
        if isinstance(value, str):
            value = value.encode("utf-8")
        if value or always:
            _put_varint(self.buf, number << 3 | 2)
            _put_varint(self.buf, len(value))
            self.buf += value
        return self

    def done(self) -> bytes:
        return bytes(self.buf)


# --------------------------------------------------------------------------- bundle protos

@dataclass(frozen=True)
class BundleHeader:
    num_shards: int
    version: int                # VersionDef.producer
    min_consumer: int = 0
    big_endian: bool = False


@dataclass(frozen=True)
class _Entry:
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc: int
    sliced: bool


def _encode_header(num_shards: int) -> bytes:
    version = _Msg().varint(1, BUNDLE_VERSION).done()
    return _Msg().varint(1, num_shards).bytes(3, version, always=True).done()


def _decode_header(buf: bytes) -> BundleHeader:
    num_shards, endianness, version = 0, 0, b""
    for number, wire, value in _fields(buf):
        if number == 1:
            _expect(wire, 0, 1, "BundleHeaderProto")
            num_shards = _signed(value)
        elif number == 2:
            _expect(wire, 0, 2, "BundleHeaderProto")
            endianness = value
        elif number == 3:
            _expect(wire, 2, 3, "BundleHeaderProto")
            version = value
    producer = min_consumer = 0
    bad: list[int] = []
    for number, wire, value in _fields(version):
        if number == 1 and wire == 0:
            producer = _signed(value)
        elif number == 2 and wire == 0:
            min_consumer = _signed(value)
        elif number == 3 and wire == 0:
            bad.append(_signed(value))
        elif number == 3 and wire == 2:   # packed repeated int32
            pos = 0
            while pos < len(value):
                v, pos = _get_varint(value, pos)
                bad.append(_signed(v))
    if BUNDLE_VERSION < min_consumer or BUNDLE_VERSION in bad:
        raise _WireError(f"the bundle needs a reader of version >= {min_consumer} "
                         f"(excluding {bad}); irconv reads version {BUNDLE_VERSION}")
    return BundleHeader(num_shards, producer, min_consumer, endianness == 1)


def _encode_shape(shape: Sequence[int]) -> bytes:
    msg = _Msg()
    for d in shape:
        msg.bytes(2, _Msg().varint(1, d).done(), always=True)
    return msg.done()


def _decode_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for number, wire, value in _fields(buf):
        if number == 2:
            _expect(wire, 2, 2, "TensorShapeProto")
            size = 0
            for n, w, v in _fields(value):
                if n == 1:
                    _expect(w, 0, 1, "TensorShapeProto.Dim")
                    size = _signed(v)
            if size < 0:
                raise _WireError(f"dimension {size} is not a known size")
            dims.append(size)
        elif number == 3 and value:
            raise _WireError("shape has unknown rank")
    return tuple(dims)


def _encode_entry(e: _Entry) -> bytes:
    # BundleWriter always sets the shape, so a scalar still carries an empty field 2.
    return (_Msg().varint(1, e.dtype).bytes(2, _encode_shape(e.shape), always=True)
            .varint(3, e.shard_id).varint(4, e.offset).varint(5, e.size).fixed32(6, e.crc).done())


_ENTRY_INTS = {3: "shard_id", 4: "offset", 5: "size"}


def _decode_entry(buf: bytes) -> _Entry:
    dtype = crc = 0
    ints = {3: 0, 4: 0, 5: 0}
    shape: tuple[int, ...] = ()
    sliced = False
    for number, wire, value in _fields(buf):
        if number == 1:
            _expect(wire, 0, 1, "BundleEntryProto")
            dtype = value
        elif number == 2:
            _expect(wire, 2, 2, "BundleEntryProto")
            shape = _decode_shape(value)
        elif number in (3, 4, 5):
            _expect(wire, 0, number, "BundleEntryProto")
            v = _signed(value)
            if v < 0:
                raise _WireError(f"negative {_ENTRY_INTS[number]} {v}")
            ints[number] = v
        elif number == 6:
            _expect(wire, 5, 6, "BundleEntryProto")
            crc = value
        elif number == 7:
            sliced = True
    return _Entry(dtype, shape, ints[3], ints[4], ints[5], crc, sliced)


# --------------------------------------------------------------------------- object graph

@dataclass
class ObjectReference:
    node_id: int
    local_name: str


@dataclass
class SerializedTensor:
    name: str                   # attribute name, "VARIABLE_VALUE" for variables
    full_name: str              # graph name of the variable, without ":0"
    checkpoint_key: str


@dataclass
class SlotVariableReference:
    original_variable_node_id: int
    slot_name: str
    slot_variable_node_id: int


@dataclass
class TrackableObject:
    children: list[ObjectReference] = field(default_factory=list)
    attributes: list[SerializedTensor] = field(default_factory=list)
    slot_variables: list[SlotVariableReference] = field(default_factory=list)
    registered_saver: tuple[str, str] | None = None     # (name, object_name)
    has_checkpoint_values: bool | None = None           # google.protobuf.BoolValue


def _submessage(value: bytes, what: str) -> tuple[Callable[[int], int], Callable[[int], str]]:
    """Accessors for the scalar fields of a small submessage (last occurrence wins)."""
    sub: dict[int, object] = {}
    for n, _, v in _fields(value):
        sub[n] = v

    def num(n: int) -> int:
        v = sub.get(n, 0)
        if not isinstance(v, int):
            raise _WireError(f"{what} field {n} is not an integer")
        return _signed(v)

    def text(n: int) -> str:
        v = sub.get(n, b"")
        if not isinstance(v, bytes):
            raise _WireError(f"{what} field {n} is not a string")
        return _text(v, f"{what} field {n}")

    return num, text


def _decode_node(buf: bytes) -> TrackableObject:
    node = TrackableObject()
    for number, wire, value in _fields(buf):
        if number not in (1, 2, 3, 4, 5):
            continue
        _expect(wire, 2, number, "TrackableObject")
        if number == 1:
            num, text = _submessage(value, "ObjectReference")
            node.children.append(ObjectReference(num(1), text(2)))
        elif number == 2:
            num, text = _submessage(value, "SerializedTensor")
            node.attributes.append(SerializedTensor(text(1), text(2), text(3)))
        elif number == 3:
            num, text = _submessage(value, "SlotVariableReference")
            node.slot_variables.append(SlotVariableReference(num(1), text(2), num(3)))
        elif number == 4:
            num, text = _submessage(value, "RegisteredSaver")
            node.registered_saver = (text(1), text(2))
        else:
            num, _ = _submessage(value, "BoolValue")
            node.has_checkpoint_values = bool(num(1))
    return node


def decode_object_graph(data: bytes) -> list[TrackableObject]:
    """Parse a serialized TrackableObjectGraph; node 0 is the root. Raises ValueError."""
    nodes = []
    for number, wire, value in _fields(data):
        if number == 1:
            _expect(wire, 2, 1, "TrackableObjectGraph")
            nodes.append(_decode_node(value))
    for i, node in enumerate(nodes):
        refs = [c.node_id for c in node.children] + [
            n for s in node.slot_variables for n in (s.original_variable_node_id, s.slot_variable_node_id)]
        bad = [r for r in refs if not 0 <= r < len(nodes)]
        if bad:
            raise _WireError(f"node {i} refers to node {bad[0]} of {len(nodes)}")
    return nodes


def encode_object_graph(nodes: Sequence[TrackableObject]) -> bytes:
    """Serialize a TrackableObjectGraph (byte-identical to TF's for the fields it knows)."""
    graph = _Msg()
    for node in nodes:
        msg = _Msg()
        for c in node.children:
            msg.bytes(1, _Msg().varint(1, c.node_id).bytes(2, c.local_name).done(), always=True)
        for a in node.attributes:
            msg.bytes(2, _Msg().bytes(1, a.name).bytes(2, a.full_name)
                      .bytes(3, a.checkpoint_key).done(), always=True)
        for s in node.slot_variables:
            msg.bytes(3, _Msg().varint(1, s.original_variable_node_id).bytes(2, s.slot_name)
                      .varint(3, s.slot_variable_node_id).done(), always=True)
        if node.registered_saver is not None:
            name, object_name = node.registered_saver
            msg.bytes(4, _Msg().bytes(1, name).bytes(2, object_name).done(), always=True)
        if node.has_checkpoint_values is not None:
            msg.bytes(5, _Msg().varint(1, int(node.has_checkpoint_values)).done(), always=True)
        graph.bytes(1, msg.done(), always=True)
    return graph.done()


# --------------------------------------------------------------------------- snappy

def _snappy_decompress(data: bytes) -> bytes:
    """Snappy raw format (LevelDB block type 1). TF never writes it, other tools may."""
    n, pos = _get_varint(data, 0)
    out = bytearray()
    end = len(data)
    while pos < end:
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
    if len(block) < 4:
        raise _WireError(f"{what} is {len(block)} bytes, too short for its restart count")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if num_restarts == 0 or limit < 0:
        raise _WireError(f"{what} has a bad restart count {num_restarts}")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _get_varint(block, pos)
        unshared, pos = _get_varint(block, pos)
        value_len, pos = _get_varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise _WireError(f"{what} has a corrupt entry at offset {pos}")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + value_len]
        pos += value_len


def read_table(path) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a LevelDB-format table, in order, checking footer, block
    checksums and that keys strictly increase."""
    path = os.fspath(path)
    with open(path, "rb") as f:
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
        for sep, handle in _block_entries(index, "index block"):
            offset, size, _ = _handle(handle, 0)
            block = _block(data, offset, size, "data block")
            first = len(out)
            for key, value in _block_entries(block, f"data block at offset {offset}"):
                if out and key <= out[-1][0]:
                    raise _WireError(f"key out of order: {key!r} follows {out[-1][0]!r}")
                out.append((key, value))
            if len(out) > first and sep < out[-1][0]:
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


# --------------------------------------------------------------------------- state file

_STATE_LINE = re.compile(r'^\s*([A-Za-z_]+)\s*:\s*(.*?)\s*$')
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'')
_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", '"': b'"', "'": b"'", "\\": b"\\",
            "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v", "?": b"?"}


def _unescape(text: str) -> str:
    out = bytearray()
    raw = text.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        c = raw[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        nxt = chr(raw[i + 1]) if i + 1 < len(raw) else ""
        if nxt and nxt in "01234567":
            m = re.match(rb"[0-7]{1,3}", raw[i + 1:])
            out.append(int(m.group(), 8) & 0xFF)
            i += 1 + len(m.group())
        elif nxt in ("x", "X"):
            m = re.match(rb"[0-9a-fA-F]{1,2}", raw[i + 2:])
            out.append(int(m.group(), 16) if m else 0)
            i += 2 + (len(m.group()) if m else 0)
        else:
            out += _ESCAPES.get(nxt, nxt.encode())
            i += 2
    return out.decode("utf-8", errors="surrogateescape")


def _escape(text: str) -> str:
    """text_format's C escaping, non-ASCII bytes as octal (MessageToString's default)."""
    out = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        if ch in '"\'\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


def read_state(directory) -> dict[str, list[str]]:
    """The string fields of a `checkpoint` state file: {'model_checkpoint_path': [...], ...}."""
    path = os.path.join(os.fspath(directory), STATE_FILE)
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        lines = f.read().splitlines()
    fields: dict[str, list[str]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _STATE_LINE.match(line)
        if not m:
            raise FormatError(f"line {number} {line!r} is not 'field: value'", path=path)
        parts = _QUOTED.findall(m.group(2))
        if parts:   # adjacent quoted strings concatenate, as in text format
            fields.setdefault(m.group(1), []).append(
                "".join(_unescape(a or b) for a, b in parts))
    return fields


def write_state(prefix) -> str:
    """Write `<dir of prefix>/checkpoint` pointing at `prefix` (relative), atomically."""
    prefix = os.fspath(prefix)
    directory = os.path.dirname(os.path.abspath(prefix))
    rel = _escape(os.path.basename(prefix))
    path = os.path.join(directory, STATE_FILE)
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f'model_checkpoint_path: "{rel}"\nall_model_checkpoint_paths: "{rel}"\n')
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- reading

def data_path(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def resolve_prefix(path) -> str:
    """The checkpoint prefix for a prefix, a `.index` / data file path, or a directory with a
    `checkpoint` state file (or with exactly one `.index`)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, STATE_FILE)):
            state = read_state(path).get("model_checkpoint_path")
            if not state:
                raise FormatError("state file names no model_checkpoint_path",
                                  path=os.path.join(path, STATE_FILE))
            prefix = state[-1]
            if not os.path.isabs(prefix):
                prefix = os.path.join(path, prefix)
            elif not os.path.isfile(prefix + INDEX_SUFFIX):
                # TF1 Saver writes absolute paths: the directory may have moved since.
                moved = os.path.join(path, os.path.basename(prefix))
                if os.path.isfile(moved + INDEX_SUFFIX):
                    prefix = moved
            return prefix
        indexes = sorted(n for n in os.listdir(path) if n.endswith(INDEX_SUFFIX))
        if len(indexes) != 1:
            raise FormatError(f"directory has no {STATE_FILE!r} state file and {len(indexes)} "
                              f"'*.index' files ({indexes[:5]!r}); pass the checkpoint prefix",
                              path=path)
        return os.path.join(path, indexes[0][:-len(INDEX_SUFFIX)])
    if path.endswith(INDEX_SUFFIX):
        return path[:-len(INDEX_SUFFIX)]
    return _DATA_RE.sub("", path)


def looks_like(path) -> bool:
    """Cheap sniff: a prefix, `.index` or directory whose index ends with the table magic."""
    try:
        index = resolve_prefix(path) + INDEX_SUFFIX
        with open(index, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < FOOTER_SIZE:
                return False
            f.seek(-8, os.SEEK_END)
            return struct.unpack("<Q", f.read(8))[0] == TABLE_MAGIC
    except (OSError, FormatError):
        return False


@dataclass
class Bundle:
    """What `read` found: numeric tensors stay on disk until loaded; strings are small."""
    prefix: str
    header: BundleHeader
    tensors: list[Tensor]                       # numeric tensors, lazy, in key order
    strings: dict[str, list[bytes]]             # DT_STRING tensors, flattened, row-major
    string_shapes: dict[str, tuple[int, ...]]
    objects: list[TrackableObject] | None       # the parsed object graph, TF2 checkpoints
    object_graph: dict[str, str] | None         # checkpoint_key -> full_name

    @property
    def keys(self) -> list[str]:
        return sorted([t.name for t in self.tensors] + list(self.strings),
                      key=lambda k: k.encode("utf-8"))


def _check_crc(path: str, name: str, entry: _Entry, actual: int) -> None:
    if unmask(entry.crc) != actual:
        raise FormatError(f"tensor {name!r}: checksum mismatch in bytes "
                          f"[{entry.offset}, {entry.offset + entry.size}): stored crc32c "
                          f"{unmask(entry.crc):#010x}, computed {actual:#010x} (corrupted file)",
                          path=path)


def _read_bytes(path: str, name: str, entry: _Entry, out) -> None:
    with open(path, "rb") as f:
        f.seek(entry.offset)
        got = f.readinto(out)
    if got != entry.size:
        raise FormatError(f"tensor {name!r}: read {got} of {entry.size} bytes at offset "
                          f"{entry.offset}; the file is truncated (changed since it was "
                          "opened?)", path=path)


def _loader(path: str, spec: TensorSpec, entry: _Entry):
    def load() -> np.ndarray:
        raw = np.empty(entry.size, dtype=np.uint8)
        if entry.size:
            _read_bytes(path, spec.name, entry, raw)
        _check_crc(path, spec.name, entry, _crc(raw))
        # numpy bools must be 0 or 1; any other byte would compare and sum wrongly.
        if spec.dtype.name == "BOOL" and entry.size and raw.max() > 1:
            raise FormatError(f"tensor {spec.name!r}: BOOL bytes other than 0 and 1", path=path)
        return raw.view(spec.dtype.numpy).reshape(spec.shape)
    return load


def _read_strings(path: str, name: str, entry: _Entry, count: int) -> list[bytes]:
    buf = bytearray(entry.size)
    if entry.size:
        _read_bytes(path, name, entry, memoryview(buf))
    try:
        pos, lengths = 0, []
        crc = 0
        for _ in range(count):
            n, pos = _get_varint(buf, pos)
            lengths.append(n)
            crc = _crc(struct.pack("<I" if n <= 0xFFFFFFFF else "<Q", n), crc)
        if pos + 4 > len(buf):
            raise _WireError("ends inside its length table")
        stored = buf[pos:pos + 4]
        if unmask(int.from_bytes(stored, "little")) != crc:
            raise _WireError("checksum mismatch in the string lengths (corrupted file)")
        crc = _crc(bytes(stored), crc)
        pos += 4
        if pos + sum(lengths) != len(buf):
            raise _WireError(f"lengths add up to {pos + sum(lengths)} bytes, entry size is "
                             f"{len(buf)}")
    except _WireError as e:
        raise FormatError(f"string tensor {name!r}: {e}", path=path) from None
    _check_crc(path, name, entry, _crc(bytes(buf[pos:]), crc))
    out = []
    for n in lengths:
        out.append(bytes(buf[pos:pos + n]))
        pos += n
    return out


def read(path) -> Bundle:
    """A checkpoint's lazy tensors and eagerly decoded strings; `path` is a prefix, a
    `.index` file or a directory with a `checkpoint` state file."""
    prefix = resolve_prefix(path)
    index = prefix + INDEX_SUFFIX
    if not os.path.isfile(index):
        raise FormatError(f"no checkpoint index {index!r}; expected a checkpoint prefix, its "
                          "'.index' file or a directory with a 'checkpoint' state file",
                          path=os.fspath(path))
    pairs = read_table(index)
    if not pairs or pairs[0][0] != b"":
        raise FormatError("the table has no bundle header (key ''); not a TensorBundle "
                          "index?", path=index)
    try:
        header = _decode_header(pairs[0][1])
    except _WireError as e:
        raise FormatError(f"bundle header: {e}", path=index) from None
    if header.num_shards < 1:
        raise FormatError(f"bundle header has num_shards {header.num_shards}", path=index)
    if header.big_endian:
        raise FormatError("big-endian checkpoint: irconv reads little-endian bundles only",
                          path=index)

    shard_sizes: dict[int, int] = {}
    tensors: list[Tensor] = []
    strings: dict[str, list[bytes]] = {}
    string_shapes: dict[str, tuple[int, ...]] = {}
    for key, value in pairs[1:]:
        try:
            name = _text(key, "key")
            entry = _decode_entry(value)
        except _WireError as e:
            raise FormatError(f"entry {key!r}: {e}", path=index) from None
        if entry.sliced or key.startswith(b"\x00"):
            raise FormatError(f"tensor {name!r} is a partitioned (sliced) variable; sliced "
                              "checkpoints are not supported yet (re-save it unpartitioned)",
                              path=index)
        if entry.shard_id >= header.num_shards:
            raise FormatError(f"tensor {name!r} is in shard {entry.shard_id} but the header "
                              f"has {header.num_shards} shard(s)", path=index)
        shard = data_path(prefix, entry.shard_id, header.num_shards)
        if entry.shard_id not in shard_sizes:
            if not os.path.isfile(shard):
                raise FormatError(f"missing data shard {shard!r} (holds tensor {name!r})",
                                  path=index)
            shard_sizes[entry.shard_id] = os.path.getsize(shard)
        if entry.offset + entry.size > shard_sizes[entry.shard_id]:
            raise FormatError(f"tensor {name!r}: bytes [{entry.offset}, "
                              f"{entry.offset + entry.size}) run past the end of the data shard "
                              f"({shard_sizes[entry.shard_id]} bytes); the file is truncated",
                              path=shard)
        if entry.dtype == DT_STRING:
            string_shapes[name] = entry.shape
            strings[name] = _read_strings(shard, name, entry, math.prod(entry.shape))
            continue
        try:
            dtype = from_tf(entry.dtype)
        except DTypeError:
            raise DTypeError(f"tensor {name!r} has dtype {tf_dtype_name(entry.dtype)} "
                             f"({entry.dtype}), which irconv cannot store", path=index) from None
        spec = TensorSpec(name, dtype, entry.shape)
        if entry.size != spec.nbytes:
            raise FormatError(f"tensor {name!r}: entry size {entry.size} but {dtype} "
                              f"{list(entry.shape)} needs {spec.nbytes} bytes", path=index)
        tensors.append(Tensor(spec, _loader(shard, spec, entry)))

    objects = graph = None
    if OBJECT_GRAPH_KEY in strings:
        blob = strings[OBJECT_GRAPH_KEY]
        if len(blob) != 1:
            raise FormatError(f"{OBJECT_GRAPH_KEY} holds {len(blob)} strings, expected one",
                              path=index)
        try:
            objects = decode_object_graph(blob[0])
        except _WireError as e:
            raise FormatError(f"{OBJECT_GRAPH_KEY} is not a TrackableObjectGraph: {e}",
                              path=index) from None
        graph = {a.checkpoint_key: a.full_name for node in objects for a in node.attributes}
    return Bundle(prefix, header, tensors, strings, string_shapes, objects, graph)


# --------------------------------------------------------------------------- variable names

def _object_paths(objects: list[TrackableObject]) -> list[tuple[str, ...] | None]:
    """Breadth-first edge-name path of every node from the root; the first path wins, as in
    TF's graph view (so `layer_with_weights-0` beats `layer-1`)."""
    paths: list[tuple[str, ...] | None] = [None] * len(objects)
    if not objects:
        return paths
    paths[0] = ()
    queue = deque([0])
    while queue:
        node = queue.popleft()
        for child in objects[node].children:
            if paths[child.node_id] is None:
                paths[child.node_id] = paths[node] + (child.local_name,)
                queue.append(child.node_id)
    return paths


# A node is an optimizer if it owns slot variables (legacy Keras / v1 optimizers) or holds
# an iteration counter (`iter` legacy, `_iterations` new Keras optimizer), or sits under an
# edge called "optimizer" (how Keras models and most tf.train.Checkpoint calls name it).
_OPTIMIZER_EDGES = frozenset(("optimizer",))
_ITERATION_EDGES = frozenset(("iter", "_iterations"))
# TF1 Saver: optimizer bookkeeping scalars; slots are `<var>/<slot>` of the same shape.
_TF1_NON_MODEL = re.compile(r"^(global_step|beta[12]_power(_\d+)?)$")


def _non_model_nodes(objects: list[TrackableObject], paths) -> set[int]:
    optimizers = {i for i, node in enumerate(objects)
                  if node.slot_variables or any(c.local_name in _ITERATION_EDGES for c in node.children)}
    optimizers |= {i for i, p in enumerate(paths) if p and p[-1] in _OPTIMIZER_EDGES}
    marked = {s.slot_variable_node_id for node in objects for s in node.slot_variables}
    # Everything reachable from an optimizer that the model does not also reach.
    model_reach: set[int] = set()
    queue = deque([0])
    while queue:
        node = queue.popleft()
        if node in model_reach or node in optimizers:
            continue
        model_reach.add(node)
        queue.extend(c.node_id for c in objects[node].children)
    queue = deque(optimizers)
    while queue:
        node = queue.popleft()
        if node in marked:
            continue
        marked.add(node)
        queue.extend(c.node_id for c in objects[node].children if c.node_id not in model_reach)
    return marked


def variable_names(bundle: Bundle) -> dict[str, str | None]:
    """Tensor key -> variable name (graph name, no ':0') for every numeric tensor; None marks
    a non-model entry (optimizer slots and iterations, save_counter, TF1 global_step...)."""
    keys = [t.name for t in bundle.tensors]
    if bundle.objects is None:     # TF1 name-based: the key is the variable name
        shapes = {t.name: t.shape for t in bundle.tensors}
        out: dict[str, str | None] = {}
        for key in keys:
            parent = key.rpartition("/")[0]
            slot = parent in shapes and shapes[parent] == shapes[key]
            out[key] = None if slot or _TF1_NON_MODEL.match(key) else key
        return out

    objects = bundle.objects
    paths = _object_paths(objects)
    non_model = _non_model_nodes(objects, paths)
    by_key: dict[str, tuple[int, SerializedTensor]] = {
        a.checkpoint_key: (i, a) for i, node in enumerate(objects) for a in node.attributes}
    out = {}
    for key in keys:
        if key not in by_key:
            out[key] = None if key.startswith("save_counter" + ATTRIBUTES) else key
            continue
        node, attr = by_key[key]
        if (node in non_model or OPTIMIZER_SLOT in key
                or (node != 0 and paths[node] == ("save_counter",))):
            out[key] = None
        elif attr.full_name:
            out[key] = attr.full_name
        elif paths[node] is not None:
            name = "/".join(paths[node])
            out[key] = name if attr.name == VARIABLE_VALUE else f"{name}/{attr.name}"
        else:
            out[key] = key
    return out


# --------------------------------------------------------------------------- writing

def _string_value(key: str, value) -> tuple[tuple[int, ...], list[bytes]]:
    """bytes -> scalar, a list of bytes -> 1-D, a numpy array of bytes/objects -> its shape."""
    if isinstance(value, (bytes, bytearray)):
        return (), [bytes(value)]
    if isinstance(value, np.ndarray):
        shape, items = tuple(value.shape), list(value.reshape(-1))
    else:
        items = list(value)
        shape = (len(items),)
    bad = [type(x).__name__ for x in items if not isinstance(x, (bytes, bytearray, np.bytes_))]
    if bad:
        raise UsageError(f"string tensor {key!r} must hold bytes, got {bad[0]}")
    return shape, [bytes(x) for x in items]


def _encode_strings(items: list[bytes]) -> tuple[bytes, int]:
    """TF's WriteStringTensor layout and its masked entry checksum."""
    lengths = bytearray()
    crc = 0
    for s in items:
        _put_varint(lengths, len(s))
        crc = _crc(struct.pack("<I" if len(s) <= 0xFFFFFFFF else "<Q", len(s)), crc)
    stored = struct.pack("<I", mask(crc))
    crc = _crc(stored, crc)
    body = b"".join(items)
    crc = _crc(body, crc)
    return bytes(lengths) + stored + body, mask(crc)


def _assign_shards(specs: list[TensorSpec], n: int) -> list[int]:
    """Contiguous runs of the given order, balanced by bytes (each tensor goes to the shard
    its midpoint falls in)."""
    total = sum(s.nbytes for s in specs)
    out, start = [], 0
    for i, spec in enumerate(specs):
        if total:
            out.append(min(n - 1, (2 * start + spec.nbytes) * n // (2 * total)))
        else:
            out.append(i * n // max(len(specs), 1))
        start += spec.nbytes
    return out


class BundleWriter(PartialWriter):
    """Write a TensorBundle checkpoint whose tensors are declared up front.

    `specs` name the numeric tensors (names = keys); `strings` maps further keys to string
    tensors (bytes = scalar, list of bytes = 1-D, numpy array of bytes = any shape), written
    at once. Tensors are split over `num_shards` data files (contiguous and byte-balanced) or
    over as many as `max_shard_size` needs; `write` may come in any order. `close()` writes
    the index and, with `write_state`, the `checkpoint` state file naming this prefix.
    """

    def __init__(self, prefix, specs: Iterable[TensorSpec], *, num_shards: int | None = None,
                 max_shard_size=None, strings: Mapping[str, object] | None = None,
                 write_state: bool = False, block_size: int = BLOCK_SIZE):
        self.prefix = os.fspath(prefix)
        super().__init__(self.prefix)
        if self.prefix.endswith(INDEX_SUFFIX) or _DATA_RE.search(self.prefix):
            raise UsageError(f"prefix {self.prefix!r} names a bundle file; pass the prefix "
                             "(e.g. 'dir/model.ckpt')")
        specs = list(specs)
        strings = {k: _string_value(k, v) for k, v in (strings or {}).items()}
        names = Counter([s.name for s in specs] + list(strings))
        dupes = sorted(n for n, count in names.items() if count > 1)
        if dupes:
            raise UsageError(f"duplicate tensor names {dupes!r}", path=self.prefix)
        if "" in names:
            raise UsageError("the empty key is the bundle header and cannot name a tensor",
                             path=self.prefix)
        for name in names:
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise UsageError(f"tensor name {name!r} is not encodable as UTF-8",
                                 path=self.prefix) from None
        foreign = {s.name: s.dtype.name for s in specs if s.dtype.tf is None}
        if foreign:
            raise DTypeError(f"TensorFlow checkpoints cannot store the dtypes of {foreign!r}",
                             path=self.prefix)

        if num_shards is not None and max_shard_size is not None:
            raise UsageError("give num_shards or max_shard_size, not both", path=self.prefix)
        if max_shard_size is not None:
            plan = plan_shards(specs, parse_size(max_shard_size))
            shard_of = {s.name: i for i, shard in enumerate(plan) for s in shard}
            self.num_shards = len(plan)
        else:
            n = 1 if num_shards is None else num_shards
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise UsageError(f"num_shards {num_shards!r} must be a positive integer",
                                 path=self.prefix)
            shard_of = dict(zip([s.name for s in specs], _assign_shards(specs, n)))
            self.num_shards = n
        self._specs = {s.name: s for s in specs}
        self._shard_of = {s.name: shard_of[s.name] for s in specs}
        self._entries: dict[str, _Entry] = {}
        self._write_state = write_state
        self._block_size = block_size

        self._shards = [data_path(self.prefix, i, self.num_shards) for i in range(self.num_shards)]
        self._sizes = [0] * self.num_shards
        self._temps: list[str] = []
        directory = os.path.dirname(os.path.abspath(self.prefix))
        try:
            os.makedirs(directory, exist_ok=True)
            for shard in self._shards:
                open(shard + ".partial", "wb").close()
                self._temps.append(shard + ".partial")
            for key, (shape, items) in strings.items():
                data, crc = _encode_strings(items)
                offset = self._append(0, data)
                self._entries[key] = _Entry(DT_STRING, shape, 0, offset, len(data), crc, False)
        except BaseException:
            self.abort()
            raise

    @property
    def shard_paths(self) -> list[str]:
        return list(self._shards)

    def shard_of(self, name: str) -> int:
        return self._shard_of[name]

    def _append(self, shard: int, data) -> int:
        offset = self._sizes[shard]
        if len(data):
            # one open per tensor: a thousand shards must not need a thousand descriptors
            with open(self._shards[shard] + ".partial", "ab") as f:
                f.write(data)
        self._sizes[shard] += len(data)
        return offset

    def write(self, name: str, array: np.ndarray) -> None:
        """Append one tensor's bytes to its data shard."""
        spec, array = self._accept(name, array)
        shard = self._shard_of[name]
        data = as_bytes(array)
        try:
            offset = self._append(shard, data.data)
        except BaseException:
            self.abort()
            raise
        self._entries[name] = _Entry(spec.dtype.tf, spec.shape, shard, offset, len(data),
                                     mask(_crc(data)), False)
        self._wrote(name)

    def close(self) -> None:
        """Write the index and rename every file into place; raises (leaving nothing at the
        final names) if a declared tensor was never written."""
        if self._closed:
            return
        self._missing_check()
        index = self.prefix + INDEX_SUFFIX
        try:
            self._temps.append(index + ".partial")
            with open(index + ".partial", "wb") as f:
                table = _TableBuilder(f, self._block_size)
                table.add(b"", _encode_header(self.num_shards))
                for key in sorted(self._entries, key=lambda k: k.encode("utf-8")):
                    table.add(key.encode("utf-8"), _encode_entry(self._entries[key]))
                table.finish()
            # index last: a reader never finds an index whose data files are not in place
            for shard in self._shards:
                os.replace(shard + ".partial", shard)
            os.replace(index + ".partial", index)
            self._temps = []
            if self._write_state:
                write_state(self.prefix)
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Drop every unfinished file."""
        self._closed = True
        for tmp in self._temps:
            if os.path.exists(tmp):
                os.remove(tmp)
        self._temps = []


def write(prefix, tensors: Iterable[Tensor], **kwargs) -> None:
    """Write lazy tensors as a checkpoint, loading (and releasing) one at a time; keyword
    arguments go to BundleWriter."""
    tensors = list(tensors)
    with BundleWriter(prefix, [t.spec for t in tensors], **kwargs) as w:
        for t in tensors:
            w.write(t.name, t.load())


__all__ = ["read", "write", "BundleWriter", "Bundle", "BundleHeader", "variable_names",
           "resolve_prefix", "looks_like", "read_state", "write_state", "read_table",
           "decode_object_graph", "encode_object_graph", "TrackableObject", "ObjectReference",
           "SerializedTensor", "SlotVariableReference", "data_path", "mask", "unmask",
           "OBJECT_GRAPH_KEY", "BLOCK_SIZE"]
