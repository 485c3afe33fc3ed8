"""Attacks on the IR stream (`irconv import` -> `irconv export`): crafted headers with a valid
crc (the point is a semantic error, not a checksum), records declaring huge lengths, and
truncations and byte flips of a valid stream.

Every attack is registered twice: once as `export pt out -i FILE` (the error names the file)
and once as `ls -` / `convert - out` with the stream on stdin (the error names "<stdin>")."""
from __future__ import annotations

from attacks.corpus import case
from attacks.streamframes import CHUNK, HEAD, MAGIC, chunk_offsets, frame, parse

NAME = "model.irs"


def stream_case(name: str, **kw):
    """Register one stream attack as the two cases described above."""
    def register(fn):
        case(f"stream/file/{name}", stream=True, verbs=("export",), **kw)(fn)
        case(f"stream/stdin/{name}", stream=True, verbs=("ls", "convert"), names="<stdin>", **kw)(fn)
        return fn
    return register


def _records(ctx):
    """(header dict, chunk records, trailer) of the valid base stream."""
    return parse(_base_bytes(ctx))


def _frame(header, chunks, trailer) -> bytes:
    return frame(header, chunks, trailer)


def _write(d, data: bytes):
    p = d / NAME
    p.write_bytes(data)
    return p


def _edited(d, ctx, edit):
    """The base stream with its header changed by `edit(header)` (crc recomputed)."""
    header, chunks, trailer = _records(ctx)
    edit(header)
    return _write(d, _frame(header, chunks, trailer))


def _base_bytes(ctx) -> bytes:
    return ctx.bases.get("stream").read_bytes()


def _largest_chunk_data_offset(ctx) -> int:
    """Offset, in the base stream, of the middle of the largest tensor chunk's bytes."""
    raw = _base_bytes(ctx)
    _, chunks, _ = parse(raw)
    n = max(range(len(chunks)), key=lambda i: len(chunks[i][2]))
    return chunk_offsets(raw)[n] + CHUNK.size + len(chunks[n][2]) // 2


# ---- the tensor table and aliases: inconsistent input a valid crc would let through

@stream_case("duplicate-name", needle="2 times")
def duplicate_name(d, ctx):
    """Two table rows with one name (valid crc): a tensor missing and another holding the
    wrong data, exit 0, before."""
    return _edited(d, ctx, lambda h: h["tensors"][1].__setitem__(0, h["tensors"][0][0]))


@stream_case("alias-to-missing", needle="not in the checkpoint")
def alias_to_missing(d, ctx):
    """A tied name whose target is no tensor of the stream."""
    return _edited(d, ctx, lambda h: h["aliases"].update({"cls.predictions.decoder.weight": "no.such.tensor"}))


@stream_case("alias-to-itself", needle="itself")
def alias_to_itself(d, ctx):
    """A tied name tied to itself."""
    return _edited(d, ctx, lambda h: h["aliases"].update({"x.weight": "x.weight"}))


@stream_case("alias-shadows-tensor", needle="both a tensor")
def alias_shadows_tensor(d, ctx):
    """A tied name that is also a tensor of the table."""
    def edit(h):
        rows = h["tensors"]
        h["aliases"][rows[0][0]] = rows[1][0]
    return _edited(d, ctx, edit)


# ---- header field types

@stream_case("config-a-list", needle="config")
def config_a_list(d, ctx):
    """config is a list (an internal error, before)."""
    return _edited(d, ctx, lambda h: h.update(config=[1, 2, 3]))


@stream_case("source-a-string", needle="source")
def source_a_string(d, ctx):
    """source is a string (an internal error, before)."""
    return _edited(d, ctx, lambda h: h.update(source="pt"))


@stream_case("source-files-an-int", needle="files")
def source_files_int(d, ctx):
    """source.files, which every export lists, an int (an internal error, before)."""
    return _edited(d, ctx, lambda h: h["source"].update(files=7))


@stream_case("architectures-an-int", needle="architectures")
def architectures_int(d, ctx):
    """config.architectures, whose first class every exporter reads, an int."""
    return _edited(d, ctx, lambda h: h["config"].update(architectures=7))


@stream_case("aliases-a-list", needle="aliases")
def aliases_a_list(d, ctx):
    """aliases is a list."""
    return _edited(d, ctx, lambda h: h.update(aliases=["a", "b"]))


@stream_case("tensors-a-map", needle="tensors")
def tensors_a_map(d, ctx):
    """The tensor table is a map."""
    return _edited(d, ctx, lambda h: h.update(tensors={"a": 1}))


@stream_case("header-a-list", needle="header")
def header_a_list(d, ctx):
    """The header itself is a list."""
    header, chunks, trailer = _records(ctx)
    return _write(d, _frame([1, 2, 3], chunks, trailer))


@stream_case("bytes-in-config", needle="bytes")
def bytes_in_config(d, ctx):
    """A msgpack bin value where config.json holds a string (an internal error, before)."""
    return _edited(d, ctx, lambda h: h["config"].update(model_type=b"bert"))


@stream_case("bytes-in-source", needle="bytes")
def bytes_in_source(d, ctx):
    """A bin value in the source map."""
    return _edited(d, ctx, lambda h: h["source"].update(format=b"\xff\xfe"))


@stream_case("int-key-in-config", needle="not a string")
def int_key_in_config(d, ctx):
    """A config key that is an integer (JSON keys are strings)."""
    return _edited(d, ctx, lambda h: h["config"].update({7: "x"}))


@stream_case("config-nested-deep", needle="nests deeper")
def config_nested_deep(d, ctx):
    """A config value nested 900 deep: json's recursion limit when the config is written, before."""
    deep: list = []
    for _ in range(900):
        deep = [deep]
    return _edited(d, ctx, lambda h: h["config"].update(deep=deep))


@stream_case("unknown-family", needle="family")
def unknown_family(d, ctx):
    """A family irconv does not know (an error naming no file, before; `ls` listed it)."""
    return _edited(d, ctx, lambda h: h.update(family="no-such-family"))


@stream_case("family-not-string", needle="family")
def family_not_string(d, ctx):
    """family is a number."""
    return _edited(d, ctx, lambda h: h.update(family=7))


@stream_case("unknown-dtype", needle="dtype")
def unknown_dtype(d, ctx):
    """A dtype irconv does not know (an error naming no file nor tensor, before)."""
    return _edited(d, ctx, lambda h: h["tensors"][0].__setitem__(1, "F12"))


@stream_case("dtype-not-string", needle="dtype")
def dtype_not_string(d, ctx):
    """dtype is a number."""
    return _edited(d, ctx, lambda h: h["tensors"][0].__setitem__(1, 5))


@stream_case("name-not-string", needle="row 0")
def name_not_string(d, ctx):
    """A tensor name that is a number."""
    return _edited(d, ctx, lambda h: h["tensors"][0].__setitem__(0, 12))


@stream_case("row-too-short", needle="row 0")
def row_too_short(d, ctx):
    """A table row of three fields."""
    return _edited(d, ctx, lambda h: h["tensors"].__setitem__(0, h["tensors"][0][:3]))


@stream_case("negative-dim", needle="non-negative")
def negative_dim(d, ctx):
    """A dimension of -4 whose product matches nbytes (-4 * -N): an internal error, before."""
    def edit(h):
        row = h["tensors"][0]
        row[2] = [-dim for dim in row[2][:2]] + row[2][2:]
    return _edited(d, ctx, edit)


@stream_case("dim-not-int", needle="non-negative")
def dim_not_int(d, ctx):
    """A dimension that is a string."""
    return _edited(d, ctx, lambda h: h["tensors"][0].__setitem__(2, ["4", 4]))


@stream_case("config-contradicts-tensors", needle="contradicts its tensors")
def config_contradicts_tensors(d, ctx):
    """A header whose config disagrees with its own tensor table (the vocabulary a tenth of the
    embeddings' rows, one layer more than the tensors hold): written beside those tensors as
    given, before."""
    def edit(h):
        config = h["config"]
        config["vocab_size"] = max(1, config.get("vocab_size", 10) // 10)
        config["num_hidden_layers"] = config.get("num_hidden_layers", 0) + 1
    return _edited(d, ctx, edit)


@stream_case("heads-do-not-divide", needle="does not divide hidden_size")
def heads_do_not_divide(d, ctx):
    """A header whose head count cannot split hidden_size into equal heads: exported as given,
    before (a model transformers refuses to build)."""
    return _edited(d, ctx, lambda h: h["config"].update(num_attention_heads=h["config"]["hidden_size"] - 1))


@stream_case("shape-not-list", needle="shape")
def shape_not_list(d, ctx):
    """A shape that is a number."""
    return _edited(d, ctx, lambda h: h["tensors"][0].__setitem__(2, 7))


@stream_case("huge-shape", needle="declares", pipe_needle="corrupted")
def huge_shape(d, ctx):
    """A 4 GiB tensor declared (nbytes consistent) in a stream of a few hundred KB: allocated
    before a single chunk arrived, before. (Through a pipe the stream's size is not known up
    front: its first chunk's frame, a few hundred KB where 4 GiB are declared, is refused.) The
    config leaves out the sizes that shape contradicts, so that it is the size that is refused (a
    config contradicting its tensors is refused first: tests/test_stream.py)."""
    def edit(h):
        row = h["tensors"][0]
        row[1], row[2], row[4] = "F32", [1 << 20, 1 << 10], 4 << 30
        h["config"].pop("vocab_size", None)
        h["config"].pop("hidden_size", None)
    return _edited(d, ctx, edit)


@stream_case("enormous-shape", needle="more bytes")
def enormous_shape(d, ctx):
    """A shape whose byte size overflows int64."""
    def edit(h):
        row = h["tensors"][0]
        row[1], row[2], row[3], row[4] = "F32", [1 << 40, 1 << 40], None, (1 << 64) - 1
    return _edited(d, ctx, edit)


@stream_case("nbytes-lies", needle="bytes")
def nbytes_lies(d, ctx):
    """nbytes disagrees with the shape."""
    return _edited(d, ctx, lambda h: h["tensors"][0].__setitem__(4, h["tensors"][0][4] + 4))


@stream_case("axes-not-names", needle="axes")
def axes_not_names(d, ctx):
    """Axes that are numbers."""
    def edit(h):
        row = h["tensors"][0]
        row[3] = list(range(len(row[2])))
    return _edited(d, ctx, edit)


@stream_case("axes-wrong-count", needle="axes")
def axes_wrong_count(d, ctx):
    """More axes than dimensions."""
    def edit(h):
        row = h["tensors"][0]
        row[3] = ["a"] * (len(row[2]) + 1)
    return _edited(d, ctx, edit)


@stream_case("chunk-size-zero", needle="chunk size")
def chunk_size_zero(d, ctx):
    """chunk_size 0."""
    return _edited(d, ctx, lambda h: h.update(chunk_size=0))


# ---- framing

@stream_case("record-huge-chunk", needle="tensor")
def record_huge_chunk(d, ctx):
    """The first chunk frame declares a 4 GiB body."""
    raw = _base_bytes(ctx)
    at = chunk_offsets(raw)[0]
    _, tensor, chunk, _, crc = CHUNK.unpack_from(raw, at)
    return _write(d, raw[:at] + CHUNK.pack(b"C", tensor, chunk, 0xFFFFFFF0, crc) + b"\x00" * 64)


@stream_case("record-bad-kind", needle="tensor")
def record_bad_kind(d, ctx):
    """The first chunk frame's kind byte is not "C"."""
    raw = bytearray(_base_bytes(ctx))
    raw[chunk_offsets(bytes(raw))[0]] = ord("Z")
    return _write(d, bytes(raw))


@stream_case("header-huge", needle="header")
def header_huge(d, ctx):
    """The header frame declares a 2 GiB header."""
    return _write(d, MAGIC + HEAD.pack(b"H", 1 << 31, 0) + b"\x00" * 64)


@stream_case("header-crc", needle="checksum")
def header_crc(d, ctx):
    """A byte of the header changed (crc not recomputed)."""
    raw = bytearray(_base_bytes(ctx))
    raw[len(MAGIC) + 40] ^= 0x20
    return _write(d, bytes(raw))


@stream_case("chunk-out-of-order", needle="out of order")
def chunk_out_of_order(d, ctx):
    """The first two tensors' records swapped."""
    header, chunks, trailer = _records(ctx)
    chunks[0], chunks[1] = chunks[1], chunks[0]
    return _write(d, _frame(header, chunks, trailer))


@stream_case("chunk-missing", needle="out of order")
def chunk_missing(d, ctx):
    """A tensor's only chunk left out."""
    header, chunks, trailer = _records(ctx)
    del chunks[2]
    return _write(d, _frame(header, chunks, trailer))


@stream_case("trailer-mismatch", needle="trailer")
def trailer_mismatch(d, ctx):
    """The trailer's byte total off by one."""
    header, chunks, trailer = _records(ctx)
    return _write(d, _frame(header, chunks, (b"E", trailer[1], trailer[2] + 1)))


@stream_case("trailing-garbage", needle="after the ir stream trailer")
def trailing_garbage(d, ctx):
    """A byte after the trailer."""
    return _write(d, _base_bytes(ctx) + b"\x00")


@stream_case("not-a-stream", needle="not an irconv ir stream")
def not_a_stream(d, ctx):
    """A zip file given where a stream belongs."""
    return _write(d, b"PK\x03\x04" + b"\x00" * 60)


# ---- truncations and byte flips of the valid stream

for _frac in (0.0, 0.002, 0.01, 0.3, 0.7, 0.9999):
    def _truncated(d, ctx, frac=_frac):
        """The valid stream cut short."""
        raw = _base_bytes(ctx)
        return _write(d, raw[:max(1, int(len(raw) * frac))])
    stream_case(f"truncated-{_frac}", needle="truncated" if _frac else "not an irconv")(_truncated)


@stream_case("truncated-before-trailer", needle="truncated")
def truncated_before_trailer(d, ctx):
    """Every chunk, no trailer."""
    header, chunks, _ = _records(ctx)
    return _write(d, _frame(header, chunks, None))


for _shift in (0, 1000, -1000):
    def _flipped(d, ctx, shift=_shift):
        """One byte of tensor data flipped (crc32c of the chunk no longer matches)."""
        raw = bytearray(_base_bytes(ctx))
        raw[_largest_chunk_data_offset(ctx) + shift] ^= 0x01
        return _write(d, bytes(raw))
    stream_case(f"data-byte-flipped{_shift:+d}", needle="checksum")(_flipped)


@case("stream/file/export-tf1-efbig", stream=True, verbs=("export",), to="tf1", fsize=50_000,
      names="model.ckpt.data-00000-of-00001", needle="file too large")
def export_tf1_efbig(d, ctx):
    """`export tf1` of a valid stream where no file may exceed 50 KB (the data shard is 100 KB)."""
    return ctx.bases.copy("stream", d / NAME)
