"""Attacks on torch checkpoints: pickles that would run code, nest deeply or share children;
storages viewed through strides that blow them up; zips with bombs, duplicate or overlapping
members; legacy (pre-1.6) streams; fairseq checkpoints; a full disk under the .bin writer;
truncations and single-byte corruptions of valid files (the zip CRC-32 makes a corrupted byte
of tensor data detectable, so those are refused)."""
from __future__ import annotations

import pickle
import struct
import zipfile
import zlib
from pathlib import Path

from attacks.corpus import REPO, case

from irconv.formats import torchzip

_ARCHIVE = "archive"
_CONTAINER = "torch.nn.modules.container"


# ---------------------------------------------------------------- building blocks

def _bin_dir(d: Path, ctx) -> Path:
    return ctx.bases.copy("pt-bin", d / "m")


def _members(path: Path) -> list[tuple[str, int, int]]:
    """(name, data offset, size) of every member of a zip, from its local headers."""
    out = []
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            f.seek(info.header_offset + 26)
            name_len, extra_len = struct.unpack("<HH", f.read(4))
            out.append((info.filename, info.header_offset + 30 + name_len + extra_len, info.file_size))
    return out


def flip_byte(path: Path, offset: int) -> Path:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def cut_file(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    return path


def flip_at_fraction(path: Path, fraction: float) -> Path:
    return flip_byte(path, int((path.stat().st_size - 1) * fraction))


def mutations(label: str, points, make, mutate, doc: str, **kw) -> None:
    """One case per point: `make(d, ctx)` -> (the input, the file in it to damage), then
    `mutate(file, point)`; the case is named '<label>-<point>'."""
    for point in points:
        def build(d, ctx, point=point):
            src, target = make(d, ctx)
            mutate(target, point)
            return src
        build.__doc__ = doc
        case(f"{label}-{point}", **kw)(build)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _checkpoint(path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None) -> Path:
    """A torch zip checkpoint with this data.pkl and these storage records."""
    members = {f"{_ARCHIVE}/data.pkl": data_pkl}
    members.update({f"{_ARCHIVE}/data/{k}": v for k, v in (storages or {}).items()})
    members[f"{_ARCHIVE}/version"] = b"3\n"
    return _zip(path, members)


def _state_pickle(entries, legacy: bool = False) -> bytes:
    """A state dict pickle: entries = (name, key, numel, offset, shape, stride), float32.
    legacy: the pre-1.6 persistent id, which adds a view-metadata None."""
    e = torchzip._PickleEmitter()
    e.empty_ordered_dict()
    e.out += b"("
    for name, key, numel, offset, shape, stride in entries:
        e.str_(name)
        e.global_("torch._utils", "_rebuild_tensor_v2")
        e.out += b"(("
        e.str_("storage")
        e.global_("torch", "FloatStorage")
        e.str_(key)
        e.str_("cpu")
        e.int_(numel)
        e.out += b"NtQ" if legacy else b"tQ"
        e.int_(offset)
        e.tuple_(shape)
        e.tuple_(stride)
        e.out += b"\x89"
        e.empty_ordered_dict()
        e.out += b"tR"
    e.out += b"u."
    return bytes(e.out)


def _one_tensor(d: Path, numel: int, shape, stride, offset=0, name="pytorch_model.bin") -> Path:
    pkl = _state_pickle([("w", "0", numel, offset, shape, stride)])
    return _checkpoint(d / name, pkl, {"0": bytes(4 * numel)})


def _raw_zip(path: Path, members: list[tuple[str, bytes, int, int, int]], extra_central=()) -> Path:
    """A zip written byte by byte: members = (name, stored bytes, method, uncompressed size,
    crc). `extra_central` = (name, header offset, size, crc) entries the central directory
    also lists (pointing wherever the attack wants)."""
    out, central = bytearray(), []
    for name, data, method, size, crc in members:
        raw = name.encode()
        central.append((raw, len(out), method, crc, len(data), size))
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), size,
                           len(raw), 0) + raw + data
    for name, offset, size, crc in extra_central:
        central.append((name.encode(), offset, 0, crc, size, size))
    start = len(out)
    for raw, offset, method, crc, csize, size in central:
        out += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, csize, size,
                           len(raw), 0, 0, 0, 0, 0, offset) + raw
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central), len(out) - start,
                       start, 0)
    path.write_bytes(bytes(out))
    return path


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


# ---------------------------------------------------------------- code-running pickles

def _payloads(marker: Path) -> dict[str, bytes]:
    import builtins
    import os
    import subprocess
    touch = f"touch {marker}"
    return {
        "os-system": pickle.dumps({"w": _Reduce(os.system, (touch,))}, protocol=2),
        "builtins-exec": pickle.dumps(_Reduce(builtins.exec, (f"open({str(marker)!r}, 'w')",)), protocol=2),
        "builtins-eval-protocol4": pickle.dumps(_Reduce(builtins.eval, (f"open({str(marker)!r}, 'w')",)),
                                                protocol=4),
        "subprocess-popen": pickle.dumps(_Reduce(subprocess.Popen, (["touch", str(marker)],)), protocol=2),
        # Protocol 0 INST: a class instantiated with arguments, no REDUCE.
        "inst-os-system": b"(S'" + touch.encode() + b"'\nios\nsystem\n.",
        # A whole pickled module of an allowed class whose state REDUCEs os.system.
        "module-state-os-system": (b"\x80\x02c" + _CONTAINER.encode() + b"\nSequential\n)\x81}X\x07\x00\x00\x00"
                                   b"payloadcos\nsystem\nX" + struct.pack("<I", len(touch)) + touch.encode()
                                   + b"\x85Rsb."),
        # A module class outside the allowlist (nn.Linear).
        "module-linear": b"\x80\x02ctorch.nn.modules.linear\nLinear\n)\x81}b.",
    }


def _payload_case(label: str):
    @case(f"torch/pickle-{label}", fmt="pt", verbs=("convert", "ls", "import"), needle="refus")
    def build(d, ctx):
        """A data.pkl that would run code (or build a class irconv does not list): refused, not run."""
        return _checkpoint(d / "pytorch_model.bin", _payloads(ctx.marker)[label])


for _label in ("os-system", "builtins-exec", "builtins-eval-protocol4", "subprocess-popen",
               "inst-os-system", "module-state-os-system", "module-linear"):
    _payload_case(_label)


@case("torch/pickle-harmless-control", verbs=("convert", "ls"), needle="no tensors")
def harmless_control(d, ctx):
    """Control for the payloads: the same layout with a harmless pickle gets past the unpickler."""
    return _checkpoint(d / "pytorch_model.bin", pickle.dumps({}, protocol=2))


@case("torch/pickle-payload-in-fairseq", fmt="fairseq", verbs=("convert", "import"), needle="refus",
      names="model.pt")
def payload_in_fairseq(d, ctx):
    """A fairseq checkpoint whose args Namespace state REDUCEs os.system."""
    m = d / "m"
    m.mkdir()
    (m / "dict.txt").write_text("a 1\n")
    _checkpoint(m / "model.pt", _payloads(ctx.marker)["os-system"])
    return m


# ---------------------------------------------------------------- nesting, sharing

def _proto2(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


@case("torch/pickle-deep-tuple-key", needle="nest")
def deep_tuple_key(d, ctx):
    """A 200000-deep tuple used as a dict key: hashing it segfaulted the interpreter, before."""
    return _checkpoint(d / "pytorch_model.bin", _proto2(b"})" + b"\x85" * 200000 + b"K\x01s"))


@case("torch/pickle-deep-tuple-in-set", needle="nest")
def deep_tuple_set(d, ctx):
    """A 200000-deep tuple put in a set through the allowed builtins.set."""
    return _checkpoint(d / "pytorch_model.bin",
                       _proto2(b"cbuiltins\nset\n]" + b")" + b"\x85" * 200000 + b"a\x85R"))


def _shared_tuples(levels: int, width: int = 8) -> bytes:
    """T_k = (T_(k-1),) * width, `levels` deep, each level the last one's memo entry repeated: a
    few hundred bytes, width ** levels items to walk."""
    level = b"q\x00" + b"0" + b"(" + b"h\x00" * width + b"t"
    return b"K\x01" + level * levels


@case("torch/pickle-shared-tuples-as-key", needle="shares", timeout=5)
def shared_tuple_key(d, ctx):
    """A tuple of 8 copies of a tuple of 8 copies ... 30 levels (300 bytes), as a dict key:
    Python hashes a tuple through all its items, uncached (8 ** 30 steps)."""
    return _checkpoint(d / "pytorch_model.bin", _proto2(b"}" + _shared_tuples(30) + b"K\x01s"))


@case("torch/pickle-shared-tuples-as-storage", needle="shares", timeout=5)
def shared_tuple_pid(d, ctx):
    """The same tuple as a persistent id: the refusal message printed all of it, once."""
    return _checkpoint(d / "pytorch_model.bin", _proto2(_shared_tuples(30) + b"Q"))


@case("torch/pickle-shared-lists-to-codecs", needle="bytes literal", timeout=5)
def shared_lists_codecs(d, ctx):
    """Lists sharing lists 30 levels deep given to the allowed _codecs.encode: its message's
    repr() walked every copy (memory rising past 700 MB)."""
    level = b"q\x00" + b"0" + b"]" + b"(" + b"h\x00" * 8 + b"e"
    return _checkpoint(d / "pytorch_model.bin",
                       _proto2(b"c_codecs\nencode\n" + b"]" + level * 30 + b"\x85R"))


@case("torch/pickle-deep-lists", needle="nest")
def deep_lists(d, ctx):
    """Lists nested 200000 deep (values of the state dict)."""
    return _checkpoint(d / "pytorch_model.bin",
                       _proto2(b"}X\x01\x00\x00\x00w" + b"]" * 200001 + b"a" * 200000 + b"s"))


@case("torch/pickle-deep-marks", needle="mark")
def deep_marks(d, ctx):
    """200000 MARKs open at once."""
    return _checkpoint(d / "pytorch_model.bin", _proto2(b"(" * 200000 + b"}"))


@case("torch/pickle-huge-string", needle="declares")
def huge_string(d, ctx):
    """A BINUNICODE8 declaring 2**62 bytes."""
    return _checkpoint(d / "pytorch_model.bin", b"\x80\x04\x8d" + struct.pack("<Q", 1 << 62) + b"x.")


def _shared_modules(depth: int) -> bytes:
    """A Sequential whose _modules hold the same child twice, `depth` levels deep."""
    out = bytearray(b"\x80\x02c" + _CONTAINER.encode() + b"\nSequential\nq\x00")

    def module(children: bytes) -> bytes:
        return (b"h\x00)\x81}(X\x0b\x00\x00\x00_parameters}"
                b"X\x08\x00\x00\x00_buffers}X\x08\x00\x00\x00_modules}(" + children + b"uub")
    out += module(b"") + b"q\x01"
    for level in range(2, depth + 2):
        prev = bytes([level - 1])
        out += module(b"X\x01\x00\x00\x00ah" + prev + b"X\x01\x00\x00\x00bh" + prev) + b"q" + bytes([level])
    return bytes(out + b".")


@case("torch/module-shared-children", needle="no tensors", timeout=5)
def module_shared(d, ctx):
    """A 1.5 KB module pickle, each module's _modules holding one child twice, 20 deep: walked
    2**20 times before (a timeout). (40 deep, as the audit's 4.7 KB file, now nests deeper
    than the pickle bound allows, three containers a module level: the case below.)"""
    return _checkpoint(d / "encoder.pkl", _shared_modules(20))


@case("torch/module-shared-children-40", needle="nest", timeout=5)
def module_shared_40(d, ctx):
    """Shared children 40 deep (3 KB; 2**40 walks before), now past the pickle's nesting bound."""
    return _checkpoint(d / "encoder.pkl", _shared_modules(40))


@case("torch/module-too-deep", needle="deeper", timeout=5)
def module_deep(d, ctx):
    """A module tree 100 deep (within the pickle's nesting bound: modules are Stubs)."""
    return _checkpoint(d / "encoder.pkl", _shared_modules(100))


# ---------------------------------------------------------------- strides and shapes

@case("torch/zero-strides", verbs=("convert", "ls", "diff"), needle="stride", names="pytorch_model.bin")
def zero_strides(d, ctx):
    """The tiny BERT (~100 KB) with vocab_size 10**8, its vocabulary-sized tensors zero-strided
    views of their 128-row storages: 12.8 GB arrays (a MemoryError as the first loads), before."""
    import json
    vocab = 10 ** 8
    src = ctx.bases.get("pt-bin")
    entries, storages = [], {}
    for n, t in enumerate(torchzip.read(src / "pytorch_model.bin")):
        shape, stride = list(t.shape), list(torchzip._contiguous_strides(t.shape))
        if shape[0] == 128:
            shape[0], stride[0] = vocab, 0
        storages[str(n)] = t.load().tobytes()
        entries.append((t.name, str(n), t.spec.numel, 0, tuple(shape), tuple(stride)))
    m = d / "m"
    m.mkdir()
    config = json.loads((src / "config.json").read_text())
    (m / "config.json").write_text(json.dumps({**config, "vocab_size": vocab}))
    _checkpoint(m / "pytorch_model.bin", _state_pickle(entries), storages)
    return m


@case("torch/overlapping-strides", verbs=("convert", "ls", "diff"), needle="stride")
def overlapping_strides(d, ctx):
    """Strides (1, 1): 2**16 rows, each one element on from the last, 16 GiB from 512 KB."""
    return _one_tensor(d, 1 << 17, (1 << 16, 1 << 16), (1, 1))


@case("torch/dim-overflows-int64", verbs=("convert", "ls"), needle="int64")
def dim_overflow(d, ctx):
    """A dimension of 2**64 (with stride 0, so the storage check alone passes)."""
    return _one_tensor(d, 4, (1 << 64,), (0,))


@case("torch/dim-huge-digits", verbs=("convert", "ls"), needle="int64")
def dim_digits(d, ctx):
    """A dimension of 10**5000: repr() refuses such ints, so even the message must not print it."""
    pkl = _state_pickle([("w", "0", 1, 0, (1,), (1,))]).replace(b"K\x01\x85K\x01\x85", b"\x8b" + struct.pack(
        "<I", 2077) + (10 ** 5000).to_bytes(2077, "little") + b"\x85K\x01\x85", 1)
    return _checkpoint(d / "pytorch_model.bin", pkl, {"0": bytes(4)})


@case("torch/shape-bytes-overflow", verbs=("convert", "ls"), needle="bytes")
def shape_overflow(d, ctx):
    """Shape (2**31,)*3 with stride 0: 2**95 bytes declared."""
    return _one_tensor(d, 4, (1 << 31, 1 << 31, 1 << 31), (0, 0, 0))


@case("torch/negative-dim", verbs=("convert", "ls"), needle="non-negative")
def negative_dim(d, ctx):
    """Shape (-1, 4)."""
    return _one_tensor(d, 4, (-1, 4), (4, 1))


@case("torch/storage-beyond-record", verbs=("convert", "ls"), needle="storage")
def storage_beyond(d, ctx):
    """A storage claiming 10**9 elements on a 16-byte record."""
    pkl = _state_pickle([("w", "0", 10 ** 9, 0, (4,), (1,))])
    return _checkpoint(d / "pytorch_model.bin", pkl, {"0": bytes(16)})


@case("torch/one-storage-many-names", verbs=("convert", "ls", "diff"), needle="over and over")
def many_names(d, ctx):
    """A 4 MB storage named by 10000 tensors: 40 GB for a conversion to write."""
    numel = 1 << 20
    pkl = _state_pickle([(f"t{i}", "0", numel, 0, (numel,), (1,)) for i in range(10000)])
    return _checkpoint(d / "pytorch_model.bin", pkl, {"0": bytes(4 * numel)})


# ---------------------------------------------------------------- the zip container

def _deflate_bomb(mib: int) -> bytes:
    """A raw deflate stream of `mib` MiB of zeros, about 1 KB per MiB."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    first = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    again = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    return first + again * (mib - 1) + c.flush()


@case("torch/zip-bomb-data-pkl", verbs=("convert", "ls"), needle="bomb", timeout=10)
def zip_bomb(d, ctx):
    """A 4 MB zip whose data.pkl inflates to 4 GiB (4095 MiB): read whole, before."""
    return _raw_zip(d / "pytorch_model.bin", [(f"{_ARCHIVE}/data.pkl", _deflate_bomb(4095), 8,
                                              4095 << 20, 0)])


@case("torch/zip-data-pkl-too-large", verbs=("convert", "ls"), needle="declares")
def pkl_too_large(d, ctx):
    """A deflated data.pkl inflating to 300 MiB from 300 KB (within deflate's ratio, over the cap)."""
    return _raw_zip(d / "pytorch_model.bin", [(f"{_ARCHIVE}/data.pkl", _deflate_bomb(300), 8, 300 << 20, 0)])


@case("torch/zip-duplicate-member", verbs=("convert", "ls"), needle="twice", names="pytorch_model.bin")
def zip_duplicate(d, ctx):
    """Two members named pytorch_model/data/0: zipfile silently took the last one (zeros), before."""
    import warnings
    src = _bin_dir(d, ctx)
    path = src / "pytorch_model.bin"
    name, _, size = next(m for m in _members(path) if m[0].endswith("/data/0"))
    with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as z:
        warnings.simplefilter("ignore")
        z.writestr(name, bytes(size))
    return src


@case("torch/zip-overlapping-members", verbs=("convert", "ls"), needle="overlap")
def zip_overlap(d, ctx):
    """A second central-directory entry whose local header lies inside another member's bytes."""
    pkl = _state_pickle([("w", "0", 4, 0, (4,), (1,)), ("v", "1", 4, 0, (4,), (1,))])
    inner_name = f"{_ARCHIVE}/data/1".encode()
    inner = (struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, zlib.crc32(bytes(16)), 16, 16,
                         len(inner_name), 0) + inner_name + bytes(16))
    path = d / "pytorch_model.bin"
    members = [(f"{_ARCHIVE}/data.pkl", pkl, 0, len(pkl), zlib.crc32(pkl))]
    offset = 30 + len(members[0][0]) + len(pkl)
    members.append((f"{_ARCHIVE}/data/0", inner + bytes(16), 0, len(inner) + 16, zlib.crc32(inner + bytes(16))))
    inner_at = offset + 30 + len(members[1][0])
    return _raw_zip(path, members, extra_central=[(f"{_ARCHIVE}/data/1", inner_at, 16, zlib.crc32(bytes(16)))])


@case("torch/zip-header-past-eof", verbs=("convert", "ls"), needle="offset")
def zip_past_eof(d, ctx):
    """A central-directory entry whose local header offset is past the end of the file."""
    pkl = _state_pickle([("w", "0", 4, 0, (4,), (1,))])
    return _raw_zip(d / "pytorch_model.bin", [(f"{_ARCHIVE}/data.pkl", pkl, 0, len(pkl), zlib.crc32(pkl))],
                    extra_central=[(f"{_ARCHIVE}/data/0", 10 ** 9, 16, 0)])


@case("torch/zip-crc-data-pkl", verbs=("convert", "ls"), needle="crc", names="pytorch_model.bin")
def crc_data_pkl(d, ctx):
    """One byte of data.pkl changed (a string inside it: still a valid pickle)."""
    src = _bin_dir(d, ctx)
    path = src / "pytorch_model.bin"
    name, offset, size = next(m for m in _members(path) if m[0].endswith("data.pkl"))
    at = path.read_bytes().index(b"embeddings", offset)
    return flip_byte(path, at).parent


def _tensor_byte_case(label: str, which: int, where: float):
    @case(f"torch/zip-crc-tensor-{label}", verbs=("convert", "diff"), needle=("crc", "record"),
          names="pytorch_model.bin")
    def build(d, ctx):
        """One byte of a tensor's data changed: the zip CRC-32 catches it."""
        src = _bin_dir(d, ctx)
        path = src / "pytorch_model.bin"
        records = [m for m in _members(path) if "/data/" in m[0]]
        name, offset, size = records[which % len(records)]
        flip_byte(path, offset + int(size * where))
        return src


for _label, _which, _where in (("first", 0, 0.0), ("middle", 7, 0.5), ("last", -1, 0.999)):
    _tensor_byte_case(_label, _which, _where)


@case("torch/fifo-bin", verbs=("convert", "ls"), needle="fifo", timeout=5)
def fifo_bin(d, ctx):
    """A FIFO named pytorch_model.bin given as the input: opened (blocking forever) before."""
    import os
    p = d / "pytorch_model.bin"
    os.mkfifo(p)
    return p


# ---------------------------------------------------------------- truncations, corruptions

def _bin_file(d, ctx):
    src = _bin_dir(d, ctx)
    return src, src / "pytorch_model.bin"


mutations("torch/bin-truncated", (0.05, 0.3, 0.6, 0.95, 0.9999), _bin_file, cut_file,
          "pytorch_model.bin cut short.", verbs=("convert",), names="pytorch_model.bin")
mutations("torch/bin-flip", (0.01, 0.2, 0.5, 0.8, 0.97, 0.995), _bin_file, flip_at_fraction,
          "One byte of pytorch_model.bin changed anywhere (headers hold bytes no check covers).",
          verbs=("convert",), names="pytorch_model.bin", expect="clean")


# ---------------------------------------------------------------- legacy torch.save

def _legacy_base(ctx) -> Path:
    """A pre-1.6 torch.save stream of a small state dict, as torch.serialization's legacy
    _save writes it: magic, protocol, sys info, the object, the sorted storage keys, then each
    storage as int64 numel + bytes (tests/test_torch_legacy.py reads real torch-made ones)."""
    import numpy as np
    path = ctx.root / "legacy-base.pt"
    if not path.exists():
        rng = np.random.default_rng(0)
        shapes = {"a.weight": (64, 32), "a.bias": (64,), "b.weight": (16, 64)}
        entries, data = [], b""
        for key, (name, shape) in enumerate(shapes.items()):
            numel = int(np.prod(shape))
            entries.append((name, str(key), numel, 0, shape, torchzip._contiguous_strides(shape)))
            data += struct.pack("<q", numel) + rng.standard_normal(numel, dtype=np.float32).tobytes()
        info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
        path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
                         + pickle.dumps(info, protocol=2) + _state_pickle(entries, legacy=True)
                         + pickle.dumps([str(k) for k in range(len(shapes))], protocol=2) + data)
    return path


def _legacy(d: Path, ctx) -> Path:
    dest = d / "model.pt"
    dest.write_bytes(_legacy_base(ctx).read_bytes())
    return dest


@case("torch/legacy-negative-numel", verbs=("convert", "ls"), needle="elements")
def legacy_negative(d, ctx):
    """A legacy storage whose int64 element count (after the pickles) is negative: the offset
    of every later storage ran backwards, before."""
    path = _legacy(d, ctx)
    data = bytearray(path.read_bytes())
    # The first storage's numel follows the key-list pickle; it is 64*32 for 'a.weight'.
    count = struct.pack("<q", 64 * 32)
    at = data.index(count)
    data[at:at + 8] = struct.pack("<q", -(1 << 40))
    path.write_bytes(bytes(data))
    return path


def _legacy_file(d, ctx):
    path = _legacy(d, ctx)
    return path, path


mutations("torch/legacy-truncated", (0.01, 0.1, 0.5, 0.99), _legacy_file, cut_file,
          "A legacy torch.save file cut short.", verbs=("convert",))
mutations("torch/legacy-flip", (0.002, 0.05, 0.4, 0.9), _legacy_file, flip_at_fraction,
          "One byte of a legacy file changed (it carries no checksum).", verbs=("convert",), expect="clean")


# ---------------------------------------------------------------- fairseq

FAIRSEQ = REPO / "tests" / "fixtures" / "fairseq" / "roberta_base-args"


def _fairseq(d: Path) -> Path:
    import shutil
    m = d / "m"
    m.mkdir()
    for name in ("model.pt", "dict.txt"):
        shutil.copyfile(FAIRSEQ / name, m / name)
    return m


def _fairseq_file(d, ctx):
    m = _fairseq(d)
    return m, m / "model.pt"


mutations("torch/fairseq-truncated", (0.02, 0.5, 0.99), _fairseq_file, cut_file,
          "A real fairseq checkpoint cut short.", fmt="fairseq", verbs=("convert", "import"), names="model.pt")


def _fairseq_pickle(d: Path, obj) -> Path:
    m = d / "m"
    m.mkdir()
    (m / "dict.txt").write_text("a 1\n")
    _checkpoint(m / "model.pt", pickle.dumps(obj, protocol=2))
    return m


@case("torch/fairseq-int-key", fmt="fairseq", verbs=("convert", "import"), names="model.pt", needle="names")
def fairseq_int_key(d, ctx):
    """A fairseq model state dict keyed by an int (a TypeError, an internal error, before)."""
    return _fairseq_pickle(d, {"model": {1: 2}})


@case("torch/fairseq-cfg-a-string", fmt="fairseq", verbs=("convert",), names="model.pt", needle="config")
def fairseq_cfg_string(d, ctx):
    """A fairseq checkpoint whose cfg is a string (an error naming no file, before)."""
    return _fairseq_pickle(d, {"model": {}, "cfg": "x"})


@case("torch/fairseq-crc-tensor", fmt="fairseq", verbs=("convert", "import"), names="model.pt", needle="crc")
def fairseq_crc(d, ctx):
    """One byte of a tensor of a real fairseq checkpoint changed."""
    m = _fairseq(d)
    name, offset, size = max((r for r in _members(m / "model.pt") if "/data/" in r[0]), key=lambda r: r[2])
    flip_byte(m / "model.pt", offset + size // 3)
    return m


@case("torch/fairseq-crc-data-pkl", fmt="fairseq", verbs=("convert",), names="model.pt", needle="crc")
def fairseq_crc_pkl(d, ctx):
    """One byte of a real fairseq checkpoint's data.pkl changed."""
    m = _fairseq(d)
    name, offset, size = next(r for r in _members(m / "model.pt") if r[0].endswith("data.pkl"))
    flip_byte(m / "model.pt", offset + size // 2)
    return m


# ---------------------------------------------------------------- writers on a full disk

@case("torch/write-bin-full-disk", verbs=("convert",), out_args=("--bin",), fsize=50_000,
      names="pytorch_model.bin", needle="cannot write")
def write_bin_full(d, ctx):
    """The .bin writer hits EFBIG halfway: a traceback from ZipFile.__del__, before."""
    return ctx.bases.copy("pt", d / "m")


@case("torch/write-bin-sharded-full-disk", verbs=("convert",), out_args=("--bin", "--max-shard-size", "30000B"),
      fsize=20_000, names="pytorch_model", needle="cannot write")
def write_bin_sharded_full(d, ctx):
    """Sharded .bin output, the first shard hitting EFBIG."""
    return ctx.bases.copy("pt", d / "m")


@case("torch/write-config-full-disk", verbs=("convert",), out_args=("--bin",), fsize=400,
      names="config.json", needle="cannot write")
def write_config_full(d, ctx):
    """Even config.json does not fit."""
    return ctx.bases.copy("pt", d / "m")


@case("torch/export-bin-full-disk", stream=True, verbs=("export",), out_args=("--bin",), fsize=50_000,
      names="pytorch_model.bin", needle="cannot write")
def export_bin_full(d, ctx):
    """`irconv export pt OUT --bin` from a stream, the .bin writer hitting EFBIG."""
    return ctx.bases.copy("stream", d / "model.irs")
