"""Named-axis layouts and the invertible transforms between them.

A tensor's axes are named in storage order: ("out", "in") for a PyTorch Linear weight,
("in", "out") for a Keras kernel, ("out", "in", "h", "w") vs ("h", "w", "in", "out") for a
conv. Moving between two layouts is computed from the names (`relayout`), never written
per tensor. Transforms that are not permutations (squeezing a BN vector, reshaping heads)
are small objects with spec(), apply() and inverse(), declared once here and named by
the model descriptors; so is Split, between one stored tensor and the several it stacks.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace

import numpy as np

from . import buffers
from .tensor import Tensor, contiguous

Axes = tuple[str, ...]

# The name of a size-1 axis that one framework stores and another does not: HF TF's Conv1D
# and CTRL's logits bias are (1, n) where PyTorch keeps (n,). `relayout` drops it or adds it.
UNIT = "unit"


# Storage orders of the common modules, declared once: PyTorch keeps channels first (out, in,
# spatial...), TF/Keras channels last (spatial..., in, out). A depthwise conv with channel
# multiplier 1 (EfficientNet's) keeps one 'unit' axis on each side: PyTorch (in*1, 1, h, w),
# Keras (h, w, in, 1).
DENSE_PT, DENSE_TF = ("out", "in"), ("in", "out")
CONV1D_PT, CONV1D_TF = ("out", "in", "kernel"), ("kernel", "in", "out")
CONV2D_PT, CONV2D_TF = ("out", "in", "h", "w"), ("h", "w", "in", "out")
DEPTHWISE2D_PT, DEPTHWISE2D_TF = ("in", UNIT, "h", "w"), ("h", "w", "in", UNIT)


class Transform:
    """One tensor in, one tensor out; `inverse()` undoes it exactly (bit for bit)."""
    # Whether apply() copies the data (a permute does; a squeeze is a view of the same bytes).
    moves_bytes = True
    # Whether the transform only renames/reorders named axes (so a chain of them is fixed by
    # the first and last axis names: compose_relayouts).
    relayout = False

    def spec(self, shape: tuple[int, ...], axes: Axes | None) -> tuple[tuple[int, ...], Axes | None]:
        raise NotImplementedError

    def apply(self, array: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inverse(self) -> "Transform":
        raise NotImplementedError

    def then(self, other: "Transform") -> "Transform":
        return Compose((self, other))


@dataclass(frozen=True)
class Identity(Transform):
    moves_bytes = False
    relayout = True
    def spec(self, shape, axes):
        return shape, axes

    def apply(self, array):
        return array

    def inverse(self):
        return self

    def then(self, other):
        return other


# Large 2-D transposes (TILED_FROM bytes and up) are ir/_transpose.c's when it was built (4-5
# GB/s fp32, 3-4 bf16 here, the GIL released), else numpy's, copied in strips of 64 source rows
# (128 for 1-byte dtypes): each numpy call reads a few contiguous rows and writes 128-256 bytes of
# every output row, so both sides stay in the cache, and there are only rows/64 calls, so two
# threads transposing at once hardly wait for each other's GIL (fp32 (16384, 4096) 1.4 GB/s,
# against 0.4 for numpy's one strided copy; bf16 0.9). Both move the bytes as unsigned integers
# of the same width (numpy copies ml_dtypes' bf16/fp8 through slower loops) and give the same
# bits. `fast = None` makes the numpy path the only one (the tests compare the two).
TILED_FROM = 1 << 20
_UINTS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
try:
    from . import _transpose as fast
except ImportError:  # not built (no compiler where irconv was installed): numpy's path
    fast = None


def _moved(dtype: np.dtype) -> np.dtype:
    """The dtype a transpose moves `dtype`'s bytes as: the unsigned int of its width."""
    return np.dtype(_UINTS[dtype.itemsize]) if dtype.itemsize in _UINTS and dtype.kind != "O" else dtype


def _fast_for(*arrays: np.ndarray):
    """ir/_transpose if it was built and takes these C-contiguous, aligned arrays, else None."""
    module = fast
    if module is None:
        return None
    for a in arrays:
        if a.dtype.kind != "u" or not a.flags.c_contiguous or a.ctypes.data % a.itemsize:
            return None
    return module


def _transpose_into(src: np.ndarray, out: np.ndarray, start: int) -> None:
    """out[:, start:start + rows] = src.T for a (rows, cols) `src` and a (cols, n) `out`."""
    rows, cols = src.shape
    module = _fast_for(src, out)
    if module is not None:
        module.transpose(src, out, rows, cols, src.itemsize, out.shape[1], start)
        return
    strip = 128 if src.dtype.itemsize == 1 else 64
    for i in range(0, rows, strip):
        end = min(i + strip, rows)
        out[:, start + i:start + end] = src[i:end].T


def transpose_2d(array: np.ndarray) -> np.ndarray:
    """array.T as a new C-contiguous array."""
    dtype = array.dtype
    array = array.view(_moved(dtype))
    rows, cols = array.shape
    out = buffers.empty((cols, rows), array.dtype)
    _transpose_into(array, out, 0)      # (a strided source takes numpy's path: no copy of it)
    return out.view(dtype)


# Rows per strip when the source is read from a file strip by strip: a strip of a few hundred
# KiB stays in the core's cache between the read and the transpose. Measured here (numpy's
# path) on an (8192, 2048) kernel from the page cache: fp32 1.6 GB/s (64-row strips 1.46; a
# read of the whole tensor, then transpose_2d: 1.24), bf16 1.4 (1.07).
FILE_STRIP = 128


def transpose_2d_read(shape: tuple[int, int], dtype: np.dtype, fill) -> np.ndarray:
    """The transpose of a C-order (rows, cols) array whose bytes `fill(buffer, byte_offset)`
    reads (exactly len(buffer) bytes from that offset of the array's bytes, or raises),
    a strip of rows at a time into one small buffer: the source is never whole in memory."""
    dtype = np.dtype(dtype)
    moved = _moved(dtype)
    rows, cols = shape
    strip = max(1, min(rows, FILE_STRIP))
    buf = np.empty((strip, cols), dtype=moved)
    raw = buf.reshape(-1).view(np.uint8)
    row_bytes = cols * moved.itemsize
    out = buffers.empty((cols, rows), moved)
    for i in range(0, rows, strip):
        k = min(strip, rows - i)
        fill(raw[:k * row_bytes], i * row_bytes)
        _transpose_into(buf[:k], out, i)
    return out.view(dtype)


@dataclass(frozen=True)
class Permute(Transform):
    """Reorder axes from `src` to `dst` (same names, other order)."""
    src: Axes
    dst: Axes
    relayout = True

    def __post_init__(self):
        if sorted(self.src) != sorted(self.dst) or len(set(self.src)) != len(self.src):
            raise ValueError(f"cannot permute axes {self.src} into {self.dst}")

    @property
    def order(self) -> tuple[int, ...]:
        return tuple(self.src.index(a) for a in self.dst)

    def spec(self, shape, axes):
        if axes is not None and tuple(axes) != self.src:
            raise ValueError(f"expected axes {self.src}, got {axes}")
        return tuple(shape[i] for i in self.order), self.dst

    def apply(self, array):
        if self.order == (1, 0) and array.nbytes >= TILED_FROM:
            return transpose_2d(array)
        return contiguous(np.transpose(array, self.order))

    def reads_strips(self, shape, dtype) -> bool:
        """Whether apply_read() takes this permute of a tensor of `shape` (a large 2-D
        transpose: the strip-by-strip read is faster and holds no copy of the source)."""
        return self.order == (1, 0) and len(shape) == 2 and math.prod(shape) * dtype.itemsize >= TILED_FROM

    def read_buffer(self, shape, dtype) -> int:
        """Bytes apply_read() holds beside its result: one strip of rows."""
        return min(shape[0], FILE_STRIP) * shape[1] * dtype.itemsize

    def apply_read(self, shape, dtype, fill) -> np.ndarray:
        """apply() of the array whose bytes fill(buffer, offset) reads (transpose_2d_read)."""
        return transpose_2d_read(shape, dtype, fill)

    def inverse(self):
        return Permute(self.dst, self.src)


@dataclass(frozen=True)
class Squeeze(Transform):
    """Drop a size-1 axis named `axis` at `index` (Keras BN (1,1,1,C) vectors, say)."""
    index: int
    axis: str
    moves_bytes = False
    relayout = True

    def spec(self, shape, axes):
        if shape[self.index] != 1:
            raise ValueError(f"axis {self.axis!r} has size {shape[self.index]}, not 1")
        new_axes = None if axes is None else axes[:self.index] + axes[self.index + 1:]
        return shape[:self.index] + shape[self.index + 1:], new_axes

    def apply(self, array):
        return np.squeeze(array, axis=self.index)

    def inverse(self):
        return Unsqueeze(self.index, self.axis)


@dataclass(frozen=True)
class Unsqueeze(Transform):
    index: int
    axis: str
    moves_bytes = False
    relayout = True

    def spec(self, shape, axes):
        new_axes = None if axes is None else axes[:self.index] + (self.axis,) + axes[self.index:]
        return shape[:self.index] + (1,) + shape[self.index:], new_axes

    def apply(self, array):
        return np.expand_dims(array, axis=self.index)

    def inverse(self):
        return Squeeze(self.index, self.axis)


@dataclass(frozen=True)
class Compose(Transform):
    steps: tuple[Transform, ...]

    @property
    def moves_bytes(self):
        return any(s.moves_bytes for s in self.steps)

    @property
    def relayout(self):
        return all(s.relayout for s in self.steps)

    def spec(self, shape, axes):
        for step in self.steps:
            shape, axes = step.spec(shape, axes)
        return shape, axes

    def apply(self, array):
        for step in self.steps:
            array = step.apply(array)
        return array

    def inverse(self):
        return Compose(tuple(s.inverse() for s in reversed(self.steps)))


def relayout(src: Axes, dst: Axes) -> Transform:
    """The transform taking a tensor stored with axes `src` to axes `dst`, from the names:
    squeeze `src`'s UNIT axes, permute the rest into `dst`'s order, add `dst`'s UNIT axes."""
    src, dst = tuple(src), tuple(dst)
    if src == dst:
        return Identity()
    if UNIT not in src + dst:
        return Permute(src, dst)
    steps: list[Transform] = [Squeeze(i, UNIT) for i in reversed(range(len(src))) if src[i] == UNIT]
    bare_src, bare_dst = tuple(a for a in src if a != UNIT), tuple(a for a in dst if a != UNIT)
    if bare_src != bare_dst:
        steps.append(Permute(bare_src, bare_dst))
    steps += [Unsqueeze(i, UNIT) for i in range(len(dst)) if dst[i] == UNIT]
    return steps[0] if len(steps) == 1 else Compose(tuple(steps))


def compose_relayouts(root_axes: Axes | None, first: Transform, second: Transform,
                      axes: Axes | None) -> Transform | None:
    """`first` then `second` as one transform from `root_axes` to `axes`, when both only move
    named axes (then the names fix the result: two transposes that cancel are none); None
    when they do something else or the names do not say."""
    if not (first.relayout and second.relayout) or root_axes is None or axes is None:
        return None
    try:
        return relayout(root_axes, axes)
    except ValueError:
        return None


@dataclass(frozen=True)
class RotaryHalves(Transform):
    """The rows of a rotary q or k projection between Meta's layout, each head's rotated pairs
    interleaved (x0 y0 x1 y1 ...), and HF's, each head's pairs split in halves (x0 x1 ... y0 y1
    ...): the permutation convert_llama_weights_to_hf.py applies to wq and wk, with the head
    count of each (`heads`). `to_halves=False` is the way back."""
    heads: int
    to_halves: bool = True

    def spec(self, shape, axes):
        if not shape or self.heads <= 0 or shape[0] % (2 * self.heads):
            raise ValueError(f"{shape[0] if shape else 0} rows do not make {self.heads} heads of rotary pairs")
        return shape, axes

    def apply(self, array):
        pairs = array.shape[0] // self.heads // 2
        split = (self.heads, pairs, 2) if self.to_halves else (self.heads, 2, pairs)
        return contiguous(array.reshape(split + array.shape[1:]).swapaxes(1, 2)).reshape(array.shape)

    def inverse(self):
        return RotaryHalves(self.heads, not self.to_halves)


# --------------------------------------------------------------------------- one tensor <-> several


class _SharedLoad:
    """The whole tensor behind several parts, read once for all of them: held until every
    part has taken its slice, then released (a part asked for again reads it again)."""

    def __init__(self, tensor: Tensor, parts: int):
        self.tensor, self.parts = tensor, parts
        self.array, self.taken = None, set()
        self.lock = threading.Lock()

    def take(self, part: int, index: tuple) -> np.ndarray:
        with self.lock:
            if self.array is None or part in self.taken:
                self.array, self.taken = self.tensor.load_raw(), set()
            out = self.array[index].copy()
            self.taken.add(part)
            if len(self.taken) == self.parts:
                self.array = None
            return out


@dataclass(frozen=True)
class Split:
    """One tensor <-> the tensors stacked in it along axis `axis` (an index), `sizes` long
    each: a fused projection and its parts (phi3's qkv_proj holds q, k and v rows), a
    model-parallel tensor and its shards. `apply` splits, `merge` is its inverse; both lazy."""
    axis: int
    sizes: tuple[int, ...]

    def check(self, shape: tuple[int, ...], what: str) -> None:
        if not -len(shape) <= self.axis < len(shape) or shape[self.axis] != sum(self.sizes) \
                or any(n <= 0 for n in self.sizes):
            raise ValueError(f"{what} has shape {list(shape)}, which does not split into {list(self.sizes)} "
                             f"along axis {self.axis}")

    def apply(self, whole: Tensor, names: tuple[str, ...]) -> list[Tensor]:
        self.check(whole.shape, repr(whole.source))
        shared = _SharedLoad(whole, len(self.sizes))
        out, start = [], 0
        for part, (name, size) in enumerate(zip(names, self.sizes)):
            index = (slice(None),) * (self.axis % len(whole.shape)) + (slice(start, start + size),)
            shape = tuple(size if n == self.axis % len(whole.shape) else d for n, d in enumerate(whole.shape))
            spec = replace(whole.spec, name=name, shape=shape)
            out.append(Tensor(spec, lambda part=part, index=index: shared.take(part, index), whole.source))
            start += size
        return out

    def merge(self, parts: list[Tensor], name: str) -> Tensor:
        first = parts[0]
        for t in parts:
            if t.dtype != first.dtype or len(t.shape) != len(first.shape) or any(
                    a != b for n, (a, b) in enumerate(zip(t.shape, first.shape)) if n != self.axis % len(first.shape)):
                raise ValueError(f"{t.source!r} ({t.dtype} {list(t.shape)}) does not stack with "
                                 f"{first.source!r} ({first.dtype} {list(first.shape)}) along axis {self.axis}")
        sizes = tuple(t.shape[self.axis] for t in parts)
        if sizes != self.sizes:
            raise ValueError(f"parts of {name!r} are {list(sizes)} long along axis {self.axis}, "
                             f"expected {list(self.sizes)}")
        shape = tuple(sum(sizes) if n == self.axis % len(first.shape) else d for n, d in enumerate(first.shape))
        spec = replace(first.spec, name=name, shape=shape)
        return Tensor(spec, lambda: np.concatenate([t.load_raw() for t in parts], axis=self.axis), first.source)


def even_split(axis: int, extent: int, parts: int) -> Split:
    """`parts` equal slices of `extent` (model-parallel shards); ValueError if it does not divide."""
    if parts <= 0 or extent % parts:
        raise ValueError(f"{extent} does not split into {parts} equal shards")
    return Split(axis, (extent // parts,) * parts)
