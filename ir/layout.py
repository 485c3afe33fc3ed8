"""Named-axis layouts and the invertible transforms between them.

A tensor's axes are named in storage order: ("out", "in") for a PyTorch Linear weight,
("in", "out") for a Keras kernel, ("out", "in", "h", "w") vs ("h", "w", "in", "out") for a
conv. Moving between two layouts is computed from the names (`relayout`), never written
per tensor. Transforms that are not permutations (squeezing a BN vector, reshaping heads)
are small objects with spec(), apply() and inverse(), declared once here and named by
the model descriptors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tensor import contiguous

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


# A 2-D transpose copied in square tiles that fit the cache runs ~3x faster than numpy's
# strided copy of the whole matrix (every Linear kernel between PyTorch and TF takes one).
TILE = 64
TILED_FROM = 1 << 20


def transpose_2d(array: np.ndarray) -> np.ndarray:
    """array.T as a new C-contiguous array, copied tile by tile."""
    rows, cols = array.shape
    out = np.empty((cols, rows), dtype=array.dtype)
    for i in range(0, rows, TILE):
        block = array[i:i + TILE]
        for j in range(0, cols, TILE):
            out[j:j + TILE, i:i + TILE] = block[:, j:j + TILE].T
    return out


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
