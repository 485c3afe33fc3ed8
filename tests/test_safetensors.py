"""formats.safetensors and formats.sharding against the real safetensors / transformers.

torch, safetensors and transformers are oracles only: they write files irconv reads and
read files irconv writes. Arrays are compared as bytes so NaN, -0.0, bf16 and fp8 survive.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from irconv.formats import safetensors as sf
from irconv.formats import sharding
from irconv.ir.dtypes import DTYPES, by_name
from irconv.ir.errors import DTypeError, FormatError, UsageError
from irconv.ir.tensor import TensorSpec, from_array

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")
from safetensors import safe_open  # noqa: E402

# Every dtype both irconv and the torch binding know (C128 has no safetensors name).
ORACLE_DTYPES = [n for n in DTYPES if n != "C128"]
SHAPES = [(2, 3), (), (0, 4), (5,)]


def raw(a) -> np.ndarray:
    """The bytes of a numpy array or torch tensor, as uint8."""
    if isinstance(a, torch.Tensor):
        return a.contiguous().reshape(-1).view(torch.uint8).numpy()
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def random_array(rng, dtype_name: str, shape) -> np.ndarray:
    """Random bit patterns (NaN, inf, -0.0 included); bools are 0/1 as numpy requires."""
    dt = by_name(dtype_name)
    n = int(np.prod(shape, dtype=np.int64))
    if dtype_name == "BOOL":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.integers(0, 256, size=n * dt.itemsize, dtype=np.uint8).view(dt.numpy).reshape(shape)


def to_torch(a: np.ndarray):
    dt = getattr(torch, by_name(sf_name(a)).torch)
    if a.size == 0:  # torch cannot reinterpret an empty uint8 buffer
        return torch.empty(a.shape, dtype=dt)
    return torch.from_numpy(raw(a).copy()).view(dt).reshape(a.shape)


def sf_name(a: np.ndarray) -> str:
    from irconv.ir.dtypes import from_numpy
    return from_numpy(a.dtype).name


def one_line_naming(err, path) -> str:
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg, msg
    return msg


# --------------------------------------------------------------------------- torch -> irconv

def test_reads_every_dtype_written_by_safetensors_torch(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{d}.{i}": random_array(rng, d, s) for d in ORACLE_DTYPES for i, s in enumerate(SHAPES)}
    path = tmp_path / "oracle.safetensors"
    st_torch.save_file({k: to_torch(a) for k, a in arrays.items()}, str(path),
                       metadata={"format": "pt", "note": "ünïcode"})

    tensors = sf.read(path)
    assert sorted(t.name for t in tensors) == sorted(arrays)
    for t in tensors:
        a = t.load()
        assert t.dtype.name == t.name.split(".")[0] and a.dtype == t.dtype.numpy
        assert a.shape == arrays[t.name].shape == t.shape
        np.testing.assert_array_equal(raw(a), raw(arrays[t.name]))
        a[...] = a  # writable: the loader hands out a fresh array
    assert sf.read_metadata(path) == {"format": "pt", "note": "ünïcode"}


def test_read_is_lazy_and_seeks(tmp_path):
    path = tmp_path / "lazy.safetensors"
    st_torch.save_file({"a": torch.arange(4, dtype=torch.int32), "b": torch.ones(3)}, str(path))
    tensors = {t.name: t for t in sf.read(path)}
    # Patch the file after read(): the loader must read the bytes at load() time.
    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        f.seek(8 + n + header["a"]["data_offsets"][0])
        f.write(np.int32(7).tobytes())
    assert tensors["a"].load().tolist() == [7, 1, 2, 3]
    assert tensors["b"].load().tolist() == [1.0, 1.0, 1.0]


# --------------------------------------------------------------------------- irconv -> torch

def test_writer_shuffled_writes_load_in_safetensors(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {f"t{i}.{d}": random_array(rng, d, SHAPES[i % len(SHAPES)])
              for i, d in enumerate(ORACLE_DTYPES * 2)}
    specs = [from_array(k, a).spec for k, a in arrays.items()]
    path = tmp_path / "ours.safetensors"
    order = list(arrays)
    rng.shuffle(order)
    with sf.SafetensorsWriter(path, specs, metadata={"format": "pt", "k": "v"}) as w:
        for name in order:
            w.write(name, arrays[name])

    loaded = st_torch.load_file(str(path))
    assert set(loaded) == set(arrays)
    for name, a in arrays.items():
        assert str(loaded[name].dtype) == f"torch.{by_name(sf_name(a)).torch}"
        assert tuple(loaded[name].shape) == a.shape
        np.testing.assert_array_equal(raw(loaded[name]), raw(a))
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"format": "pt", "k": "v"}
        np.testing.assert_array_equal(raw(f.get_tensor(order[0])), raw(arrays[order[0]]))

    # Layout: header 8-aligned, each tensor naturally aligned, itemsize descending.
    n = struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert n % 8 == 0
    header = json.loads(path.read_bytes()[8:8 + n])
    assert next(iter(header)) == "__metadata__"
    sizes = []
    for name, info in header.items():
        if name != "__metadata__":
            size = DTYPES[info["dtype"]].itemsize
            assert info["data_offsets"][0] % size == 0
            sizes.append(size)
    assert sizes == sorted(sizes, reverse=True)


# Rust `enum Dtype` order (FORMATS.md §5.1); the Rust writer sorts by (descending, name).
_RUST_RANK = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
              "I32", "U32", "F32", "C64", "F64", "I64", "U64"]


def test_bytes_equal_rust_writer_given_its_order(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {f"n{i}": random_array(rng, d, SHAPES[i % len(SHAPES)])
              for i, d in enumerate(ORACLE_DTYPES)}
    theirs, ours = tmp_path / "theirs.safetensors", tmp_path / "ours.safetensors"
    st_torch.save_file({k: to_torch(a) for k, a in arrays.items()}, str(theirs),
                       metadata={"format": "pt"})
    rust_order = sorted(arrays, key=lambda k: (-_RUST_RANK.index(sf_name(arrays[k])), k))
    sf.write(ours, [from_array(k, arrays[k]) for k in rust_order], metadata={"format": "pt"})
    assert ours.read_bytes() == theirs.read_bytes()


# --------------------------------------------------------------------------- property tests

names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda s: s != "__metadata__")
entries = st.lists(
    st.tuples(names, st.sampled_from(ORACLE_DTYPES),
              st.lists(st.integers(0, 4), max_size=3).map(tuple)),
    max_size=6, unique_by=lambda e: e[0])


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(entries=entries, seed=st.integers(0, 2**32 - 1), torch_writes=st.booleans())
def test_round_trip_random_files(entries, seed, torch_writes):
    rng = np.random.default_rng(seed)
    arrays = {name: random_array(rng, d, shape) for name, d, shape in entries}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "r.safetensors")
        if torch_writes:
            st_torch.save_file({k: to_torch(a) for k, a in arrays.items()}, path)
            got = {t.name: t.load() for t in sf.read(path)}
        else:
            sf.write(path, [from_array(k, a) for k, a in arrays.items()])
            got = st_torch.load_file(path)
        assert set(got) == set(arrays)
        for k, a in arrays.items():
            assert tuple(got[k].shape) == a.shape
            np.testing.assert_array_equal(raw(got[k]), raw(a))


# --------------------------------------------------------------------------- hostile files

def craft(path, header, data=b"", *, header_len=None, raw_header=None):
    hb = raw_header if raw_header is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(hb) if header_len is None else header_len) + hb + data)
    return path


def f32(offsets, shape=(2,)):
    return {"dtype": "F32", "shape": list(shape), "data_offsets": list(offsets)}


def test_truncated_file(tmp_path):
    good = tmp_path / "good.safetensors"
    st_torch.save_file({"a": torch.ones(4), "b": torch.ones(4)}, str(good))
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(FormatError) as e:
        sf.read(bad)
    msg = one_line_naming(e, bad)
    size = good.stat().st_size
    assert "truncated" in msg and str(size) in msg and str(size - 3) in msg
    with pytest.raises(Exception):
        st_torch.load_file(str(bad))  # the oracle refuses it too

    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"\x10\x00")
    with pytest.raises(FormatError, match="truncated") as e:
        sf.read(tiny)
    one_line_naming(e, tiny)


@pytest.mark.parametrize("case", ["too_long", "past_eof"])
def test_bad_header_length(tmp_path, case):
    n = sf.MAX_HEADER_SIZE + 1 if case == "too_long" else 10_000
    path = craft(tmp_path / f"{case}.safetensors", {}, header_len=n)
    with pytest.raises(FormatError) as e:
        sf.read_metadata(path)
    assert str(n) in one_line_naming(e, path)
    with pytest.raises(Exception):
        st_torch.load_file(str(path))


HOSTILE = {
    # name: (header, data bytes, exception, words the message must contain)
    "overlap": ({"a": f32([0, 8]), "b": f32([4, 12])}, bytes(12), FormatError, "overlaps"),
    "gap": ({"a": f32([0, 8]), "b": f32([12, 20])}, bytes(20), FormatError, "gap"),
    "not_from_zero": ({"a": f32([4, 12])}, bytes(12), FormatError, "gap"),
    "wrong_nbytes": ({"a": f32([0, 12])}, bytes(12), FormatError, "needs 8"),
    "trailing": ({"a": f32([0, 8])}, bytes(12), FormatError, "trailing"),
    "unknown_dtype": ({"a": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}}, bytes(2),
                      DTypeError, "'Q4'"),
    "irconv_only_dtype": ({"a": {"dtype": "C128", "shape": [1], "data_offsets": [0, 16]}},
                          bytes(16), DTypeError, "'C128' is not a safetensors dtype"),
    "reversed_offsets": ({"a": f32([8, 0])}, bytes(8), FormatError, "data_offsets [8, 0]"),
    "bad_shape": ({"a": f32([0, 8], shape=(-2,))}, bytes(8), FormatError, "shape"),
    "bad_metadata": ({"__metadata__": {"k": 1}, "a": f32([0, 8])}, bytes(8), FormatError,
                     "__metadata__"),
    "missing_field": ({"a": {"dtype": "F32", "shape": [2]}}, bytes(8), FormatError,
                      "data_offsets"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_headers(tmp_path, case):
    header, data, exc, words = HOSTILE[case]
    path = craft(tmp_path / f"{case}.safetensors", header, data)
    with pytest.raises(exc) as e:
        sf.read(path)
    assert words in one_line_naming(e, path)
    with pytest.raises(Exception):
        st_torch.load_file(str(path))  # irconv is not laxer than the reference


@pytest.mark.parametrize("raw_header, words", [
    (b"not json at all!", "expected '{'"),
    (b"[1, 2, 3]       ", "expected '{'"),
    (b'{"a": [1, 2    }', "cannot read header"),
    (b'{"a": "\xff\xfe"}', "cannot read header"),
])
def test_non_json_header(tmp_path, raw_header, words):
    path = craft(tmp_path / "nj.safetensors", None, raw_header=raw_header)
    with pytest.raises(FormatError) as e:
        sf.read(path)
    assert words in one_line_naming(e, path)


def test_bool_bytes_must_be_0_or_1(tmp_path):
    path = craft(tmp_path / "b.safetensors",
                 {"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02")
    [t] = sf.read(path)
    with pytest.raises(FormatError, match="BOOL") as e:
        t.load()
    one_line_naming(e, path)


def test_duplicate_keys(tmp_path):
    hb = b'{"a":' + json.dumps(f32([0, 8])).encode() + b',"a":' + json.dumps(f32([0, 8])).encode() + b"}"
    path = craft(tmp_path / "dup.safetensors", None, bytes(8), raw_header=hb)
    with pytest.raises(FormatError) as e:
        sf.read(path)
    assert "duplicate key 'a'" in one_line_naming(e, path)


# --------------------------------------------------------------------------- writer misuse

def test_writer_rejects_misuse(tmp_path):
    path = tmp_path / "w.safetensors"
    specs = [TensorSpec("a", DTYPES["F32"], (2,)), TensorSpec("b", DTYPES["BF16"], (3,))]
    w = sf.SafetensorsWriter(path, specs)
    with pytest.raises(DTypeError) as e:
        w.write("a", np.zeros(2, np.float64))
    one_line_naming(e, path)
    with pytest.raises(UsageError, match="shape"):
        w.write("a", np.zeros(3, np.float32))
    with pytest.raises(UsageError, match="not among"):
        w.write("zzz", np.zeros(2, np.float32))
    w.write("a", np.zeros(2, np.float32))
    with pytest.raises(UsageError, match="twice"):
        w.write("a", np.zeros(2, np.float32))
    with pytest.raises(FormatError, match=r"never written: \['b'\]") as e:
        w.close()
    one_line_naming(e, path)
    assert not path.exists() and not list(tmp_path.iterdir())  # no half-written file left

    with pytest.raises(UsageError, match="duplicate"):
        sf.SafetensorsWriter(path, specs + specs[:1])
    with pytest.raises(DTypeError, match="C128"):
        sf.SafetensorsWriter(path, [TensorSpec("c", DTYPES["C128"], (1,))])
    with pytest.raises(UsageError, match="str to str"):
        sf.SafetensorsWriter(path, specs, metadata={"k": 3})


def test_writer_accepts_big_endian_and_empty(tmp_path):
    path = tmp_path / "be.safetensors"
    a = np.arange(3, dtype=">f4")
    with sf.SafetensorsWriter(path, [TensorSpec("a", DTYPES["F32"], (3,))]) as w:
        w.write("a", a)
    assert st_torch.load_file(str(path))["a"].tolist() == [0.0, 1.0, 2.0]
    empty = tmp_path / "empty.safetensors"
    sf.write(empty, [])
    assert st_torch.load_file(str(empty)) == {} and sf.read(empty) == []


# --------------------------------------------------------------------------- sharding

def spec(name, nbytes):
    return TensorSpec(name, DTYPES["U8"], (nbytes,))


def test_plan_shards_limits():
    specs = [spec("a", 40), spec("b", 50), spec("c", 150), spec("d", 10), spec("e", 100)]
    plan = sharding.plan_shards(specs, 100)
    # c is oversized: its own shard, numbered before the still-open [a, b, d] (as HF does).
    assert [[s.name for s in sh] for sh in plan] == [["c"], ["a", "b", "d"], ["e"]]
    for shard in plan:
        assert len(shard) == 1 or sum(s.nbytes for s in shard) <= 100
    assert [s.name for sh in sharding.plan_shards(specs, 10**9) for s in sh] == list("abcde")
    assert sharding.plan_shards([], 10) == [[]]
    with pytest.raises(UsageError):
        sharding.plan_shards(specs, 0)


@settings(max_examples=40, deadline=None, database=None)
@given(sizes=st.lists(st.integers(1, 300), max_size=12), limit=st.integers(1, 400))
def test_plan_shards_matches_huggingface_hub(sizes, limit):
    from huggingface_hub import split_torch_state_dict_into_shards
    state = {f"t{i}": torch.zeros(n, dtype=torch.uint8) for i, n in enumerate(sizes)}
    hf = split_torch_state_dict_into_shards(state, max_shard_size=limit)
    ours = sharding.plan_shards([spec(k, v.numel()) for k, v in state.items()], limit)
    if not sizes:
        return
    assert [[s.name for s in sh] for sh in ours] == list(hf.filename_to_tensors.values())


def test_shard_names():
    assert sharding.shard_names("model", "safetensors", 1) == ["model.safetensors"]
    assert sharding.shard_names("model", ".safetensors", 3) == [
        "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
        "model-00003-of-00003.safetensors"]
    assert sharding.shard_names("pytorch_model", "bin", 2)[1] == "pytorch_model-00002-of-00002.bin"
    assert sharding.index_name("model", "safetensors") == "model.safetensors.index.json"
    assert sharding.index_name("pytorch_model", "bin") == "pytorch_model.bin.index.json"


@pytest.mark.parametrize("text, value", [
    ("5GB", 5 * 10**9), ("200MB", 200 * 10**6), ("10KiB", 10 * 1024), ("12345", 12345),
    ("2GiB", 2 * 2**30), ("1.5GB", 1_500_000_000), (" 3 MB ", 3 * 10**6), ("4 kib", 4096), (42, 42)])
def test_parse_size(text, value):
    assert sharding.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "GB", "5XB", "-1", "0", "1.2.3", "5Gb", None, True])
def test_parse_size_rejects_nonsense(text):
    with pytest.raises(UsageError):
        sharding.parse_size(text)


_HF_SCRIPT = """
import json, sys
from transformers import BertConfig, BertModel
m = BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=16))
m.save_pretrained(sys.argv[1], max_shard_size="2KB")
specs = [[k, str(v.dtype).split(".")[1], list(v.shape)] for k, v in m.state_dict().items()]
json.dump(specs, open(sys.argv[1] + "/specs.json", "w"))
"""


@pytest.fixture(scope="module")
def hf_sharded(tmp_path_factory):
    """A tiny BertModel saved by transformers in 2 KB shards, plus its state-dict specs."""
    out = tmp_path_factory.mktemp("hf") / "bert"
    # A subprocess with USE_TF=0: importing TensorFlow would cost seconds, and flipping the
    # flag in this process would hide TF from other tests that import transformers later.
    env = dict(os.environ, USE_TF="0", USE_FLAX="0", TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", _HF_SCRIPT, str(out)], check=True, env=env,
                   capture_output=True)
    specs = [TensorSpec(n, DTYPES[{"float32": "F32"}[d]], tuple(s))
             for n, d, s in json.loads((out / "specs.json").read_text())]
    return out, specs


def test_index_identical_to_transformers(hf_sharded, tmp_path):
    out, specs = hf_sharded
    theirs = out / "model.safetensors.index.json"
    hf = json.loads(theirs.read_text())

    plan = sharding.plan_shards(specs, sharding.parse_size("2KB"))
    files = sharding.shard_names("model", "safetensors", len(plan))
    wmap = sharding.shard_weight_map(plan, files)
    extra = {k: v for k, v in hf["metadata"].items() if k != "total_size"}  # total_parameters
    ours = tmp_path / sharding.index_name("model", "safetensors")
    sharding.write_index(ours, wmap, sum(s.nbytes for s in specs), extra_metadata=extra)

    assert set(json.loads(ours.read_text())) == set(hf) == {"metadata", "weight_map"}
    assert ours.read_text() == theirs.read_text()  # same keys, values and formatting

    # And the HF shards hold exactly the tensors our plan puts in them.
    index = sharding.read_index(theirs)
    assert set(index) == {s.name for s in specs}
    for shard, fname in zip(plan, files):
        assert {t.name for t in sf.read(out / fname)} == {s.name for s in shard}


def test_read_index_missing_shard(tmp_path):
    for name in ("model-00001-of-00002.safetensors",):
        (tmp_path / name).write_bytes(b"")
    index = tmp_path / "model.safetensors.index.json"
    sharding.write_index(index, {"a": "model-00001-of-00002.safetensors",
                                 "b": "model-00002-of-00002.safetensors"}, 8)
    with pytest.raises(FormatError) as e:
        sharding.read_index(index)
    assert "model-00002-of-00002.safetensors" in one_line_naming(e, index)

    sharding.write_index(index, {"a": "../evil.safetensors"}, 8)
    with pytest.raises(FormatError, match="outside"):
        sharding.read_index(index)
    index.write_text("{nope")
    with pytest.raises(FormatError) as e:
        sharding.read_index(index)
    one_line_naming(e, index)
