"""Attacks on Flax msgpack files (flax_model.msgpack) and sharded Flax directories: a root that
is no map, ext types that are no array, payloads whose bytes do not fit their shape and dtype,
unknown dtypes, declared lengths and counts past the file, nesting past the bound, duplicate
and '/'-holding keys, broken chunked arrays, trailing bytes; index files that leave the folder
or list tensors no shard holds; a full disk under the writer; truncations and single-byte
corruptions (msgpack has no checksum: a changed data byte converts, so those mutations only
have to end cleanly)."""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import msgpack

from attacks.cases_torch import cut_file, flip_at_fraction, mutations
from attacks.corpus import REPO, Bases, case

FX = "flax_model.msgpack"
Bases._make_flax = lambda self, dest: self._convert(dest, "flax")                       # noqa: SLF001
Bases._make_flax_sharded = lambda self, dest: self._convert(dest, "flax", max_shard_size=40_000)  # noqa: SLF001


def _array(shape, dtype: str, data: bytes, code: int = 1) -> msgpack.ExtType:
    return msgpack.ExtType(code, msgpack.packb((list(shape), dtype, data), use_bin_type=True))


def _crafted(d: Path, body: bytes) -> Path:
    """A directory with tiny-bert's config.json and `body` as its flax_model.msgpack."""
    src = d / "m"
    src.mkdir()
    shutil.copyfile(REPO / "examples" / "tiny-bert" / "config.json", src / "config.json")
    (src / FX).write_bytes(body)
    return src


def _tree(tree) -> bytes:
    return msgpack.packb(tree, use_bin_type=True)


F32 = struct.pack("<6f", *range(6))
CRAFTED = {
    "not-a-map": (b"\x93\x01\x02\x03", "not a msgpack map"),
    "empty-file": (b"", "empty"),
    "ext-type": (_tree({"a": {"kernel": msgpack.ExtType(5, b"\x00" * 8)}}), "ext type 5"),
    "complex-scalar": (_tree({"a": msgpack.ExtType(2, msgpack.packb((1.0, 2.0)))}), "ext type 2"),
    "bytes-short": (_tree({"a": {"kernel": _array((2, 3), "float32", F32[:20])}}), "needs 24"),
    "bytes-long": (_tree({"a": {"kernel": _array((2, 2), "float32", F32)}}), "needs 16"),
    "dtype-unknown": (_tree({"a": {"kernel": _array((6,), "object", F32)}}), "dtype"),
    "dtype-not-str": (_tree({"a": {"kernel": msgpack.ExtType(1, msgpack.packb(([6], 7, F32)))}}), "dtype"),
    "shape-negative": (_tree({"a": {"kernel": _array((-1, 6), "float32", F32)}}), "shape"),
    "shape-huge": (_tree({"a": {"kernel": _array((2 ** 40, 2 ** 40), "float32", F32)}}), "shape"),
    "scalar-with-shape": (_tree({"a": _array((6,), "float32", F32, code=3)}), "scalar"),
    "payload-not-tuple": (_tree({"a": msgpack.ExtType(1, msgpack.packb({"x": 1}))}), "3-array"),
    "leaf-not-array": (_tree({"a": {"kernel": 3.5}}), "not an array"),
    "key-not-str": (msgpack.packb({1: _array((6,), "float32", F32)}, strict_types=False), "not a string"),
    "key-slash": (_tree({"a/b": _array((6,), "float32", F32)}), "holds '/'"),
    "key-twice": (b"\x82\xa1a" + _tree(_array((6,), "float32", F32)) + b"\xa1a" + _tree(_array((6,), "float32", F32)),
                  "given twice"),
    "map-count-huge": (b"\xdf\xff\xff\xff\xff\xa1a", "map of"),
    "array-count-huge": (b"\x81\xa1a\xc7\x06\x01\x93\xdd\xff\xff\xff\xff", "array of"),
    "ext-length-huge": (b"\x81\xa1a\xc9\xff\xff\xff\xf0\x01\x93", "ext object"),
    "bin-length-huge": (b"\x81\xa1a\xc7\x10\x01\x93\x91\x06\xa7float32\xc6\xff\xff\xff\xf0", "bin of"),
    "string-huge": (b"\x81\xdb\xff\xff\xff\xf0abc", "string of"),
    "nesting-deep": (b"\x81\xa1a" * 200 + b"\x80", "nesting"),
    "trailing-bytes": (_tree({"a": _array((6,), "float32", F32)}) + b"\x00" * 9, "after the parameter tree"),
    "bad-byte": (b"\x81\xa1a\xc1", "starts no msgpack object"),
    "chunked-short": (_tree({"a": {"__msgpack_chunked_array__": True, "shape": {"0": 9},
                                   "chunks": {"0": _array((6,), "float32", F32)}}}), "chunks hold"),
    "chunked-keys": (_tree({"a": {"__msgpack_chunked_array__": True, "shape": {"0": 6}}}), "chunked array"),
    "chunked-gap": (_tree({"a": {"__msgpack_chunked_array__": True, "shape": {"0": 6},
                                 "chunks": {"1": _array((6,), "float32", F32)}}}), "keyed '0'"),
    "chunked-2d-piece": (_tree({"a": {"__msgpack_chunked_array__": True, "shape": {"0": 6},
                                      "chunks": {"0": _array((2, 3), "float32", F32)}}}), "1-D"),
}
for _name, (_body, _needle) in CRAFTED.items():
    def _build(d, ctx, body=_body):
        return _crafted(d, body)
    _build.__doc__ = f"A crafted flax_model.msgpack: {_name.replace('-', ' ')}."
    case(f"flax/{_name}", fmt="flax", verbs=("convert", "ls", "import"), needle=_needle, names=FX)(_build)


@case("flax/index-outside", fmt="flax", verbs=("convert", "ls", "import"), needle="outside")
def index_outside(d, ctx):
    """A sharded Flax index naming a shard outside its folder."""
    src = ctx.bases.copy("flax-sharded", d / "m")
    index = json.loads((src / f"{FX}.index.json").read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = "../../secret.bin"
    (src / f"{FX}.index.json").write_text(json.dumps(index))
    return src


@case("flax/index-lists-absent-tensor", fmt="flax", verbs=("convert", "ls", "import"), needle="in no shard")
def index_absent(d, ctx):
    """A sharded Flax index listing a tensor none of its shards holds."""
    src = ctx.bases.copy("flax-sharded", d / "m")
    index = json.loads((src / f"{FX}.index.json").read_text())
    index["weight_map"]["bert/ghost/kernel"] = sorted(set(index["weight_map"].values()))[0]
    (src / f"{FX}.index.json").write_text(json.dumps(index))
    return src


@case("flax/index-wrong-shard", fmt="flax", verbs=("convert", "ls", "import"), needle="the index says")
def index_wrong(d, ctx):
    """A sharded Flax index placing a tensor in a shard that does not hold it."""
    src = ctx.bases.copy("flax-sharded", d / "m")
    index = json.loads((src / f"{FX}.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    name = next(k for k, v in index["weight_map"].items() if v == shards[0])
    index["weight_map"][name] = shards[1]
    (src / f"{FX}.index.json").write_text(json.dumps(index))
    return src


@case("flax/write-full-disk", verbs=("convert",), to="flax", fsize=50_000, names=FX, needle="cannot write")
def write_full(d, ctx):
    """The Flax msgpack writer past RLIMIT_FSIZE (EFBIG)."""
    return ctx.bases.copy("pt", d / "m")


def _flax_file(d, ctx):
    src = ctx.bases.copy("flax", d / "m")
    return src, src / FX


mutations("flax/truncated", (0.0001, 0.3, 0.7, 0.9999), _flax_file, cut_file,
          "The Flax file cut short (inside the structure, a payload, the last byte).",
          fmt="flax", verbs=("convert", "ls", "import"), names=FX)
mutations("flax/flip", (0.0, 0.001, 0.01, 0.05, 0.5, 0.999), _flax_file, flip_at_fraction,
          "One byte of the Flax file changed (structure or data; no checksum).",
          fmt="flax", verbs=("convert", "ls", "import"), expect="clean")
