"""Lazy tensors: a TensorSpec plus a loader that reads the bytes only when asked.

Nothing is read until an exporter asks for a tensor, and a tensor's array is released as
soon as it is written, so peak memory is bounded by the largest tensor, not the model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, ContextManager

import numpy as np

from . import buffers
from .dtypes import DType
from .errors import FormatError
from .stages import stage


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: DType
    shape: tuple[int, ...]
    axes: tuple[str, ...] | None = None   # named axes in storage order; None = unknown

    def __post_init__(self):
        if self.axes is not None and len(self.axes) != len(self.shape):
            raise ValueError(f"tensor {self.name!r}: axes {self.axes} do not fit shape {self.shape}")

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


Loader = Callable[[], np.ndarray]


def contiguous(array: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping 0-d arrays 0-d (np.ascontiguousarray makes them 1-d)."""
    if array.flags.c_contiguous:
        return array
    out = buffers.empty(array.shape, array.dtype)
    np.copyto(out, array)
    return out


class Tensor:
    """A spec and a way to get its array. `source` is the name it had in the file read."""

    __slots__ = ("spec", "_loader", "source", "_chain", "extent", "strips", "ordered_strips", "_holds")

    def __init__(self, spec: TensorSpec, loader: Loader, source: str | None = None):
        self.spec = spec
        self._loader = loader
        self.source = source if source is not None else spec.name
        # (root tensor, transform) when this is a relayout of `root`: a relayout of a relayout
        # is then one transform from the root's layout, not two (tf2 -> canonical -> tf1
        # moves no byte; pt -> canonical -> tf2 transposes once).
        self._chain = None
        # (path, offset) when the tensor's bytes lie as stored, contiguous, in a file (a
        # safetensors tensor): a writer that stores them the same way copies the range file to
        # file (formats/partial.copy_range), holding no array of the tensor.
        self.extent: tuple[str, int] | None = None
        # For bytes that lie contiguous in a file behind a check of their own (a TensorBundle
        # entry's crc32c), which a copy of the range would skip: a callable giving a context manager
        # that yields fill(buffer, at), to be called over the bytes in order, and checks them
        # on exit. A large relayout reads them strip by strip through it (ir/layout).
        self.strips: Callable[[], ContextManager[Callable]] | None = None
        # The same for bytes of a source read in order (an IR stream): only taken when the
        # pipeline asks, in the source's turn (read_in_turn), as it serialises the relayout.
        self.ordered_strips: Callable[[], ContextManager[Callable]] | None = None
        # Bytes load() holds at most at once, when more than the array (a cast's source too).
        self._holds: int | None = None

    name = property(lambda self: self.spec.name)
    dtype = property(lambda self: self.spec.dtype)
    shape = property(lambda self: self.spec.shape)
    axes = property(lambda self: self.spec.axes)
    nbytes = property(lambda self: self.spec.nbytes)

    def load(self) -> np.ndarray:
        """The array, C-contiguous, of exactly the spec's dtype (bf16 and fp8 as ml_dtypes'
        types) and shape."""
        arr = self.load_raw()
        return arr if self.spec.dtype.native else arr.view(self.spec.dtype.numpy)

    def load_raw(self) -> np.ndarray:
        """load()'s bits, C-contiguous, as the dtype's carrier (ir/dtypes: bf16 and fp8 as the
        unsigned int of their width): what the steps that only move bytes take (relayouts,
        writers, the pipeline), so that they never import ml_dtypes."""
        arr = self._loader()
        dtype = self.spec.dtype
        if not dtype.carried_by(arr.dtype) or tuple(arr.shape) != self.spec.shape:
            raise FormatError(
                f"tensor {self.source!r} promised {self.spec.dtype} {list(self.spec.shape)} "
                f"but holds {arr.dtype} {list(arr.shape)}")
        return contiguous(arr if arr.dtype == dtype.carrier else arr.view(dtype.carrier))

    def holds(self) -> int:
        """Bytes held at most at once while load() runs: the array, and the source of a
        relayout or cast as well while it is copied (a relayout read strip by strip from its
        file holds the result and one strip). ir/pipeline budgets what loads ahead by it."""
        if self._chain is not None:
            root, step = self._chain
            if _reads_strips(root, step):        # the result and one strip of the source
                return self.nbytes + step.read_buffer(root.spec.shape, root.spec.dtype.carrier)
            if step.moves_bytes:
                return root.holds() + self.nbytes
            return max(self.nbytes, root.holds())
        return self._holds if self._holds is not None else self.nbytes

    def with_spec(self, **changes) -> "Tensor":
        """Same bytes under another name or axes (no data change: shape and dtype stay)."""
        out = Tensor(replace(self.spec, **changes), self._loader, self.source)
        if "axes" not in changes:      # renamed axes no longer compose by name
            out._chain = self._chain
        out.extent, out.strips, out.ordered_strips = self.extent, self.strips, self.ordered_strips
        out._holds = self.holds() if out._chain is None else None
        return out

    def cast(self, dtype: DType) -> "Tensor":
        """A lazy copy converted to `dtype` (only ever on request: --cast)."""
        def load() -> np.ndarray:
            array = self.load()
            with stage("cast", array.nbytes):
                return array.astype(dtype.numpy)
        out = Tensor(replace(self.spec, dtype=dtype), load, self.source)
        out._holds = self.holds() + out.nbytes
        return out

    def transformed(self, transform) -> "Tensor":
        """A lazy view of this tensor through an ir.layout transform. Relayouts (permutes,
        squeezes) of a relayout are composed from the names into one step from the root."""
        from .layout import compose_relayouts
        shape, axes = transform.spec(self.spec.shape, self.spec.axes)
        spec = replace(self.spec, shape=tuple(shape), axes=axes)
        root, step = self, transform
        if self._chain is not None:
            combined = compose_relayouts(self._chain[0].spec.axes, self._chain[1], transform, axes)
            if combined is not None:
                root, step = self._chain[0], combined
        out = Tensor(spec, _relaid(root, step), self.source)
        out._chain = (root, step)
        if not step.moves_bytes:       # a squeeze or an identity: the same bytes in the same order
            out.extent, out.strips, out.ordered_strips = root.extent, root.strips, root.ordered_strips
        return out

    def prefetched(self) -> "Tensor":
        """This tensor with the part of load() that reads its source done now, and what
        follows (a relayout) left for load(). A source that must be read in order (an IR
        stream) is read this way, one tensor after the other, while the relayouts and writes
        of the ones before run on other threads (ir/pipeline.py)."""
        if self._chain is None:
            array = self.load_raw()
            return Tensor(self.spec, lambda: array, self.source)
        root, step = self._chain
        array = root.load_raw()
        read = Tensor(root.spec, lambda: array, root.source)
        return Tensor(self.spec, _relaid(read, step), self.source)

    def in_turn_holds(self) -> int | None:
        """What read_in_turn() holds (the result and one strip of the source), or None where it
        does not apply: a large 2-D relayout of a tensor of a source read in order."""
        if self._chain is None:
            return None
        root, step = self._chain
        if root.ordered_strips is None or not _strip_relayout(root, step):
            return None
        return self.nbytes + step.read_buffer(root.spec.shape, root.spec.dtype.carrier)

    def read_in_turn(self) -> "Tensor":
        """prefetched(), but with the source read strip by strip straight into the relayout,
        all of it done now: for the largest tensors of a source read in order, whose source and
        result held at once would pass the memory bound (ir/pipeline.py decides)."""
        root, step = self._chain
        array = _read_into(root, step, root.ordered_strips())
        return Tensor(self.spec, lambda: array, self.source)

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, {self.dtype}, {list(self.shape)}, axes={self.axes})"


def _reads_strips(root: Tensor, transform) -> bool:
    """Whether the relayout reads its source's file itself, strip by strip (Permute.apply_read):
    a large 2-D transpose of bytes lying as stored in a file."""
    return (isinstance(root.extent, tuple) or root.strips is not None) and _strip_relayout(root, transform)


def _strip_relayout(root: Tensor, transform) -> bool:
    """Whether `transform` of `root` is one a strip-by-strip read can feed (apply_read)."""
    reads = getattr(transform, "reads_strips", None)
    return (reads is not None and root.spec.dtype.name != "BOOL"     # (a BOOL load checks its bytes)
            and reads(root.spec.shape, root.spec.dtype.carrier))


def _read_into(root: Tensor, transform, reader) -> np.ndarray:
    """transform of root, its bytes read strip by strip through `reader` (a context manager
    yielding fill; its exit checks them, so the result is returned only once they passed)."""
    with reader as fill, stage("relayout", root.spec.nbytes):
        return transform.apply_read(root.spec.shape, root.spec.dtype.carrier, fill)


def _relaid(root: Tensor, transform) -> Loader:
    def load() -> np.ndarray:
        if _reads_strips(root, transform):
            # bytes lying as stored in a file: read strip by strip into the relayout itself
            # (through their check, if they have one: the result is returned only once it passed)
            from .ranges import range_reader
            return _read_into(root, transform, root.strips() if root.strips is not None
                              else range_reader(root.extent, root.spec.nbytes, root.source))
        array = root.load_raw()
        if transform.moves_bytes:
            with stage("relayout", array.nbytes):
                return transform.apply(array)
        return transform.apply(array)
    return load


def read_once_for(t: Tensor, loads: int) -> Tensor:
    """t under a loader that reads it once for `loads` loads, the array kept until the last:
    a source read in order (an IR stream) whose tensor several stored names need as tensors of
    their own (a copy in another layout, or one the consumer will not re-tie), taken one right
    after the other. None of them is a kernel copy (no extent): the bytes come from the one read."""
    import threading
    lock, state = threading.Lock(), {"array": None, "left": loads}

    def load() -> np.ndarray:
        with lock:
            array = state["array"]
            if array is None:
                array = t.load_raw()
            state["left"] -= 1
            state["array"] = array if state["left"] > 0 else None
            return array
    out = Tensor(t.spec, load, t.source)
    out._holds = t.holds()
    return out


def from_array(name: str, array: np.ndarray, axes=None, dtype: DType | None = None) -> Tensor:
    """A tensor of `array`, of its dtype, or of `dtype` when the array is that dtype's carrier."""
    from .dtypes import from_numpy
    spec = TensorSpec(name, dtype or from_numpy(array.dtype), tuple(array.shape), axes)
    return Tensor(spec, lambda: array)


def as_bytes(array: np.ndarray) -> np.ndarray:
    """The array's bytes as a flat uint8 array (no copy when C-contiguous). Works for
    ml_dtypes arrays, which do not export the buffer protocol."""
    return contiguous(array).reshape(-1).view(np.uint8)
