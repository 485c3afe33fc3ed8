"""One table of every dtype fact irconv needs, keyed by the safetensors name.

Inverse maps (numpy, torch storage and dtype names, TensorFlow DataType enum) are derived
from the table, never written twice. bf16 and fp8 come from ml_dtypes.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from .errors import DTypeError


@dataclass(frozen=True)
class DType:
    name: str                   # safetensors spelling: the IR's own key
    numpy: np.dtype             # little-endian numpy dtype (ml_dtypes for bf16/fp8)
    torch: str                  # torch dtype attribute name (torch.<torch>)
    torch_storage: str | None   # legacy storage class (torch.<storage>); None -> UntypedStorage (rebuild v3)
    tf: int | None              # tensorflow DataType enum value

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    def __repr__(self) -> str:
        return f"DType({self.name})"

    def __str__(self) -> str:
        return self.name


if sys.byteorder != "little":  # every format irconv writes is little-endian
    raise ImportError("irconv supports little-endian hosts only")


def _d(name, np_dtype, torch, storage, tf) -> DType:
    return DType(name, np.dtype(np_dtype), torch, storage, tf)


# Sources: FORMATS.md §9 (TF enum, torch storages), safetensors Dtype enum, ml_dtypes.
_TABLE = [
    _d("F64", np.float64, "float64", "DoubleStorage", 2),
    _d("F32", np.float32, "float32", "FloatStorage", 1),
    _d("F16", np.float16, "float16", "HalfStorage", 19),
    _d("BF16", ml_dtypes.bfloat16, "bfloat16", "BFloat16Storage", 14),
    _d("I64", np.int64, "int64", "LongStorage", 9),
    _d("I32", np.int32, "int32", "IntStorage", 3),
    _d("I16", np.int16, "int16", "ShortStorage", 5),
    _d("I8", np.int8, "int8", "CharStorage", 6),
    _d("U8", np.uint8, "uint8", "ByteStorage", 4),
    _d("BOOL", np.bool_, "bool", "BoolStorage", 10),
    # torch only has the new unsigned types through UntypedStorage (_rebuild_tensor_v3).
    _d("U16", np.uint16, "uint16", None, 17),
    _d("U32", np.uint32, "uint32", None, 22),
    _d("U64", np.uint64, "uint64", None, 23),
    # safetensors F8_E4M3 is torch.float8_e4m3fn (the FN variant), TF DT_FLOAT8_E4M3FN.
    _d("F8_E4M3", ml_dtypes.float8_e4m3fn, "float8_e4m3fn", None, 25),
    _d("F8_E5M2", ml_dtypes.float8_e5m2, "float8_e5m2", None, 24),
    _d("C64", np.complex64, "complex64", "ComplexFloatStorage", 8),
    _d("C128", np.complex128, "complex128", "ComplexDoubleStorage", 18),
]

DTYPES: dict[str, DType] = {d.name: d for d in _TABLE}
_BY_NUMPY = {d.numpy: d for d in _TABLE}
_BY_TORCH = {d.torch: d for d in _TABLE}
_BY_STORAGE = {d.torch_storage: d for d in _TABLE if d.torch_storage}
_BY_TF = {d.tf: d for d in _TABLE if d.tf is not None}


def _lookup(table: dict, key, what: str) -> DType:
    try:
        return table[key]
    except (KeyError, TypeError):
        known = ", ".join(sorted(str(k) for k in table))
        raise DTypeError(f"unsupported {what} {key!r}; irconv knows {known}") from None


def by_name(name: str) -> DType:
    return _lookup(DTYPES, name, "dtype")


def from_numpy(dt) -> DType:
    dt = np.dtype(dt)
    if dt.byteorder == ">":
        dt = dt.newbyteorder("<")
    return _lookup(_BY_NUMPY, dt, "numpy dtype")


def from_torch(name: str) -> DType:
    """`name` is the attribute of the torch module: 'float32', 'bfloat16', ..."""
    return _lookup(_BY_TORCH, name, "torch dtype")


def from_torch_storage(name: str) -> DType:
    return _lookup(_BY_STORAGE, name, "torch storage class")


def from_tf(enum: int) -> DType:
    return _lookup(_BY_TF, enum, "TensorFlow DataType")
