"""TensorBundle (V2) reading and writing: the bundle protos, data shards and their crc32c.

A checkpoint with prefix P is `P.index` (a table, see sstable) mapping "" to a
BundleHeaderProto and every tensor key to a BundleEntryProto, plus data files
`P.data-0000k-of-0000N` holding the raw little-endian bytes each entry points at. Every
tensor carries a masked CRC-32C, checked when it is loaded, as TF's BundleReader does.

The writer fixes which shard each tensor goes to from the specs given up front; `write`
then appends one array at a time in any order (a data file is in write order, like TF's
`Add` order), and `close()` writes the sorted table. Every file goes to a `.partial` name
first and is renamed only once all of them are complete.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from ...ir import buffers
from ...ir.dtypes import from_tf
from ...ir.errors import DTypeError, FormatError, UsageError
from ...ir.limits import check_shape, file_size, open_regular
from ...ir.stages import stage
from ...ir.ranges import checked_range_reader
from ...ir.tensor import Tensor, TensorSpec, as_bytes
from ..partial import PartialWriter, copy_extent, pwrite_at
from ..sharding import parse_size, plan_shards
from .objectgraph import OBJECT_GRAPH_KEY, TrackableObject, decode_object_graph
from .protowire import _Msg, _WireError, _expect, _fields, _get_varint, _put_varint, _signed, _text
from .sstable import BLOCK_SIZE, FOOTER_SIZE, TABLE_MAGIC, _crc, _TableBuilder, mask, read_table, unmask
from .state import STATE_FILE, read_state, write_state

INDEX_SUFFIX = ".index"

BUNDLE_VERSION = 1                  # kTensorBundleVersion: what we write and can read

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


# --------------------------------------------------------------------------- reading

def data_path(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def _inside(path: str, directory: str) -> bool:
    """Whether `path` (its directory's real location) is `directory` or below it."""
    real_dir = os.path.realpath(directory)
    real = os.path.realpath(os.path.dirname(path) or ".")
    return os.path.commonpath([real, real_dir]) == real_dir


def _state_prefix(directory: str) -> str:
    """The prefix a directory's `checkpoint` state file names, never outside the directory.

    TF joins a relative model_checkpoint_path to the directory and uses an absolute one as it
    is. The user named the directory, so here a relative path must stay inside it (no '..'
    out, no symlinked directory leading elsewhere), and an absolute one (the TF1 Saver writes
    them: where it saved, possibly before the directory moved) is read only as the file of
    that name inside the directory."""
    state_file = os.path.join(directory, STATE_FILE)
    state = read_state(directory).get("model_checkpoint_path")
    if not state:
        raise FormatError("state file names no model_checkpoint_path", path=state_file)
    named = state[-1]
    if "\0" in named:
        raise FormatError(f"model_checkpoint_path {named!r} holds a NUL byte", path=state_file)
    if os.path.isabs(named):
        prefix = named if _inside(named, directory) else os.path.join(directory, os.path.basename(named))
        if not os.path.basename(named) or not os.path.lexists(prefix + INDEX_SUFFIX):
            raise FormatError(f"model_checkpoint_path {named!r} is outside the directory, which has "
                              f"no {os.path.basename(named) + INDEX_SUFFIX!r}; irconv reads only inside "
                              "the directory it is given (pass the checkpoint prefix itself to read "
                              "another)", path=state_file)
        return prefix
    prefix = os.path.join(directory, named)
    if not _inside(prefix, directory):
        raise FormatError(f"model_checkpoint_path {named!r} points outside the directory; irconv "
                          "reads only inside the directory it is given (pass the checkpoint prefix "
                          "itself to read another)", path=state_file)
    return prefix


def resolve_prefix(path) -> str:
    """The checkpoint prefix for a prefix, a `.index` / data file path, or a directory with a
    `checkpoint` state file (or with exactly one `.index`)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.lexists(os.path.join(path, STATE_FILE)):
            return _state_prefix(path)
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
        with open_regular(index) as f:
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
    with open_regular(path, "a checkpoint data shard") as f:
        f.seek(entry.offset)
        got = f.readinto(out)
    if got != entry.size:
        raise FormatError(f"tensor {name!r}: read {got} of {entry.size} bytes at offset "
                          f"{entry.offset}; the file is truncated (changed since it was "
                          "opened?)", path=path)


def _loader(path: str, spec: TensorSpec, entry: _Entry):
    def load() -> np.ndarray:
        raw = buffers.empty(entry.size, np.uint8)
        if entry.size:
            with stage("read", entry.size):
                _read_bytes(path, spec.name, entry, raw)
        with stage("checksum", entry.size):
            actual = _crc(raw)
        _check_crc(path, spec.name, entry, actual)
        # numpy bools must be 0 or 1; any other byte would compare and sum wrongly.
        if spec.dtype.name == "BOOL" and entry.size and raw.max() > 1:
            raise FormatError(f"tensor {spec.name!r}: BOOL bytes other than 0 and 1", path=path)
        return raw.view(spec.dtype.carrier).reshape(spec.shape)
    return load


def _strips(path: str, spec: TensorSpec, entry: _Entry):
    """Tensor.strips of an entry: its bytes read in order into a relayout, their crc32c taken
    as they pass and checked at the end (before the result is used)."""
    return lambda: checked_range_reader((path, entry.offset), entry.size, spec.name, _crc,
                                        lambda got: _check_crc(path, spec.name, entry, got))


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


def _check_disjoint(extents: list[tuple[int, int, int, str]], prefix: str, num_shards: int) -> None:
    """TF writes every tensor to its own bytes: entries sharing bytes would let a small file
    declare (and a conversion write) many times its size."""
    extents = sorted(e for e in extents if e[2])
    for (shard, offset, size, name), (shard2, offset2, _, name2) in zip(extents, extents[1:]):
        if shard == shard2 and offset2 < offset + size:
            raise FormatError(f"tensors {name!r} and {name2!r} share bytes [{offset2}, "
                              f"{offset + size}) of the data shard (a TensorBundle stores each "
                              "tensor in its own bytes)", path=data_path(prefix, shard, num_shards))


def read(path) -> Bundle:
    """A checkpoint's lazy tensors and eagerly decoded strings; `path` is a prefix, a
    `.index` file or a directory with a `checkpoint` state file."""
    prefix = resolve_prefix(path)
    index = prefix + INDEX_SUFFIX
    if not os.path.lexists(index):
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
    extents: list[tuple[int, int, int, str]] = []
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
            if not os.path.lexists(shard):
                raise FormatError(f"missing data shard {shard!r} (holds tensor {name!r})",
                                  path=index)
            shard_sizes[entry.shard_id] = file_size(shard)
        check_shape(entry.shape, 1, path=index, name=name)
        if entry.offset + entry.size > shard_sizes[entry.shard_id]:
            raise FormatError(f"tensor {name!r}: bytes [{entry.offset}, "
                              f"{entry.offset + entry.size}) run past the end of the data shard "
                              f"({shard_sizes[entry.shard_id]} bytes); the file is truncated",
                              path=shard)
        extents.append((entry.shard_id, entry.offset, entry.size, name))
        if entry.dtype == DT_STRING:
            string_shapes[name] = entry.shape
            strings[name] = _read_strings(shard, name, entry, math.prod(entry.shape))
            continue
        try:
            dtype = from_tf(entry.dtype)
        except DTypeError:
            raise DTypeError(f"tensor {name!r} has dtype {tf_dtype_name(entry.dtype)} "
                             f"({entry.dtype}), which irconv cannot store", path=index) from None
        spec = TensorSpec(name, dtype, check_shape(entry.shape, dtype.itemsize, path=index, name=name))
        if entry.size != spec.nbytes:
            raise FormatError(f"tensor {name!r}: entry size {entry.size} but {dtype} "
                              f"{list(entry.shape)} needs {spec.nbytes} bytes", path=index)
        tensor = Tensor(spec, _loader(shard, spec, entry))
        tensor.strips = _strips(shard, spec, entry)
        tensors.append(tensor)
    _check_disjoint(extents, prefix, header.num_shards)

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

    concurrent = True       # write() may come from several threads at once (exporters/base.write_all)

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
        with self._writing(directory):
            os.makedirs(directory, exist_ok=True)
            for shard in self._shards:
                with self._writing(shard):
                    open(shard + ".partial", "wb").close()
                self._temps.append(shard + ".partial")
            for key, (shape, items) in strings.items():
                data, crc = _encode_strings(items)
                offset = self._append(0, data)
                self._entries[key] = _Entry(DT_STRING, shape, 0, offset, len(data), crc, False)
        # Each tensor's place is fixed now, in declaration order: writes may then come in any
        # order and from any thread, and the files are the same bytes whatever that order.
        self._offsets: dict[str, int] = {}
        for spec in specs:
            shard = self._shard_of[spec.name]
            self._offsets[spec.name] = self._sizes[shard]
            self._sizes[shard] += spec.nbytes

    @property
    def shard_paths(self) -> list[str]:
        return list(self._shards)

    def shard_of(self, name: str) -> int:
        return self._shard_of[name]

    @contextlib.contextmanager
    def _writing(self, path: str, abort: bool = True):
        """Abort on any failure (unless `abort` is false: a tensor's write on one of several
        threads leaves that to its caller, so the others do not fail as 'after close' and hide
        the cause); a failed write (a full disk: ENOSPC, EFBIG) becomes one FormatError naming
        the file, not an OSError without one."""
        try:
            yield
        except OSError as exc:
            if abort:
                self.abort()
            raise FormatError(f"cannot write: {exc.strerror or exc}", path=path) from None
        except BaseException:
            if abort:
                self.abort()
            raise

    def _append(self, shard: int, data) -> int:
        """Write `data` at the shard's end (the string tensors, before any numeric one)."""
        offset = self._sizes[shard]
        self._put(shard, data, offset)
        self._sizes[shard] += len(data)
        return offset

    def _put(self, shard: int, data, offset: int, abort: bool = True) -> None:
        view = memoryview(data).cast("B")
        if len(view):
            path = self._shards[shard]
            # one open per tensor: a thousand shards must not need a thousand descriptors
            with self._writing(path, abort):
                fd = os.open(path + ".partial", os.O_WRONLY)
                try:
                    pwrite_at(fd, view, offset)
                finally:
                    os.close(fd)

    def write(self, name: str, array: np.ndarray) -> None:
        """Write one tensor's bytes at its place in its data shard; may be called from several
        threads at once."""
        spec, array = self._accept(name, array)
        shard = self._shard_of[name]
        data = as_bytes(array)
        with stage("checksum", len(data)):
            crc = mask(_crc(data))
        offset = self._offsets[name]
        self._put(shard, data.data, offset, abort=False)
        self._entries[name] = _Entry(spec.dtype.tf, spec.shape, shard, offset, len(data), crc, False)
        self._wrote(name)

    def copy(self, name: str, spec: TensorSpec, extent) -> None:
        """Write tensor `name` (of `spec`) by copying its bytes from where they lie (a
        safetensors file's range, an IR stream's pipe), its crc32c taken as they are copied
        (read back from the data shard for a pipe's). May be called from several threads at
        once."""
        self._accept_copy(name, spec)
        shard, offset = self._shard_of[name], self._offsets[name]
        crc = 0
        if spec.nbytes:
            path = self._shards[shard]
            with self._writing(path, abort=False):
                fd = os.open(path + ".partial", os.O_RDWR)
                try:
                    crc = copy_extent(extent, fd, offset, spec.nbytes, name, _crc)
                finally:
                    os.close(fd)
            if crc is None:
                raise FormatError(f"tensor {name!r}: its bytes did not all arrive", path=path)
        self._entries[name] = _Entry(spec.dtype.tf, spec.shape, shard, offset, spec.nbytes, mask(crc), False)
        self._wrote(name)

    def close(self) -> None:
        """Write the index and rename every file into place; raises (leaving nothing at the
        final names) if a declared tensor was never written."""
        if self._closed:
            return
        self._missing_check()
        index = self.prefix + INDEX_SUFFIX
        with self._writing(index):
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
            with self._writing(os.path.join(os.path.dirname(os.path.abspath(self.prefix)), STATE_FILE)):
                write_state(self.prefix)
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
            w.write(t.name, t.load_raw())
