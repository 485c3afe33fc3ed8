"""The IR stream: bit-exact for any names, dtypes and shapes; corruption is always refused."""
from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from irconv.ir import Checkpoint, IrconvError, StreamError, from_array
from irconv.ir.dtypes import DTYPES
from irconv.ir.stream import MAGIC, read_stream, write_stream
from irconv.models.engine import _COUNT_FIELD

DTYPE_NAMES = sorted(DTYPES)
# Any text, under "t/" so that no name is one of the family's own (a stream's tensor named as
# the family's must have its axes, and the config must agree with it: tested below).
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40).map("t/".__add__)
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
    # Keys that are not count fields (num_*, *_size ...), which must be counts in any config.
    config = draw(st.dictionaries(st.text(max_size=8).filter(lambda k: not _COUNT_FIELD.match(k)), st.one_of(st.integers(-2**63, 2**63 - 1), st.text(max_size=8),
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


# ---- hostile headers (issue 12): valid crc, inconsistent content

import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from attacks.streamframes import reframe as _reframe  # noqa: E402
from irconv.ir import FormatError  # noqa: E402


def _base(n=2):
    arrs = {f"t{i}": from_array(f"t{i}", np.full((2, 3), i, np.float32)) for i in range(n)}
    return Checkpoint("bert", {"model_type": "bert"}, arrs, {}, {"format": "test"})


@pytest.mark.parametrize("edit,match", [
    (lambda h: h["tensors"][1].__setitem__(0, "t0"), "'t0' is named 2 times"),
    (lambda h: h.update(aliases={"tied": "nope"}), "'tied' names tensor 'nope', which is not in"),
    (lambda h: h.update(aliases={"t0": "t0"}), "tied to itself"),
    (lambda h: h.update(aliases={"t0": "t1"}), "both a tensor"),
    (lambda h: h.update(config=[1]), "'config' is a list, expected a dict"),
    (lambda h: h.update(source="x"), "'source' is a str"),
    (lambda h: h["config"].update(model_type=b"bert"), r"\['model_type'\] holds bytes"),
    (lambda h: h["config"].update({3: 1}), "key 3 that is not a string"),
    (lambda h: h.update(family="nope"), "unknown model family 'nope'"),
    (lambda h: h["tensors"][0].__setitem__(1, "F12"), "tensor 't0': unsupported dtype 'F12'"),
    (lambda h: h["tensors"][0].__setitem__(2, [-2, -3]), "tensor 't0': shape .* non-negative"),
    (lambda h: h["tensors"][0].__setitem__(3, [1, 2]), "tensor 't0': axes"),
    (lambda h: h["tensors"][0].__setitem__(4, 7), "tensor 't0': table says 7 bytes"),
    (lambda h: h["tensors"].__setitem__(0, ["t0"]), "row 0 is not"),
    (lambda h: h.pop("chunk_size"), "lacks chunk_size"),
])
def test_inconsistent_header_is_refused_naming_the_stream(edit, match):
    raw = _reframe(to_bytes(_base(), 8), edit)
    with pytest.raises(FormatError, match=match) as info:
        read_all(raw)
    assert str(info.value).startswith("<stdin>: ")


def test_nesting_is_bounded():
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(StreamError, match="nests deeper"):
        read_all(_reframe(to_bytes(_base(), 8), lambda h: h["config"].update(x=deep)))


def test_declared_size_past_the_file_is_refused_before_allocation(tmp_path):
    def huge(h):
        h["tensors"][0][2:5] = [[1 << 30, 1 << 10], None, 4 << 40]
    p = tmp_path / "s.irs"
    p.write_bytes(_reframe(to_bytes(_base(), 8), huge))
    with open(p, "rb") as f, pytest.raises(FormatError, match="tensor 't0' declares") as info:
        read_stream(f, str(p))
    assert str(p) in str(info.value)


def test_a_pipe_allocates_only_what_arrives():
    """On a pipe the length is unknown: a huge declared tensor fails at the first missing
    chunk, before any memory is taken for it."""
    def huge(h):
        h["tensors"][0][2:5] = [[1 << 30, 1 << 10], None, 4 << 40]
    ckpt = read_stream(io.BytesIO(_reframe(to_bytes(_base(), 8), huge)))
    with pytest.raises(StreamError, match="tensor 't0'"):
        ckpt.tensors["t0"].load()


def test_checkpoint_refuses_inconsistent_names():
    t = from_array("a", np.zeros(2, np.float32))
    with pytest.raises(FormatError, match="not in the checkpoint"):
        Checkpoint("bert", {}, {"a": t}, {"b": "missing"})
    with pytest.raises(FormatError, match="stored under the name"):
        Checkpoint("bert", {}, {"b": t})


def test_full_disk_is_one_error_naming_the_file(tmp_path):
    """`irconv import -o FILE` past RLIMIT_FSIZE: EFBIG is one line naming the file, exit 2,
    nothing left behind."""
    out = tmp_path / "model.irs"
    src = os.path.join(os.path.dirname(__file__), "..", "examples", "tiny-bert")

    def limit():
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
    r = subprocess.run([sys.executable, "-m", "irconv", "import", "pt", src, "-o", str(out), "-q"],
                       preexec_fn=limit, capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0] == f"irconv: error: {out}: cannot write the IR stream: File too large", r.stderr
    assert list(tmp_path.iterdir()) == []


def test_write_errors_name_the_output():
    class Full(io.BytesIO):
        name = "/x/out.irs"

        def write(self, data):
            raise OSError(28, "No space left on device")
    with pytest.raises(StreamError, match="^/x/out.irs: cannot write the IR stream: No space left"):
        write_stream(_base(), Full())
    with pytest.raises(StreamError, match="^elsewhere: "):
        write_stream(_base(), Full(), where="elsewhere")

    class Gone(io.BytesIO):
        def write(self, data):
            raise BrokenPipeError(32, "Broken pipe")
    with pytest.raises(BrokenPipeError):
        write_stream(_base(), Gone())


def _stream_through(ckpt, *, pipe: bool) -> bytes:
    """The bytes write_stream puts into a regular file, or into a real OS pipe (read on a thread)."""
    import os
    import tempfile
    import threading
    if not pipe:
        with tempfile.TemporaryFile() as f:
            write_stream(ckpt, f, chunk_size=1 << 10)
            f.seek(0)
            return f.read()
    r, w = os.pipe()
    got = []
    reader = threading.Thread(target=lambda: got.append(os.fdopen(r, "rb").read()))
    reader.start()
    with os.fdopen(w, "wb") as f:
        write_stream(ckpt, f, chunk_size=1 << 10)
    reader.join()
    return got[0]


def test_tensors_spliced_from_their_file_into_a_pipe_are_the_same_stream(monkeypatch):
    """Into a pipe, a safetensors tensor's bytes go by splice(2) (and, where a file system
    cannot splice, by pread): the stream is the same bytes as one written to a file."""
    import errno
    import os
    from pathlib import Path
    import irconv
    tiny = Path(__file__).resolve().parent.parent / "examples" / "tiny-bert"
    ckpt = irconv.load(tiny)
    assert any(t.extent is not None for t in ckpt.tensors.values())
    to_file = _stream_through(ckpt, pipe=False)
    assert _stream_through(ckpt, pipe=True) == to_file
    calls = []

    def no_splice(*args, **kwargs):
        calls.append(args)
        raise OSError(errno.EINVAL, "splice not supported")

    monkeypatch.setattr(os, "splice", no_splice)
    assert _stream_through(ckpt, pipe=True) == to_file
    assert calls                       # the splice path was taken, and fell back
    back = read_stream(__import__("io").BytesIO(to_file))
    for name, t in ckpt.tensors.items():
        assert back.tensors[name].load().tobytes() == t.load().tobytes()


def _export_from_pipe(data: bytes, *argv):
    """`irconv export ...` with `data` arriving through a real OS pipe (so it is spliced)."""
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "irconv", "export", *map(str, argv)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read()
    proc.wait()
    return proc.returncode, err.decode()


@pytest.mark.parametrize("target,weights", [("pt", "model.safetensors"), ("tf2", "tf_model.h5"),
                                            ("flax", "flax_model.msgpack")])
def test_a_stream_spliced_out_of_a_pipe_writes_what_convert_writes(tmp, target, weights):
    from pathlib import Path
    from conftest import run_irconv, run_pipe
    tiny = Path(__file__).resolve().parent.parent / "examples" / "tiny-bert"
    run_irconv("convert", tiny, tmp / "c", "--to", target, check=True)
    rc, _, proc = run_pipe(["import", "pt", tiny], ["export", target, tmp / "p"])
    assert rc == 0 and proc.returncode == 0, proc.stderr
    assert (tmp / "p" / weights).read_bytes() == (tmp / "c" / weights).read_bytes()


def test_a_corrupt_or_cut_stream_spliced_out_of_a_pipe_is_refused(tmp):
    """The bytes a splice puts into the output are checked there before anything appears."""
    from pathlib import Path
    from conftest import run_irconv
    tiny = Path(__file__).resolve().parent.parent / "examples" / "tiny-bert"
    run_irconv("import", "pt", tiny, "-o", tmp / "s.irs", check=True)
    data = (tmp / "s.irs").read_bytes()
    flipped = bytearray(data)
    flipped[-18] ^= 0x01                 # the last tensor's last byte, before the 17-byte trailer
    rc, err = _export_from_pipe(bytes(flipped), "pt", tmp / "out")
    assert rc == 2 and "checksum mismatch" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp / "out").exists()
    rc, err = _export_from_pipe(data[:-100], "pt", tmp / "out")
    assert rc == 2 and "truncated" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp / "out").exists()
    rc, err = _export_from_pipe(data, "pt", tmp / "out")
    assert rc == 0, err


def _big_and_small(chunk_size: int):
    """A stream of a 4 MiB (out, in) matrix (the largest tensor) and a small one, as bytes."""
    rng = np.random.default_rng(5)
    big = rng.standard_normal((1024, 1024)).astype(np.float32)
    small = rng.standard_normal((64, 64)).astype(np.float32)
    ckpt = Checkpoint("bert", {}, {"big": from_array("big", big, ("out", "in")),
                                   "small": from_array("small", small, ("out", "in"))}, {}, {})
    return to_bytes(ckpt, chunk_size), big, small


def _transposed_in_order(raw: bytes):
    """Every tensor of the stream `raw` relaid out to (in, out) through the ordered pipeline."""
    from irconv.ir.layout import relayout
    from irconv.ir.pipeline import loaded
    ckpt = read_stream(io.BytesIO(raw))
    moved = [t.transformed(relayout(("out", "in"), ("in", "out"))) for t in ckpt.tensors.values()]
    got = {t.name: a.copy() for t, a in loaded(moved, jobs=2, ordered=True)}
    ckpt.close()
    return moved, got


@pytest.mark.parametrize("chunk_size", [1 << 20, (1 << 20) + 3, 4000])
def test_the_largest_relayout_from_a_stream_reads_it_strip_by_strip(chunk_size, monkeypatch):
    """A relayout whose source and result would both be held (2x the largest tensor) reads the
    stream strip by strip into the transpose, chunk crcs checked on the way; a smaller one is
    read whole, so its relayout runs beside the next read. Same bytes either way."""
    from irconv.ir import stream
    raw, big, small = _big_and_small(chunk_size)
    whole = []
    real = stream._StreamReader._read_tensor
    monkeypatch.setattr(stream._StreamReader, "_read_tensor",
                        lambda self, i: whole.append(self.specs[i].name) or real(self, i))
    moved, got = _transposed_in_order(raw)
    assert got["big"].tobytes() == np.ascontiguousarray(big.T).tobytes()
    assert got["small"].tobytes() == np.ascontiguousarray(small.T).tobytes()
    assert whole == ["small"]
    assert moved[0].in_turn_holds() == big.nbytes + 128 * 1024 * 4


def test_a_flipped_bit_under_a_strip_read_of_a_stream_is_refused():
    raw, big, _ = _big_and_small(1 << 20)
    body = big.tobytes()
    at = raw.find(body[3 << 20:(3 << 20) + 64])         # inside the big tensor's fourth chunk
    assert at > 0
    flipped = bytearray(raw)
    flipped[at + 10] ^= 0x20
    with pytest.raises(StreamError, match=r"checksum mismatch in tensor 'big' \(chunk 3\)"):
        _transposed_in_order(bytes(flipped))
    with pytest.raises(StreamError, match="truncated"):
        _transposed_in_order(raw[:at])


def test_a_pipe_whose_largest_tensors_are_transposed_writes_what_convert_writes(tmp):
    """pt -> tf2 of a BERT whose largest tensors are its (8192, 32) FFN matrices: through the
    pipe they are read strip by strip off the stream, and the h5 is convert's byte for byte."""
    import json
    from pathlib import Path
    from safetensors.numpy import load_file, save_file
    from conftest import run_irconv, run_pipe
    tiny = Path(__file__).resolve().parent.parent / "examples" / "tiny-bert"
    config = dict(json.loads((tiny / "config.json").read_text()), intermediate_size=8192)
    arrays = load_file(str(tiny / "model.safetensors"))
    rng = np.random.default_rng(4)
    for name in list(arrays):
        if ".intermediate.dense." in name or (".output.dense." in name and "attention" not in name):
            shape = tuple(8192 if n == 64 else n for n in arrays[name].shape)
            arrays[name] = rng.standard_normal(shape).astype(np.float32)
    (tmp / "src").mkdir()
    save_file(arrays, str(tmp / "src" / "model.safetensors"))
    (tmp / "src" / "config.json").write_text(json.dumps(config))
    run_irconv("convert", tmp / "src", tmp / "c", "--to", "tf2", check=True)
    rc, _, proc = run_pipe(["import", "pt", tmp / "src"], ["export", "tf2", tmp / "p"])
    assert rc == 0 and proc.returncode == 0, proc.stderr
    assert (tmp / "p" / "tf_model.h5").read_bytes() == (tmp / "c" / "tf_model.h5").read_bytes()


@pytest.mark.parametrize("target", ["pt", "tf1", "tf2"])
def test_a_stream_tensor_laid_out_otherwise_than_its_family_is_refused(tmp, target):
    """A stream (valid checksums) giving a kernel the axes the other way round: the family's
    own axes are the only ones a canonical tensor may have (a bare ValueError from the
    relayout, before); one line, exit 2, nothing written."""
    from pathlib import Path
    from conftest import assert_one_line_error, run_irconv
    tiny = Path(__file__).resolve().parent.parent / "examples" / "tiny-bert"
    good = tmp / "good.irs"
    run_irconv("import", "pt", tiny, "-o", good, check=True)

    def swap(h):
        row = next(r for r in h["tensors"] if len(r[2]) == 2 and r[3] and "embeddings" not in r[0])
        row[3] = row[3][::-1]
    bad = tmp / "bad.irs"
    bad.write_bytes(_reframe(good.read_bytes(), swap))
    assert_one_line_error(run_irconv("export", target, tmp / "out", "-i", bad), "axes")
    assert not (tmp / "out").exists()


@pytest.mark.parametrize("edit,match", [
    (lambda c: c.update(vocab_size=7), "config.json says vocab_size=7, the tensors say 128"),
    (lambda c: c.update(hidden_size="big"), "hidden_size='big' is not a non-negative integer"),
    (lambda c: c.update(num_hidden_layers=5), "num_hidden_layers=5, but the tensors hold 2"),
    (lambda c: c.update(num_hidden_layers=1), "tensors for index 1 of 'num_hidden_layers'"),
    (lambda c: c.update(intermediate_size=[3]), "intermediate_size=\\[3\\] is not a non-negative integer"),
    (lambda c: c.update(num_attention_heads=3), "num_attention_heads=3 does not divide hidden_size=32"),
    (lambda c: c.update(num_attention_heads=0), "num_attention_heads=0 does not divide hidden_size=32"),
])
@pytest.mark.parametrize("how", ["file", "stdin"])
def test_a_stream_whose_config_contradicts_its_tensors_is_refused_naming_the_stream(tmp, edit, match, how):
    """A stream's header is what anyone wrote: its config must agree with its tensor table as
    an import's config.json must (the exporter wrote it beside the tensors, before), and the
    error names the stream, not OUT; nothing is written."""
    from pathlib import Path
    from conftest import assert_one_line_error, run_irconv
    tiny = Path(__file__).resolve().parent.parent / "examples" / "tiny-bert"
    good = tmp / "good.irs"
    run_irconv("import", "pt", tiny, "-o", good, check=True)
    bad = tmp / "bad.irs"
    bad.write_bytes(_reframe(good.read_bytes(), lambda h: edit(h["config"])))
    for target in ("tf2", "pt"):
        if how == "file":
            proc, where = run_irconv("export", target, tmp / "out", "-i", bad), str(bad)
        else:
            proc, where = run_irconv("export", target, tmp / "out", input=bad.read_bytes()), "<stdin>"
        line = assert_one_line_error(proc, "the stream's config contradicts its tensors")
        assert line.startswith(f"irconv: error: {where}: ") and str(tmp / "out") not in line
        assert __import__("re").search(match, line), line
        assert not (tmp / "out").exists()
