"""The IR stream: bit-exact for any names, dtypes and shapes; corruption is always refused."""
from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from irconv.ir import Checkpoint, IrconvError, StreamError, from_array
from irconv.ir.dtypes import DTYPES
from irconv.ir.stream import MAGIC, read_stream, write_stream

DTYPE_NAMES = sorted(DTYPES)
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
shapes = st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple)


@st.composite
def arrays(draw):
    dtype = DTYPES[draw(st.sampled_from(DTYPE_NAMES))]
    shape = draw(shapes)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = draw(st.binary(min_size=n, max_size=n))
    arr = np.frombuffer(raw, dtype=np.uint8).view(dtype.numpy).reshape(shape) if n else \
        np.zeros(shape, dtype.numpy)
    return arr


@st.composite
def checkpoints(draw):
    keys = draw(st.lists(names, min_size=0, max_size=6, unique=True))
    tensors = {}
    for k in keys:
        arr = draw(arrays())
        axes = draw(st.one_of(st.none(), st.just(tuple(f"a{i}" for i in range(arr.ndim)))))
        tensors[k] = from_array(k, arr, axes)
    config = draw(st.dictionaries(st.text(max_size=8), st.one_of(st.integers(-2**63, 2**63 - 1), st.text(max_size=8),
                                                                 st.booleans(), st.none()), max_size=4))
    aliases = {f"alias-{k}": k for k in keys[:1]}
    return Checkpoint("bert", config, tensors, aliases, {"format": "test"})


def to_bytes(ckpt, chunk_size):
    buf = io.BytesIO()
    write_stream(ckpt, buf, chunk_size=chunk_size)
    return buf.getvalue()


def read_all(raw: bytes):
    ckpt = read_stream(io.BytesIO(raw))
    arrays = {name: t.load() for name, t in ckpt.tensors.items()}
    ckpt.close()
    return ckpt, arrays


def byte_view(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8).tobytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(checkpoints(), st.integers(1, 64))
def test_round_trip_is_bit_exact(ckpt, chunk_size):
    got, arrays = read_all(to_bytes(ckpt, chunk_size))
    assert got.family == ckpt.family and got.config == ckpt.config and got.aliases == ckpt.aliases
    assert list(got.tensors) == list(ckpt.tensors)
    for name, t in ckpt.tensors.items():
        ref = t.load()
        g = got.tensors[name]
        assert g.spec == t.spec
        assert arrays[name].dtype == ref.dtype and arrays[name].shape == ref.shape
        assert byte_view(arrays[name]) == byte_view(ref)     # NaN, -0.0, bf16 bit patterns survive


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(checkpoints(), st.integers(1, 16), st.data())
def test_truncation_is_refused(ckpt, chunk_size, data):
    raw = to_bytes(ckpt, chunk_size)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(StreamError):
        read_all(raw[:cut])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(checkpoints(), st.integers(1, 16), st.data())
def test_any_bit_flip_is_refused(ckpt, chunk_size, data):
    raw = bytearray(to_bytes(ckpt, chunk_size))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(IrconvError):
        read_all(bytes(raw))


def test_trailing_garbage_is_refused():
    ckpt = Checkpoint("bert", {}, {"a": from_array("a", np.arange(3, dtype=np.int64))})
    with pytest.raises(StreamError, match="after the IR stream trailer"):
        read_all(to_bytes(ckpt, 8) + b"\x00")


def test_not_a_stream_and_future_version():
    with pytest.raises(StreamError, match="not an irconv IR stream"):
        read_all(b"PK\x03\x04 something else")
    with pytest.raises(StreamError, match="use the same irconv version"):
        read_all(MAGIC[:6] + b"\x00\x09" + b"rest")


def test_tensors_must_be_taken_in_order():
    arrs = {k: from_array(k, np.full(4, i, np.float32)) for i, k in enumerate("abc")}
    ckpt = read_stream(io.BytesIO(to_bytes(Checkpoint("bert", {}, arrs), 4)))
    assert ckpt.tensors["b"].load().tolist() == [1, 1, 1, 1]     # skipping "a" is allowed
    with pytest.raises(IrconvError, match="in table order"):
        ckpt.tensors["a"].load()
    ckpt.close()
