"""What the streaming writers in formats/ share (safetensors, Keras h5, TensorBundle): every
tensor is declared up front, then written in any order, one array in memory at a time, into
`.partial` files that only a close() finding every declared tensor written renames into place.
abort(), or leaving a `with` block by an exception, drops the unfinished files."""
from __future__ import annotations

import numpy as np

from ..ir.errors import DTypeError, FormatError, UsageError
from ..ir.tensor import TensorSpec


def check_array(path: str, name: str, spec: TensorSpec, array) -> np.ndarray:
    """`array` as a little-endian numpy array of exactly the declared dtype and shape."""
    array = np.asarray(array)
    if array.dtype.byteorder == ">":          # same values; every format here is little-endian
        array = array.astype(array.dtype.newbyteorder("<"))
    if array.dtype != spec.dtype.numpy:
        raise DTypeError(f"tensor {name!r}: array dtype {array.dtype} but declared "
                         f"{spec.dtype} ({spec.dtype.numpy}); convert it before writing", path=path)
    if tuple(array.shape) != spec.shape:
        raise UsageError(f"tensor {name!r}: array shape {list(array.shape)} but declared "
                         f"{list(spec.shape)}", path=path)
    return array


class PartialWriter:
    """The write()/close()/abort() bookkeeping. A subclass sets `self._specs` (name -> spec,
    in declaration order), calls `_accept` at the top of write() and `_wrote` once the bytes
    are down, `_missing_check` at the top of close(), and marks itself closed in close() and
    abort()."""

    path: str                                  # where errors point
    _specs: dict[str, TensorSpec]

    def __init__(self, path: str):
        self.path = path
        self._written: set[str] = set()
        self._closed = False

    def _accept(self, name: str, array) -> tuple[TensorSpec, np.ndarray]:
        if self._closed:
            raise UsageError(f"write({name!r}) after close", path=self.path)
        if name not in self._specs:
            raise UsageError(f"tensor {name!r} is not among the {len(self._specs)} declared "
                             "when the writer was made", path=self.path)
        if name in self._written:
            raise UsageError(f"tensor {name!r} written twice", path=self.path)
        spec = self._specs[name]
        return spec, check_array(self.path, name, spec, array)

    def _wrote(self, name: str) -> None:
        self._written.add(name)

    def _missing_check(self) -> None:
        missing = [n for n in self._specs if n not in self._written]
        if missing:
            self.abort()
            raise FormatError(f"{len(missing)} tensor(s) never written: {missing!r}", path=self.path)

    @property
    def names(self) -> list[str]:
        """Tensor names in declaration order (what write() expects)."""
        return list(self._specs)

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
