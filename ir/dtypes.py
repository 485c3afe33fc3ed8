"""One table of every dtype fact irconv needs, keyed by the safetensors name.

Inverse maps (numpy, torch storage and dtype names, TensorFlow DataType enum) are derived
from the table, never written twice. bf16 and fp8 come from ml_dtypes, imported when first needed.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from .errors import DTypeError


@dataclass(frozen=True)
class DType:
    name: str                   # safetensors spelling: the IR's own key
    numpy_name: str             # numpy's name, or ml_dtypes' ("ml_dtypes.bfloat16")
    itemsize: int
    torch: str                  # torch dtype attribute name (torch.<torch>)
    torch_storage: str | None   # legacy storage class (torch.<storage>); None -> UntypedStorage (rebuild v3)
    tf: int | None              # tensorflow DataType enum value
    _np: list = field(default_factory=list, repr=False, compare=False)

    @property
    def numpy(self) -> np.dtype:
        """The little-endian numpy dtype. bf16 and fp8 are ml_dtypes' types, imported only when
        one is first needed: the import costs a second, which a command that never meets those
        dtypes (--help, most conversions) should not pay."""
        if not self._np:
            module, _, attr = self.numpy_name.rpartition(".")
            if module:
                import importlib
                self._np.append(np.dtype(getattr(importlib.import_module(module), attr)))
            else:
                self._np.append(np.dtype(attr))
        return self._np[0]

    @property
    def native(self) -> bool:
        """Whether numpy knows this dtype itself (not through ml_dtypes)."""
        return "." not in self.numpy_name

    @property
    def carrier(self) -> np.dtype:
        """The numpy dtype irconv's own arrays of this dtype have while they are read, relaid
        out and written: numpy's own, or for bf16 and fp8 the unsigned int of their width. Those
        steps only move bits, and ml_dtypes' import (~0.7 s: its module init registers every
        cast) is then paid only where values are needed (a cast, a sum, verify). Tensor.load()
        gives the real type, Tensor.load_raw() the carrier."""
        return self.numpy if self.native else np.dtype(f"<u{self.itemsize}")

    def carried_by(self, dt) -> bool:
        """Whether an array of numpy dtype `dt` holds this dtype's values: its carrier, or
        ml_dtypes' own type (compared only once ml_dtypes is imported: before that no array of
        it can exist)."""
        return dt == self.carrier or (not self.native and "ml_dtypes" in sys.modules and dt == self.numpy)

    def __repr__(self) -> str:
        return f"DType({self.name})"

    def __str__(self) -> str:
        return self.name


if sys.byteorder != "little":  # every format irconv writes is little-endian
    raise ImportError("irconv supports little-endian hosts only")


def _d(name, np_name, itemsize, torch, storage, tf) -> DType:
    return DType(name, np_name, itemsize, torch, storage, tf)


# Sources: FORMATS.md §9 (TF enum, torch storages), safetensors Dtype enum, ml_dtypes.
_TABLE = [
    _d("F64", "float64", 8, "float64", "DoubleStorage", 2),
    _d("F32", "float32", 4, "float32", "FloatStorage", 1),
    _d("F16", "float16", 2, "float16", "HalfStorage", 19),
    _d("BF16", "ml_dtypes.bfloat16", 2, "bfloat16", "BFloat16Storage", 14),
    _d("I64", "int64", 8, "int64", "LongStorage", 9),
    _d("I32", "int32", 4, "int32", "IntStorage", 3),
    _d("I16", "int16", 2, "int16", "ShortStorage", 5),
    _d("I8", "int8", 1, "int8", "CharStorage", 6),
    _d("U8", "uint8", 1, "uint8", "ByteStorage", 4),
    _d("BOOL", "bool", 1, "bool", "BoolStorage", 10),
    # torch only has the new unsigned types through UntypedStorage (_rebuild_tensor_v3).
    _d("U16", "uint16", 2, "uint16", None, 17),
    _d("U32", "uint32", 4, "uint32", None, 22),
    _d("U64", "uint64", 8, "uint64", None, 23),
    # safetensors F8_E4M3 is torch.float8_e4m3fn (the FN variant), TF DT_FLOAT8_E4M3FN.
    _d("F8_E4M3", "ml_dtypes.float8_e4m3fn", 1, "float8_e4m3fn", None, 25),
    _d("F8_E5M2", "ml_dtypes.float8_e5m2", 1, "float8_e5m2", None, 24),
    _d("C64", "complex64", 8, "complex64", "ComplexFloatStorage", 8),
    _d("C128", "complex128", 16, "complex128", "ComplexDoubleStorage", 18),
]

DTYPES: dict[str, DType] = {d.name: d for d in _TABLE}
_BY_TORCH = {d.torch: d for d in _TABLE}
_BY_STORAGE = {d.torch_storage: d for d in _TABLE if d.torch_storage}
_BY_TF = {d.tf: d for d in _TABLE if d.tf is not None}
# numpy's own dtypes; ml_dtypes' join once a numpy dtype is not among them (a bf16 array
# exists only once ml_dtypes is imported, so looking it up imports nothing new).
_BY_NUMPY = {d.numpy: d for d in _TABLE if "." not in d.numpy_name}


def _numpy_table(dt) -> dict:
    if dt not in _BY_NUMPY and len(_BY_NUMPY) < len(_TABLE):
        _BY_NUMPY.update({d.numpy: d for d in _TABLE})
    return _BY_NUMPY


def _lookup(table: dict, key, what: str) -> DType:
    try:
        return table[key]
    except (KeyError, TypeError):
        known = ", ".join(sorted(str(k) for k in table))
        raise DTypeError(f"unsupported {what} {key!r}; irconv knows {known}") from None


# What people type for --cast (any case): fp16, float16, half, bf16, bfloat16 ...
_SPELLINGS = {"fp64": "F64", "float64": "F64", "double": "F64", "fp32": "F32", "float32": "F32",
              "float": "F32", "fp16": "F16", "float16": "F16", "half": "F16", "bf16": "BF16",
              "bfloat16": "BF16", "fp8": "F8_E4M3", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
              "int8": "I8", "uint8": "U8", "int32": "I32", "int64": "I64", "int16": "I16"}


def by_name(name: str) -> DType:
    if isinstance(name, str) and name not in DTYPES:
        name = _SPELLINGS.get(name.lower(), name.upper() if name.upper() in DTYPES else name)
    return _lookup(DTYPES, name, "dtype")


def from_numpy(dt) -> DType:
    dt = np.dtype(dt)
    if dt.byteorder == ">":
        dt = dt.newbyteorder("<")
    return _lookup(_numpy_table(dt), dt, "numpy dtype")


def from_torch(name: str) -> DType:
    """`name` is the attribute of the torch module: 'float32', 'bfloat16', ..."""
    return _lookup(_BY_TORCH, name, "torch dtype")


def from_torch_storage(name: str) -> DType:
    return _lookup(_BY_STORAGE, name, "torch storage class")


def from_tf(enum: int) -> DType:
    return _lookup(_BY_TF, enum, "TensorFlow DataType")
