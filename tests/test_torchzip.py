"""formats.torchzip and formats.pickle, with torch only as the oracle of files irconv reads
or writes. Bytes are compared (`view(np.uint8)`) so NaN payloads, -0.0 and bf16 survive."""
import argparse
import collections
import copyreg
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from irconv.formats import torchzip  # noqa: E402
from irconv.formats.pickle import Stub  # noqa: E402
from irconv.ir.dtypes import DTYPES  # noqa: E402
from irconv.ir.errors import FormatError, UnsafeFileError, UsageError  # noqa: E402
from irconv.ir.tensor import TensorSpec  # noqa: E402

RNG = np.random.default_rng(0)


def tdtype(d):
    return getattr(torch, d.torch)


def torch_bytes(t) -> bytes:
    if t.numel() == 0:  # torch cannot view an empty tensor as bytes
        return b""
    dense = torch.empty(t.shape, dtype=t.dtype).copy_(t)  # .contiguous() keeps odd strides
    return dense.reshape(-1).view(torch.uint8).numpy().tobytes()


def np_bytes(a) -> bytes:
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8).tobytes()


def random_array(d, shape, rng=RNG) -> np.ndarray:
    """Random bit patterns (NaNs, -0.0, subnormals included); bools stay 0/1."""
    n = int(np.prod(shape, dtype=np.int64))
    raw = rng.integers(0, 256, n * d.itemsize, dtype=np.uint8)
    if d.name == "BOOL":
        raw &= 1
    return raw.view(d.numpy).reshape(shape)


def torch_from(a: np.ndarray, d):
    if a.size == 0:
        return torch.empty(a.shape, dtype=tdtype(d))
    return torch.from_numpy(np.ascontiguousarray(a).reshape(-1).view(np.uint8).copy()) \
        .view(tdtype(d)).reshape(a.shape)


def local_data_offsets(path):
    """member name -> data offset, from the local headers (what torch's mmap relies on)."""
    out = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            f.seek(info.header_offset)
            n, m = struct.unpack("<26xHH", f.read(30))
            out[info.filename] = info.header_offset + 30 + n + m
    return out


# ---------------------------------------------------------------------------------------
# torch.save -> irconv read

def test_read_torch_save_bit_exact(tmp_path):
    base = torch_from(random_array(DTYPES["F32"], (3, 4)), DTYPES["F32"])
    base[0, 0], base[0, 1] = float("nan"), -0.0
    sd = collections.OrderedDict()
    for name in ("BF16", "F16", "F32", "I64", "BOOL", "F8_E4M3", "F8_E5M2", "U16"):
        d = DTYPES[name]
        sd[name.lower()] = torch_from(random_array(d, (2, 3)), d)
    sd["scalar"] = torch.tensor(3.5, dtype=torch.float64)
    sd["empty"] = torch.zeros(2, 0, 3)
    sd["base"] = base
    sd["transposed"] = base.t()                    # stride (1, 4), non-contiguous
    sd["row"] = base[1]                            # storage offset 4
    sd["strided"] = base[:, ::2]                   # step slice
    sd["same"] = base                              # the same tensor under a second name
    sd["param"] = torch.nn.Parameter(torch.ones(2, dtype=torch.bfloat16))
    sd["with_attr"] = torch.arange(3.0)
    sd["with_attr"].note = "x"                      # pickled via _rebuild_from_type_v2
    path = tmp_path / "model.pt"
    torch.save(sd, path)

    tensors = torchzip.read(path)
    assert [t.name for t in tensors] == list(sd)
    for t in tensors:
        ref = sd[t.name].detach()
        assert t.dtype.torch == str(ref.dtype).removeprefix("torch."), t.name
        assert t.shape == tuple(ref.shape), t.name
        assert np_bytes(t.load()) == torch_bytes(ref), t.name


def test_storage_identity_tells_tie_from_copy(tmp_path):
    emb = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = emb.weight                        # tied, as HF does
    model = torch.nn.ModuleDict({"emb": emb, "head": head})
    sd = model.state_dict()                         # detached tensors, one storage
    sd["copy"] = sd["emb.weight"].clone()
    torch.save(sd, tmp_path / "m.bin")
    tensors = torchzip.read(tmp_path / "m.bin")
    ids = {t.name: torchzip.storage_identity(t) for t in tensors}
    assert ids["emb.weight"] == ids["head.weight"] != ids["copy"]
    assert torchzip.find_aliases(tensors) == {"head.weight": "emb.weight"}
    by_name = {t.name: t for t in tensors}
    assert torchzip.shares_storage(by_name["emb.weight"], by_name["head.weight"])
    assert not torchzip.shares_storage(by_name["emb.weight"], by_name["copy"])
    # A renamed tensor keeps its identity; one from elsewhere has none.
    assert torchzip.storage_identity(tensors[0].with_spec(name="x")) == ids["emb.weight"]
    from irconv.ir.tensor import from_array
    assert torchzip.storage_identity(from_array("a", np.zeros(2))) is None
    assert not torchzip.shares_storage(from_array("a", np.zeros(2)), from_array("b", np.zeros(2)))


def test_load_pickle_nested_with_extended_allowlist(tmp_path):
    ckpt = {"args": argparse.Namespace(lr=0.5, arch="x"),
            "model": collections.OrderedDict(w=torch.arange(4.0))}
    path = tmp_path / "checkpoint.pt"
    torch.save(ckpt, path)
    with pytest.raises(UnsafeFileError, match=r"'argparse\.Namespace'"):
        torchzip.read(path)
    namespace = Stub.subclass("argparse", "Namespace")
    obj, archive = torchzip.load_pickle(path, allow={("argparse", "Namespace"): namespace})
    assert isinstance(obj["args"], namespace) and vars(obj["args"]) == {"lr": 0.5, "arch": "x"}
    ref = obj["model"]["w"]
    assert isinstance(ref, torchzip.TensorRef)
    assert archive.tensor("w", ref).load().tolist() == [0, 1, 2, 3]
    assert archive.prefix == "checkpoint"


def test_load_pickle_plain_containers(tmp_path):
    # Protocol 2 names builtins `__builtin__` and pickles bytes as _codecs.encode.
    torch.save({"s": {1, 2}, "b": b"\x00\xff", "w": torch.ones(1)}, tmp_path / "m.pt")
    obj, _ = torchzip.load_pickle(tmp_path / "m.pt")
    assert obj["s"] == {1, 2} and obj["b"] == b"\x00\xff"


def test_torchscript_archive_is_named(tmp_path):
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "ts.pt")
    with pytest.raises(FormatError, match="TorchScript archive"):
        torchzip.read(tmp_path / "ts.pt")


def test_read_rejects_nested_checkpoint(tmp_path):
    torch.save({"model": {"w": torch.ones(1)}, "step": 3}, tmp_path / "c.pt")
    with pytest.raises(FormatError, match="not a flat state dict.*'model' \\(dict\\).*'step'"):
        torchzip.read(tmp_path / "c.pt")


def test_compressed_records_fall_back_to_zipfile(tmp_path):
    sd = {"a": torch.arange(10.0), "b": torch.arange(6).reshape(2, 3).t()}
    torch.save(sd, tmp_path / "m.pt")
    with zipfile.ZipFile(tmp_path / "m.pt") as src, \
            zipfile.ZipFile(tmp_path / "z.pt", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    for t in torchzip.read(tmp_path / "z.pt"):
        assert np_bytes(t.load()) == torch_bytes(sd[t.name])


# ---------------------------------------------------------------------------------------
# irconv write -> torch.load

def write(path, arrays: dict, aliases=None, specs=None):
    specs = specs or [TensorSpec(n, DTYPES_BY_NP[a.dtype], a.shape) for n, a in arrays.items()]
    with torchzip.TorchZipWriter(path, specs, aliases) as w:
        for s in specs:
            if s.name in arrays:
                w.write(s.name, arrays[s.name])


DTYPES_BY_NP = {d.numpy: d for d in DTYPES.values()}


def test_written_file_loads_in_torch_bit_exact(tmp_path):
    arrays = {}
    for name in ("BF16", "F16", "F32", "F64", "I64", "I32", "I8", "U8", "BOOL", "F8_E4M3",
                 "F8_E5M2", "U16", "C64"):
        arrays[name.lower()] = random_array(DTYPES[name], (3, 2))
    arrays["scalar"] = random_array(DTYPES["F32"], ())
    arrays["empty"] = random_array(DTYPES["BF16"], (0, 4))
    arrays["big_dims"] = random_array(DTYPES["U8"], (1, 300, 70000 // 300))
    path = tmp_path / "pytorch_model.bin"
    order = list(arrays)
    specs = [TensorSpec(n, DTYPES_BY_NP[arrays[n].dtype], arrays[n].shape) for n in order]
    # "lm_head" placed by the specs list, "decoder" appended after them.
    specs.insert(1, TensorSpec("lm_head", DTYPES["BF16"], (3, 2)))
    write(path, arrays, aliases={"lm_head": "bf16", "decoder": "f8_e4m3"}, specs=specs)

    sd = torch.load(path, weights_only=True)
    assert list(sd) == [s.name for s in specs] + ["decoder"]
    for name, a in arrays.items():
        assert str(sd[name].dtype) == f"torch.{DTYPES_BY_NP[a.dtype].torch}"
        assert tuple(sd[name].shape) == a.shape and sd[name].is_contiguous()
        assert torch_bytes(sd[name]) == np_bytes(a), name
    for alias, target in {"lm_head": "bf16", "decoder": "f8_e4m3"}.items():
        assert sd[alias].untyped_storage().data_ptr() == sd[target].untyped_storage().data_ptr()
        assert torch.equal(sd[alias].view(torch.uint8), sd[target].view(torch.uint8))

    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names[0] == "pytorch_model/data.pkl"
        assert zf.read("pytorch_model/version") == b"3\n"
        assert zf.read("pytorch_model/byteorder") == b"little"
    offsets = local_data_offsets(path)
    assert all(off % 64 == 0 for off in offsets.values()), offsets
    # and irconv reads back the tie
    tensors = torchzip.read(path)
    assert torchzip.find_aliases(tensors) == {"lm_head": "bf16", "decoder": "f8_e4m3"}


def test_writes_in_any_order_from_threads_give_the_same_file(tmp_path):
    # The zip's layout is fixed when the writer is made: the order (and thread) of the
    # writes changes no byte, and torch reads every tensor back.
    from concurrent.futures import ThreadPoolExecutor
    arrays = {f"t{i}": random_array(DTYPES["F32" if i % 2 else "BF16"], (i + 1, 3)) for i in range(12)}
    specs = [TensorSpec(n, DTYPES_BY_NP[a.dtype], a.shape) for n, a in arrays.items()]
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    in_order = tmp_path / "a" / "m.bin"       # the archive's name is the file's
    write(in_order, arrays, aliases={"tied": "t3"}, specs=specs)
    shuffled = tmp_path / "b" / "m.bin"
    with torchzip.TorchZipWriter(shuffled, specs, {"tied": "t3"}) as w, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: w.write(n, arrays[n]), reversed(list(arrays))))
    assert shuffled.read_bytes() == in_order.read_bytes()
    sd = torch.load(shuffled, weights_only=True)
    assert list(sd) == list(arrays) + ["tied"]
    assert all(torch_bytes(sd[n]) == np_bytes(a) for n, a in arrays.items())
    with zipfile.ZipFile(shuffled) as zf:
        assert zf.testzip() is None          # every member's CRC-32 holds


def test_zip64_members_stay_aligned(tmp_path, monkeypatch):
    # Members >= 4 GiB get a zip64 extra in their local header; shrink the limit to test it.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 100)
    arrays = {"small": random_array(DTYPES["F32"], (4,)),
              "large": random_array(DTYPES["F32"], (50,))}
    write(tmp_path / "m.pt", arrays)
    offsets = local_data_offsets(tmp_path / "m.pt")
    assert all(off % 64 == 0 for off in offsets.values()), offsets
    sd = torch.load(tmp_path / "m.pt", weights_only=True)
    assert all(torch_bytes(sd[n]) == np_bytes(a) for n, a in arrays.items())
    assert all(np_bytes(t.load()) == np_bytes(arrays[t.name])
               for t in torchzip.read(tmp_path / "m.pt"))


def test_writer_refuses_misuse_and_removes_partial_file(tmp_path):
    f32 = DTYPES["F32"]
    specs = [TensorSpec("a", f32, (2,)), TensorSpec("b", f32, (3,))]
    path = tmp_path / "m.pt"
    w = torchzip.TorchZipWriter(path, specs)
    with pytest.raises(UsageError, match="'c'.*not a tensor declared"):
        w.write("c", np.zeros(3, np.float32))
    with pytest.raises(UsageError, match=r"'a' was declared F32 \[2\] but write\(\) got float64"):
        w.write("a", np.zeros(2))
    with pytest.raises(UsageError, match=r"declared F32 \[2\] but write\(\) got float32 \[1, 2\]"):
        w.write("a", np.zeros((1, 2), np.float32))
    with pytest.raises(UsageError, match=r"'a' was declared F32 \[2\] but copy\(\) got BF16 \[2\]"):
        w.copy("a", TensorSpec("a", DTYPES["BF16"], (2,)), (str(path), 0))
    w.write("a", np.zeros(2, np.float32))
    with pytest.raises(UsageError, match="'a'.* twice"):
        w.write("a", np.zeros(2, np.float32))
    with pytest.raises(UsageError, match="1 tensors were never written: 'b'"):
        w.close()
    w.abort()
    assert not path.exists()

    with pytest.raises(UsageError, match="never written"):
        with torchzip.TorchZipWriter(path, specs) as w:
            w.write("a", np.zeros(2, np.float32))
    assert not path.exists()

    with pytest.raises(UsageError, match="alias 'x' -> 'nope'.*alias 'y' -> 'x'"):
        torchzip.TorchZipWriter(path, specs, {"x": "nope", "y": "x"})
    with pytest.raises(UsageError, match=r"alias 'b' is F32 \[3\] but its target 'a' is F32 \[2\]"):
        torchzip.TorchZipWriter(path, specs, {"b": "a"})
    assert not path.exists()


# ---------------------------------------------------------------------------------------
# Property round trips

@st.composite
def tensor_cases(draw):
    d = DTYPES[draw(st.sampled_from(sorted(DTYPES)))]
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    seed = draw(st.integers(0, 2**32 - 1))
    return d, shape, random_array(d, shape, np.random.default_rng(seed))


_fast = settings(max_examples=25, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


@_fast
@given(st.lists(tensor_cases(), min_size=1, max_size=4))
def test_property_write_then_torch_load(cases):
    arrays = {f"t{i}": a for i, (_, _, a) in enumerate(cases)}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.pt")
        write(path, arrays, aliases={"tied": "t0"})
        sd = torch.load(path, weights_only=True)
    assert list(sd) == [*arrays, "tied"]
    for name, a in arrays.items():
        assert tuple(sd[name].shape) == a.shape
        assert torch_bytes(sd[name]) == np_bytes(a)
    assert sd["tied"].untyped_storage().data_ptr() == sd["t0"].untyped_storage().data_ptr()


@_fast
@given(st.lists(tensor_cases(), min_size=1, max_size=4),
       st.lists(st.sampled_from(["plain", "transpose", "offset", "step"]), min_size=4, max_size=4))
def test_property_torch_save_then_read(cases, views):
    sd = {}
    for i, ((d, shape, a), view) in enumerate(zip(cases, views)):
        t = torch_from(a, d)
        if view == "transpose" and t.dim() >= 2:
            t = t.transpose(0, -1)
        elif view == "offset" and t.dim() >= 1 and t.shape[0] > 1:
            t = t[1:]
        elif view == "step" and t.dim() >= 1:
            t = t[::2]
        sd[f"t{i}"] = t
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.pt")
        torch.save(sd, path)
        tensors = torchzip.read(path)
        loaded = {t.name: t.load() for t in tensors}
    assert list(loaded) == list(sd)
    for name, t in sd.items():
        assert loaded[name].shape == tuple(t.shape)
        assert np_bytes(loaded[name]) == torch_bytes(t)


# ---------------------------------------------------------------------------------------
# Hostile pickles: refused before anything runs

def zip_with_pickle(path, data_pkl: bytes):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/version", b"3\n")


class _Payload:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    m = str(marker)
    return {
        "os.system": _Payload(os.system, f"touch {m}"),
        "builtins.exec": _Payload(exec, f"open({m!r}, 'w').close()"),
        "builtins.eval": _Payload(eval, f"open({m!r}, 'w').close()"),
        "subprocess.Popen": _Payload(subprocess.Popen, ["touch", m]),
    }


def _run_for_real(data, marker):
    """Prove the payload is live: the stdlib unpickler does create the marker."""
    obj = pickle.loads(data)
    if isinstance(obj, subprocess.Popen):
        obj.wait()
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "builtins.eval",
                                  "subprocess.Popen"])
@pytest.mark.parametrize("protocol", [2, 4])     # 2: GLOBAL, 4: STACK_GLOBAL
def test_hostile_reduce_is_refused(tmp_path, kind, protocol):
    marker = tmp_path / "pwned"
    data = pickle.dumps(_payloads(marker)[kind], protocol=protocol)
    assert (b"\x93" in data) == (protocol == 4)    # STACK_GLOBAL opcode really used
    _run_for_real(data, marker)
    zip_with_pickle(tmp_path / "evil.pt", data)
    with pytest.raises(UnsafeFileError, match=r"evil\.pt: refusing to load global '(posix|os|"
                                              r"builtins|subprocess)\.\w+'.*nothing was executed"):
        torchzip.read(tmp_path / "evil.pt")
    assert not marker.exists()


def test_hostile_global_inside_a_real_torch_file(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"w": torch.ones(2), "x": _payloads(marker)["os.system"]}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeFileError, match="'posix.system'"):
        torchzip.load_pickle(tmp_path / "evil.pt")
    assert not marker.exists()


def test_inst_obj_and_ext_opcodes_go_through_the_allowlist(tmp_path):
    marker = tmp_path / "pwned"
    cmd = f"S'touch {marker}'\n".encode()
    hostile = {
        "inst": b"(" + cmd + b"ios\nsystem\n.",                 # protocol 0 INST
        "obj": b"(cos\nsystem\n" + cmd + b"o.",                 # protocol 1 OBJ
    }
    copyreg.add_extension("posix", "system", 0xBEEF)
    try:
        hostile["ext2"] = pickle.dumps(_payloads(marker)["os.system"], protocol=2)
        assert hostile["ext2"][2:3] == b"\x83"                 # EXT2, no GLOBAL at all
        for name, data in hostile.items():
            _run_for_real(data, marker)
            zip_with_pickle(tmp_path / f"{name}.pt", data)
            with pytest.raises(UnsafeFileError, match=r"'(os|posix)\.system'"):
                torchzip.read(tmp_path / f"{name}.pt")
            assert not marker.exists(), name
    finally:
        copyreg.remove_extension("posix", "system", 0xBEEF)
        copyreg.clear_extension_cache()
    zip_with_pickle(tmp_path / "ext1.pt", b"\x80\x02\x82\xf0.")  # unregistered code
    with pytest.raises(UnsafeFileError, match="extension code 240"):
        torchzip.read(tmp_path / "ext1.pt")


def test_build_on_a_stand_in_is_refused(tmp_path):
    # (None, {'__defaults__': (1,)}) BUILD would set the stand-in function's defaults.
    data = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__"
            b"K\x01\x85s\x86b.")
    before = torchzip._rebuild_tensor_v2.__defaults__
    zip_with_pickle(tmp_path / "b.pt", data)
    with pytest.raises(UnsafeFileError, match="refusing to set state on the global"):
        torchzip.read(tmp_path / "b.pt")
    assert torchzip._rebuild_tensor_v2.__defaults__ == before


def test_build_cannot_rewrite_a_checked_tensor(tmp_path):
    # {'a': <tensor>} then BUILD (None, {'shape': 'abc'}) on the tensor after its checks ran.
    e = torchzip._PickleEmitter()
    e.out += b"}X\x01\x00\x00\x00a"
    e.tensor(TensorSpec("a", DTYPES["F32"], (2,)), "0")
    e.out += b"N}X\x05\x00\x00\x00shapeX\x03\x00\x00\x00abcs\x86bs."
    with zipfile.ZipFile(tmp_path / "m.pt", "w") as zf:
        zf.writestr("archive/data.pkl", bytes(e.out))
        zf.writestr("archive/data/0", bytes(8))
    with pytest.raises(FormatError, match=r"m\.pt: refusing to set state on TensorRef"):
        torchzip.read(tmp_path / "m.pt")


# ---------------------------------------------------------------------------------------
# Corrupt files

@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"a": torch.arange(8.0), "b": torch.ones(3, dtype=torch.float16)}, path)
    return path


def rewrite(src, dst, change):
    """Copy the zip `src` to `dst`, passing each (name, bytes) through `change`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            out = change(info.filename, zin.read(info))
            if out is not None:
                zout.writestr(info.filename, out)


def test_garbage_and_truncated_files(tmp_path, saved):
    cases = {
        "empty.pt": b"",
        "garbage.pt": bytes(RNG.integers(0, 256, 1000, dtype=np.uint8)),
        "half.pt": saved.read_bytes()[:len(saved.read_bytes()) // 2],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(FormatError, match=rf"{name}: not a PyTorch zip checkpoint"):
            torchzip.read(tmp_path / name)

    spoil = {"cut.pt": lambda b: b[:len(b) // 2], "junk.pt": lambda b: b"\x80\x02\xff"}
    for name, pkl in spoil.items():
        rewrite(saved, tmp_path / name, lambda n, b: pkl(b) if n == "m/data.pkl" else b)
        with pytest.raises(FormatError, match=rf"{name}: corrupt or truncated pickle"):
            torchzip.read(tmp_path / name)

    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("dir/file.txt", b"hi")
    with pytest.raises(FormatError, match="no 'dir/data.pkl'"):
        torchzip.read(tmp_path / "other.zip")


def test_short_record_names_file_and_tensor(tmp_path, saved):
    rewrite(saved, tmp_path / "short.pt", lambda n, b: b[:12] if n == "m/data/0" else b)
    with pytest.raises(FormatError, match=r"short\.pt: tensor 'a': record 'm/data/0' holds 12 "
                                          r"bytes but its storage claims 32"):
        torchzip.read(tmp_path / "short.pt")


def test_tensor_beyond_its_storage(tmp_path):
    base = torch.arange(8.0)
    torch.save({"v": base[2:]}, tmp_path / "v.pt")
    # Claim the storage holds 4 floats only: the view (offset 2, 6 items) no longer fits.
    rewrite(tmp_path / "v.pt", tmp_path / "bad.pt", lambda n, b: b.replace(
        b"K\x08t", b"K\x04t") if n.endswith("data.pkl") else b)
    with pytest.raises(FormatError, match=r"tensor 'v' \(F32 \[6\], offset 2, stride \[1\]\) "
                                          r"needs 32 bytes of storage '0', which holds 16"):
        torchzip.read(tmp_path / "bad.pt")


def test_unknown_storage_key(tmp_path, saved):
    rewrite(saved, tmp_path / "nokey.pt", lambda n, b: None if n == "m/data/1" else b)
    with pytest.raises(FormatError, match=r"nokey\.pt: storage key '1' has no record 'm/data/1'"):
        torchzip.read(tmp_path / "nokey.pt")


# ---------------------------------------------------------------------------------------
# Hostile structure the attack corpus (tests/attacks/cases_torch.py) drives through the CLI;
# here, what must still read: real torch views, shared modules, partial reads of a record.

def test_expanded_views_torch_saves_still_read(tmp_path):
    """torch.save keeps expand() views (BERT's position_ids buffer is arange(n).expand(1, -1));
    within EXPAND_FACTOR x the storage, or EXPAND_SLACK bytes, they read as the dense copy."""
    sd = {"position_ids": torch.arange(64).expand((1, -1)),      # stride (0, 1)
          "broadcast": torch.zeros(1).expand(100),                # 4 bytes -> 400
          "rows": torch.randn(1, 8).expand(3, 8)}                 # 3x its storage
    torch.save(sd, tmp_path / "v.pt")
    got = {t.name: t.load() for t in torchzip.read(tmp_path / "v.pt")}
    for name, ref in sd.items():
        assert np.array_equal(got[name], ref.contiguous().numpy()), name


def test_an_expansion_past_the_bound_is_refused_before_reading(tmp_path):
    torch.save({"big": torch.zeros(1000).expand(1000, 1000)}, tmp_path / "big.pt")   # 4 KB -> 4 MB
    with pytest.raises(FormatError, match=r"big\.pt: tensor 'big' .* repeats the elements of its "
                                          r"4,000-byte storage"):
        torchzip.read(tmp_path / "big.pt")


def test_crc_checks_the_whole_record_under_a_view(tmp_path):
    """A view reads part of its record, but the first read checks the CRC of all of it: a
    corrupted byte outside the view is still caught, naming the tensor and the record."""
    base = torch.arange(1000.0)
    torch.save({"head": base[:10], "tail": base[990:]}, tmp_path / "m.pt")
    data = bytearray((tmp_path / "m.pt").read_bytes())
    offset = local_data_offsets(tmp_path / "m.pt")["m/data/0"]
    data[offset + 4 * 500] ^= 1                                   # element 500: in neither view
    (tmp_path / "bad.pt").write_bytes(bytes(data))
    head, tail = torchzip.read(tmp_path / "bad.pt")
    with pytest.raises(FormatError, match=r"bad\.pt: tensor 'head' \(record 'm/data/0'\): CRC-32 "
                                          r"mismatch"):
        head.load()
    # Intact, both views read (the second without reading the record again).
    a, b = torchzip.read(tmp_path / "m.pt")
    assert np.array_equal(a.load(), np.arange(10.0, dtype=np.float32))
    assert np.array_equal(b.load(), np.arange(990.0, 1000.0, dtype=np.float32))


def test_shared_submodules_are_named_where_they_first_appear(tmp_path):
    """A module held by two parents is walked once (as named_parameters() names it)."""
    dall_e = pytest.importorskip("dall_e")
    shared = dall_e.utils.Conv2d(2, 3, 1, use_float16=False)
    torch.save(torch.nn.Sequential(shared, torch.nn.Sequential(shared)), tmp_path / "enc.pkl")
    from irconv.formats import torchmodule
    names = [t.name for t in torchmodule.read(tmp_path / "enc.pkl")]
    assert names == ["0.w", "0.b"]


def test_nesting_is_bounded_and_sharing_costs_nothing(tmp_path):
    from irconv.formats.pickle import check_nesting
    shared: list = []
    for _ in range(60):          # 2**60 paths, 61 levels: walked once per object
        shared = [shared, shared]
    check_nesting(shared, path="x")
    for _ in range(10):
        shared = [shared]
    with pytest.raises(FormatError, match="deeper than 64"):
        check_nesting(shared, path="x")
    cyclic: list = []
    cyclic.append(cyclic)        # a cycle is not depth
    check_nesting(cyclic, path="x")


def test_tensors_copied_in_from_a_file_make_the_same_archive_as_written_ones(tmp_path):
    """copy() (a kernel copy from a safetensors file, the CRC-32 read back from the archive)
    and write() (the bytes from memory) give the same bytes, which torch and zipfile accept."""
    from conftest import written_both_ways
    from irconv.formats import safetensors as st_format
    rng = np.random.default_rng(0)
    arrays = {"a": rng.standard_normal((300, 7)).astype(np.float32), "b": np.arange(10, dtype=np.int64),
              "c": np.zeros((0, 3), np.float16), "d": rng.standard_normal(70000).astype(np.float32)}
    written, copied = written_both_ways(tmp_path, arrays, torchzip.TorchZipWriter, "m.bin")
    assert copied.read_bytes() == written.read_bytes()     # the archive's name is its file's: both m
    tensors = {t.name: t for t in st_format.read(tmp_path / "src.safetensors")}
    specs = [tensors[n].spec for n in sorted(arrays)]
    assert zipfile.ZipFile(tmp_path / "copy" / "m.bin").testzip() is None
    state = torch.load(tmp_path / "copy" / "m.bin", weights_only=True)
    assert all(np.array_equal(state[n].numpy(), arrays[n]) for n in arrays)
    with torchzip.TorchZipWriter(tmp_path / "bad.bin", specs) as w:
        with pytest.raises(UsageError, match="declared"):
            w.copy("a", TensorSpec("a", DTYPES["F32"], (7, 300)), tensors["a"].extent)
        w.abort()
    assert not (tmp_path / "bad.bin").exists()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_a_large_transpose_of_a_bin_tensor_reads_it_strip_by_strip_through_its_crc(tmp_path, dtype):
    """(out, in) -> (in, out) of a torch.save'd tensor that is all of its record: read a strip at
    a time into the transpose, the record's CRC-32 taken on the way; a tensor sharing its
    storage (a view of part of it) reads whole, as before. Same bytes as torch's own .t()."""
    from irconv.ir.layout import relayout
    big = torch.randn(600, 1031).to(dtype)            # > 1 MiB in every dtype here (TILED_FROM)
    shared = torch.randn(1200, 1031).to(dtype)
    path = tmp_path / "m.bin"
    torch.save({"big": big, "half": shared[:600]}, path)
    tensors = {t.name: t for t in torchzip.read(path)}
    assert tensors["big"].strips is not None and tensors["half"].strips is None
    from conftest import load_counting_reads
    as_ints = torch.int16 if dtype != torch.float32 else torch.int32
    for name, want in (("big", big), ("half", shared[:600])):
        moved = tensors[name].with_spec(axes=("out", "in")).transformed(relayout(("out", "in"), ("in", "out")))
        got, reads = load_counting_reads(moved)
        assert got.tobytes() == want.t().contiguous().view(as_ints).numpy().tobytes()
        if name == "big":
            assert len(reads) > 1 and sum(reads) == big.numel() * big.element_size()
        else:
            assert not reads          # read whole (its record's CRC covers more than it)


def test_a_flipped_bit_under_a_bin_strip_read_is_the_crc_error(tmp_path):
    from irconv.ir.layout import relayout
    big = torch.randn(512, 1024)
    path = tmp_path / "m.bin"
    torch.save({"big": big}, path)
    data = bytearray(path.read_bytes())
    at = data.find(big.numpy().tobytes()[:64])
    assert at > 0
    data[at + big.numel() * 2] ^= 0x08          # the middle of the tensor's record
    path.write_bytes(data)
    (t,) = torchzip.read(path)
    moved = t.with_spec(axes=("out", "in")).transformed(relayout(("out", "in"), ("in", "out")))
    with pytest.raises(FormatError, match=r"tensor 'big' .*CRC-32 mismatch") as info:
        moved.load()
    assert info.value.path == str(path)

