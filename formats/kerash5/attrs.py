"""Attributes: strings decoded and checked, Keras' split name lists read and written."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ...ir.errors import FormatError, UsageError
from .common import HDF5_OBJECT_HEADER_LIMIT, _one_line
from .guard import Scope, _H5_ERRORS


def _decode(item, what: str, path: str) -> str:
    if isinstance(item, (bytes, np.bytes_)):
        try:
            return bytes(item).decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{what} holds {bytes(item)[:40]!r}, which is not UTF-8",
                              path=path) from None
    if isinstance(item, str):
        try:   # h5py hands out undecodable names as str with surrogate escapes
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise FormatError(f"{what} holds {item[:40]!r}, which is not UTF-8", path=path) from None
        return str(item)
    raise FormatError(f"{what} holds {item!r} ({type(item).__name__}), expected a string",
                      path=path)


def _has_attr(obj, key: str) -> bool:
    try:
        return key in obj.attrs
    except _H5_ERRORS:
        return False


def _read_attr(obj, key, scope: Scope):
    """An attribute's value, its declared size checked against the file first (a damaged
    dataspace could otherwise ask for any amount of memory)."""
    what = f"attribute {key!r} of {obj.name!r}"
    try:
        aid = obj.attrs.get_id(key)
        count = math.prod(aid.shape or ())
        per = aid.dtype.itemsize
        if aid.dtype.kind == "O":       # variable-length: a 16-byte heap reference each in the file
            per = max(per, 16)
    except _H5_ERRORS as e:
        raise scope.fail(f"cannot read {what}: {_one_line(e)}") from None
    if count * per > scope.size:
        raise scope.fail(f"{what} declares {count:,} items ({count * per:,} bytes) but the file has "
                         f"{scope.size:,}: corrupt")
    try:
        return obj.attrs[key]
    except _H5_ERRORS as e:
        raise scope.fail(f"cannot read {what}: {_one_line(e)}") from None


def _string_list(value, what: str, path: str) -> list[str]:
    """A name list as tf-keras writes it: vlen str/bytes, fixed |S, a scalar, or the empty
    float64 array that `attrs[name] = []` makes."""
    arr = np.asarray(value)
    if arr.size == 0:
        return []
    if arr.dtype.kind not in "OSU":
        raise FormatError(f"{what} is a {arr.dtype} array, expected strings", path=path)
    return [_decode(x, what, path) for x in arr.reshape(-1)]


def _has_name_list(obj, name: str) -> bool:
    return _has_attr(obj, name) or _has_attr(obj, f"{name}0")


def load_name_list(obj, name: str, scope: Scope) -> list[str]:
    """`name`, or the chunks `name0`, `name1`, ... (tf-keras load_attributes_from_hdf5_group)."""
    where = f"{obj.name} attribute"
    if _has_attr(obj, name):
        return _string_list(_read_attr(obj, name, scope), f"{where} {name!r}", scope.label)
    out: list[str] = []
    i = 0
    while _has_attr(obj, f"{name}{i}"):
        key = f"{name}{i}"
        out += _string_list(_read_attr(obj, key, scope), f"{where} {key!r}", scope.label)
        i += 1
    return out


def _check_name_list(items: Sequence[str], what: str, path: str) -> list[bytes]:
    data = [s.encode("utf-8") for s in items]
    too_long = [s for s, b in zip(items, data) if len(b) > HDF5_OBJECT_HEADER_LIMIT]
    if too_long:
        raise UsageError(f"{what}: names longer than {HDF5_OBJECT_HEADER_LIMIT} bytes cannot be "
                         f"stored in an HDF5 attribute: {[s[:60] + '...' for s in too_long]!r}",
                         path=path)
    return data


def save_name_list(obj, name: str, data: list[bytes]) -> None:
    """Write a name list exactly as tf-keras save_attributes_to_hdf5_group does: a list of
    bytes (h5py stores variable-length ASCII) or, past the header limit, np.array_split
    chunks of the fixed-length |S array under `name0`, `name1`, ..."""
    if not data:
        obj.attrs[name] = np.asarray([])   # float64 (0,), as `attrs[name] = []` gives
        return
    arr = np.asarray(data)
    # Keras counts up from 1; any n below total/limit leaves some chunk over the limit, so
    # starting there finds the same (smallest) n without the quadratic walk.
    n = max(1, math.ceil(arr.nbytes / HDF5_OBJECT_HEADER_LIMIT))
    chunks = np.array_split(arr, n)
    while any(c.nbytes > HDF5_OBJECT_HEADER_LIMIT for c in chunks):
        n += 1
        chunks = np.array_split(arr, n)
    if n == 1:
        obj.attrs[name] = data
    else:
        for i, chunk in enumerate(chunks):
            obj.attrs[f"{name}{i}"] = chunk
