"""PyTorch zip checkpoints (torch.save since 1.6), read and written without importing torch.

Layout (FORMATS.md §4.1): `<archive>/data.pkl` is a protocol-2 pickle whose tensors are
`_rebuild_tensor_v2/v3` calls on storages named by persistent ids
`('storage', <storage class>, key, location, numel)`; storage `key`'s bytes are the zip
record `<archive>/data/<key>`, stored uncompressed at a 64-byte aligned offset.

Reading unpickles with formats.pickle.RestrictedUnpickler: torch's globals become the
stand-ins below, so a tensor in the unpickled object is a `TensorRef` (where its elements
live) and bytes are read, one tensor at a time, only when its loader is called.
"""
from __future__ import annotations

import collections
import math
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from ..ir.dtypes import DTYPES, DType
from ..ir.errors import DTypeError, FormatError, UsageError
from ..ir.tensor import Tensor, TensorSpec, as_bytes
from ..ir.limits import check_shape, nbytes_of, open_regular
from .pickle import Allowlist, RestrictedUnpickler, Sealed, brief, loads
from .sharding import write_errors
from .ziprecords import Record, RecordFile, members
from .zipwriter import LaidOutZip


def loads_from(f, path: str, allow: Allowlist, persistent_load=None):
    """The next pickle of an open file (legacy checkpoints are several in a row)."""
    return RestrictedUnpickler(f, path=path, allow=allow, persistent_load=persistent_load).load()

ALIGNMENT = 64          # torch's kFieldAlignment: record data starts at a multiple of this

# Legacy torch.save (pre-1.6) starts with a pickled MAGIC_NUMBER 0x1950A86A20F9469CFC6C:
# LONG1 bytes in binary protocols, its decimal digits in protocol 0.
_LEGACY_MAGIC = (bytes.fromhex("8a0a6cfc9c46f9206aa85019"), b"119547037146038801333356")


# ---------------------------------------------------------------------------------------
# What the pickle's torch globals turn into. Sealed: a BUILD opcode in the file cannot
# rewrite them after the checks below ran.

@dataclass(frozen=True, slots=True)
class _StorageType(Sealed):
    """Stand-in for torch.FloatStorage & co. dtype None: untyped (bytes) or unsupported."""
    name: str
    dtype: DType | None
    untyped: bool = False

    @property
    def itemsize(self) -> int:
        return 1 if self.untyped or self.dtype is None else self.dtype.itemsize


@dataclass(frozen=True, slots=True)
class _TorchDType(Sealed):
    """Stand-in for a torch dtype global (torch.float8_e4m3fn); dtype None: unsupported."""
    name: str
    dtype: DType | None


@dataclass(frozen=True, slots=True)
class _TensorClass(Sealed):
    """Stand-in for torch.Tensor / nn.Parameter, only meaningful to _rebuild_from_type_v2."""
    name: str


@dataclass(frozen=True, slots=True)
class StorageRef(Sealed):
    """A persistent id: record `data/<key>` holding `numel` items of `type`."""
    key: str
    type: _StorageType
    location: str
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * self.type.itemsize


class StorageIdentity(NamedTuple):
    """Two tensors with equal identities are the same bytes viewed the same way: a tie."""
    key: str
    dtype: str
    offset: int
    shape: tuple
    stride: tuple


@dataclass(frozen=True, slots=True)
class TensorRef(Sealed):
    """A tensor in the unpickled object: where its elements live, not the elements."""
    storage: StorageRef
    torch_dtype: str            # for messages when `dtype` is None
    dtype: DType | None         # None: a torch dtype irconv cannot represent
    offset: int                 # in elements of dtype
    shape: tuple[int, ...]
    stride: tuple[int, ...]     # in elements of dtype

    @property
    def identity(self) -> StorageIdentity:
        return StorageIdentity(self.storage.key, self.torch_dtype, self.offset, self.shape,
                               self.stride)


_INT64 = 1 << 63         # sizes, strides, offsets and numels are int64 in torch


def _ints(value, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(type(v) is int and 0 <= v < _INT64 for v in value):
        raise FormatError(f"tensor {what} {brief(value)} is not a tuple of non-negative int64s")
    return value


def _tensor_ref(storage, offset, size, stride, dtype: _TorchDType | None) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise FormatError(f"tensor storage {brief(storage)} is not a ('storage', ...) persistent id")
    if type(offset) is not int or not 0 <= offset < _INT64:
        raise FormatError(f"tensor storage offset {brief(offset)} is not a non-negative int64")
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride):
        raise FormatError(f"tensor size {brief(size)} and stride {brief(stride)} differ in rank")
    if dtype is None:  # v1/v2: the storage class is the dtype
        if storage.type.untyped:
            raise FormatError(f"_rebuild_tensor_v2 on {storage.type.name}, which has no dtype")
        stype = storage.type
        dtype = _TorchDType(stype.dtype.torch if stype.dtype else stype.name, stype.dtype)
    elif not isinstance(dtype, _TorchDType):
        raise FormatError(f"_rebuild_tensor_v3 dtype {brief(dtype)} is not a torch dtype")
    return TensorRef(storage, dtype.name, dtype.dtype, offset, size, stride)


# Signatures mirror torch._utils so that every argument list torch writes binds.
def _rebuild_tensor(storage, storage_offset, size, stride):
    return _tensor_ref(storage, storage_offset, size, stride, None)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _tensor_ref(storage, storage_offset, size, stride, None)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    return _tensor_ref(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, TensorRef):
        raise FormatError(f"nn.Parameter wraps {type(data).__name__}, not a tensor")
    return data  # a Parameter is its tensor for weight conversion


def _rebuild_from_type_v2(func, new_type, args, state):
    # torch uses this for tensors carrying Python attributes; only plain classes are known.
    if not isinstance(new_type, _TensorClass) or not callable(func) or not isinstance(args, tuple):
        raise FormatError(f"_rebuild_from_type_v2 of {brief(new_type)} is not a plain tensor")
    return func(*args)


def _codecs_encode(text, encoding="utf-8"):
    # Protocol 2 pickles `bytes` as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise FormatError(f"_codecs.encode({brief(text)}, {brief(encoding)}) is not a bytes literal")
    return text.encode(encoding)


def _build_allowlist() -> dict:
    allow: dict = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("_codecs", "encode"): _codecs_encode,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): _TensorClass("torch.Tensor"),
        ("torch.nn.parameter", "Parameter"): _TensorClass("torch.nn.parameter.Parameter"),
    }
    untyped = _StorageType("UntypedStorage", None, untyped=True)
    allow[("torch", "UntypedStorage")] = allow[("torch.storage", "UntypedStorage")] = untyped
    for d in DTYPES.values():
        allow[("torch", d.torch)] = _TorchDType(d.torch, d)
        if d.torch_storage:
            allow[("torch", d.torch_storage)] = _StorageType(d.torch_storage, d)
    # Harmless but unconvertible: loading works, asking for such a tensor raises DTypeError.
    for name in ("complex32", "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu",
                 "float4_e2m1fn_x2", "qint8", "quint8", "qint32", "quint4x2", "quint2x4"):
        allow[("torch", name)] = _TorchDType(name, None)
    for name in ("QInt8Storage", "QUInt8Storage", "QInt32Storage", "QUInt4x2Storage",
                 "QUInt2x4Storage", "ComplexHalfStorage"):
        allow[("torch", name)] = _StorageType(name, None)
    return allow


# Read-only so nobody extends it in place; compose instead: {**torchzip.ALLOW, key: stub}.
ALLOW: Mapping[tuple[str, str], Any] = MappingProxyType(_build_allowlist())


# ---------------------------------------------------------------------------------------
# Reading

def _contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    # torch counts a zero-size dim as 1 here: empty(2, 0, 3).stride() == (3, 3, 1).
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _is_contiguous(shape, stride) -> bool:
    return all(n == 1 or s == c for n, s, c in zip(shape, stride, _contiguous_strides(shape)))


def _read_exact(f, n: int, what: str, path: str) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:  # one read() may return less (Linux caps a read at ~2 GiB)
        k = f.readinto(view[got:])
        if not k:
            raise FormatError(f"{what}: file ends {n - got} bytes early (truncated?)", path=path)
        got += k
    return buf


class _RecordLoader:
    """Reads one tensor's bytes from its record; carries the tensor's storage identity."""

    __slots__ = ("records", "key", "ref", "name")

    def __init__(self, records: RecordFile, key: str, ref: TensorRef, name: str):
        self.records, self.key, self.ref, self.name = records, key, ref, name

    def __call__(self) -> np.ndarray:
        ref, dtype = self.ref, self.ref.dtype.carrier
        if math.prod(ref.shape) == 0:
            return np.empty(ref.shape, dtype)
        extent = 1 + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
        start, length = ref.offset * dtype.itemsize, extent * dtype.itemsize
        what = f"tensor {self.name!r} (record {self.records.records[self.key].name!r})"
        flat = np.frombuffer(self.records.read(self.key, start, length, what), dtype)
        if _is_contiguous(ref.shape, ref.stride):
            return flat[:math.prod(ref.shape)].reshape(ref.shape)
        strides = tuple(s * dtype.itemsize for s in ref.stride)
        return np.lib.stride_tricks.as_strided(flat, ref.shape, strides).copy()


# A view whose strides repeat elements (zero or overlapping strides: torch's expand(), as
# BERT's position_ids buffer `arange(512).expand((1, -1))` is saved) materializes more bytes
# than its storage holds. Real checkpoints do save such views, but only of small buffers, so
# they are read when the dense copy stays within EXPAND_FACTOR times the storage (or within
# EXPAND_SLACK bytes: a scalar broadcast to a small buffer); a small storage blown up into a
# huge array (84 KB of file to a 12 GiB array) is refused before anything is allocated.
EXPAND_FACTOR = 4
EXPAND_SLACK = 1 << 16
# All the tensors of one file together: tied names view one storage (2 or 3 names for an
# embedding), so the sum of their bytes may exceed the file's, but not by this much; a file
# naming one storage 100000 times must not make a conversion write 100000 copies of it.
TOTAL_FACTOR = 4
TOTAL_SLACK = 64 << 20


class TorchZipArchive:
    """An opened checkpoint's records; turns the pickle's TensorRefs into lazy Tensors."""

    def __init__(self, path: str, prefix: str, records: dict[str, Record]):
        self.path = path
        self.prefix = prefix        # the archive name: first member's directory
        self.records = records      # storage key -> record
        self._file = RecordFile(path, records)
        self._claimed = 0           # bytes of every tensor handed out so far
        self._bound = TOTAL_FACTOR * os.stat(path).st_size + TOTAL_SLACK

    def tensor(self, name: str, ref: TensorRef) -> Tensor:
        """A lazy irconv Tensor named `name` for `ref`; checks the record holds its bytes."""
        if ref.dtype is None:
            raise DTypeError(f"tensor {name!r} has torch dtype {ref.torch_dtype!r}, which irconv "
                             f"cannot represent", path=self.path)
        record = self.records[ref.storage.key]  # existence was checked when unpickling
        itemsize = ref.dtype.itemsize
        shape = check_shape(ref.shape, itemsize, path=self.path, name=name)
        if record.size < ref.storage.nbytes:
            raise FormatError(f"tensor {name!r}: record {record.name!r} holds {record.size} bytes "
                              f"but its storage claims {ref.storage.nbytes} (truncated or corrupt "
                              f"file)", path=self.path)
        extent = 0 if math.prod(shape) == 0 else \
            1 + sum((n - 1) * s for n, s in zip(shape, ref.stride))
        need = (ref.offset + extent) * itemsize if extent else 0
        if need > ref.storage.nbytes:
            raise FormatError(f"tensor {name!r} ({ref.dtype} {list(shape)}, offset "
                              f"{ref.offset}, stride {list(ref.stride)}) needs {need} bytes of "
                              f"storage {ref.storage.key!r}, which holds {ref.storage.nbytes}",
                              path=self.path)
        dense = nbytes_of(shape, itemsize)
        if dense > extent * itemsize and dense > max(EXPAND_FACTOR * ref.storage.nbytes, EXPAND_SLACK):
            raise FormatError(f"tensor {name!r} ({ref.dtype} {list(shape)}, stride "
                              f"{list(ref.stride)}) repeats the elements of its "
                              f"{ref.storage.nbytes:,}-byte storage {ref.storage.key!r} into "
                              f"{dense:,} bytes (zero or overlapping strides; more than "
                              f"{EXPAND_FACTOR}x the storage)", path=self.path)
        self._claimed += dense
        if self._claimed > self._bound:
            raise FormatError(f"tensor {name!r}: the tensors so far hold {self._claimed:,} bytes, "
                              f"more than {TOTAL_FACTOR}x this file's size (the same storage named "
                              f"over and over)", path=self.path)
        spec = TensorSpec(name, ref.dtype, shape)
        t = Tensor(spec, _RecordLoader(self._file, ref.storage.key, ref, name), source=name)
        start, length = ref.offset * itemsize, nbytes_of(shape, itemsize)
        if length and _is_contiguous(shape, ref.stride) and self._file.covers(ref.storage.key, start, length):
            # a large relayout reads it strip by strip into itself, the record's CRC on the way
            t.strips = lambda: self._file.strips(ref.storage.key, start, length, name)
        return t


def _is_legacy(head: bytes) -> bool:
    return any(m in head[:40] for m in _LEGACY_MAGIC)


def looks_like(path) -> bool:
    """A torch.save file: a zip (torch >= 1.6) or the legacy pickle stream."""
    with open_regular(path) as f:
        head = f.read(40)
    return head.startswith(b"PK\x03\x04") or _is_legacy(head)


# torch.serialization's legacy stream: MAGIC_NUMBER, PROTOCOL_VERSION, sys_info, the object,
# the sorted storage keys, then each storage as int64 numel + its bytes (FORMATS.md §4.3).
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _load_legacy(path: str, allow: Allowlist) -> tuple[Any, TorchZipArchive]:
    """A pre-1.6 (non-zip) torch.save file, as the 2019 fairseq and HF releases are."""
    storages: dict[str, StorageRef] = {}

    def persistent_load(pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise FormatError(f"persistent id {brief(pid)} is not ('storage', type, key, location, "
                              f"numel, view_metadata)")
        _, stype, key, location, numel, view = pid
        if not isinstance(stype, _StorageType) or not isinstance(key, str) or \
                not isinstance(location, str) or type(numel) is not int or not 0 <= numel < _INT64:
            raise FormatError(f"persistent id {brief(pid)} is not a storage reference")
        if view is not None:
            raise FormatError(f"storage {key!r} is a view of another storage (legacy storage "
                              f"views are not supported yet)")
        return storages.setdefault(key, StorageRef(key, stype, location, numel))

    with open_regular(path) as f:
        header = [loads_from(f, path, {}) for _ in range(3)]
        if header[0] != _LEGACY_MAGIC_NUMBER or header[1] != _LEGACY_PROTOCOL:
            raise FormatError(f"not a legacy torch.save file (magic {brief(header[0])}, protocol "
                              f"{brief(header[1])})", path=path)
        if not (isinstance(header[2], dict) and header[2].get("little_endian", True)):
            raise FormatError("big-endian legacy checkpoint: not supported", path=path)
        obj = loads_from(f, path, allow, persistent_load)
        keys = loads_from(f, path, {})
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise FormatError("corrupt legacy checkpoint: no storage key list", path=path)
        records, offset = {}, f.tell()
        size = os.fstat(f.fileno()).st_size
        for key in keys:
            f.seek(offset)
            (numel,) = struct.unpack("<q", _read_exact(f, 8, f"storage {key!r}", path))
            ref = storages.get(key)
            nbytes = numel * (ref.type.itemsize if ref else 1)
            if ref is not None and numel != ref.numel:
                raise FormatError(f"storage {key!r} holds {numel} elements, the pickle says "
                                  f"{ref.numel}", path=path)
            if numel < 0 or offset + 8 + nbytes > size:
                raise FormatError(f"storage {key!r}: {numel:,} elements at offset {offset + 8:,} "
                                  f"do not fit the file's {size:,} bytes (truncated or corrupt)",
                                  path=path)
            records[key] = Record(f"storage {key}", nbytes, offset + 8)
            offset += 8 + nbytes
    missing = sorted(set(storages) - set(records))
    if missing:
        raise FormatError(f"storages {missing!r} have no data in the file", path=path)
    return obj, TorchZipArchive(path, "", records)


def _refuse_non_zip(path: str, head: bytes) -> None:
    if head.startswith(b"PK\x03\x04") or _is_legacy(head):
        return
    if head[257:262] == b"ustar":
        raise FormatError("tar-based torch.save format (torch<1.0) is not supported; re-save "
                          "it with torch>=1.6", path=path)
    raise FormatError(f"not a PyTorch zip checkpoint (starts with {head[:8]!r}, expected a zip "
                      f"'PK\\x03\\x04')", path=path)


# data.pkl holds tensor metadata only (~150 bytes a tensor): no real checkpoint's comes near
# this, and a compressed one (torch stores it uncompressed) inflates by at most this ratio.
MAX_PICKLE_BYTES = 256 << 20
MAX_PICKLE_RATIO = 200


def _read_zip(path: str, f) -> tuple[str, dict[str, Record], bytes]:
    """(archive prefix, storage key -> record, data.pkl bytes) of an opened torch zip."""
    with zipfile.ZipFile(f) as zf:
        checked = members(path, f, zf)
        names = list(checked)
        if not names:
            raise FormatError("not a PyTorch zip checkpoint: the zip is empty", path=path)
        prefix = names[0].split("/")[0] if "/" in names[0] else None
        if prefix is None:
            raise FormatError(f"not a PyTorch zip checkpoint: first member {names[0]!r} is not "
                              f"inside an archive directory", path=path)
        if f"{prefix}/constants.pkl" in checked or any(n.startswith(f"{prefix}/code/") for n in names):
            raise FormatError("this is a TorchScript archive (torch.jit.save), not a "
                              "torch.save checkpoint", path=path)
        pkl = f"{prefix}/data.pkl"
        if pkl not in checked:
            raise FormatError(f"not a PyTorch zip checkpoint: no {pkl!r} "
                              f"(members: {sorted(names)[:5]!r})", path=path)
        files = RecordFile(path, {name: record for name, (_, record) in checked.items()})
        if f"{prefix}/byteorder" in checked:
            order = _small(files, f"{prefix}/byteorder", 64).decode("ascii", "replace")
            if order != "little":
                raise FormatError(f"byteorder {order!r} is not supported, expected 'little'",
                                  path=path)
        info = checked[pkl][0]
        limit = min(MAX_PICKLE_BYTES, max(info.compress_size * MAX_PICKLE_RATIO, 1 << 16))
        data = _small(files, pkl, limit)
        data_dir = f"{prefix}/data/"
        records = {name[len(data_dir):]: record for name, (_, record) in checked.items()
                   if name.startswith(data_dir)}
    return prefix, records, bytes(data)


def _small(files: RecordFile, name: str, limit: int) -> bytearray:
    """A whole metadata record (data.pkl, byteorder), its CRC checked, if it is at most `limit`."""
    size = files.records[name].size
    if size > limit:
        raise FormatError(f"record {name!r} declares {size:,} bytes, more than a record of "
                          f"metadata can hold here ({limit:,}; a zip bomb or corrupt file)",
                          path=files.path)
    return files.read(name, 0, size, f"record {name!r}")


def load_pickle(path, allow: Allowlist | None = None) -> tuple[Any, TorchZipArchive]:
    """Unpickle `<archive>/data.pkl` (tensors become TensorRefs) and open its records.

    `allow` adds (module, name) -> stand-in entries to ALLOW, for checkpoints that pickle
    more than tensors (fairseq's argparse.Namespace ...); see formats.pickle.Stub.
    """
    path = os.fspath(path)
    with open_regular(path) as f:
        head = f.read(512)
        _refuse_non_zip(path, head)
        if not _is_legacy(head):
            try:
                prefix, records, data = _read_zip(path, f)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, IndexError, ValueError,
                    NotImplementedError, struct.error, zlib.error) as e:
                raise FormatError(f"not a PyTorch zip checkpoint: corrupt or truncated zip ({e})",
                                  path=path) from e
    if _is_legacy(head):
        return _load_legacy(path, {**ALLOW, **(allow or {})})

    storages: dict[str, StorageRef] = {}

    def persistent_load(pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise FormatError(f"persistent id {brief(pid)} is not ('storage', type, key, location, "
                              f"numel)")
        _, stype, key, location, numel = pid
        if not isinstance(stype, _StorageType) or not isinstance(key, str) or \
                not isinstance(location, str) or type(numel) is not int or not 0 <= numel < _INT64:
            raise FormatError(f"persistent id {brief(pid)} is not ('storage', <torch storage class>, "
                              f"key: str, location: str, numel: int)")
        if key not in records:
            raise FormatError(f"storage key {key!r} has no record {f'{prefix}/data/{key}'!r}")
        ref = StorageRef(key, stype, location, numel)
        seen = storages.setdefault(key, ref)
        if (seen.type, seen.numel) != (ref.type, ref.numel):  # torch.save refuses to write this
            raise FormatError(f"storage {key!r} is used as both {seen.type.name}[{seen.numel}] "
                              f"and {ref.type.name}[{ref.numel}]")
        return seen

    obj = loads(data, path=path, allow={**ALLOW, **(allow or {})},
                persistent_load=persistent_load)
    return obj, TorchZipArchive(path, prefix, records)


def read(path) -> list[Tensor]:
    """The tensors of a flat state dict saved by torch.save, lazily, in file order."""
    return state_dict_tensors(*load_pickle(path))


def state_dict_tensors(obj, archive: TorchZipArchive) -> list[Tensor]:
    """The tensors of an unpickled flat state dict (name -> tensor), lazily, in dict order."""
    if not isinstance(obj, dict):
        raise FormatError(f"top-level object is a {type(obj).__name__}, expected a state dict "
                          f"(dict of name -> tensor)", path=archive.path)
    bad = [f"{brief(k)} ({type(v).__name__})" for k, v in obj.items()
           if not isinstance(k, str) or not isinstance(v, TensorRef)]
    if bad:
        raise FormatError(f"not a flat state dict of tensors: {len(bad)} entries are not "
                          f"tensors: {', '.join(bad[:10])}{' ...' if len(bad) > 10 else ''} "
                          f"(a nested training checkpoint needs its own importer)",
                          path=archive.path)
    return [archive.tensor(name, ref) for name, ref in obj.items()]


def storage_identity(x: Tensor | TensorRef) -> StorageIdentity | None:
    """(key, dtype, offset, shape, stride) of a TensorRef or of a Tensor read by this module
    (kept through Tensor.with_spec); None for a Tensor from anywhere else."""
    if isinstance(x, TensorRef):
        return x.identity
    loader = getattr(x, "_loader", None)
    return loader.ref.identity if isinstance(loader, _RecordLoader) else None


def shares_storage(a: Tensor | TensorRef, b: Tensor | TensorRef) -> bool:
    """True if both were read by this module and are the same bytes viewed the same way."""
    ident = storage_identity(a)
    return ident is not None and ident == storage_identity(b)


def find_aliases(tensors: Iterable[Tensor]) -> dict[str, str]:
    """alias name -> name of the first tensor with the same storage identity (tied weights)."""
    first: dict[StorageIdentity, str] = {}
    aliases = {}
    for t in tensors:
        ident = storage_identity(t)
        if ident is None:
            continue
        target = first.setdefault(ident, t.name)
        if target != t.name:
            aliases[t.name] = target
    return aliases


# ---------------------------------------------------------------------------------------
# Writing: the pickle is emitted opcode by opcode, since pickle.Pickler would need torch's
# classes to name torch's globals.

class _PickleEmitter:
    """Protocol 2 opcodes into a bytearray; globals are memoized like pickle.Pickler does."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")   # PROTO 2
        self._memo: dict[tuple[str, str], int] = {}

    def global_(self, module: str, name: str) -> None:
        idx = self._memo.get((module, name))
        if idx is not None:
            self.out += b"h" + bytes([idx]) if idx < 256 else b"j" + struct.pack("<I", idx)
            return
        self.out += b"c" + f"{module}\n{name}\n".encode("ascii")
        idx = self._memo[(module, name)] = len(self._memo)
        self.out += b"q" + bytes([idx]) if idx < 256 else b"r" + struct.pack("<I", idx)

    def str_(self, s: str) -> None:
        b = s.encode("utf-8", "surrogatepass")
        self.out += b"X" + struct.pack("<I", len(b)) + b          # BINUNICODE

    def int_(self, n: int) -> None:
        if 0 <= n < 0x100:
            self.out += b"K" + bytes([n])                          # BININT1
        elif 0 <= n < 0x10000:
            self.out += b"M" + struct.pack("<H", n)                # BININT2
        elif -0x80000000 <= n < 0x80000000:
            self.out += b"J" + struct.pack("<i", n)                # BININT
        else:
            b = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
            self.out += b"\x8a" + bytes([len(b)]) + b              # LONG1

    def tuple_(self, items: Sequence[int]) -> None:
        if not items:
            self.out += b")"                                       # EMPTY_TUPLE
            return
        if len(items) > 3:
            self.out += b"("                                       # MARK
        for n in items:
            self.int_(n)
        self.out += {1: b"\x85", 2: b"\x86", 3: b"\x87"}.get(len(items), b"t")

    def empty_ordered_dict(self) -> None:
        self.global_("collections", "OrderedDict")
        self.out += b")R"                                          # EMPTY_TUPLE REDUCE

    def tensor(self, spec: TensorSpec, key: str) -> None:
        """_rebuild_tensor_v2/v3(storage, 0, shape, strides, False, OrderedDict()[, dtype])."""
        typed = spec.dtype.torch_storage is not None
        self.global_("torch._utils", "_rebuild_tensor_v2" if typed else "_rebuild_tensor_v3")
        self.out += b"(("                                          # MARK (args), MARK (pid)
        self.str_("storage")
        if typed:
            self.global_("torch", spec.dtype.torch_storage)
        else:
            self.global_("torch.storage", "UntypedStorage")
        self.str_(key)
        self.str_("cpu")
        self.int_(spec.numel if typed else spec.nbytes)           # untyped storages count bytes
        self.out += b"tQ"                                          # TUPLE BINPERSID
        self.int_(0)
        self.tuple_(spec.shape)
        self.tuple_(_contiguous_strides(spec.shape))
        self.out += b"\x89"                                        # NEWFALSE: requires_grad
        self.empty_ordered_dict()                                  # backward_hooks
        if not typed:
            self.global_("torch", spec.dtype.torch)
        self.out += b"tR"                                          # TUPLE REDUCE

    def state_dict(self, entries: Sequence[tuple[TensorSpec, str]]) -> bytes:
        self.empty_ordered_dict()
        for i in range(0, len(entries), 1000):                     # pickle's batch size
            self.out += b"("
            for spec, key in entries[i:i + 1000]:
                self.str_(spec.name)
                self.tensor(spec, key)
            self.out += b"u"                                       # SETITEMS
        return bytes(self.out + b".")                              # STOP


def _archive_name(path: str) -> str:
    # As torch's basename(): drop directories and the last extension; "" -> "archive".
    base = os.path.basename(path)
    if "." in base:
        base = base[:base.rindex(".")]
    return base or "archive"


class TorchZipWriter:
    """Writes a torch.save-compatible zip: `write(name, array)` each spec, in any order and
    from several threads at once (the zip's layout is fixed up front: formats/zipwriter.py),
    then `close()`.

    `aliases` (alias -> target) become extra state-dict entries on the target's storage,
    as torch.save writes tied weights. An alias may also appear in `specs` to fix its place
    in the dict (it is never written); otherwise it follows all specs. The pickle is written
    first, and the records in the order of the specs whatever order they are written in.
    Use as a context manager: an exception inside the block removes the partial file.
    """

    concurrent = True       # write() may come from several threads at once

    def __init__(self, path, specs: Sequence[TensorSpec], aliases: Mapping[str, str] | None = None):
        self.path = os.fspath(path)
        aliases = dict(aliases or {})
        by_name: dict[str, TensorSpec] = {}
        problems = []
        for spec in specs:
            if spec.name in by_name:
                problems.append(f"{spec.name!r} is listed twice")
            by_name[spec.name] = spec
        self._pending = [s for s in specs if s.name not in aliases]
        keys = {s.name: str(i) for i, s in enumerate(self._pending)}
        for alias, target in aliases.items():
            if target not in keys:
                why = " (it is itself an alias)" if target in aliases else ""
                problems.append(f"alias {alias!r} -> {target!r}: the target is not a tensor "
                                f"to write{why}")
            elif alias in by_name and (by_name[alias].dtype, by_name[alias].shape) != \
                    (by_name[target].dtype, by_name[target].shape):
                problems.append(f"alias {alias!r} is {by_name[alias].dtype} "
                                f"{list(by_name[alias].shape)} but its target {target!r} is "
                                f"{by_name[target].dtype} {list(by_name[target].shape)}")
        if problems:
            raise UsageError(f"cannot write {self.path!r}: " + "; ".join(problems))

        # Dict order: specs as given (aliases in place), then aliases not among them.
        order = [s.name for s in specs] + [a for a in aliases if a not in by_name]
        entries = [(TensorSpec(name, by_name[aliases.get(name, name)].dtype,
                               by_name[aliases.get(name, name)].shape),
                    keys[aliases.get(name, name)]) for name in order]
        self._keys = keys
        self._written: set[str] = set()
        prefix = _archive_name(self.path)
        small = {"data.pkl": _PickleEmitter().state_dict(entries), ".format_version": b"1",
                 ".storage_alignment": str(ALIGNMENT).encode(), "byteorder": b"little"}
        tail = {"version": b"3\n"}
        layout = ([(f"{prefix}/{n}", len(d)) for n, d in small.items()]
                  + [(f"{prefix}/data/{keys[s.name]}", s.nbytes) for s in self._pending]
                  + [(f"{prefix}/{n}", len(d)) for n, d in tail.items()])
        self._index = {s.name: len(small) + i for i, s in enumerate(self._pending)}
        self._zip = None
        try:
            with write_errors(self.path):
                self._zip = LaidOutZip(self.path, layout, ALIGNMENT)
                for i, data in enumerate([*small.values()]):
                    self._zip.write(i, data)
                self._zip.write(len(layout) - 1, tail["version"])
        except BaseException:
            self.abort()
            raise

    def _declared(self, name: str, dtype, shape, what: str) -> None:
        """Refuse a write of an unknown name, a second write, or bytes of another dtype or shape."""
        if self._zip is None:
            raise UsageError(f"{self.path}: {what}({name!r}) after close()")
        if name not in self._index:
            raise UsageError(f"{self.path}: {what}({name!r}): not a tensor declared to be written")
        if name in self._written:
            raise UsageError(f"{self.path}: {what}({name!r}) twice")
        spec = self._pending[self._index[name] - 4]
        # a copy's IR dtype is compared as such, an array's by its carrier (ir/dtypes): bf16 or
        # fp8 bytes never need their numpy type (ml_dtypes' import costs ~0.7 s)
        same = dtype == spec.dtype if isinstance(dtype, DType) else spec.dtype.carried_by(dtype)
        if not same or tuple(shape) != spec.shape:
            raise UsageError(f"{self.path}: tensor {name!r} was declared {spec.dtype} "
                             f"{list(spec.shape)} but {what}() got {dtype} {list(shape)}")

    def write(self, name: str, array: np.ndarray) -> None:
        """Write one tensor's bytes, in any order, from any thread; refuses unknown names,
        second writes and mismatched arrays."""
        array = np.asarray(array)
        self._declared(name, array.dtype, array.shape, "write")
        with write_errors(self.path):
            self._zip.write(self._index[name], as_bytes(array).data)
        self._written.add(name)

    def copy(self, name: str, spec: TensorSpec, extent) -> None:
        """Write tensor `name` (of `spec`) by copying its bytes from where they lie (a
        safetensors file's range, an IR stream's pipe) a MiB at a time, its CRC-32 taken as
        they pass (read back from the archive for a pipe's), never from a tensor in memory."""
        self._declared(name, spec.dtype, spec.shape, "copy")
        with write_errors(self.path):
            self._zip.copy(self._index[name], extent, name)
        self._written.add(name)

    def close(self) -> None:
        """Finish the archive; refuses (and leaves it unfinished) if a tensor was never written."""
        if self._zip is None:
            return
        missing = [s.name for s in self._pending if s.name not in self._written]
        if missing:
            more = " ..." if len(missing) > 10 else ""
            raise UsageError(f"{self.path}: {len(missing)} tensors were never written: "
                             f"{', '.join(map(repr, missing[:10]))}{more}")
        with write_errors(self.path):
            self._zip.close()
        self._zip = None
        self._finished = True

    def abort(self) -> None:
        """Stop writing and remove the partial file."""
        if getattr(self, "_finished", False):
            return
        zf, self._zip = getattr(self, "_zip", None), None
        if zf is not None:
            zf.abort()
        elif os.path.exists(self.path):
            os.remove(self.path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:
            self.abort()
            raise
