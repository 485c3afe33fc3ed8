"""The speed paths of issue 15 keep every byte: loading ahead on threads (ir/pipeline.py),
relayouts composed by name (ir/tensor.py), and the in-kernel copy of safetensors tensors."""
from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from irconv.formats import safetensors as st
from irconv.ir import FormatError
from irconv.ir.layout import Permute, relayout
from irconv.ir.pipeline import done, loaded
from irconv.ir.tensor import Tensor, TensorSpec, from_array
from irconv.ir.dtypes import DTYPES

from conftest import load_counting_reads, run_irconv


def _tensors(sizes, record=None, delay=0.0):
    out = []
    for n, size in enumerate(sizes):
        def load(n=n, size=size):
            if record is not None:
                record.append(("start", n, threading.get_ident()))
            time.sleep(delay)
            return np.full(size, n, np.uint8)
        out.append(Tensor(TensorSpec(f"t{n}", DTYPES["U8"], (size,)), load))
    return out


@pytest.mark.parametrize("jobs", [0, 1, 2, 4])
def test_loaded_yields_every_tensor_in_order_with_its_own_bytes(jobs):
    tensors = _tensors([10, 2000, 1, 0, 300] * 5)
    got = [(t.name, a.copy()) for t, a in loaded(tensors, jobs=jobs)]
    assert [n for n, _ in got] == [t.name for t in tensors]
    for n, (name, array) in enumerate(got):
        assert array.tolist() == [n] * len(array) and len(array) == tensors[n].nbytes


def test_loading_ahead_stays_within_the_byte_budget():
    sizes = [100] * 20
    live = []
    peak = [0]
    lock = threading.Lock()

    def track(n):
        with lock:
            live.append(n)
            peak[0] = max(peak[0], len(live))
        return np.zeros(100, np.uint8)

    tensors = [Tensor(TensorSpec(f"t{n}", DTYPES["U8"], (100,)), lambda n=n: track(n)) for n in range(20)]
    for t, _ in loaded(tensors, jobs=4, budget=300):
        time.sleep(0.005)               # a slow writer: loads would run far ahead unbounded
        with lock:
            live.remove(int(t.name[1:]))
    assert 1 <= peak[0] <= 3, peak      # 300 bytes of 100-byte tensors in flight at most


def test_ordered_sources_are_read_in_table_order_one_at_a_time():
    record = []
    tensors = _tensors([5] * 12, record, delay=0.001)
    assert [t.name for t, _ in loaded(tensors, jobs=4, ordered=True)] == [t.name for t in tensors]
    assert [n for _, n, _ in record] == list(range(12))


def test_an_ordered_sources_reads_take_turns_while_the_work_after_them_runs_beside():
    """An IR stream is read one tensor after the other; the relayout and write of a tensor
    read (here a 10 ms job) runs while the next one is read."""
    events, lock = [], threading.Lock()

    def note(*what):
        with lock:
            events.append((time.perf_counter(), *what))

    def read(n):
        note("read", n, "begin")
        time.sleep(0.002)
        note("read", n, "end")
        return np.full((3, 4), n, np.float32)

    roots = [Tensor(TensorSpec(f"t{n}", DTYPES["F32"], (3, 4), ("out", "in")), lambda n=n: read(n))
             for n in range(8)]
    tensors = [t.transformed(relayout(("out", "in"), ("in", "out"))) for t in roots]

    def work(t):
        array = t.load()
        note("work", int(array[0, 0]), "begin")
        assert array.shape == (4, 3)
        time.sleep(0.01)
        note("work", int(array[0, 0]), "end")

    assert [t.name for t in done(tensors, work, jobs=2, ordered=True)] == [t.name for t in tensors]
    reads = [(n, what) for _, kind, n, what in sorted(events) if kind == "read"]
    assert reads == [(n, what) for n in range(8) for what in ("begin", "end")]   # in turn, never two at once
    at = {(kind, n, what): when for when, kind, n, what in events}
    assert any(at[("work", n, "begin")] < at[("read", n + 1, "begin")] < at[("work", n, "end")]
               for n in range(7))


def test_a_failed_load_is_raised_at_its_tensor_and_later_loads_are_not_started():
    started = []

    def load(n):
        started.append(n)
        if n == 3:
            raise FormatError("bad bytes", path="x.safetensors")
        return np.zeros(4, np.uint8)

    tensors = [Tensor(TensorSpec(f"t{n}", DTYPES["U8"], (4,)), lambda n=n: load(n)) for n in range(50)]
    seen = []
    with pytest.raises(FormatError, match="bad bytes"):
        for t, _ in loaded(tensors, jobs=2, budget=8):
            seen.append(t.name)
    assert seen == ["t0", "t1", "t2"]
    assert max(started) < 10            # the rest were cancelled, not loaded


def test_relayouts_of_relayouts_compose_from_the_names():
    """tf2 (in, out) -> canonical (out, in) -> tf1 (in, out): no byte moves, and pt -> canonical
    -> tf2 transposes once."""
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = from_array("k", a, ("in", "out"))
    calls = []
    real = Permute.apply

    def counting(self, array):
        calls.append(self)
        return real(self, array)

    there = t.transformed(relayout(("in", "out"), ("out", "in")))
    back = there.transformed(relayout(("out", "in"), ("in", "out")))
    Permute.apply = counting
    try:
        assert back.load().tobytes() == a.tobytes()
        assert calls == []
        assert there.load().tobytes() == a.T.copy().tobytes()
        assert len(calls) == 1
    finally:
        Permute.apply = real
    # renamed axes start a new chain: the names no longer compose
    renamed = there.with_spec(axes=("rows", "hidden"))
    assert renamed.transformed(relayout(("rows", "hidden"), ("hidden", "rows"))).load().tobytes() == a.tobytes()


def _model_dir(tmp_path, tensors: dict) -> str:
    d = tmp_path / "src"
    d.mkdir()
    save_file(tensors, str(d / "model.safetensors"))
    (d / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 8, '
                                   '"hidden_size": 4, "num_hidden_layers": 0, "num_attention_heads": 1, '
                                   '"intermediate_size": 8, "max_position_embeddings": 6, "type_vocab_size": 2}')
    return d


def _bert0():
    rng = np.random.default_rng(0)
    return {"embeddings.word_embeddings.weight": rng.standard_normal((8, 4), np.float32),
            "embeddings.position_embeddings.weight": rng.standard_normal((6, 4), np.float32),
            "embeddings.token_type_embeddings.weight": rng.standard_normal((2, 4), np.float32),
            "embeddings.LayerNorm.weight": rng.standard_normal(4, np.float32),
            "embeddings.LayerNorm.bias": rng.standard_normal(4, np.float32),
            "pooler.dense.weight": rng.standard_normal((4, 4), np.float32),
            "pooler.dense.bias": rng.standard_normal(4, np.float32)}


@pytest.mark.parametrize("fallback", [False, True])
def test_safetensors_to_safetensors_copies_ranges_byte_for_byte(tmp_path, monkeypatch, fallback):
    """The in-kernel copy, and the pread/pwrite path taken where copy_file_range is refused
    (another file system: EXDEV), give the source's bytes."""
    src = _model_dir(tmp_path, _bert0())
    tensors = st.read(src / "model.safetensors")
    assert all(t.extent is not None for t in tensors)
    if fallback:
        def refuse(*a, **k):
            raise OSError(errno.EXDEV, "cross-device")
        monkeypatch.setattr(os, "copy_file_range", refuse)
    out = tmp_path / "out.safetensors"
    with st.SafetensorsWriter(out, [t.spec for t in tensors]) as w:
        for t in tensors:
            w.copy(t.name, t.spec, t.extent)
    got, want = load_file(str(out)), _bert0()
    assert got.keys() == want.keys()
    assert all(got[k].tobytes() == want[k].tobytes() for k in want)


def test_a_source_truncated_after_its_header_was_read_is_one_error(tmp_path):
    src = _model_dir(tmp_path, _bert0())
    path = src / "model.safetensors"
    tensors = st.read(path)
    os.truncate(path, path.stat().st_size - 20)
    out = tmp_path / "o.safetensors"
    with pytest.raises(FormatError, match="truncated") as info:
        with st.SafetensorsWriter(out, [t.spec for t in tensors]) as w:
            for t in tensors:
                w.copy(t.name, t.spec, t.extent)
    assert str(path) in str(info.value)
    assert not out.exists() and not list(tmp_path.glob("o.safetensors*"))


TINY_BERT = Path(__file__).resolve().parent.parent / "examples" / "tiny-bert"


@pytest.mark.parametrize("jobs", ["0", "1", "3"])
def test_convert_gives_the_same_bytes_whatever_the_jobs(tmp_path, jobs):
    out = tmp_path / f"o{jobs}"
    run_irconv("convert", TINY_BERT, out, "--to", "tf1", "--jobs", jobs, check=True)
    back = tmp_path / f"b{jobs}"
    run_irconv("convert", out, back, "--to", "pt", "--jobs", jobs, check=True)
    got, want = load_file(str(back / "model.safetensors")), load_file(str(TINY_BERT / "model.safetensors"))
    assert got.keys() == want.keys()
    assert all(got[k].tobytes() == want[k].tobytes() for k in got)


def test_jobs_must_be_a_small_count(tmp_path):
    proc = run_irconv("convert", tmp_path, tmp_path / "o", "--to", "pt", "--jobs", "many")
    assert proc.returncode == 2 and b"--jobs" in proc.stderr and b"Traceback" not in proc.stderr


@pytest.mark.parametrize("jobs", [0, 1, 3])
def test_done_runs_every_job_once_and_yields_in_order(jobs):
    ran = []
    lock = threading.Lock()

    def work(t):
        time.sleep(0.001 * (int(t.name[1:]) % 3))
        with lock:
            ran.append(t.name)

    tensors = _tensors([7, 1, 300, 0, 20] * 4)
    assert [t.name for t in done(tensors, work, jobs=jobs)] \
        == [t.name for t in tensors]
    assert sorted(ran) == sorted(t.name for t in tensors)


def test_safetensors_writes_from_several_threads_land_at_their_offsets(tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(1)
    arrays = {f"t{n}": rng.standard_normal((n % 7 + 1, 33), np.float32) for n in range(40)}
    out = tmp_path / "x.safetensors"
    with st.SafetensorsWriter(out, [from_array(k, v).spec for k, v in arrays.items()]) as w:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda kv: w.write(*kv), reversed(list(arrays.items()))))
    got = load_file(str(out))
    assert all(got[k].tobytes() == v.tobytes() for k, v in arrays.items())


@pytest.mark.parametrize("dtype,shape", [("F32", (300, 1031)), ("BF16", (129, 4099)), ("U8", (1025, 1030)),
                                         ("F64", (257, 520)), ("I16", (700, 769))])
def test_a_large_transpose_of_a_file_tensor_reads_it_strip_by_strip_bit_for_bit(tmp_path, dtype, shape):
    """pt (out, in) -> tf (in, out) of a safetensors tensor of over a MiB: read a strip of rows
    at a time into the transpose (no copy of the source in memory), same bytes as numpy's .T,
    and the load ahead budgets it as its result alone."""
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, int(np.prod(shape)) * DTYPES[dtype].itemsize, dtype=np.uint8)
    array = raw.view(DTYPES[dtype].numpy).reshape(shape)
    path = tmp_path / "m.safetensors"
    st.write(path, [from_array("w", array, ("out", "in"))])
    (t,) = st.read(path)
    moved = t.transformed(relayout(("out", "in"), ("in", "out")))
    got, reads = load_counting_reads(moved)
    assert got.dtype == array.dtype and got.shape == shape[::-1]
    assert got.tobytes() == np.ascontiguousarray(array.T).tobytes()
    assert len(reads) > 1 and max(reads) < array.nbytes and sum(reads) == array.nbytes
    strip = min(shape[0], 128) * shape[1] * array.itemsize
    assert moved.holds() == array.nbytes + strip and strip < array.nbytes
    small = from_array("w", array, ("out", "in")).transformed(relayout(("out", "in"), ("in", "out")))
    assert small.holds() == 2 * array.nbytes     # an array in memory: source and result both held


def test_a_file_cut_short_under_a_strip_read_is_a_one_line_error_naming_it(tmp_path):
    array = np.arange(512 * 1024, dtype=np.float32).reshape(512, 1024)
    path = tmp_path / "m.safetensors"
    st.write(path, [from_array("w", array, ("out", "in"))])
    (t,) = st.read(path)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 4096)
    moved = t.transformed(relayout(("out", "in"), ("in", "out")))
    with pytest.raises(FormatError, match=r"tensor 'w': read \d+ of 2097152 bytes .*truncated") as info:
        moved.load()
    assert info.value.path == str(path)


@pytest.mark.parametrize("dtype,shape", [("F32", (300, 1031)), ("BF16", (129, 4099)), ("F64", (257, 520))])
def test_a_large_transpose_of_a_bundle_tensor_reads_it_strip_by_strip_through_its_crc(tmp_path, dtype, shape):
    """tf (in, out) -> pt (out, in) of a TensorBundle entry: read a strip at a time into the
    transpose, the entry's crc32c taken as the strips pass: same bytes as numpy's .T, no copy of
    the source, and never a kernel copy (that would skip the crc: no extent)."""
    from irconv.formats import tensorbundle as tb
    rng = np.random.default_rng(8)
    raw = rng.integers(0, 256, int(np.prod(shape)) * DTYPES[dtype].itemsize, dtype=np.uint8)
    array = raw.view(DTYPES[dtype].numpy).reshape(shape)
    tb.write(tmp_path / "m", [from_array("w", array)])
    (t,) = tb.read(tmp_path / "m").tensors
    assert t.extent is None and t.strips is not None
    moved = t.with_spec(axes=("in", "out")).transformed(relayout(("in", "out"), ("out", "in")))
    got, reads = load_counting_reads(moved)
    assert got.tobytes() == np.ascontiguousarray(array.T).tobytes()
    assert len(reads) > 1 and max(reads) < array.nbytes and sum(reads) == array.nbytes
    assert moved.holds() == array.nbytes + min(shape[0], 128) * shape[1] * array.itemsize


@pytest.mark.parametrize("where", [0.1, 0.5, 0.999])
def test_a_flipped_bit_under_a_bundle_strip_read_is_the_crc_error_naming_the_shard(tmp_path, where):
    from irconv.formats import tensorbundle as tb
    array = np.arange(512 * 1024, dtype=np.float32).reshape(512, 1024)
    tb.write(tmp_path / "m", [from_array("w", array)])
    shard = tb.data_path(str(tmp_path / "m"), 0, 1)
    data = bytearray(Path(shard).read_bytes())
    data[int(len(data) * where)] ^= 0x04
    Path(shard).write_bytes(data)
    (t,) = tb.read(tmp_path / "m").tensors
    moved = t.with_spec(axes=("in", "out")).transformed(relayout(("in", "out"), ("out", "in")))
    with pytest.raises(FormatError, match="tensor 'w': checksum mismatch.*corrupted file") as info:
        moved.load()
    assert info.value.path == shard


def test_a_corrupted_tf1_checkpoint_converts_to_nothing(tmp_path):
    """Through the CLI: tf1 -> pt of a BERT whose large kernels are read strip by strip into
    their transposes gives back the source exactly; with a flipped bit in one it is one line
    naming the shard, exit 2, and no output."""
    import json
    from irconv.formats import tensorbundle as tb
    tiny = Path(__file__).parents[1] / "examples" / "tiny-bert"
    config = dict(json.loads((tiny / "config.json").read_text()), intermediate_size=8192)
    arrays = load_file(str(tiny / "model.safetensors"))
    rng = np.random.default_rng(2)
    for name in list(arrays):
        if ".intermediate.dense." in name or ".output.dense." in name and "attention" not in name:
            shape = tuple(8192 if n == 64 else n for n in arrays[name].shape)
            arrays[name] = rng.standard_normal(shape, np.float32)
    (tmp_path / "pt").mkdir()
    save_file(arrays, str(tmp_path / "pt" / "model.safetensors"))
    (tmp_path / "pt" / "config.json").write_text(json.dumps(config))
    run_irconv("convert", tmp_path / "pt", tmp_path / "tf1", "--to", "tf1", check=True)
    # intact, the strip reads give back the source bit for bit (read by safetensors itself)
    run_irconv("convert", tmp_path / "tf1", tmp_path / "back", "--to", "pt", check=True)
    back = load_file(str(tmp_path / "back" / "model.safetensors"))
    assert all(back[k].tobytes() == v.tobytes() for k, v in arrays.items())
    prefix = str(next((tmp_path / "tf1").glob("*.index")))[:-len(".index")]
    (t,) = [t for t in tb.read(prefix).tensors if t.name.endswith("layer_0/intermediate/dense/kernel")]
    assert t.nbytes >= 1 << 20
    shard = tb.data_path(prefix, 0, 1)
    data = bytearray(Path(shard).read_bytes())
    kernel = np.ascontiguousarray(arrays["bert.encoder.layer.0.intermediate.dense.weight"].T).tobytes()
    at = data.find(kernel)
    assert at >= 0
    data[at + len(kernel) // 2] ^= 0x01
    Path(shard).write_bytes(data)
    proc = run_irconv("convert", tmp_path / "tf1", tmp_path / "out", "--to", "pt")
    err = proc.stderr.decode().strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err
    assert "checksum mismatch" in err and Path(shard).name in err and t.name in err
    assert not (tmp_path / "out").exists()


def test_a_cast_holds_its_source_and_its_result():
    t = from_array("w", np.zeros((4, 8), np.float32), ("out", "in"))
    assert t.cast(DTYPES["F16"]).holds() == 128 + 64
    assert t.cast(DTYPES["F16"]).with_spec(axes=("a", "b")).holds() == 128 + 64


def test_two_of_the_largest_tensors_load_at_once():
    """The budget is twice the largest array: with two threads, two loads of that size overlap
    (a writer waiting on one keeps the other core busy), never three."""
    live, peak, lock = [0], [0], threading.Lock()

    def load(n):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.02)
        with lock:
            live[0] -= 1
        return np.zeros(MIB, np.uint8)
    MIB = 16 << 20
    tensors = [Tensor(TensorSpec(f"t{n}", DTYPES["U8"], (MIB,)), lambda n=n: load(n)) for n in range(8)]
    assert [t.name for t in done(tensors, lambda t: t.load(), jobs=3)] == [t.name for t in tensors]
    assert peak[0] == 2


def test_a_lazy_module_first_touched_by_many_threads_at_once_is_whole_for_each(tmp_path, monkeypatch):
    """The load-ahead threads may be the first to touch a lazy codec module (crc32c from the
    TensorBundle writer's threads): each waits for the one import, none sees it half made."""
    import sys
    from irconv.ir.lazy import lazy_module
    (tmp_path / "slow_codec_for_test.py").write_text("import time\ntime.sleep(0.2)\nDONE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_codec_for_test", raising=False)
    mod = lazy_module("slow_codec_for_test")
    got, start = [], threading.Barrier(8)

    def touch():
        start.wait()
        try:
            got.append(mod.DONE)
        except AttributeError as exc:
            got.append(exc)
    threads = [threading.Thread(target=touch) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert got == [42] * 8
    import slow_codec_for_test
    assert slow_codec_for_test is mod and mod.DONE == 42
    monkeypatch.delitem(sys.modules, "slow_codec_for_test")


def test_the_zip_crc32_is_zlibs_over_any_split(tmp_path):
    """ir/ranges.crc32 (ISA-L's when installed) gives zlib's CRC-32, run on over any pieces, and
    a .bin written with it passes Python's own zipfile check of every member."""
    import zipfile
    import zlib
    from irconv.ir.ranges import crc32
    data = np.random.default_rng(3).integers(0, 256, 3_000_001, dtype=np.uint8).tobytes()
    for cut in (0, 1, 4096, 1_500_000, len(data)):
        assert crc32(data[cut:], crc32(data[:cut])) == zlib.crc32(data)
    out = tmp_path / "bin"
    run_irconv("convert", TINY_BERT, out, "--to", "pt", "--bin", check=True)
    with zipfile.ZipFile(out / "pytorch_model.bin") as z:
        assert len(z.namelist()) > 10 and z.testzip() is None


@pytest.mark.parametrize("n,src_at,dst_at", [(0, 0, 0), (1, 3, 5), ((1 << 20) + 7, 4096, 21248), (3 << 20, 1, 0)])
def test_copy_range_copies_the_bytes_and_their_crc_at_any_offsets(tmp_path, n, src_at, dst_at):
    """A tensor's bytes copied file to file a MiB at a time (formats/partial.copy_range): the
    bytes land at the destination offset, untouched around them, and the running CRC given
    is the one zlib computes over them; a source that ends early is a FormatError naming it."""
    import zlib
    from irconv.formats.partial import copy_range
    rng = np.random.default_rng(n)
    data = rng.integers(0, 256, src_at + n + 11, dtype=np.uint8).tobytes()
    (tmp_path / "src").write_bytes(data)
    before = bytes(rng.integers(0, 256, dst_at + n + 13, dtype=np.uint8))
    (tmp_path / "dst").write_bytes(before)
    fd = os.open(tmp_path / "dst", os.O_RDWR)
    try:
        crc = copy_range(str(tmp_path / "src"), src_at, fd, dst_at, n, "t", zlib.crc32)
        assert copy_range(str(tmp_path / "src"), src_at, fd, dst_at, n, "t") is None
    finally:
        os.close(fd)
    fd = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(FormatError, match="ends .* bytes early") as info:
            copy_range(str(tmp_path / "src"), len(data) - 2, fd, 0, n + 3, "t")
        assert str(tmp_path / "src") in str(info.value)
    finally:
        os.close(fd)
    after = (tmp_path / "dst").read_bytes()
    assert after[dst_at:dst_at + n] == data[src_at:src_at + n]
    assert after[:dst_at] == before[:dst_at] and after[dst_at + n:] == before[dst_at + n:]
    assert crc == zlib.crc32(data[src_at:src_at + n])
