"""The 2-D transpose of large relayouts: ir/_transpose.c (built at install) and numpy's strip
copy (ir/layout.py's path where it was not built) give numpy's .T bit for bit, and the C
function refuses, touching nothing, any buffer it would read or write past."""
import threading

import ml_dtypes
import numpy as np
import pytest

from irconv.ir import layout
from irconv.ir.layout import Permute, transpose_2d, transpose_2d_read

SHAPES = [(1, 1), (3, 5), (15, 3), (16, 4), (17, 5), (31, 9), (32, 8), (33, 7), (64, 65),
          (1000, 777), (2048, 600), (130, 4099), (141, 77), (269, 130), (1, 70000), (70000, 1)]
DTYPES = [np.float32, np.int32, np.float16, ml_dtypes.bfloat16, np.uint8, ml_dtypes.float8_e4m3fn,
          np.float64, np.int64, np.complex128, np.bool_]


@pytest.fixture(params=["c", "numpy"])
def path(request, monkeypatch):
    """Each test runs on both paths: the built module, and numpy's with it switched off."""
    if request.param == "numpy":
        monkeypatch.setattr(layout, "fast", None)
    else:
        assert layout.fast is not None, "ir/_transpose.c was not built: reinstall (pip install -e .)"
    return request.param


def _random(shape, dtype, seed=0):
    dtype = np.dtype(dtype)
    raw = np.random.default_rng(seed).integers(0, 256, int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8)
    if dtype == np.bool_:
        raw &= 1
    return raw.view(dtype).reshape(shape)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_the_transpose_is_numpys_bit_for_bit(path, shape, dtype):
    a = _random(shape, dtype)
    want = np.ascontiguousarray(a.T)
    got = transpose_2d(a)
    assert got.dtype == a.dtype and got.shape == want.shape and got.flags.c_contiguous
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16, np.uint8, np.float64], ids=lambda d: np.dtype(d).name)
def test_a_strided_or_unaligned_source_is_transposed_too(path, dtype):
    big = _random((300, 2 * 1031), dtype)
    strided = big[:, ::2]                         # not C-contiguous
    unaligned = np.frombuffer(big.tobytes()[1:1 + 300 * 1031 * big.itemsize], np.uint8)
    unaligned = unaligned.view(big.dtype).reshape(300, 1031) if big.itemsize == 1 else None
    for a in (strided, unaligned):
        if a is not None:
            assert transpose_2d(a).tobytes() == np.ascontiguousarray(a.T).tobytes()
    if big.itemsize > 1:      # a misaligned view of multi-byte elements: numpy's own unaligned loops
        raw = np.empty(300 * 1031 * big.itemsize + 1, np.uint8)[1:]
        raw[:] = np.frombuffer(big[:, :1031].tobytes(), np.uint8)
        a = raw.view(big.dtype).reshape(300, 1031)
        assert a.ctypes.data % a.itemsize
        assert transpose_2d(a).tobytes() == np.ascontiguousarray(big[:, :1031].T).tobytes()


@pytest.mark.parametrize("shape", [(1, 1), (127, 33), (128, 40), (129, 1031), (300, 4099)])
@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16, np.uint8, np.float64], ids=lambda d: np.dtype(d).name)
def test_the_strip_read_transpose_is_numpys_bit_for_bit(path, shape, dtype):
    a = _random(shape, dtype, seed=3)
    raw = a.tobytes()
    fills = []

    def fill(buffer, offset):
        fills.append((offset, len(buffer)))
        buffer[:] = np.frombuffer(raw[offset:offset + len(buffer)], np.uint8)
    got = transpose_2d_read(shape, a.dtype, fill)
    assert got.tobytes() == np.ascontiguousarray(a.T).tobytes()
    assert sum(n for _, n in fills) == len(raw) and len(fills) == -(-shape[0] // layout.FILE_STRIP)


def test_permute_takes_the_transpose_from_the_threshold_up(path):
    a = _random((512, 1024), np.float32)             # 2 MiB: above TILED_FROM
    got = Permute(("out", "in"), ("in", "out")).apply(a)
    assert got.tobytes() == np.ascontiguousarray(a.T).tobytes()


def test_two_threads_transpose_at_once_each_its_own(path):
    arrays = [_random((1024, 700), np.float32, seed=s) for s in range(6)]
    got = [None] * len(arrays)

    def work(i):
        got[i] = transpose_2d(arrays[i])
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(arrays))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(g.tobytes() == np.ascontiguousarray(a.T).tobytes() for g, a in zip(got, arrays))


def _module():
    if layout.fast is None:
        pytest.fail("ir/_transpose.c was not built: reinstall (pip install -e .)")
    return layout.fast


@pytest.mark.parametrize("args,message", [
    # src, dst elements; rows, cols, itemsize, dst_stride, dst_start
    ((12, 12, 3, 4, 4, 3, 0), None),
    ((11, 12, 3, 4, 4, 3, 0), "src is smaller"),
    ((12, 11, 3, 4, 4, 3, 0), "dst is too small"),
    ((12, 12, 3, 4, 4, 3, 1), "dst is too small"),
    ((12, 20, 3, 4, 4, 5, 5), "dst is too small"),      # 5 + 3 * 5 + 3 = 23 > 20
    ((12, 23, 3, 4, 4, 5, 5), None),
    ((12, 12, 3, 4, 4, 2, 0), "dst_stride >= rows"),
    ((12, 12, 3, 4, 3, 3, 0), "itemsize"),
    ((12, 12, -1, 4, 4, 3, 0), ">= 0"),
    ((12, 12, 3, 4, 4, 3, -1), ">= 0"),
    ((12, 12, 3, 4, 4, 3, 1 << 62), "dst is too small"),
    ((12, 12, 3, 1 << 61, 4, 3, 0), "src is smaller"),
    ((12, 12, 1 << 20, 4, 4, 1 << 20, 0), "src is smaller"),
    ((12, 12, 0, 4, 4, 0, 0), None),                    # nothing to move
])
def test_the_module_refuses_what_would_go_past_a_buffer(args, message):
    module = _module()
    n_src, n_dst, rows, cols, itemsize, stride, start = args
    src = np.arange(n_src, dtype=np.uint32)
    dst = np.full(n_dst, 7, dtype=np.uint32)
    before = dst.copy()
    if message is None:
        module.transpose(src, dst, rows, cols, itemsize, stride, start)
        if rows:
            view = dst[start:start + (cols - 1) * stride + rows]
            got = np.lib.stride_tricks.as_strided(view, (cols, rows), (stride * 4, 4))
            assert got.tobytes() == np.ascontiguousarray(src[:rows * cols].reshape(rows, cols).T).tobytes()
        else:
            assert dst.tobytes() == before.tobytes()
    else:
        with pytest.raises(ValueError, match=message):
            module.transpose(src, dst, rows, cols, itemsize, stride, start)
        assert dst.tobytes() == before.tobytes()


def test_the_module_refuses_overlapping_read_only_and_misaligned_buffers():
    module = _module()
    buf = np.arange(64, dtype=np.uint32)
    with pytest.raises(ValueError, match="overlap"):
        module.transpose(buf[:16], buf[8:24], 4, 4, 4, 4, 0)
    with pytest.raises(TypeError):
        module.transpose(buf[:16], bytes(64), 4, 4, 4, 4, 0)        # dst must be writable
    raw = np.zeros(80, np.uint8)
    with pytest.raises(ValueError, match="aligned"):
        module.transpose(raw[1:65], np.zeros(16, np.uint32), 4, 4, 4, 4, 0)
