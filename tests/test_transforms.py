"""The declared transforms between a view's stored tensors and the canonical ones undo each
other bit for bit: Split (a fused projection, a set of model-parallel shards) and its merge,
RotaryHalves (Meta's interleaved rotary rows, HF's halves) and its inverse. Arrays are random
bit patterns, so NaNs, infinities and -0.0 are among them."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from irconv.ir.layout import RotaryHalves, Split, even_split
from irconv.ir.tensor import from_array

DTYPES = [ml_dtypes.bfloat16, np.float16, np.float32]


def random_bits(shape, dtype, seed) -> np.ndarray:
    width = np.dtype(dtype).itemsize
    bits = np.random.default_rng(seed).integers(0, 1 << (8 * width), size=shape, dtype=np.uint64)
    return bits.astype({2: np.uint16, 4: np.uint32}[width]).view(dtype)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis,sizes", [(0, (32, 16, 16)), (0, (37, 37)), (1, (8, 8, 8, 8)), (-1, (5, 27))])
def test_split_then_merge_is_the_identity(dtype, axis, sizes):
    shape = [sum(sizes), 32] if axis == 0 else [6, sum(sizes)]
    whole = random_bits(shape, dtype, seed=len(sizes))
    split = Split(axis, sizes)
    parts = split.apply(from_array("w", whole), tuple(f"p{n}" for n in range(len(sizes))))
    arrays = [p.load() for p in parts]
    assert [a.shape[axis] for a in arrays] == list(sizes)
    assert same_bits(np.concatenate(arrays, axis=axis), whole)
    assert same_bits(split.merge(parts, "w").load(), whole)
    # ... and the other way: merging parts, then splitting, gives the parts back.
    again = split.apply(split.merge([from_array(f"p{n}", a) for n, a in enumerate(arrays)], "w"),
                        tuple(f"q{n}" for n in range(len(sizes))))
    assert all(same_bits(p.load(), a) for p, a in zip(again, arrays))


def test_split_parts_read_the_whole_tensor_once():
    whole = random_bits((12, 4), np.float32, seed=1)
    reads = []
    t = from_array("w", whole)
    counted = type(t)(t.spec, lambda: reads.append(1) or whole)
    parts = Split(0, (4, 4, 4)).apply(counted, ("a", "b", "c"))
    for p in parts:
        p.load()
    assert len(reads) == 1
    parts[0].load()                 # asked again after all were taken: read again
    assert len(reads) == 2


def test_split_refuses_extents_that_do_not_add_up():
    with pytest.raises(ValueError, match="does not split into"):
        Split(0, (4, 4)).apply(from_array("w", np.zeros((9, 2), np.float32)), ("a", "b"))
    with pytest.raises(ValueError, match="equal shards"):
        even_split(0, 9, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads,rows,cols", [(4, 32, 32), (2, 16, 32), (1, 8, 3)])
def test_rotary_permutation_is_invertible(dtype, heads, rows, cols):
    w = random_bits((rows, cols), dtype, seed=heads)
    forward = RotaryHalves(heads)
    moved = forward.apply(w)
    assert not same_bits(moved, w) or rows // heads == 2
    assert same_bits(forward.inverse().apply(moved), w)
    assert same_bits(forward.apply(forward.inverse().apply(w)), w)


def test_rotary_permutation_moves_interleaved_pairs_to_halves():
    """Row r of head h holds pair r // 2, component r % 2 in Meta's order; HF's puts component
    0 of every pair first."""
    heads, pairs = 2, 3
    rows = np.arange(heads * pairs * 2, dtype=np.float32)[:, None]
    got = RotaryHalves(heads).apply(rows)[:, 0]
    want = [h * 2 * pairs + 2 * p + c for h in range(heads) for c in range(2) for p in range(pairs)]
    assert got.tolist() == want
    with pytest.raises(ValueError, match="rotary pairs"):
        RotaryHalves(4).spec((12, 3), None)
