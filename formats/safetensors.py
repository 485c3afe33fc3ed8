"""safetensors reader and streaming writer, in numpy + json only (FORMATS.md §5).

File = u64 LE header length N, N bytes of JSON (space-padded), then the byte buffer.
The reader validates the header at least as strictly as the Rust `Metadata::validate`
(it also refuses duplicate keys, which serde lets through), so a file irconv accepts is
one `safetensors` accepts, and hands out lazy tensors that seek and read only their bytes.
The writer lays the whole file out from the specs before any data arrives, so tensors
may be written in any order, one in memory at a time.
"""
from __future__ import annotations

import json
import os
import struct
from collections import Counter
from typing import Iterable, Mapping

import numpy as np

from ..ir import buffers
from ..ir.dtypes import by_name
from ..ir.errors import DTypeError, FormatError, UsageError
from ..ir.limits import check_shape, open_regular
from ..ir.stages import stage
from ..ir.tensor import Tensor, TensorSpec
from .partial import OneFileWriter, copy_extent, pwrite_at
from .sharding import loads_json_unique, write_errors

MAX_HEADER_SIZE = 100_000_000   # same cap as the Rust crate: bounds memory before parsing
METADATA_KEY = "__metadata__"
_ALIGN = 8                      # header padded so the buffer starts 8-aligned in the file

# The Rust `enum Dtype` (FORMATS.md §5.1). irconv's table has C128, which safetensors
# lacks, and lacks the sub-byte / FNUZ / E8M0 kinds: a dtype must be in both to pass.
SAFETENSORS_DTYPES = frozenset((
    "BOOL F4 F6_E2M3 F6_E3M2 U8 I8 F8_E5M2 F8_E4M3 F8_E8M0 F8_E4M3FNUZ F8_E5M2FNUZ "
    "I16 U16 F16 BF16 I32 U32 F32 C64 F64 I64 U64").split())


# --------------------------------------------------------------------------- reading

_INT64 = 1 << 63


def _is_uint(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _parse_entry(path: str, name: str, info) -> tuple[TensorSpec, int, int]:
    if not isinstance(info, dict):
        raise FormatError(f"tensor {name!r}: header entry is {type(info).__name__}, "
                          "expected an object with dtype, shape, data_offsets", path=path)
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
    if missing:
        raise FormatError(f"tensor {name!r}: header entry lacks {', '.join(missing)}", path=path)
    dtype_name, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype_name, str) or dtype_name not in SAFETENSORS_DTYPES:
        raise DTypeError(f"tensor {name!r}: dtype {dtype_name!r} is not a safetensors dtype "
                         f"(known: {' '.join(sorted(SAFETENSORS_DTYPES))})", path=path)
    try:
        dtype = by_name(dtype_name)
    except DTypeError as e:
        raise DTypeError(f"tensor {name!r}: {e}", path=path) from None
    if not (isinstance(shape, list) and all(_is_uint(d) for d in shape)):
        raise FormatError(f"tensor {name!r}: shape {shape!r} is not a list of "
                          "non-negative integers", path=path)
    check_shape(shape, dtype.itemsize, path=path, name=name)
    if any(d >= _INT64 for d in shape):     # an empty tensor passes check_shape's byte count
        raise FormatError(f"tensor {name!r}: shape {shape!r} has a dimension past int64", path=path)
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_uint(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        raise FormatError(f"tensor {name!r}: data_offsets {offsets!r} is not "
                          "[begin, end] with 0 <= begin <= end", path=path)
    spec = TensorSpec(name, dtype, tuple(shape))
    begin, end = offsets
    if end - begin != spec.nbytes:
        raise FormatError(f"tensor {name!r}: data_offsets {offsets!r} span {end - begin} bytes "
                          f"but {dtype} {shape} needs {spec.nbytes}", path=path)
    return spec, begin, end


def _read_header(path) -> tuple[str, dict[str, str], list[tuple[TensorSpec, int]]]:
    """Validate the whole layout; return (path, metadata, [(spec, absolute offset)] in file order)."""
    path = os.fspath(path)
    with open_regular(path) as f:
        file_size = os.fstat(f.fileno()).st_size
        prefix = f.read(8)
        if len(prefix) < 8:
            raise FormatError(f"file is truncated: {file_size} bytes, expected at least 8 "
                              "for the header length", path=path)
        (n,) = struct.unpack("<Q", prefix)
        if n > MAX_HEADER_SIZE:
            raise FormatError(f"header length {n!r} exceeds the safetensors limit "
                              f"{MAX_HEADER_SIZE}; not a safetensors file?", path=path)
        if 8 + n > file_size:
            raise FormatError(f"file is truncated: header length {n} needs at least {8 + n} "
                              f"bytes, file has {file_size}", path=path)
        raw = f.read(n)
    # Rust checks the first byte before parsing: catches files that are not safetensors early.
    if not raw.startswith(b"{"):
        raise FormatError(f"header starts with {raw[:8]!r}, expected '{{' (a JSON object); "
                          "not a safetensors file?", path=path)
    header = loads_json_unique(raw, path=path, what="header")
    if not isinstance(header, dict):
        raise FormatError(f"header is a {type(header).__name__}, expected a JSON object", path=path)

    metadata = header.pop(METADATA_KEY, None)
    if metadata is None:  # absent or null (Rust's Option)
        metadata = {}
    if not (isinstance(metadata, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise FormatError(f"{METADATA_KEY} {metadata!r} is not a flat string-to-string map",
                          path=path)

    entries = [_parse_entry(path, name, info) for name, info in header.items()]
    # Contiguity check in offset order, as Rust does: no gap, no overlap, starts at 0.
    entries.sort(key=lambda e: (e[1], e[2]))
    expected = 0
    for spec, begin, end in entries:
        if begin != expected:
            what = "overlaps the previous tensor" if begin < expected else "leaves a gap"
            raise FormatError(f"tensor {spec.name!r}: data_offsets [{begin}, {end}] {what}; "
                              f"expected it to begin at {expected}", path=path)
        expected = end
    data_start = 8 + n
    if data_start + expected > file_size:
        raise FormatError(f"file is truncated: header promises {data_start + expected} bytes, "
                          f"file has {file_size}", path=path)
    if data_start + expected < file_size:
        raise FormatError(f"file has {file_size - data_start - expected} trailing bytes not "
                          f"covered by any tensor (expected size {data_start + expected}, "
                          f"actual {file_size})", path=path)
    return path, metadata, [(spec, data_start + begin) for spec, begin, _ in entries]


def _loader(path: str, spec: TensorSpec, offset: int):
    def load() -> np.ndarray:
        arr = buffers.empty(spec.shape, spec.dtype.carrier)
        if spec.nbytes:
            # readinto a fresh array: one copy of the data in memory, and the result is writable.
            with stage("read", spec.nbytes), open_regular(path) as f:
                f.seek(offset)
                got = f.readinto(arr.reshape(-1).view(np.uint8))
            if got != spec.nbytes:
                raise FormatError(f"tensor {spec.name!r}: read {got} of {spec.nbytes} bytes at "
                                  f"offset {offset}; file is truncated (changed since it was "
                                  "opened?)", path=path)
            # numpy bools must be 0 or 1; any other byte would compare and sum wrongly.
            if spec.dtype.name == "BOOL" and arr.reshape(-1).view(np.uint8).max() > 1:
                raise FormatError(f"tensor {spec.name!r}: BOOL bytes other than 0 and 1",
                                  path=path)
        return arr
    return load


def looks_like(path) -> bool:
    """Cheap sniff: a plausible header length followed by '{' (a truncated file still passes,
    so that read() can say it is truncated)."""
    with open_regular(path) as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 0 < n <= MAX_HEADER_SIZE and head[8:9] == b"{"


def read(path) -> list[Tensor]:
    """Lazy tensors of a safetensors file, in file (offset) order; nothing is read yet."""
    path, _, entries = _read_header(path)
    tensors = []
    for spec, offset in entries:
        t = Tensor(spec, _loader(path, spec, offset))
        if spec.dtype.name != "BOOL":      # BOOL bytes are checked when loaded
            t.extent = (path, offset)
        tensors.append(t)
    return tensors


def read_metadata(path) -> dict[str, str]:
    """The file's `__metadata__` map ({} if absent); the header is fully validated."""
    return dict(_read_header(path)[1])


# --------------------------------------------------------------------------- writing

def _check_metadata(path: str, metadata) -> dict[str, str]:
    metadata = dict(metadata or {})
    bad = {k: v for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))}
    if bad:
        raise UsageError(f"metadata must map str to str; got {bad!r}", path=path)
    return metadata


class SafetensorsWriter(OneFileWriter):
    """Write a safetensors file whose layout is fixed up front from ordered specs; write()
    and copy() may come in any order, from several threads at once.

    Tensors go in by descending dtype itemsize (a power of two), then in the given order:
    every begin offset is then a multiple of its own itemsize, and with the buffer
    8-aligned in the file each tensor is naturally aligned. `write` may come in any order.
    The data go to `<path>.partial`, renamed onto `path` by a successful `close()`, so
    an unfinished file can never be mistaken for a valid one (gaps would read as zeros).
    """

    concurrent = True       # write() and copy() may come from several threads at once

    def __init__(self, path, specs: Iterable[TensorSpec], metadata: Mapping[str, str] | None = None):
        super().__init__(os.fspath(path))
        specs = list(specs)
        metadata = _check_metadata(self.path, metadata)
        names = Counter(s.name for s in specs)
        dupes = sorted(n for n, count in names.items() if count > 1)
        if dupes:
            raise UsageError(f"duplicate tensor names {dupes!r}", path=self.path)
        if METADATA_KEY in names:
            raise UsageError(f"{METADATA_KEY!r} is reserved and cannot name a tensor", path=self.path)
        foreign = {s.name: s.dtype.name for s in specs if s.dtype.name not in SAFETENSORS_DTYPES}
        if foreign:
            raise DTypeError(f"safetensors cannot store the dtypes of {foreign!r}; convert them "
                             "first", path=self.path)

        ordered = sorted(specs, key=lambda s: -s.dtype.itemsize)  # stable: keeps given order
        header: dict = {METADATA_KEY: metadata} if metadata else {}
        self._specs: dict[str, TensorSpec] = {}          # in file order
        self._offsets: dict[str, int] = {}
        offset = 0
        for spec in ordered:
            header[spec.name] = {"dtype": spec.dtype.name, "shape": list(spec.shape),
                                 "data_offsets": [offset, offset + spec.nbytes]}
            self._specs[spec.name], self._offsets[spec.name] = spec, offset
            offset += spec.nbytes
        # Compact JSON like serde_json, so given the Rust order our bytes equal the Rust writer's.
        raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        raw += b" " * (-len(raw) % _ALIGN)
        self._data_start = 8 + len(raw)
        self.size = self._data_start + offset

        self._tmp = self.path + ".partial"
        self._file = None
        try:
            with write_errors(self.path):
                self._file = open(self._tmp, "w+b")     # readable: a spliced stream tensor is checked there
                self._file.write(struct.pack("<Q", len(raw)))
                self._file.write(raw)
                self._file.truncate(self.size)  # sparse until filled; lets writes seek anywhere
                self._file.flush()              # the rest goes by os.pwrite: any order, any thread
        except BaseException:
            self.abort()
            raise

    @property
    def layout(self) -> list[str]:
        """Tensor names in file order."""
        return list(self._specs)

    def write(self, name: str, array: np.ndarray) -> None:
        """Write one tensor's bytes at its precomputed offset."""
        spec, array = self._accept(name, array)
        if spec.nbytes:
            # A view, not tobytes(): no second copy of a large tensor. pwrite at the tensor's
            # own offset, so that writes from several threads do not share a file position.
            with write_errors(self.path):
                pwrite_at(self._file.fileno(), array, self._data_start + self._offsets[name])
        self._wrote(name)

    def copy(self, name: str, spec: TensorSpec, extent: tuple[str, int]) -> None:
        """Write tensor `name` (of `spec`) by copying its bytes from `extent` = (file, offset)
        file to file a MiB at a time (partial.copy_range), with no tensor in memory."""
        self._accept_copy(name, spec)
        if spec.nbytes:
            with write_errors(self.path):
                copy_extent(extent, self._file.fileno(), self._data_start + self._offsets[name],
                            spec.nbytes, name)
        self._wrote(name)


def write(path, tensors: Iterable[Tensor], metadata: Mapping[str, str] | None = None) -> None:
    """Write lazy tensors to one file, loading (and releasing) one at a time."""
    tensors = list(tensors)
    with SafetensorsWriter(path, [t.spec for t in tensors], metadata) as w:
        for t in tensors:
            w.write(t.name, t.load_raw())


__all__ = ["read", "read_metadata", "write", "SafetensorsWriter", "MAX_HEADER_SIZE",
           "SAFETENSORS_DTYPES"]
