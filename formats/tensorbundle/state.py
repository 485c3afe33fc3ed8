"""The `checkpoint` state file (tf.train.CheckpointState in protobuf text format)."""
from __future__ import annotations

import os
import re

from ...ir.errors import FormatError
from ...ir.limits import open_regular

STATE_FILE = "checkpoint"                       # tf.train.CheckpointState, text format


# --------------------------------------------------------------------------- state file

_STATE_LINE = re.compile(r'^\s*([A-Za-z_]+)\s*:\s*(.*?)\s*$')
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'')
_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", '"': b'"', "'": b"'", "\\": b"\\",
            "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v", "?": b"?"}


def _unescape(text: str) -> str:
    out = bytearray()
    raw = text.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        c = raw[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        nxt = chr(raw[i + 1]) if i + 1 < len(raw) else ""
        if nxt and nxt in "01234567":
            m = re.match(rb"[0-7]{1,3}", raw[i + 1:])
            out.append(int(m.group(), 8) & 0xFF)
            i += 1 + len(m.group())
        elif nxt in ("x", "X"):
            m = re.match(rb"[0-9a-fA-F]{1,2}", raw[i + 2:])
            out.append(int(m.group(), 16) if m else 0)
            i += 2 + (len(m.group()) if m else 0)
        else:
            out += _ESCAPES.get(nxt, nxt.encode())
            i += 2
    return out.decode("utf-8", errors="surrogateescape")


def _escape(text: str) -> str:
    """text_format's C escaping, non-ASCII bytes as octal (MessageToString's default)."""
    out = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        if ch in '"\'\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


def read_state(directory) -> dict[str, list[str]]:
    """The string fields of a `checkpoint` state file: {'model_checkpoint_path': [...], ...}."""
    path = os.path.join(os.fspath(directory), STATE_FILE)
    with open_regular(path, "a checkpoint state file") as f:
        lines = f.read().decode("utf-8", errors="surrogateescape").splitlines()
    fields: dict[str, list[str]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _STATE_LINE.match(line)
        if not m:
            raise FormatError(f"line {number} {line!r} is not 'field: value'", path=path)
        parts = _QUOTED.findall(m.group(2))
        if parts:   # adjacent quoted strings concatenate, as in text format
            fields.setdefault(m.group(1), []).append(
                "".join(_unescape(a or b) for a, b in parts))
    return fields


def write_state(prefix) -> str:
    """Write `<dir of prefix>/checkpoint` pointing at `prefix` (relative), atomically."""
    prefix = os.fspath(prefix)
    directory = os.path.dirname(os.path.abspath(prefix))
    rel = _escape(os.path.basename(prefix))
    path = os.path.join(directory, STATE_FILE)
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f'model_checkpoint_path: "{rel}"\nall_model_checkpoint_paths: "{rel}"\n')
    os.replace(tmp, path)
    return path
