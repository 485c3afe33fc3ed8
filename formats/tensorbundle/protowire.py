"""The protobuf wire format, the few pieces the TensorBundle messages need (varints, tagged
fields, a proto3 encoder), so neither tensorflow nor protobuf is imported."""
from __future__ import annotations

import struct
from typing import Iterator


class _WireError(ValueError):
    """Malformed protobuf or table bytes; callers turn it into a FormatError naming the file."""


def _put_varint(out: bytearray, n: int) -> None:
    n &= 0xFFFFFFFFFFFFFFFF  # negative int32/int64 go out as 10-byte two's complement
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _get_varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise _WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if result >> 64:
                raise _WireError("varint overflows 64 bits")
            return result, pos
        shift += 7
        if shift >= 70:
            raise _WireError("varint longer than 10 bytes")


def _signed(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def _fields(buf) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, int or bytes) of a serialized message, in wire order."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _get_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _WireError("field number 0")
        if wire == 0:
            value, pos = _get_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise _WireError("truncated fixed64")
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            n, pos = _get_varint(buf, pos)
            if pos + n > end:
                raise _WireError(f"length-delimited field {number} runs past the end")
            value, pos = bytes(buf[pos:pos + n]), pos + n
        elif wire == 5:
            if pos + 4 > end:
                raise _WireError("truncated fixed32")
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise _WireError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _expect(wire: int, want: int, number: int, message: str) -> None:
    if wire != want:
        raise _WireError(f"{message} field {number} has wire type {wire}, expected {want}")


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise _WireError(f"{what} {value!r} is not UTF-8") from None


class _Msg:
    """Proto3 encoder: fields in number order, zero scalars and empty strings omitted."""

    def __init__(self):
        self.buf = bytearray()

    def varint(self, number: int, value: int, always: bool = False) -> "_Msg":
        if value or always:
            _put_varint(self.buf, number << 3)
            _put_varint(self.buf, value)
        return self

    def fixed32(self, number: int, value: int) -> "_Msg":
        if value:
            _put_varint(self.buf, number << 3 | 5)
            self.buf += struct.pack("<I", value)
        return self

    def bytes(self, number: int, value: bytes | str, always: bool = False) -> "_Msg":
        if isinstance(value, str):
            value = value.encode("utf-8")
        if value or always:
            _put_varint(self.buf, number << 3 | 2)
            _put_varint(self.buf, len(value))
            self.buf += value
        return self

    def done(self) -> bytes:
        return bytes(self.buf)
