"""The IR stream: the pipe between `irconv import` and `irconv export`.

Wire format, version 2 (little-endian; an 8-byte magic, then framed records):

    MAGIC                                   b"IRCONV\0\2"
    "H" u64 length, u32 crc32c, header      header: msgpack map, see below
    "C" u32 tensor, u32 chunk, u32 length, u32 crc32c, raw bytes
                                            per tensor, ceil(nbytes / chunk_size) chunks
    "E" u64 tensor count, u64 total bytes   trailer

header = {"family", "config", "source", "aliases", "chunk_size",
          "tensors": [[name, dtype, shape, axes or None, nbytes, source name], ...]}

The whole tensor table comes first so that a streaming exporter can lay out its file
before any bytes arrive; every chunk carries its position and a crc32c so a truncated,
reordered or corrupted stream is refused rather than written out. Tensor bytes travel as
raw chunk bodies after a fixed 17-byte frame: the writer hands the tensor's own buffer to
write(), the reader readinto()s each body straight into the tensor's array, and crc32c
(several GB/s, releasing the GIL) checks it there: no copy of the data in between.
Through a pipe it is less still: `import` splices a tensor lying as stored in its file into
the pipe (write_stream), and `export` splices one its writer stores as it travels out of the
pipe into the output file, reading each chunk back there for its checksum (copy_into).
(Version 1 wrapped each chunk in msgpack and zlib.crc32, which cost two copies per side.)
"""
from __future__ import annotations

import errno
import io
import os
import re
import stat
import struct
import sys
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterator

import numpy as np

from . import buffers
from .checkpoint import Checkpoint, architectures_problem, check_names
from .dtypes import by_name
from .errors import DTypeError, FormatError, IrconvError, StreamError
from .lazy import lazy_module
from .limits import MAX_DEPTH, check_fits, check_shape, inputs, open_regular
from .pipeline import mapped
from .ranges import PIECE, crc_of_range
from .stages import stage
from .tensor import Tensor, TensorSpec, as_bytes

_crc32c = lazy_module("crc32c")    # its import reads package metadata (~10 ms): only when a stream runs
msgpack = lazy_module("msgpack")   # the header only; imported when a stream is first used

MAGIC = b"IRCONV\x00\x02"
VERSION = 2
DEFAULT_CHUNK = 8 << 20
MAX_CHUNK = 64 << 20
# The header (config + tensor table) of the largest real model is a few MB.
MAX_HEADER = 64 << 20
_HEAD = struct.Struct("<cQI")        # "H", header length, crc32c
_CHUNK = struct.Struct("<cIIII")     # "C", tensor index, chunk index, length, crc32c
_END = struct.Struct("<cQQ")         # "E", tensor count, total bytes
_HEADER_FIELDS = ("family", "config", "source", "aliases", "chunk_size", "tensors")


# The CLI writes `-o FILE` to a temporary sibling `.FILE.irconv-XXXX` renamed into place.
_TEMP_NAME = re.compile(r"^\.(.+)\.irconv-[^/]+$")


def _output_name(out) -> str:
    """What to call `out` in an error: its path (the final one, for the CLI's temporary
    sibling), or <stdout>."""
    try:
        name = getattr(out, "name", None)
    except ValueError:          # a closed file
        name = None
    if isinstance(name, int):
        if name == 1:
            return "<stdout>"
        try:
            name = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            return "<output>"
    if not isinstance(name, str):
        return "<output>"
    head, tail = os.path.split(name)
    temp = _TEMP_NAME.match(tail)
    return os.path.join(head, temp.group(1)) if temp else name


def write_stream(ckpt: Checkpoint, out: BinaryIO, *, chunk_size: int = DEFAULT_CHUNK,
                 progress: Callable[[Tensor], None] | None = None, where: str | None = None,
                 jobs: int | None = None) -> None:
    """Serialize `ckpt` to `out`, tensors loading ahead on `jobs` threads (ir/pipeline.py)
    within a byte budget. A failed write (a full disk:
    ENOSPC, EFBIG) is a StreamError naming `where` (default: out's file name); a closed
    pipe stays a BrokenPipeError, which the CLI reports as the reader going away."""
    with inputs(*ckpt.inputs):       # a loaded checkpoint's lazy tensors read inside its input
        _write_stream(ckpt, out, chunk_size, progress, where, jobs)


def _write_stream(ckpt: Checkpoint, out: BinaryIO, chunk_size: int, progress, where, jobs) -> None:
    if not 0 < chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk_size must be in 1..{MAX_CHUNK}")
    tensors = list(ckpt.tensors.values())
    header = {
        "family": ckpt.family, "config": ckpt.config, "source": ckpt.source,
        "aliases": ckpt.aliases, "chunk_size": chunk_size,
        "tensors": [[t.name, t.dtype.name, list(t.shape),
                     None if t.axes is None else list(t.axes), t.nbytes, t.source] for t in tensors],
    }
    try:
        header_bytes = msgpack.packb(header, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise StreamError(f"the config or metadata cannot go into an IR stream: {exc}") from None

    def put(data) -> None:
        _write_op(out, where, out.write, data)

    pipe = _pipe_fd(out)

    def spliced(t: Tensor) -> bool:
        # Bytes lying as stored in a file go into the pipe by splice(2): the kernel moves the
        # file's pages in, and no byte is copied through this process but to checksum it.
        return (pipe is not None and isinstance(t.extent, tuple) and t.nbytes > 0
                and t.dtype.name != "BOOL")

    def fetch(t: Tensor):
        return _file_crcs(t, chunk_size) if spliced(t) else t.load_raw()

    put(MAGIC)
    put(_HEAD.pack(b"H", len(header_bytes), _crc32c.crc32c(header_bytes)))
    put(header_bytes)
    total = 0
    for index, (tensor, got) in enumerate(mapped(tensors, fetch, jobs=jobs, ordered=ckpt.ordered,
                                                 cost=lambda t: 0 if spliced(t) else t.holds())):
        if spliced(tensor):
            path, offset = tensor.extent
            for chunk_index, crc in enumerate(got):
                start = chunk_index * chunk_size
                length = min(chunk_size, tensor.nbytes - start)
                with stage("stream write", length):
                    put(_CHUNK.pack(b"C", index, chunk_index, length, crc))
                    _write_op(out, where, out.flush)
                    _write_op(out, where, _splice, path, offset + start, pipe, length, tensor.name)
            total += tensor.nbytes
            del got
        else:
            data = memoryview(as_bytes(got))
            for chunk_index, start in enumerate(range(0, len(data), chunk_size)):
                chunk = data[start:start + chunk_size]
                with stage("checksum", len(chunk)):
                    crc = _crc32c.crc32c(chunk)
                with stage("stream write", len(chunk)):
                    put(_CHUNK.pack(b"C", index, chunk_index, len(chunk), crc))
                    put(chunk)
            total += len(data)
            del data, got
        if progress:
            progress(tensor)
    put(_END.pack(b"E", len(tensors), total))
    _write_op(out, where, out.flush)


def _pipe_fd(f) -> int | None:
    """f's file descriptor when it is a pipe splice(2) can fill or drain (Linux), else None."""
    if not hasattr(os, "splice"):
        return None
    try:
        fd = f.fileno()
        return fd if stat.S_ISFIFO(os.fstat(fd).st_mode) else None
    except (AttributeError, OSError, ValueError):
        return None


def _file_crcs(t: Tensor, chunk_size: int) -> list[int]:
    """The crc32c of each chunk of t's bytes, read where they lie in their file (t.extent)
    a MiB at a time into one small buffer."""
    path, offset = t.extent
    crcs = []
    with stage("checksum", t.nbytes), open_regular(path) as f:
        for start in range(0, t.nbytes, chunk_size):
            crc = crc_of_range(f.fileno(), offset + start, min(chunk_size, t.nbytes - start), _crc32c.crc32c)
            if crc is None:
                raise FormatError(f"tensor {t.source!r}: the file ends before its bytes do; it is "
                                  "truncated (changed since it was opened?)", path=path)
            crcs.append(crc)
    return crcs


class StreamExtent:
    """Where a stream tensor's bytes are: still in the pipe, at tensor `index` of `reader`.
    A writer's copy() takes them from there into its file (copy_into), in table order: the
    pipeline runs such a copy in the stream's turn (pipeline.done's in_turn)."""

    __slots__ = ("reader", "index")

    def __init__(self, reader, index: int):
        self.reader, self.index = reader, index

    def copy_into(self, fd: int, offset: int) -> None:
        self.reader.copy_into(self.index, fd, offset)


def _splice(path: str, offset: int, pipe: int, n: int, name: str) -> None:
    """n bytes of file `path` from `offset` into the pipe, moved by the kernel."""
    with open_regular(path) as f:
        done, fast = 0, True
        while done < n:
            if fast:
                try:
                    got = os.splice(f.fileno(), pipe, n - done, offset_src=offset + done)
                except OSError as exc:
                    if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                        raise
                    fast = False        # a file system splice cannot read: write what pread gives
                    continue
            else:
                data = os.pread(f.fileno(), min(n - done, PIECE * 8), offset + done)
                got = len(data)
                view = memoryview(data)
                while view:
                    view = view[os.write(pipe, view):]
            if not got:
                raise FormatError(f"tensor {name!r}: the file ends {n - done:,} bytes early; it is "
                                  "truncated (changed since it was opened?)", path=path)
            done += got


def _write_op(out, where: str | None, op, *args) -> None:
    """out.write / out.flush with a failed write (full disk) as one StreamError naming `out`."""
    try:
        op(*args)
    except BrokenPipeError:
        raise
    except OSError as exc:
        name = where or _output_name(out)
        # The stream is unusable now; close the file under the buffer so that closing the
        # buffer does not try to flush the rest again (and raise a second, unnamed error).
        raw = getattr(out, "raw", None)
        if raw is not None:
            try:
                raw.close()
            except OSError:
                pass
        raise StreamError(f"cannot write the IR stream: {exc.strerror or exc}", path=name) from None


def _tell(src) -> int | None:
    try:
        return src.tell()
    except (AttributeError, OSError, ValueError):
        return None


def _regular_size(src) -> int | None:
    """The size of `src` if it is a regular file (a pipe's length is unknown)."""
    try:
        st = os.fstat(src.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


# The fields of a checkpoint's `source` that exporters and listings read, and their types.
_SOURCE_FIELDS = {"files": list, "skipped": list, "notes": list, "derived": list, "made": list,
                  "not_made": list, "copies": dict, "view": str, "format": str, "config_inferred": bool}


def _plain(header: dict, where: str) -> None:
    """Refuse anything in the header's maps (config, source, aliases) but str-keyed maps,
    lists, str, int, float, bool and None, nested at most MAX_DEPTH deep: a bin (bytes) value
    where a config holds a string, an int key or an ext type would otherwise surface deep in
    an exporter. (The tensor table is checked row by row.)"""
    def what(at: tuple) -> str:
        return f"IR stream header field {at[0]!r}" + "".join(f"[{p!r}]" for p in at[1:])

    stack: list[tuple[object, tuple, int]] = [(header[k], (k,), 1) for k in header if k != "tensors"]
    while stack:
        value, at, depth = stack.pop()
        if isinstance(value, (str, int, float, bool)) or value is None:
            continue
        if depth > MAX_DEPTH:
            raise StreamError(f"{what(at)} nests deeper than {MAX_DEPTH} levels", path=where)
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise StreamError(f"{what(at)} has a key {k!r} that is not a string", path=where)
                stack.append((v, at + (k,), depth + 1))
        elif isinstance(value, list):
            stack.extend((v, at + (i,), depth + 1) for i, v in enumerate(value))
        elif isinstance(value, bytes):
            raise StreamError(f"{what(at)} holds bytes {value[:20]!r}, where a string or number "
                              "belongs (corrupt stream)", path=where)
        else:
            raise StreamError(f"{what(at)} holds a {type(value).__name__}, which no irconv "
                              "writes (corrupt stream)", path=where)


def _known_family(name: str) -> bool:
    # The places ir/ looks at the registry: a stream names its family by registry name.
    from ..models import FAMILIES
    return name in FAMILIES


def _config_problems(family: str, config: dict, specs: list) -> list[str]:
    """Where the header's config contradicts its tensor table, as an import would refuse it
    (Family.canonical_problems): a stream's header is what anyone wrote, and the exporter
    would write that config beside those tensors."""
    try:
        fam = _concrete(family, config)
    except IrconvError as exc:
        return [str(exc)]
    return fam.canonical_problems(config, {s.name: s for s in specs})


def _concrete(family: str, config: dict):
    """The header's family, concrete for its config (a ConfigFamily's names follow from it)."""
    from ..models import FAMILIES
    fam = FAMILIES.get(family)
    return fam.concrete(config) if hasattr(fam, "concrete") else fam


def _family_axes(family: str, config: dict):
    """The family's declared axes of a canonical name (FamilyView.param_axes), or None when its
    names cannot be listed from this config (_config_problems then says why)."""
    try:
        fam = _concrete(family, config)
        view = fam.view("pt" if "pt" in fam.views else next(iter(fam.views)))
        return view.param_axes
    except Exception:       # noqa: BLE001 - a config the family cannot build from: export says why
        return None


class _StreamReader:
    """Pulls tensors off the stream in table order; a tensor may be skipped, never revisited."""

    def __init__(self, src: BinaryIO, where: str):
        self.where = where
        self.src = src
        start = _tell(src)
        magic = self._upto(len(MAGIC))
        if magic != MAGIC:
            if magic[:6] == MAGIC[:6]:
                raise StreamError(f"IR stream of format {magic[6:]!r}, this irconv reads {MAGIC[6:]!r}; "
                                  "use the same irconv version on both sides of the pipe", path=where)
            raise StreamError("not an irconv IR stream (did the `irconv import` side fail?)", path=where)
        kind, length, crc = _HEAD.unpack(self._exact(_HEAD.size, "the header"))
        if kind != b"H":
            raise StreamError("corrupt IR stream header", path=where)
        if length > MAX_HEADER:
            raise StreamError(f"IR stream header of {length:,} bytes (at most {MAX_HEADER:,})", path=where)
        header_bytes = self._exact(length, "the header")
        if _crc32c.crc32c(header_bytes) != crc:
            raise StreamError("IR stream header checksum mismatch (corrupted stream)", path=where)
        try:
            # Every length inside is bounded by the header's own size (msgpack's default).
            header = msgpack.unpackb(header_bytes, raw=False, strict_map_key=False, max_ext_len=0)
        except Exception as exc:  # msgpack signals corrupt input with many types
            raise StreamError(f"malformed IR stream header ({type(exc).__name__}: {exc})", path=where) from None
        self._parse_header(header)
        size = _regular_size(src)
        if size is not None and start is not None:
            self._check_sizes(size - start - len(MAGIC) - _HEAD.size - length)
        self.position = 0    # index of the next tensor on the wire
        self.total = 0

    def _parse_header(self, header) -> None:
        where = self.where
        if not isinstance(header, dict):
            raise StreamError(f"IR stream header is a {type(header).__name__}, not a map", path=where)
        missing = [k for k in _HEADER_FIELDS if k not in header]
        if missing:
            raise StreamError(f"IR stream header lacks {', '.join(missing)}", path=where)
        _plain(header, where)
        for key, kind in (("family", str), ("config", dict), ("source", dict), ("aliases", dict),
                          ("tensors", list)):
            if not isinstance(header[key], kind):
                raise StreamError(f"IR stream header field {key!r} is a {type(header[key]).__name__}, "
                                  f"expected a {kind.__name__}", path=where)
        problem = architectures_problem(header["config"])
        if problem:
            raise StreamError(f"IR stream header: {problem}", path=where)
        for key, value in header["source"].items():
            kind = _SOURCE_FIELDS.get(key)
            if kind is not None and not isinstance(value, kind):
                raise StreamError(f"IR stream header field 'source'[{key!r}] is a {type(value).__name__}, "
                                  f"expected a {kind.__name__}", path=where)
        if not _known_family(header["family"]):
            raise StreamError(f"IR stream of unknown model family {header['family']!r} (written by "
                              "another irconv version?)", path=where)
        self.header = header
        self.chunk_size = header["chunk_size"]
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) \
                or not 0 < self.chunk_size <= MAX_CHUNK:
            raise StreamError(f"IR stream chunk size {self.chunk_size!r} out of range", path=where)
        self.specs = [self._spec(i, row) for i, row in enumerate(header["tensors"])]
        axes_of = _family_axes(header["family"], header["config"])
        for spec in self.specs if axes_of is not None else ():
            want = axes_of(spec.name)
            if want is not None and (spec.axes != tuple(want) or len(spec.shape) != len(want)):
                raise StreamError(f"tensor {spec.name!r} is {list(spec.shape)} with axes {spec.axes}, but the "
                                  f"{header['family']} family's {spec.name} has axes {tuple(want)}", path=where)
        problems = _config_problems(header["family"], header["config"], self.specs)
        if problems:
            raise StreamError("the stream's config contradicts its tensors: " + "; ".join(problems[:6]),
                              path=where)
        self.sources = [row[5] for row in header["tensors"]]
        for alias, target in header["aliases"].items():
            if not isinstance(target, str):
                raise StreamError(f"tied name {alias!r} names {target!r}, not a tensor name", path=where)
        check_names([s.name for s in self.specs], header["aliases"], where=where, error=StreamError)

    def _spec(self, i: int, row) -> TensorSpec:
        where = self.where
        if not (isinstance(row, list) and len(row) == 6 and isinstance(row[0], str)):
            raise StreamError(f"tensor table row {i} is not [name, dtype, shape, axes, nbytes, "
                              "source]", path=where)
        name, dtype_name, shape, axes, nbytes, source = row
        try:
            dtype = by_name(dtype_name)
        except DTypeError as exc:
            raise StreamError(f"tensor {name!r}: {exc}", path=where) from None
        shape = check_shape(shape, dtype.itemsize, path=where, name=name)
        if axes is not None and not (isinstance(axes, list) and len(axes) == len(shape)
                                     and all(isinstance(a, str) for a in axes)):
            raise StreamError(f"tensor {name!r}: axes {axes!r} are not {len(shape)} names", path=where)
        if not isinstance(source, str):
            raise StreamError(f"tensor {name!r}: source name {source!r} is not a string", path=where)
        spec = TensorSpec(name, dtype, shape, None if axes is None else tuple(axes))
        if isinstance(nbytes, bool) or nbytes != spec.nbytes:
            raise StreamError(f"tensor {name!r}: table says {nbytes!r} bytes, "
                              f"its shape needs {spec.nbytes}", path=where)
        return spec

    def _check_sizes(self, remaining: int) -> None:
        """A stream in a regular file: what the table declares must fit in what follows."""
        total = 0
        for spec in self.specs:
            total += spec.nbytes
            check_fits(total, remaining, path=self.where, name=spec.name,
                       what="the rest of the stream (with the tensors before it)")

    def _upto(self, n: int) -> bytes:
        """n bytes, or fewer at the end of the stream (an unbuffered pipe returns what it has)."""
        data = self.src.read(n) or b""
        while 0 < len(data) < n:
            more = self.src.read(n - len(data))
            if not more:
                break
            data += more
        return data

    def _exact(self, n: int, what: str) -> bytes:
        data = self._upto(n)
        if len(data) != n:
            raise StreamError(f"IR stream truncated while reading {what}", path=self.where)
        return data

    def _into(self, view: memoryview, what: str) -> None:
        """Fill `view` from the stream (readinto: the bytes land in the tensor's array)."""
        got = 0
        while got < len(view):
            n = self.src.readinto(view[got:])
            if not n:
                raise StreamError(f"IR stream truncated while reading {what}", path=self.where)
            got += n

    def _allocate(self, spec: TensorSpec) -> np.ndarray:
        """The tensor's buffer, taken when its first chunk frame has arrived and checked out.
        Its pages are touched only as bytes are read into them."""
        try:
            return buffers.empty(spec.nbytes, np.uint8)
        except MemoryError:
            raise StreamError(f"tensor {spec.name!r} of {spec.nbytes:,} bytes does not fit in this "
                              "machine's memory", path=self.where) from None

    def _read_tensor(self, index: int) -> np.ndarray:
        spec = self.specs[index]
        arr = np.empty(0, dtype=np.uint8)
        n_chunks = -(-spec.nbytes // self.chunk_size)
        for chunk_index in range(n_chunks):
            what = f"tensor {spec.name!r} (chunk {chunk_index} of {n_chunks})"
            with stage("stream read"):
                length, crc = self._frame(index, chunk_index, n_chunks)
                start = chunk_index * self.chunk_size
                if not chunk_index:
                    arr = self._allocate(spec)
                body = memoryview(arr)[start:start + length]
            with stage("stream read", length):
                self._into(body, what)
            with stage("checksum", length):
                ok = _crc32c.crc32c(body) == crc
            if not ok:
                self._corrupt(spec, chunk_index)
        self.total += spec.nbytes
        self.position = index + 1
        return arr.view(spec.dtype.carrier).reshape(spec.shape)

    def _frame(self, index: int, chunk_index: int, n_chunks: int) -> tuple[int, int]:
        """Read and check the frame of chunk `chunk_index` of tensor `index`: (length, crc)."""
        spec = self.specs[index]
        what = f"tensor {spec.name!r} (chunk {chunk_index} of {n_chunks})"
        kind, got_index, got_chunk, length, crc = _CHUNK.unpack(self._exact(_CHUNK.size, what))
        expected_len = min(self.chunk_size, spec.nbytes - chunk_index * self.chunk_size)
        if kind != b"C" or (got_index, got_chunk) != (index, chunk_index) or length != expected_len:
            raise StreamError(f"IR stream out of order or corrupted in tensor {spec.name!r} "
                              f"(chunk {chunk_index})", path=self.where)
        return length, crc

    def _corrupt(self, spec: TensorSpec, chunk_index: int):
        raise StreamError(f"checksum mismatch in tensor {spec.name!r} (chunk {chunk_index}): "
                          "the stream was corrupted", path=self.where)

    def _skip_to(self, index: int) -> None:
        if index < self.position:
            raise IrconvError(f"tensor {self.specs[index].name!r} was already read from the stream; "
                              "exporters must take stream tensors in table order")
        while self.position < index:       # skipped tensors are still checked
            self._read_tensor(self.position)

    def copy_into(self, index: int, fd: int, offset: int) -> None:
        """Tensor `index`'s bytes from the pipe straight into file `fd` at `offset` by
        splice(2) (no copy through this process), each chunk then read back there for its
        checksum: a corrupted stream is refused as load() refuses it, and the file it went
        into is the exporter's unfinished one, which is then dropped."""
        self._skip_to(index)
        spec = self.specs[index]
        n_chunks = -(-spec.nbytes // self.chunk_size)
        pipe = self.src.fileno()
        for chunk_index in range(n_chunks):
            with stage("stream read"):
                length, crc = self._frame(index, chunk_index, n_chunks)
            at = offset + chunk_index * self.chunk_size
            with stage("stream read", length):
                done = 0
                while done < length:
                    got = os.splice(pipe, fd, length - done, offset_dst=at + done)
                    if not got:
                        raise StreamError(f"IR stream truncated while reading tensor {spec.name!r} "
                                          f"(chunk {chunk_index} of {n_chunks})", path=self.where)
                    done += got
            with stage("checksum", length):
                ok = crc_of_range(fd, at, length, _crc32c.crc32c) == crc
            if not ok:
                self._corrupt(spec, chunk_index)
        self.total += spec.nbytes
        self.position = index + 1

    def load(self, index: int) -> np.ndarray:
        self._skip_to(index)
        return self._read_tensor(index)

    @contextmanager
    def strips(self, index: int) -> Iterator[Callable]:
        """Tensor.ordered_strips of tensor `index`: fill(buffer, at) reads its next bytes off
        the stream into `buffer` (a relayout's strip: the tensor is never whole in memory),
        each chunk's crc32c checked as its last byte arrives; a mismatch is the StreamError
        load() raises, before the relayout's result is used."""
        self._skip_to(index)
        spec = self.specs[index]
        n_chunks = -(-spec.nbytes // self.chunk_size)
        state = {"at": 0, "chunk": 0, "left": 0, "expect": 0, "crc": 0}

        def fill(buffer, at: int) -> None:
            if at != state["at"]:
                raise IrconvError(f"tensor {spec.name!r}: its strips must be read in order")
            view = memoryview(buffer).cast("B")
            pos = 0
            while pos < len(view):
                what = f"tensor {spec.name!r} (chunk {state['chunk']} of {n_chunks})"
                if not state["left"]:
                    with stage("stream read"):
                        state["left"], state["expect"] = self._frame(index, state["chunk"], n_chunks)
                    state["crc"] = 0
                piece = view[pos:pos + min(state["left"], len(view) - pos)]
                with stage("stream read", len(piece)):
                    self._into(piece, what)
                with stage("checksum", len(piece)):
                    state["crc"] = _crc32c.crc32c(piece, state["crc"])
                state["left"] -= len(piece)
                pos += len(piece)
                if not state["left"]:
                    if state["crc"] != state["expect"]:
                        self._corrupt(spec, state["chunk"])
                    state["chunk"] += 1
            state["at"] += len(view)
        yield fill
        if state["at"] != spec.nbytes or state["chunk"] != n_chunks:
            raise IrconvError(f"tensor {spec.name!r}: {state['at']} of its {spec.nbytes} bytes were read")
        self.total += spec.nbytes
        self.position = index + 1

    def finish(self) -> None:
        while self.position < len(self.specs):
            self._read_tensor(self.position)
        trailer = _END.unpack(self._exact(_END.size, "the trailer"))
        if trailer != (b"E", len(self.specs), self.total):
            raise StreamError(f"corrupt IR stream trailer: expected the end of {len(self.specs)} "
                              f"tensors, {self.total:,} bytes", path=self.where)
        if self.src.read(1):
            raise StreamError("unexpected data after the IR stream trailer", path=self.where)


def _splices_from(src) -> bool:
    """True when `src` is an unbuffered pipe (io.FileIO on a FIFO): its tensors' bytes can
    then go from it into a writer's file by splice(2). A buffered reader may hold bytes
    ahead of its file position, which a splice from the descriptor would skip."""
    return isinstance(src, io.FileIO) and _pipe_fd(src) is not None


def stdin_for_stream() -> BinaryIO:
    """What read_stream should read standard input through: the unbuffered descriptor when it
    is a pipe (nothing has read it yet), so that tensors can be spliced out of it."""
    raw = getattr(sys.stdin.buffer, "raw", None)
    return raw if raw is not None and _splices_from(raw) else sys.stdin.buffer


def read_stream(src: BinaryIO, where: str = "<stdin>") -> Checkpoint:
    """A Checkpoint whose tensors load straight off `src`, in table order.

    Call `close()` on it after the last tensor: that verifies the trailer."""
    reader = _StreamReader(src, where)
    tensors = {}
    splices = _splices_from(src)
    for index, spec in enumerate(reader.specs):
        t = tensors[spec.name] = Tensor(spec, lambda i=index: reader.load(i), reader.sources[index])
        if spec.nbytes and spec.dtype.name != "BOOL":
            t.ordered_strips = lambda i=index: reader.strips(i)
            if splices:
                t.extent = StreamExtent(reader, index)
    h = reader.header
    return Checkpoint(family=h["family"], config=h["config"], tensors=tensors,
                      aliases=dict(h["aliases"]), source=dict(h["source"]), ordered=True,
                      _closer=reader.finish)
