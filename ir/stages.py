"""Where a conversion's time goes, stage by stage (read, relayout, checksum, encode, write ...).

Off unless the environment sets IRCONV_STAGES=1 (the benchmark harness does): then every
`with stage("read", nbytes):` adds its wall time and bytes to a per-process table, printed
as one line `irconv-stages {json}` on stderr when the process exits. Stages nest and are
exclusive: time spent in an inner stage (a checksum inside a write) is not counted again
in the outer one. Threads keep their own nesting; their times add up, so a stage can
exceed the wall time when threads overlap.
"""
from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time

ENABLED = os.environ.get("IRCONV_STAGES", "") not in ("", "0")

_lock = threading.Lock()
_totals: dict[str, list[float]] = {}      # stage -> [seconds, bytes]
_local = threading.local()


class _Off:
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_OFF = _Off()


class _Stage:
    __slots__ = ("name", "nbytes")

    def __init__(self, name: str, nbytes: int):
        self.name, self.nbytes = name, nbytes

    def __enter__(self):
        stack = getattr(_local, "stack", None)
        if stack is None:
            stack = _local.stack = []
        now = time.perf_counter()
        if stack:                     # pause the enclosing stage
            outer = stack[-1]
            _add(outer[0], now - outer[1], 0)
        stack.append([self.name, now])
        return self

    def __exit__(self, *exc):
        stack = _local.stack
        now = time.perf_counter()
        name, start = stack.pop()
        _add(name, now - start, self.nbytes)
        if stack:                     # resume it
            stack[-1][1] = now
        return False


def _add(name: str, seconds: float, nbytes: int) -> None:
    with _lock:
        entry = _totals.setdefault(name, [0.0, 0])
        entry[0] += seconds
        entry[1] += nbytes


def stage(name: str, nbytes: int = 0):
    """A context manager timing `name` (and counting `nbytes` through it) when enabled."""
    return _Stage(name, nbytes) if ENABLED else _OFF


def report() -> dict[str, dict[str, float]]:
    with _lock:
        return {k: {"seconds": round(v[0], 4), "bytes": int(v[1])} for k, v in sorted(_totals.items())}


def _print_report() -> None:
    if _totals:
        try:
            sys.stderr.write("irconv-stages " + json.dumps(report()) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


if ENABLED:
    atexit.register(_print_report)
