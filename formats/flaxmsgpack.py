"""Flax msgpack (flax.serialization.to_bytes, HF's flax_model.msgpack), FORMATS.md §6 and §11.

The file is one msgpack map: nested str-keyed maps whose leaves are ext objects (type 1 an
ndarray, type 3 a numpy scalar) holding a packed (shape, dtype name, bin of C-order bytes);
an array over 2**30 bytes is a map {"__msgpack_chunked_array__": true, "shape": {"0": d0 ...},
"chunks": {"0": ext, ...}} of 1-D pieces. Reading walks the structure only (map and ext
headers, each payload's small header) and records where every array's bytes lie, without
touching them; each tensor reads its bytes on demand. Every declared length is checked against
the bytes left, nesting and node counts are bounded. Writing lays the whole file out from the
specs first (keys sorted at every level, as jax's tree functions leave a params dict and so
as HF's save_pretrained writes it; encoded as msgpack encodes them, so the bytes are flax's own), then takes tensors in any order, from any thread.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import msgpack
import numpy as np

from ..ir import buffers
from ..ir.dtypes import DTYPES, DType
from ..ir.errors import DTypeError, FormatError, UsageError
from ..ir.limits import MAX_DEPTH, MAX_RANK, check_shape, open_regular
from ..ir.stages import stage
from ..ir.tensor import Tensor, TensorSpec, as_bytes
from .partial import OneFileWriter, copy_extent, pwrite_at
from .sharding import write_errors

EXT_NDARRAY, EXT_SCALAR = 1, 3            # flax's _MsgpackExtType (2 is a native complex scalar)
CHUNKED = "__msgpack_chunked_array__"
CHUNK_BYTES = 1 << 30                     # flax.serialization.MAX_CHUNK_SIZE
MAX_NODES = 4_000_000                     # msgpack objects walked; a real model has ~10 per tensor
MAX_KEY = 1 << 16                         # bytes of one map key
# flax writes arr.dtype.name: numpy's names, ml_dtypes' for bf16 and fp8.
FLAX_DTYPES: dict[str, DType] = {d.numpy_name.rpartition(".")[2]: d for d in DTYPES.values()}


@dataclass(frozen=True)
class _Array:
    """An array leaf: its dtype, shape and where its bytes lie ((offset, nbytes) per piece)."""
    dtype: DType
    shape: tuple[int, ...]
    pieces: tuple[tuple[int, int], ...]


# --------------------------------------------------------------------------- reading


class _Walker:
    """Reads msgpack objects at a position of the file, never past `end`, through a small
    window of the file: payload bytes are skipped, never read."""

    WINDOW = 1 << 16

    def __init__(self, f, path: str, size: int):
        self.f, self.path, self.size = f, path, size
        self.pos, self.nodes = 0, 0
        self._at, self._buf = 0, b""

    def fail(self, message: str):
        raise FormatError(f"at byte {self.pos}: {message}", path=self.path)

    def take(self, n: int, end: int) -> bytes:
        if n > end - self.pos:
            self.fail(f"needs {n} more bytes, {'the file' if end == self.size else 'the enclosing object'} "
                      f"has {max(end - self.pos, 0)} (truncated?)")
        lo = self.pos - self._at
        if lo < 0 or lo + n > len(self._buf):
            self.f.seek(self.pos)
            self._at, self._buf = self.pos, self.f.read(max(n, self.WINDOW))
            lo = 0
            if len(self._buf) < n:
                self.fail("the file ends early (changed while read?)")
        self.pos += n
        return self._buf[lo:lo + n]

    def uint(self, width: int, end: int) -> int:
        return int.from_bytes(self.take(width, end), "big")

    def obj(self, end: int, depth: int):
        """The object at pos: dicts, lists, scalars, _Array for an array ext; bin as (offset, n)."""
        if depth > MAX_DEPTH:
            self.fail(f"nesting deeper than {MAX_DEPTH}")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.fail(f"more than {MAX_NODES:,} msgpack objects; not a parameter tree")
        b = self.take(1, end)[0]
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0x80 <= b <= 0x8F or b in (0xDE, 0xDF):
            n = b & 0x0F if b <= 0x8F else self.uint(2 if b == 0xDE else 4, end)
            return self.map(n, end, depth)
        if 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):
            n = b & 0x0F if b <= 0x9F else self.uint(2 if b == 0xDC else 4, end)
            if n > end - self.pos:
                self.fail(f"an array of {n:,} items in {end - self.pos:,} bytes")
            return [self.obj(end, depth + 1) for _ in range(n)]
        if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA, 0xDB):
            n = b & 0x1F if b <= 0xBF else self.uint({0xD9: 1, 0xDA: 2, 0xDB: 4}[b], end)
            if n > MAX_KEY:
                self.fail(f"a string of {n:,} bytes (more than {MAX_KEY:,})")
            raw = self.take(n, end)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                self.fail("a string that is not UTF-8")
        if b in (0xC0, 0xC2, 0xC3):
            return {0xC0: None, 0xC2: False, 0xC3: True}[b]
        if 0xCC <= b <= 0xCF:
            return self.uint(1 << (b - 0xCC), end)
        if 0xD0 <= b <= 0xD3:
            width = 1 << (b - 0xD0)
            return int.from_bytes(self.take(width, end), "big", signed=True)
        if b in (0xCA, 0xCB):
            return struct.unpack(">f" if b == 0xCA else ">d", self.take(4 if b == 0xCA else 8, end))[0]
        if b in (0xC4, 0xC5, 0xC6):
            n = self.uint(1 << (b - 0xC4), end)
            at = self.pos
            if n > end - at:
                self.fail(f"a bin of {n:,} bytes, {end - at:,} left (truncated?)")
            self.pos += n
            return ("bin", at, n)
        if 0xD4 <= b <= 0xD8 or b in (0xC7, 0xC8, 0xC9):
            n = 1 << (b - 0xD4) if b >= 0xD4 else self.uint(1 << (b - 0xC7), end)
            code = int.from_bytes(self.take(1, end), "big", signed=True)
            if n > end - self.pos:
                self.fail(f"an ext object of {n:,} bytes, {end - self.pos:,} left (truncated?)")
            return self.ext(code, self.pos + n, depth)
        self.fail(f"byte 0x{b:02x} starts no msgpack object")

    def map(self, n: int, end: int, depth: int) -> dict:
        if 2 * n > end - self.pos:
            self.fail(f"a map of {n:,} entries in {end - self.pos:,} bytes")
        out: dict = {}
        for _ in range(n):
            at = self.pos
            key = self.obj(end, depth + 1)
            if not isinstance(key, str):
                self.pos = at
                self.fail(f"a map key that is {type(key).__name__}, not a string")
            if key in out:
                self.pos = at
                self.fail(f"map key {key!r} given twice")
            out[key] = self.obj(end, depth + 1)
        return out

    def ext(self, code: int, stop: int, depth: int) -> _Array:
        if code not in (EXT_NDARRAY, EXT_SCALAR):
            self.fail(f"ext type {code} is not a Flax array (1: ndarray, 3: numpy scalar)")
        start = self.pos
        if self.take(1, stop) != b"\x93":
            self.pos = start
            self.fail("an array ext whose payload is not a 3-array (shape, dtype, bytes)")
        shape, name, data = (self.obj(stop, depth + 1) for _ in range(3))
        if not isinstance(shape, list):
            self.fail(f"array shape is a {type(shape).__name__}, not a list of at most {MAX_RANK} dimensions")
        if len(shape) > MAX_RANK:
            self.fail(f"array shape has {len(shape):,} dimensions (at most {MAX_RANK})")
        if not isinstance(name, str) or name not in FLAX_DTYPES:
            raise DTypeError(f"at byte {start}: array dtype {name!r} is not one irconv knows "
                             f"({', '.join(sorted(FLAX_DTYPES))})", path=self.path)
        dtype = FLAX_DTYPES[name]
        shape = check_shape(shape, dtype.itemsize, path=self.path)
        if code == EXT_SCALAR and shape:
            self.fail(f"a numpy scalar ext of shape {list(shape)}")
        if not (isinstance(data, tuple) and data[0] == "bin"):
            self.fail("an array ext whose bytes are not a bin")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if data[2] != nbytes:
            self.fail(f"a {name} {list(shape)} array holds {data[2]:,} bytes, needs {nbytes:,}")
        if self.pos != stop:
            self.fail(f"{stop - self.pos} bytes after the array inside its ext object")
        return _Array(dtype, shape, ((data[1], nbytes),))


def _unchunk(d: dict, where: str, path: str) -> _Array:
    if set(d) != {CHUNKED, "shape", "chunks"} or d[CHUNKED] is not True:
        raise FormatError(f"{where!r}: a chunked array needs exactly {CHUNKED}: true, shape, chunks", path=path)
    shape, chunks = d["shape"], d["chunks"]
    if not (isinstance(shape, dict) and isinstance(chunks, dict) and chunks
            and set(shape) == {str(i) for i in range(len(shape))}
            and set(chunks) == {str(i) for i in range(len(chunks))}):
        raise FormatError(f"{where!r}: chunked array shape and chunks must be maps keyed '0', '1', ...", path=path)
    pieces = [chunks[str(i)] for i in range(len(chunks))]
    if not all(isinstance(p, _Array) and len(p.shape) == 1 and p.dtype == pieces[0].dtype for p in pieces):
        raise FormatError(f"{where!r}: chunks must be 1-D arrays of one dtype", path=path)
    dtype = pieces[0].dtype
    shape = check_shape([shape[str(i)] for i in range(len(shape))], dtype.itemsize, path=path, name=where)
    total = sum(p.shape[0] for p in pieces)
    if total != int(np.prod(shape, dtype=object)):
        raise FormatError(f"{where!r}: chunks hold {total:,} elements, shape {list(shape)} needs "
                          f"{int(np.prod(shape, dtype=object)):,}", path=path)
    return _Array(dtype, shape, tuple(x for p in pieces for x in p.pieces))


def _flatten(tree: dict, prefix: str, out: dict, path: str) -> None:
    for key, value in tree.items():
        if not key or "/" in key:
            raise FormatError(f"map key {key!r} under {prefix or 'the root'!r} is empty or holds '/'", path=path)
        name = f"{prefix}/{key}" if prefix else key
        if isinstance(value, _Array):
            out[name] = value
        elif isinstance(value, dict) and CHUNKED in value:
            out[name] = _unchunk(value, name, path)
        elif isinstance(value, dict):
            _flatten(value, name, out, path)
        else:
            raise FormatError(f"{name!r} is a {type(value).__name__}, not an array or a map of them", path=path)


def index(path) -> dict[str, _Array]:
    """Every array of the file by its '/'-joined key path, in file order; no payload is read."""
    path = os.fspath(path)
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        walker = _Walker(f, path, size)
        if size == 0:
            raise FormatError("is empty, not a Flax msgpack file", path=path)
        first = walker.take(1, size)[0]
        walker.pos = 0
        if not (0x80 <= first <= 0x8F or first in (0xDE, 0xDF)):
            raise FormatError(f"starts with byte 0x{first:02x}, not a msgpack map; not a Flax msgpack file", path=path)
        tree = walker.obj(size, 0)
        if walker.pos != size:
            raise FormatError(f"{size - walker.pos:,} bytes after the parameter tree", path=path)
    out: dict[str, _Array] = {}
    _flatten(tree, "", out, path)
    return out


def looks_like(path) -> bool:
    with open_regular(path) as f:
        first = f.read(1)
    return len(first) == 1 and (0x80 <= first[0] <= 0x8F or first[0] in (0xDE, 0xDF))


def _loader(path: str, name: str, spec: TensorSpec, pieces):
    def load() -> np.ndarray:
        arr = buffers.empty(spec.shape, spec.dtype.carrier)
        flat = arr.reshape(-1).view(np.uint8)
        with stage("read", spec.nbytes), open_regular(path) as f:
            done = 0
            for offset, n in pieces:
                f.seek(offset)
                got = f.readinto(flat[done:done + n])
                if got != n:
                    raise FormatError(f"tensor {name!r}: read {got} of {n} bytes at offset {offset}; the "
                                      "file is truncated (changed since it was opened?)", path=path)
                done += n
        if spec.dtype.name == "BOOL" and flat.size and flat.max() > 1:
            raise FormatError(f"tensor {name!r}: BOOL bytes other than 0 and 1", path=path)
        return arr
    return load


def read(path) -> list[Tensor]:
    """Lazy tensors of a Flax msgpack file, named by key path ('bert/embeddings/.../embedding')."""
    path = os.fspath(path)
    tensors = []
    for name, a in index(path).items():
        spec = TensorSpec(name, a.dtype, a.shape)
        t = Tensor(spec, _loader(path, name, spec, a.pieces))
        if len(a.pieces) == 1 and a.dtype.name != "BOOL":
            t.extent = (path, a.pieces[0][0])
        tensors.append(t)
    return tensors


# --------------------------------------------------------------------------- writing


def _map_header(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 16 else b"\xde" + n.to_bytes(2, "big") if n < 1 << 16 \
        else b"\xdf" + n.to_bytes(4, "big")


def _bin_header(n: int) -> bytes:
    return b"\xc4" + bytes([n]) if n < 1 << 8 else b"\xc5" + n.to_bytes(2, "big") if n < 1 << 16 \
        else b"\xc6" + n.to_bytes(4, "big")


def _ext_header(n: int, code: int) -> bytes:
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    if n in fixed:
        head = bytes([fixed[n]])
    else:
        head = b"\xc7" + bytes([n]) if n < 1 << 8 else b"\xc8" + n.to_bytes(2, "big") if n < 1 << 16 \
            else b"\xc9" + n.to_bytes(4, "big")
    return head + bytes([code])


def _array_pieces(shape, dtype: DType, nbytes: int):
    """(bytes before the data, data length) of one array ext, as flax's _ndarray_to_bytes packs it."""
    inner = b"\x93" + msgpack.packb(list(shape)) + msgpack.packb(dtype.numpy_name.rpartition(".")[2]) \
        + _bin_header(nbytes)
    return _ext_header(len(inner) + nbytes, EXT_NDARRAY) + inner, nbytes


def _tree(specs) -> dict:
    tree: dict = {}
    for spec in specs:
        parts = spec.name.split("/")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UsageError(f"tensor {spec.name!r} lies under another tensor's name")
        if parts[-1] in node or not all(parts):
            raise UsageError(f"tensor name {spec.name!r} is empty in a part or names a subtree")
        node[parts[-1]] = spec
    return tree


class FlaxMsgpackWriter(OneFileWriter):
    """A Flax msgpack file laid out from the specs up front (what flax.serialization.to_bytes
    writes for the nested dict with its keys sorted), its tensors written in any order from any thread
    into `<path>.partial`, renamed onto `path` by close()."""

    concurrent = True

    def __init__(self, path, specs):
        super().__init__(os.fspath(path))
        specs = list(specs)
        foreign = sorted({s.dtype.name for s in specs if s.dtype.name not in {d.name for d in FLAX_DTYPES.values()}})
        if foreign:
            raise DTypeError(f"Flax msgpack cannot hold {', '.join(foreign)}", path=self.path)
        try:
            tree = _tree(specs)
        except UsageError as exc:
            raise UsageError(str(exc), path=self.path) from None
        self._specs = {s.name: s for s in specs}
        self._slots: dict[str, list[tuple[int, int]]] = {}   # name -> (file offset, nbytes) per piece
        struct_parts: list[tuple[int, bytes]] = []
        offset = 0

        def emit(data: bytes) -> None:
            nonlocal offset
            struct_parts.append((offset, data))
            offset += len(data)

        def leaf(name: str, spec: TensorSpec, shape, nbytes: int) -> None:
            nonlocal offset
            head, n = _array_pieces(shape, spec.dtype, nbytes)
            emit(head)
            self._slots.setdefault(name, []).append((offset, n))
            offset += n

        def walk(node: dict) -> None:
            emit(_map_header(len(node)))
            for key in sorted(node):
                emit(msgpack.packb(key))
                value = node[key]
                if isinstance(value, dict):
                    walk(value)
                elif value.nbytes > CHUNK_BYTES:
                    per = max(1, int(CHUNK_BYTES / value.dtype.itemsize))
                    emit(_map_header(3) + msgpack.packb(CHUNKED) + b"\xc3" + msgpack.packb("shape")
                         + _map_header(len(value.shape))
                         + b"".join(msgpack.packb(str(i)) + msgpack.packb(d) for i, d in enumerate(value.shape))
                         + msgpack.packb("chunks"))
                    starts = range(0, value.numel, per)
                    emit(_map_header(len(starts)))
                    for i, start in enumerate(starts):
                        count = min(per, value.numel - start)
                        emit(msgpack.packb(str(i)))
                        leaf(value.name, value, (count,), count * value.dtype.itemsize)
                else:
                    leaf(value.name, value, value.shape, value.nbytes)

        walk(tree)
        self.size = offset
        self._tmp = self.path + ".partial"
        self._file = None
        try:
            with write_errors(self.path):
                self._file = open(self._tmp, "w+b")    # w+: a stream copy reads its bytes back
                self._file.truncate(self.size)
                fd = self._file.fileno()
                # Runs of structure bytes between payloads, one pwrite each.
                run_at, run = 0, bytearray()
                for at, data in struct_parts:
                    if at != run_at + len(run):
                        pwrite_at(fd, bytes(run), run_at)
                        run_at, run = at, bytearray()
                    run += data
                pwrite_at(fd, bytes(run), run_at)
        except BaseException:
            self.abort()
            raise

    def write(self, name: str, array: np.ndarray) -> None:
        spec, array = self._accept(name, array)
        data = memoryview(as_bytes(array))
        done = 0
        with write_errors(self.path):
            for at, n in self._slots.get(name, ()):
                pwrite_at(self._file.fileno(), data[done:done + n], at)
                done += n
        self._wrote(name)

    def copies(self, name: str, extent) -> bool:
        """Whether copy() can take `name` from `extent`: a file range always; an IR stream's
        pipe only into an array stored in one piece (one over 1 GiB is chunked here)."""
        return isinstance(extent, tuple) or len(self._slots.get(name, ())) == 1

    def copy(self, name: str, spec: TensorSpec, extent) -> None:
        """Write tensor `name` (of `spec`) by copying its bytes from where they lie (a file
        range, a MiB at a time; an IR stream's pipe, spliced), with no tensor in memory."""
        self._accept_copy(name, spec)
        if not self.copies(name, extent):
            raise UsageError(f"tensor {name!r} is stored in chunks here; it cannot be copied from a stream",
                             path=self.path)
        done = 0
        with write_errors(self.path):
            for at, n in self._slots.get(name, ()):
                source = (extent[0], extent[1] + done) if isinstance(extent, tuple) else extent
                copy_extent(source, self._file.fileno(), at, n, name)
                done += n
        self._wrote(name)


__all__ = ["read", "index", "looks_like", "FlaxMsgpackWriter", "FLAX_DTYPES", "CHUNK_BYTES"]
