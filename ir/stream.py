"""The IR stream: the pipe between `irconv import` and `irconv export`.

Wire format, version 1 (all msgpack, after an 8-byte magic):

    MAGIC
    [version, header_bytes, crc32(header_bytes)]       header: msgpack map, see below
    [tensor_index, chunk_index, bytes, crc32(bytes)]   per tensor, ceil(nbytes / chunk) chunks
    ["end", tensor_count, total_bytes]                  trailer

header = {"family", "config", "source", "aliases", "chunk_size",
          "tensors": [[name, dtype, shape, axes or None, nbytes, source name], ...]}

The whole tensor table comes first so that a streaming exporter can lay out its file
before any bytes arrive; every chunk carries its position and a crc32 so a truncated,
reordered or corrupted stream is refused rather than written out.
"""
from __future__ import annotations

import zlib
from typing import BinaryIO, Callable

import msgpack
import numpy as np

from .checkpoint import Checkpoint
from .dtypes import by_name
from .errors import IrconvError, StreamError
from .tensor import Tensor, TensorSpec, as_bytes

MAGIC = b"IRCONV\x00\x01"
VERSION = 1
DEFAULT_CHUNK = 8 << 20
MAX_CHUNK = 64 << 20
# Bounds what a corrupted length prefix can make the reader allocate.
_MAX_RECORD = 256 << 20


def write_stream(ckpt: Checkpoint, out: BinaryIO, *, chunk_size: int = DEFAULT_CHUNK,
                 progress: Callable[[Tensor], None] | None = None) -> None:
    """Serialize `ckpt` to `out`, loading one tensor at a time."""
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
    out.write(MAGIC)
    out.write(msgpack.packb([VERSION, header_bytes, zlib.crc32(header_bytes)], use_bin_type=True))
    total = 0
    for index, tensor in enumerate(tensors):
        data = memoryview(as_bytes(tensor.load()))
        for chunk_index, start in enumerate(range(0, len(data), chunk_size)):
            chunk = data[start:start + chunk_size]
            out.write(msgpack.packb([index, chunk_index, chunk, zlib.crc32(chunk)], use_bin_type=True))
        total += len(data)
        del data
        if progress:
            progress(tensor)
    out.write(msgpack.packb(["end", len(tensors), total], use_bin_type=True))
    out.flush()


class _StreamReader:
    """Pulls tensors off the stream in table order; a tensor may be skipped, never revisited."""

    def __init__(self, src: BinaryIO, where: str):
        self.where = where
        self.src = src
        magic = src.read(len(MAGIC))
        if magic != MAGIC:
            if magic[:6] == MAGIC[:6]:
                raise StreamError(f"IR stream of format {magic[6:]!r}, this irconv reads {MAGIC[6:]!r}; "
                                  "use the same irconv version on both sides of the pipe", path=where)
            raise StreamError("not an irconv IR stream (did the `irconv import` side fail?)", path=where)
        self.unpacker = msgpack.Unpacker(src, use_list=True, raw=False, strict_map_key=False,
                                         max_buffer_size=_MAX_RECORD)
        envelope = self._next("the header")
        if not (isinstance(envelope, list) and len(envelope) == 3):
            raise StreamError("corrupt IR stream header", path=where)
        version, header_bytes, crc = envelope
        if version != VERSION:
            raise StreamError(f"IR stream version {version!r}, this irconv reads version {VERSION}",
                              path=where)
        if not isinstance(header_bytes, bytes) or zlib.crc32(header_bytes) != crc:
            raise StreamError("IR stream header checksum mismatch (corrupted stream)", path=where)
        try:
            self._parse_header(msgpack.unpackb(header_bytes, raw=False, strict_map_key=False))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise StreamError(f"malformed IR stream header ({type(exc).__name__}: {exc})", path=where) from None
        self.position = 0    # index of the next tensor on the wire
        self.total = 0

    def _parse_header(self, header: dict) -> None:
        where = self.where
        self.header = header
        self.chunk_size = self.header["chunk_size"]
        if not isinstance(self.chunk_size, int) or not 0 < self.chunk_size <= MAX_CHUNK:
            raise StreamError(f"IR stream chunk size {self.chunk_size!r} out of range", path=where)
        self.specs = [TensorSpec(name, by_name(dtype), tuple(shape), None if axes is None else tuple(axes))
                      for name, dtype, shape, axes, *_ in self.header["tensors"]]
        self.sources = [row[5] for row in self.header["tensors"]]
        for spec, row in zip(self.specs, self.header["tensors"]):
            if spec.nbytes != row[4]:
                raise StreamError(f"tensor {spec.name!r}: table says {row[4]} bytes, "
                                  f"its shape needs {spec.nbytes}", path=where)

    def _next(self, what: str):
        try:
            return self.unpacker.unpack()
        except msgpack.OutOfData:
            raise StreamError(f"IR stream truncated while reading {what}", path=self.where) from None
        except Exception as exc:  # msgpack signals corrupt input with many types (TypeError, ...)
            raise StreamError(f"corrupt IR stream at {what}: {exc}", path=self.where) from None

    def _read_tensor(self, index: int) -> np.ndarray:
        spec = self.specs[index]
        buf = bytearray(spec.nbytes)
        view = memoryview(buf)
        n_chunks = -(-spec.nbytes // self.chunk_size)
        for chunk_index in range(n_chunks):
            rec = self._next(f"tensor {spec.name!r}")
            if not (isinstance(rec, list) and len(rec) == 4):
                raise StreamError(f"corrupt IR stream record in tensor {spec.name!r}", path=self.where)
            got_index, got_chunk, data, crc = rec
            start = chunk_index * self.chunk_size
            expected_len = min(self.chunk_size, spec.nbytes - start)
            if (got_index, got_chunk) != (index, chunk_index) or not isinstance(data, bytes) \
                    or len(data) != expected_len:
                raise StreamError(f"IR stream out of order or corrupted in tensor {spec.name!r} "
                                  f"(chunk {chunk_index})", path=self.where)
            if zlib.crc32(data) != crc:
                raise StreamError(f"checksum mismatch in tensor {spec.name!r} (chunk {chunk_index}): "
                                  "the stream was corrupted", path=self.where)
            view[start:start + expected_len] = data
        self.total += spec.nbytes
        self.position = index + 1
        return np.frombuffer(buf, dtype=spec.dtype.numpy).reshape(spec.shape)

    def load(self, index: int) -> np.ndarray:
        if index < self.position:
            raise IrconvError(f"tensor {self.specs[index].name!r} was already read from the stream; "
                              "exporters must take stream tensors in table order")
        while self.position < index:       # skipped tensors are still checked
            self._read_tensor(self.position)
        return self._read_tensor(index)

    def finish(self) -> None:
        while self.position < len(self.specs):
            self._read_tensor(self.position)
        trailer = self._next("the trailer")
        if trailer != ["end", len(self.specs), self.total]:
            raise StreamError("corrupt IR stream trailer", path=self.where)
        if self.unpacker.read_bytes(1) or self.src.read(1):
            raise StreamError("unexpected data after the IR stream trailer", path=self.where)


def read_stream(src: BinaryIO, where: str = "<stdin>") -> Checkpoint:
    """A Checkpoint whose tensors load straight off `src`, in table order.

    Call `close()` on it after the last tensor: that verifies the trailer."""
    reader = _StreamReader(src, where)
    tensors = {}
    for index, spec in enumerate(reader.specs):
        tensors[spec.name] = Tensor(spec, lambda i=index: reader.load(i), reader.sources[index])
    h = reader.header
    return Checkpoint(family=h["family"], config=h["config"], tensors=tensors,
                      aliases=dict(h.get("aliases") or {}), source=dict(h.get("source") or {}),
                      _closer=reader.finish)
