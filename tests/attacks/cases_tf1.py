"""Attacks on TF checkpoints (TensorBundle: model.ckpt.index + model.ckpt.data-*, the
`checkpoint` state file): crafted index tables and entries, truncations and byte flips of a
valid checkpoint, an object graph that is deep or points nowhere, a state file pointing
outside the directory, FIFOs, and the TensorBundle writer on a full disk.

The index is rebuilt here by a table writer of this module's own (not irconv's), so a case
can put exactly the broken structure it is about into an otherwise valid, checksummed file."""
from __future__ import annotations

import os
import shutil
import struct

import crc32c

from attacks.corpus import case

INDEX = "bert_model.ckpt.index"
DATA = "bert_model.ckpt.data-00000-of-00001"
MAGIC = 0xdb4775248b80fb57
DT_FLOAT, DT_STRING = 1, 7


# ---- a minimal LevelDB table / protobuf writer

def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xa282ead8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    n &= (1 << 70) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, wire: int, payload) -> bytes:
    tag = _varint(number << 3 | wire)
    if wire == 0:
        return tag + _varint(payload)
    if wire == 5:
        return tag + struct.pack("<I", payload)
    return tag + _varint(len(payload)) + payload


def entry(dtype=DT_FLOAT, shape=(), shard=0, offset=0, size=0, crc=0, raw_dims=None) -> bytes:
    """A BundleEntryProto; raw_dims: the dims as raw varint payloads (for overflowing ones)."""
    dims = b"".join(_field(2, 2, _field(1, 0, d)) for d in shape)
    if raw_dims is not None:
        dims = b"".join(_field(2, 2, b"\x08" + d) for d in raw_dims)
    return (_field(1, 0, dtype) + _field(2, 2, dims) + _field(3, 0, shard) + _field(4, 0, offset)
            + _field(5, 0, size) + _field(6, 5, crc))


def _block(items, restarts=None) -> bytes:
    """Block contents: items are (shared, unshared key bytes, value) or (key, value)."""
    out = bytearray()
    for item in items:
        shared, rest, value = item if len(item) == 3 else (0, *item)
        out += _varint(shared) + _varint(len(rest)) + _varint(len(value)) + rest + value
    restarts = [0] if restarts is None else restarts
    return bytes(out) + struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))


def _trailed(contents: bytes, kind: int = 0) -> bytes:
    return contents + bytes([kind]) + struct.pack("<I", _mask(crc32c.crc32c(contents + bytes([kind]))))


def table(blocks, index_keys=None, handles=None, kind: int = 0, index_contents=None,
          index_handle=None) -> bytes:
    """A table of the given data block contents; index keys default to each block's last key
    (given as index_keys), handles to where the blocks really are."""
    out = bytearray()
    real = []
    for contents in blocks:
        real.append((len(out), len(contents)))
        out += _trailed(contents, kind)
    meta = (len(out), 8)
    out += _trailed(_block([]))
    handles = real if handles is None else handles
    if index_contents is None:
        index_contents = _block([(k, _varint(o) + _varint(s)) for k, (o, s) in zip(index_keys, handles)])
    idx = (len(out), len(index_contents))
    out += _trailed(index_contents)
    idx = idx if index_handle is None else index_handle
    footer = _varint(meta[0]) + _varint(meta[1]) + _varint(idx[0]) + _varint(idx[1])
    out += footer + bytes(40 - len(footer)) + struct.pack("<Q", MAGIC)
    return bytes(out)


def _base_pairs(ctx):
    from irconv.formats.tensorbundle import read_table
    return read_table(ctx.bases.get("tf1") / INDEX)


def _rebuilt(d, ctx, edit=lambda pairs: pairs, **kw):
    """The base checkpoint with its index rebuilt (one data block) from edit(pairs)."""
    src = ctx.bases.copy("tf1", d / "m")
    pairs = edit(list(_base_pairs(ctx)))
    (src / INDEX).write_bytes(table([_block(pairs)], [pairs[-1][0] + b"\xff"], **kw))
    return src


def _mask_crc(data: bytes) -> int:
    return _mask(crc32c.crc32c(data))


def _with_extra(d, ctx, key: bytes, payload: bytes, dtype=DT_STRING, shape=(1,), crc=None):
    """The base with `payload` appended to the data shard and an entry `key` pointing at it."""
    src = ctx.bases.copy("tf1", d / "m")
    offset = (src / DATA).stat().st_size
    with open(src / DATA, "ab") as f:
        f.write(payload)
    value = entry(dtype, shape, 0, offset, len(payload), _mask_crc(payload) if crc is None else crc)
    pairs = sorted(_base_pairs(ctx) + [(key, value)])
    (src / INDEX).write_bytes(table([_block(pairs)], [pairs[-1][0] + b"\xff"]))
    return src


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, pos


def _decode(value: bytes) -> dict:
    """The fields of a (valid) BundleEntryProto, as entry() takes them."""
    out = dict(dtype=0, shape=(), shard=0, offset=0, size=0, crc=0)
    pos = 0
    while pos < len(value):
        tag, pos = _read_varint(value, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            v, pos = _read_varint(value, pos)
            out[{1: "dtype", 3: "shard", 4: "offset", 5: "size"}[number]] = v
        elif wire == 5:
            out["crc"] = struct.unpack_from("<I", value, pos)[0]
            pos += 4
        else:
            n, pos = _read_varint(value, pos)
            dims, sub = [], value[pos:pos + n]
            p = 0
            while p < len(sub):       # TensorShapeProto: repeated Dim {int64 size = 1}
                _, p = _read_varint(sub, p)
                m, p = _read_varint(sub, p)
                dims.append(_read_varint(sub[p:p + m], 1)[0] if m else 0)
                p += m
            out["shape"] = tuple(dims)
            pos += n
    return out


def _entry_of(pairs, i, **changes):
    """pairs with entry i re-encoded with `changes` (dtype, shape, shard, offset, size, crc)."""
    fields = _decode(pairs[i][1])
    fields.update(changes)
    pairs[i] = (pairs[i][0], entry(**fields))
    return pairs


def _biggest(pairs) -> int:
    return max(range(1, len(pairs)), key=lambda i: _decode(pairs[i][1])["size"])


# ---- the index table

for _frac in (0.02, 0.5, 0.97):
    def _index_truncated(d, ctx, frac=_frac):
        """The index cut short."""
        src = ctx.bases.copy("tf1", d / "m")
        raw = (src / INDEX).read_bytes()
        (src / INDEX).write_bytes(raw[:int(len(raw) * frac)])
        return src
    case(f"tf1/index-truncated-{_frac}", fmt="tf1", verbs=("convert", "ls", "import"), names=INDEX)(_index_truncated)


for _where in (10, 500, -60, -44, -3):
    def _index_flipped(d, ctx, where=_where):
        """One byte of the index flipped (a block checksum, the footer's handles or magic)."""
        src = ctx.bases.copy("tf1", d / "m")
        raw = bytearray((src / INDEX).read_bytes())
        raw[where] ^= 0x40
        (src / INDEX).write_bytes(bytes(raw))
        return src
    case(f"tf1/index-byte-flipped{_where:+d}", fmt="tf1", verbs=("convert", "ls", "import"),
         names=INDEX)(_index_flipped)


@case("tf1/block-handle-past-eof", verbs=("convert", "ls"), names=INDEX, needle="past")
def block_handle_past_eof(d, ctx):
    """The index block points a data block 1 MB past the end of the file."""
    return _rebuilt(d, ctx, handles=[(1 << 20, 4000)])


@case("tf1/block-handle-huge", verbs=("convert", "ls"), names=INDEX, needle="past")
def block_handle_huge(d, ctx):
    """A data block handle of 2**63 bytes."""
    return _rebuilt(d, ctx, handles=[(0, 1 << 63)])


@case("tf1/index-handle-past-eof", verbs=("convert", "ls"), names=INDEX, needle="past")
def index_handle_past_eof(d, ctx):
    """The footer points the index block past the end of the file."""
    return _rebuilt(d, ctx, index_handle=(1 << 30, 100))


@case("tf1/varint-overflow-footer", verbs=("convert", "ls"), names=INDEX, needle="64 bits")
def varint_overflow_footer(d, ctx):
    """A footer handle whose varint encodes more than 64 bits."""
    src = ctx.bases.copy("tf1", d / "m")
    raw = bytearray((src / INDEX).read_bytes())
    footer = b"\x00\x08" + b"\xff" * 9 + b"\x7f" + b"\x10"
    raw[-48:-8] = footer + bytes(40 - len(footer))
    (src / INDEX).write_bytes(bytes(raw))
    return src


@case("tf1/restart-count-huge", verbs=("convert", "ls"), names=INDEX, needle="restart")
def restart_count_huge(d, ctx):
    """A data block claiming 2**32-1 restart points."""
    src = ctx.bases.copy("tf1", d / "m")
    pairs = _base_pairs(ctx)
    contents = _block(pairs)[:-4] + struct.pack("<I", 0xFFFFFFFF)
    (src / INDEX).write_bytes(table([contents], [pairs[-1][0] + b"\xff"]))
    return src


@case("tf1/restart-offsets-garbage", verbs=("convert", "ls"), names=INDEX, needle="restart")
def restart_offsets_garbage(d, ctx):
    """Restart points past the block's entries."""
    src = ctx.bases.copy("tf1", d / "m")
    pairs = _base_pairs(ctx)
    (src / INDEX).write_bytes(table([_block(pairs, [0, 1 << 30, 7])], [pairs[-1][0] + b"\xff"]))
    return src


@case("tf1/keys-out-of-order", verbs=("convert", "ls"), names=INDEX, needle="order")
def keys_out_of_order(d, ctx):
    """Two keys swapped."""
    def edit(pairs):
        pairs[3], pairs[4] = pairs[4], pairs[3]
        return pairs
    return _rebuilt(d, ctx, edit)


@case("tf1/duplicate-key", verbs=("convert", "ls"), names=INDEX, needle="order")
def duplicate_key(d, ctx):
    """One key twice (pointing at different bytes)."""
    def edit(pairs):
        pairs[4] = (pairs[3][0], pairs[4][1])
        return pairs
    return _rebuilt(d, ctx, edit)


@case("tf1/shared-prefix-too-long", verbs=("convert", "ls"), names=INDEX, needle="corrupt entry")
def shared_prefix_too_long(d, ctx):
    """An entry sharing 200 bytes with a previous key of 20."""
    src = ctx.bases.copy("tf1", d / "m")
    pairs = _base_pairs(ctx)
    items = [pairs[0], pairs[1], (200, b"x", pairs[2][1])] + pairs[3:]
    (src / INDEX).write_bytes(table([_block(items)], [pairs[-1][0] + b"\xff"]))
    return src


@case("tf1/index-keys-decrease", verbs=("convert", "ls"), names=INDEX, needle="order")
def index_keys_decrease(d, ctx):
    """Two data blocks whose index keys decrease (the second repeats the first's keys)."""
    src = ctx.bases.copy("tf1", d / "m")
    pairs = _base_pairs(ctx)
    half = len(pairs) // 2
    blocks = [_block(pairs[:half]), _block(pairs[half:])]
    (src / INDEX).write_bytes(table(blocks, [pairs[-1][0] + b"\xff", pairs[half - 1][0] + b"\xff"]))
    return src


@case("tf1/repeated-block-handles", verbs=("convert", "ls"), names=INDEX, timeout=5)
def repeated_block_handles(d, ctx):
    """One empty data block listed 30000 times in the index (each read and checksummed, before)."""
    src = ctx.bases.copy("tf1", d / "m")
    pairs = _base_pairs(ctx)
    blocks = [_block(pairs), _block([])]
    n = 30_000
    keys = [pairs[-1][0] + b"\xff" + i.to_bytes(4, "big") for i in range(n)]
    empty_at = len(_trailed(blocks[0]))      # where table() puts the second block
    handles = [(0, len(blocks[0]))] + [(empty_at, len(blocks[1]))] * (n - 1)
    (src / INDEX).write_bytes(table(blocks, keys, handles=handles))
    return src


def _snappy_index(d, ctx, body):
    """The base with its one data block snappy-compressed as body(block contents)."""
    src = ctx.bases.copy("tf1", d / "m")
    pairs = _base_pairs(ctx)
    (src / INDEX).write_bytes(table([body(_block(pairs))], [pairs[-1][0] + b"\xff"], kind=1))
    return src


@case("tf1/snappy-huge-size", verbs=("convert", "ls"), names=INDEX, needle="snappy")
def snappy_huge_size(d, ctx):
    """A snappy data block declaring a 2**40-byte uncompressed size."""
    # one literal of the whole block: a valid snappy encoding, except for the declared size
    return _snappy_index(d, ctx, lambda contents: _varint(1 << 40) + bytes([61 << 2])
                         + struct.pack("<H", len(contents) - 1) + contents)


@case("tf1/snappy-bomb", verbs=("convert", "ls"), names=INDEX, needle="restart")
def snappy_bomb(d, ctx):
    """A 90 KB snappy block of 64-byte copies: expands to 2 MB of "a", which is no block."""
    copies = 30_000
    return _snappy_index(d, ctx, lambda contents: _varint(64 * copies + 1) + b"\x00a"
                         + (bytes([(63 << 2) | 2]) + b"\x01\x00") * copies)


@case("tf1/snappy-bad-offset", verbs=("convert", "ls"), names=INDEX, needle="snappy")
def snappy_bad_offset(d, ctx):
    """A snappy copy reaching before the start of the output."""
    return _snappy_index(d, ctx, lambda contents: _varint(100) + b"\x00a" + bytes([(63 << 2) | 2]) + b"\x10\x00")


# ---- BundleEntryProto

def _entry_case(name, needle, names=INDEX, **changes):
    def build(d, ctx):
        return _rebuilt(d, ctx, lambda pairs: _entry_of(pairs, _biggest(pairs), **changes))
    case(f"tf1/entry-{name}", verbs=("convert", "ls"), names=names, needle=needle)(build)


_entry_case("dtype-unknown", "DataType 99", dtype=99)
_entry_case("dtype-resource", "DT_RESOURCE", dtype=20)
_entry_case("size-lies", "entry size", size=12)
_entry_case("offset-past-shard", "past the end", names=DATA, offset=1 << 40)
_entry_case("size-huge", "past the end", names=DATA, size=(1 << 63) - 1)
_entry_case("shard-past-num-shards", "shard", shard=3)
_entry_case("shape-overflowing", "bytes", shape=(1 << 62, 1 << 62, 1 << 62))
_entry_case("rank-100", "dimensions", shape=(1,) * 100)


@case("tf1/entry-negative-dim", verbs=("convert", "ls"), names=INDEX, needle="dimension")
def entry_negative_dim(d, ctx):
    """A dimension of -8 (a 10-byte varint)."""
    return _rebuilt(d, ctx, lambda pairs: _entry_of(pairs, _biggest(pairs), shape=(-8 & ((1 << 64) - 1), 4)))


@case("tf1/entry-varint-overflow", verbs=("convert", "ls"), names=INDEX, needle="64 bits")
def entry_varint_overflow(d, ctx):
    """An entry's offset as a 10-byte varint of 70 bits."""
    def edit(pairs):
        i = _biggest(pairs)
        pairs[i] = (pairs[i][0], b"\x08\x01" + b"\x20" + b"\xff" * 9 + b"\x7f")
        return pairs
    return _rebuilt(d, ctx, edit)


@case("tf1/entry-garbage", verbs=("convert", "ls"), names=INDEX, needle="entry")
def entry_garbage(d, ctx):
    """An entry that is no protobuf (a length-delimited field running past its end)."""
    def edit(pairs):
        pairs[2] = (pairs[2][0], b"\x12\xff\xff\x03ab")
        return pairs
    return _rebuilt(d, ctx, edit)


@case("tf1/header-zero-shards", verbs=("convert", "ls"), names=INDEX, needle="num_shards")
def header_zero_shards(d, ctx):
    """A bundle header with num_shards 0."""
    def edit(pairs):
        pairs[0] = (b"", _field(1, 0, 0) + _field(3, 2, _field(1, 0, 1)))
        return pairs
    return _rebuilt(d, ctx, edit)


@case("tf1/no-header", verbs=("convert", "ls"), names=INDEX, needle="header")
def no_header(d, ctx):
    """A table without the bundle header (key "")."""
    return _rebuilt(d, ctx, lambda pairs: pairs[1:])


@case("tf1/string-length-overflow", verbs=("convert", "ls"), names=DATA, needle="string tensor")
def string_length_overflow(d, ctx):
    """A string tensor whose length varint is 2**65 (an internal error, before)."""
    return _with_extra(d, ctx, b"zz_strings", _varint(1 << 65) + b"\x00" * 8)


@case("tf1/string-length-past-entry", verbs=("convert", "ls"), names=DATA, needle="string tensor")
def string_length_past_entry(d, ctx):
    """A string tensor whose one string is longer than its entry."""
    return _with_extra(d, ctx, b"zz_strings", _varint(1 << 40) + b"\x00" * 8)


@case("tf1/string-count-huge", verbs=("convert", "ls"), names=DATA, needle="string tensor")
def string_count_huge(d, ctx):
    """A string tensor of shape [2**40] in 9 bytes."""
    return _with_extra(d, ctx, b"zz_strings", b"\x01" + b"\x00" * 8, shape=(1 << 40,))


# ---- the object graph (a TF2 checkpoint's _CHECKPOINTABLE_OBJECT_GRAPH)

def _graph(nodes) -> bytes:
    """A TrackableObjectGraph: nodes are lists of (child node id, edge name)."""
    return b"".join(_field(1, 2, b"".join(_field(1, 2, _field(1, 0, c) + _field(2, 2, n.encode()))
                                          for c, n in children)) for children in nodes)


def _string_tensor(items) -> bytes:
    """TF's string tensor layout: varint lengths, their masked crc32c, the bytes."""
    lengths = b"".join(_varint(len(s)) for s in items)
    crc = 0
    for s in items:
        crc = crc32c.crc32c(struct.pack("<I", len(s)), value=crc)
    return lengths + struct.pack("<I", _mask(crc)) + b"".join(items)


def _with_graph(d, ctx, graph: bytes):
    payload = _string_tensor([graph])
    # The entry's crc covers length crc, lengths crc word and bytes, as TF computes it.
    crc = 0
    crc = crc32c.crc32c(struct.pack("<I", len(graph)), value=crc)
    stored = struct.pack("<I", _mask(crc))
    crc = crc32c.crc32c(stored, value=crc)
    crc = crc32c.crc32c(graph, value=crc)
    return _with_extra(d, ctx, b"_CHECKPOINTABLE_OBJECT_GRAPH", payload, shape=(), crc=_mask(crc))


@case("tf1/graph-node-out-of-range", verbs=("convert", "ls"), names=INDEX, needle="refers to node")
def graph_node_out_of_range(d, ctx):
    """The root's child is node 7 of 2."""
    return _with_graph(d, ctx, _graph([[(1, "a"), (7, "b")], []]))


@case("tf1/graph-node-negative", verbs=("convert", "ls"), names=INDEX, needle="refers to node")
def graph_node_negative(d, ctx):
    """A child id of -1."""
    return _with_graph(d, ctx, _graph([[(-1 & ((1 << 64) - 1), "a")]]))


@case("tf1/graph-deep-chain", verbs=("convert", "ls"), names=INDEX, needle="deep")
def graph_deep_chain(d, ctx):
    """A chain of 30000 nodes: every node's path copied from its parent's, 4.5e8 names
    (memory exhausted), before."""
    n = 30_000
    return _with_graph(d, ctx, _graph([[(i + 1, "x")] for i in range(n - 1)] + [[]]))


@case("tf1/graph-not-a-graph", verbs=("convert", "ls"), names=INDEX, needle="TrackableObjectGraph")
def graph_not_a_graph(d, ctx):
    """The object graph string is no protobuf."""
    return _with_graph(d, ctx, b"\x0a\xff\xff\xff\x0f")


# ---- data shards: truncation and byte flips (refused by crc32c)

@case("tf1/data-truncated", verbs=("convert", "ls"), names=DATA, needle="past the end")
def data_truncated(d, ctx):
    """The data shard cut in half."""
    src = ctx.bases.copy("tf1", d / "m")
    raw = (src / DATA).read_bytes()
    (src / DATA).write_bytes(raw[:len(raw) // 2])
    return src


@case("tf1/data-missing", verbs=("convert", "ls"), names=INDEX, needle="missing data shard")
def data_missing(d, ctx):
    """The data shard deleted."""
    src = ctx.bases.copy("tf1", d / "m")
    (src / DATA).unlink()
    return src


for _pos in (0.0, 0.33, 0.5, 0.999):
    def _data_flipped(d, ctx, pos=_pos):
        """One byte of tensor data flipped: only the crc32c can tell."""
        src = ctx.bases.copy("tf1", d / "m")
        raw = bytearray((src / DATA).read_bytes())
        raw[int(len(raw) * pos)] ^= 0x01
        (src / DATA).write_bytes(bytes(raw))
        return src
    # ls reads no tensor data; convert, import and diff read it all
    case(f"tf1/data-byte-flipped-{_pos}", fmt="tf1", verbs=("convert", "import", "diff"), names=DATA,
         needle="checksum mismatch")(_data_flipped)


# ---- FIFOs and the `checkpoint` state file

for _name in (INDEX, DATA, "checkpoint"):
    def _fifo(d, ctx, name=_name):
        """One file of the checkpoint (index, data shard, state file) is a FIFO nobody writes to."""
        src = ctx.bases.copy("tf1", d / "m")
        (src / name).unlink()
        os.mkfifo(src / name)
        return src
    case(f"tf1/fifo-{_name.rpartition('.')[2] if _name != DATA else 'data'}", verbs=("convert", "ls"),
         names=_name, needle="fifo", timeout=5)(_fifo)


def _moved_out(d, ctx, state_path: str):
    """m/ keeps its config and a state file naming `state_path`; the checkpoint itself is in
    evil/, beside m/ (outside the input)."""
    src = ctx.bases.copy("tf1", d / "m")
    (d / "evil").mkdir()
    for name in (INDEX, DATA):
        shutil.move(str(src / name), str(d / "evil" / name))
    (src / "checkpoint").write_text(f'model_checkpoint_path: "{state_path}"\n')
    return src


@case("tf1/state-relative-escape", verbs=("convert", "ls"), names="checkpoint", needle="outside")
def state_relative_escape(d, ctx):
    """model_checkpoint_path "../evil/bert_model.ckpt": read from outside the directory, before."""
    return _moved_out(d, ctx, "../evil/bert_model.ckpt")


@case("tf1/state-absolute-outside", verbs=("convert", "ls"), names="checkpoint", needle="outside")
def state_absolute_outside(d, ctx):
    """An absolute model_checkpoint_path outside the directory whose basename is not in it."""
    return _moved_out(d, ctx, str(d / "evil" / "bert_model.ckpt"))


@case("tf1/state-symlinked-dir", verbs=("convert", "ls"), names="checkpoint", needle="outside")
def state_symlinked_dir(d, ctx):
    """model_checkpoint_path "sub/bert_model.ckpt" where sub is a symlink to a directory outside."""
    src = _moved_out(d, ctx, "sub/bert_model.ckpt")
    os.symlink(d / "evil", src / "sub")
    return src


@case("tf1/state-secret", verbs=("convert", "ls"), names="checkpoint", needle="outside")
def state_secret(d, ctx):
    """model_checkpoint_path naming the secret file's prefix by absolute path."""
    return _moved_out(d, ctx, str(ctx.secret))


# ---- the writer on a full disk

@case("tf1/write-efbig-data", verbs=("convert",), to="tf1", fsize=50_000, names=DATA, needle="file too large")
def write_efbig_data(d, ctx):
    """pt -> tf1 where no file may exceed 50 KB: the 100 KB data shard fails with EFBIG."""
    return ctx.bases.copy("pt", d / "m")


@case("tf1/write-efbig-config", verbs=("convert",), to="tf1", fsize=280, names="bert_config.json",
      needle="file too large")
def write_efbig_config(d, ctx):
    """pt -> tf1 where no file may exceed 280 bytes: the 305-byte bert_config.json fails first
    (the limit also holds for the captured stderr, so it must fit the one error line)."""
    return ctx.bases.copy("pt", d / "m")
