"""Attacks on safetensors files and sharded safetensors directories: header lengths, header
JSON (huge, deep, duplicate keys, wrong types), data offsets, dtypes, shapes; index files whose
shard names leave the folder, name missing shards or disagree with the shards; a full disk under
the writer; truncations and single-byte corruptions (safetensors has no checksum: a changed
data byte converts, so those mutations only have to end cleanly)."""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from attacks.cases_torch import cut_file, flip_byte, mutations
from attacks.corpus import case

SF = "model.safetensors"
INDEX = "model.safetensors.index.json"


def _base(d: Path, ctx) -> Path:
    return ctx.bases.copy("pt", d / "m")


def _split(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join(path: Path, header: dict | bytes, body: bytes) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    return path


def _edit_header(d: Path, ctx, edit) -> Path:
    """The tiny BERT with its safetensors header changed by `edit(header)`."""
    src = _base(d, ctx)
    header, body = _split(src / SF)
    edit(header)
    _join(src / SF, header, body)
    return src


def _first(header: dict) -> str:
    return next(k for k in header if k != "__metadata__")


def _sharded(d: Path, ctx) -> Path:
    return ctx.bases.copy("pt-sharded", d / "m")


def _index(src: Path) -> dict:
    return json.loads((src / INDEX).read_text())


def _shards(src: Path) -> list[Path]:
    return sorted(src.glob("model-*.safetensors"))


# ---------------------------------------------------------------- the header

@case("safetensors/header-length-past-eof", names=SF, needle="truncated")
def header_past_eof(d, ctx):
    """A header length larger than the file."""
    src = _base(d, ctx)
    data = (src / SF).read_bytes()
    (src / SF).write_bytes(struct.pack("<Q", len(data)) + data[8:])
    return src


@case("safetensors/header-length-huge", names=SF)
def header_huge(d, ctx):
    """A header length of 2**63."""
    src = _base(d, ctx)
    data = (src / SF).read_bytes()
    (src / SF).write_bytes(struct.pack("<Q", 1 << 63) + data[8:])
    return src


@case("safetensors/header-deep-json", names=SF, needle="nest")
def header_deep(d, ctx):
    """A header nesting 100000 lists (RecursionError, an internal error, before)."""
    src = _base(d, ctx)
    _join(src / SF, b'{"x": ' + b"[" * 100000 + b"]" * 100000 + b"}", b"")
    return src


@case("safetensors/header-int-5000-digits", names=SF)
def header_digits(d, ctx):
    """A shape holding a 5000-digit integer (json's int() limit raised an internal error, before)."""
    src = _base(d, ctx)
    header, body = _split(src / SF)
    raw = json.dumps(header).replace('"shape": [', '"shape": [' + "9" * 5000 + ", ", 1)
    _join(src / SF, raw.encode(), body)
    return src


@case("safetensors/header-not-object", names=SF)
def header_list(d, ctx):
    """A header that is a JSON list."""
    src = _base(d, ctx)
    _join(src / SF, b"[1, 2, 3]", (src / SF).read_bytes()[8:])
    return src


@case("safetensors/duplicate-tensor", names=SF, needle="duplicate")
def duplicate_tensor(d, ctx):
    """A header naming one tensor twice (json would keep the last silently)."""
    src = _base(d, ctx)
    header, body = _split(src / SF)
    name = _first(header)
    raw = json.dumps(header)
    entry = json.dumps({name: header[name]})[1:-1]
    _join(src / SF, ("{" + entry + ", " + raw[1:]).encode(), body)
    return src


@case("safetensors/unknown-dtype", names=SF, needle="dtype")
def unknown_dtype(d, ctx):
    """A dtype safetensors does not have."""
    return _edit_header(d, ctx, lambda h: h[_first(h)].update(dtype="F128"))


@case("safetensors/dtype-not-string", names=SF, needle="dtype")
def dtype_list(d, ctx):
    """A dtype that is a list."""
    return _edit_header(d, ctx, lambda h: h[_first(h)].update(dtype=["F32"]))


@case("safetensors/offsets-past-eof", names=SF)
def offsets_past_eof(d, ctx):
    """data_offsets running past the end of the file."""
    def edit(h):
        last = max((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][1])
        begin, end = h[last]["data_offsets"]
        h[last]["data_offsets"] = [begin + 10 ** 9, end + 10 ** 9]
    return _edit_header(d, ctx, edit)


@case("safetensors/offsets-overlap", names=SF, needle="overlap")
def offsets_overlap(d, ctx):
    """Two tensors claiming the same bytes (the second's offsets set to the first's)."""
    def edit(h):
        names = sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])
        a, b = names[0], next(n for n in names[1:] if h[n]["dtype"] == h[names[0]]["dtype"]
                              and h[n]["shape"] == h[names[0]]["shape"])
        h[b]["data_offsets"] = list(h[a]["data_offsets"])
    return _edit_header(d, ctx, edit)


@case("safetensors/offsets-mismatch-shape", names=SF, needle="needs")
def offsets_mismatch(d, ctx):
    """A shape whose bytes differ from its data_offsets span."""
    return _edit_header(d, ctx, lambda h: h[_first(h)].update(shape=h[_first(h)]["shape"] + [2]))


@case("safetensors/shape-negative", names=SF, needle="shape")
def shape_negative(d, ctx):
    """A negative dimension."""
    return _edit_header(d, ctx, lambda h: h[_first(h)].update(shape=[-1]))


@case("safetensors/shape-overflows-int64", names=SF, needle="shape")
def shape_int64(d, ctx):
    """An empty tensor with a dimension of 2**70 (0 bytes, so the offsets check passes)."""
    def edit(h):
        h["extra.empty"] = {"dtype": "F32", "shape": [0, 1 << 70], "data_offsets": [0, 0]}
    return _edit_header(d, ctx, edit)


@case("safetensors/shape-bytes-overflow", names=SF, needle="bytes")
def shape_bytes(d, ctx):
    """A shape of 2**95 bytes."""
    return _edit_header(d, ctx, lambda h: h[_first(h)].update(shape=[1 << 31, 1 << 31, 1 << 31]))


@case("safetensors/metadata-not-strings", names=SF, needle="__metadata__")
def metadata_nested(d, ctx):
    """__metadata__ holding an object."""
    return _edit_header(d, ctx, lambda h: h.update(__metadata__={"format": {"a": 1}}))


# ---------------------------------------------------------------- sharded directories

def _edit_index(d: Path, ctx, edit) -> Path:
    src = _sharded(d, ctx)
    index = _index(src)
    edit(index, src)
    (src / INDEX).write_text(json.dumps(index))
    return src


def _secret_shard(d: Path, ctx, src: Path) -> Path:
    """A copy of the first shard, outside the model directory, one tensor's bytes the secret."""
    shard = _shards(src)[0]
    header, body = _split(shard)
    name = max((k for k in header if k != "__metadata__"),
               key=lambda k: header[k]["data_offsets"][1] - header[k]["data_offsets"][0])
    begin, end = header[name]["data_offsets"]
    secret = ctx.secret.read_bytes()[:end - begin]
    body = body[:begin] + secret + body[begin + len(secret):]
    return _join(d / shard.name, header, body)


@case("safetensors/index-dotdot-shard", names=INDEX, needle="outside")
def index_dotdot(d, ctx):
    """The index maps tensors to ../<shard>, a copy holding the secret outside the directory."""
    def edit(index, src):
        first = _shards(src)[0].name
        _secret_shard(d, ctx, src)
        index["weight_map"] = {k: f"../{first}" if v == first else v for k, v in index["weight_map"].items()}
    return _edit_index(d, ctx, edit)


@case("safetensors/index-absolute-shard", names=INDEX, needle="outside")
def index_absolute(d, ctx):
    """The index maps tensors to an absolute path holding the secret."""
    def edit(index, src):
        first = _shards(src)[0].name
        outside = _secret_shard(d, ctx, src)
        index["weight_map"] = {k: str(outside) if v == first else v for k, v in index["weight_map"].items()}
    return _edit_index(d, ctx, edit)


@case("safetensors/index-missing-shard", names=INDEX, needle="missing")
def index_missing(d, ctx):
    """The index names a shard that is not there."""
    def edit(index, src):
        key = next(iter(index["weight_map"]))
        index["weight_map"][key] = "model-00009-of-00009.safetensors"
    return _edit_index(d, ctx, edit)


@case("safetensors/index-duplicate-tensor", names=INDEX, needle="duplicate")
def index_duplicate(d, ctx):
    """The index lists one tensor under two shards (json keeps the last silently)."""
    src = _sharded(d, ctx)
    index = _index(src)
    shards = [s.name for s in _shards(src)]
    name = next(k for k, v in index["weight_map"].items() if v == shards[0])
    raw = json.dumps(index)
    raw = raw.replace('"weight_map": {', '"weight_map": {' + json.dumps(name) + ": " + json.dumps(shards[1]) + ", ", 1)
    (src / INDEX).write_text(raw)
    return src


@case("safetensors/index-wrong-shard", names=INDEX, needle="index says")
def index_wrong(d, ctx):
    """The index maps a tensor to another shard than the one holding it."""
    def edit(index, src):
        shards = [s.name for s in _shards(src)]
        name = next(k for k, v in index["weight_map"].items() if v == shards[0])
        index["weight_map"][name] = shards[1]
    return _edit_index(d, ctx, edit)


@case("safetensors/tensor-in-two-shards", needle="two shards", names="model-")
def two_shards(d, ctx):
    """A tensor stored in two shard files."""
    src = _sharded(d, ctx)
    a, b = _shards(src)[:2]
    ha, body_a = _split(a)
    hb, body_b = _split(b)
    name = _first(ha)
    begin, end = ha[name]["data_offsets"]
    shift = len(body_b)
    hb[name] = {**ha[name], "data_offsets": [shift, shift + end - begin]}
    _join(b, hb, body_b + body_a[begin:end])
    return src


@case("safetensors/index-deep-json", names=INDEX, needle="nest")
def index_deep(d, ctx):
    """An index nested 100000 deep."""
    src = _sharded(d, ctx)
    (src / INDEX).write_text('{"weight_map": ' + "[" * 100000 + "]" * 100000 + "}")
    return src


@case("safetensors/index-fifo", verbs=("convert", "ls"), names=INDEX, needle="fifo", timeout=5)
def index_fifo(d, ctx):
    """The index file is a FIFO given as the input (open() blocked forever, before)."""
    src = _sharded(d, ctx)
    (src / INDEX).unlink()
    os.mkfifo(src / INDEX)
    return src / INDEX


@case("safetensors/shard-fifo", names="model-00001", needle="fifo", timeout=5)
def shard_fifo(d, ctx):
    """A shard file that is a FIFO."""
    src = _sharded(d, ctx)
    shard = _shards(src)[0]
    shard.unlink()
    os.mkfifo(shard)
    return src


# ---------------------------------------------------------------- the writer on a full disk

@case("safetensors/write-full-disk", verbs=("convert",), fsize=50_000, names=SF, needle="cannot write")
def write_full(d, ctx):
    """The safetensors writer past RLIMIT_FSIZE (EFBIG; "File too large" naming no file, before)."""
    return ctx.bases.copy("pt-bin", d / "m")


@case("safetensors/write-sharded-full-disk", verbs=("convert",), out_args=("--max-shard-size", "30000B"),
      fsize=20_000, names="model-0000", needle="cannot write")
def write_sharded_full(d, ctx):
    """Sharded safetensors output, a shard past RLIMIT_FSIZE."""
    return ctx.bases.copy("pt-bin", d / "m")


# ---------------------------------------------------------------- truncations, corruptions

def _sf_file(d, ctx):
    src = _base(d, ctx)
    return src, src / SF


def _header_size(path: Path) -> int:
    return 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]


def _flip_header(path: Path, at) -> None:
    """`at`: a byte offset (int) or a fraction of the header JSON (float)."""
    flip_byte(path, at if isinstance(at, int) else int(8 + (_header_size(path) - 9) * at))


def _flip_data(path: Path, at: float) -> None:
    n = _header_size(path)
    flip_byte(path, n + int((path.stat().st_size - n - 1) * at))


def _shard_file(which: int):
    def make(d, ctx):
        src = _sharded(d, ctx)
        return src, _shards(src)[which]
    return make


def _index_file(d, ctx):
    src = _sharded(d, ctx)
    return src, src / INDEX


mutations("safetensors/truncated", (0.0, 0.004, 0.03, 0.5, 0.9999), _sf_file, cut_file,
          "model.safetensors cut short (in the length, the header, the data).", verbs=("convert",), names=SF)
# A changed tensor name is a mapping error, which names the model directory.
mutations("safetensors/header-flip", (0, 3, 7, 8, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99), _sf_file, _flip_header,
          "One byte of the length or the header JSON changed: never a crash.",
          verbs=("convert",), names="in/m", expect="clean")
mutations("safetensors/data-flip", (0.0, 0.5, 0.999), _sf_file, _flip_data,
          "One byte of tensor data changed: no checksum to catch it, it converts.",
          verbs=("convert",), names=SF, expect="clean")
mutations("safetensors/shard-truncated", (0.01, 0.5, 0.99), _shard_file(1), cut_file,
          "The second shard of a sharded directory cut short.", verbs=("convert",), names="model-00002")
mutations("safetensors/shard-header-flip", (0.02, 0.3, 0.6, 0.95), _shard_file(0), _flip_header,
          "One byte of a shard's header changed.", verbs=("convert",), names="in/m", expect="clean")
mutations("safetensors/index-truncated", (0.0, 0.3, 0.9), _index_file, cut_file,
          "The index cut short.", verbs=("convert",), names=INDEX)
