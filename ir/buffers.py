"""Large arrays reused while a conversion runs, instead of fresh memory for every tensor.

A fresh array's pages are faulted in, zeroed by the kernel and (on a VM whose balloon takes
free memory back) paid for again at first touch: filling a fresh 250 MB array from the page
cache ran at 1.7-2.4 GB/s here, the same array filled a second time at ~5 GB/s. So while a
pipeline runs (`pooled(cap)`, ir/pipeline.py), `empty()` of a MiB or more hands out an array
whose buffer, once every view of it is gone, goes back to a free list for the next tensor of
about its size. Memory stays bounded: the buffers the pool made (in use or free) total at most
`cap` (the pipeline's budget, twice the largest tensor), and a free one is dropped before a new
one would exceed it; outside `pooled()` (the API's loads) `empty()` is np.empty.

The array handed out is a view of its buffer through a memoryview, so every array derived from
it (reshape, view(dtype), slices) keeps that view alive and the buffer is reused only once the
last of them is gone (weakref.finalize). Its contents are whatever the last tensor left, as
np.empty's may be: every caller fills all of it before use.
"""
from __future__ import annotations

import math
import threading
import weakref
from contextlib import contextmanager
from typing import Iterator

import numpy as np

# Below this, malloc's own free lists reuse memory already (and a finalizer would cost more).
MIN_POOLED = 1 << 20

_lock = threading.RLock()
_free: list[np.ndarray] = []    # buffers (1-D uint8) not in use, oldest first
_state = {"users": 0, "cap": 0, "made": 0}    # active pooled() scopes, their largest cap, bytes made


def empty(shape, dtype) -> np.ndarray:
    """np.empty(shape, dtype), from a reused buffer while a pipeline runs."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    n = math.prod(shape) * dtype.itemsize
    if n < MIN_POOLED or not _state["users"] or dtype.hasobject:
        return np.empty(shape, dtype)
    buffer = _take(n)
    if buffer is None:
        return np.empty(shape, dtype)
    view = np.frombuffer(memoryview(buffer)[:n], dtype=np.uint8)
    done = weakref.finalize(view, _give_back, buffer)
    done.atexit = False
    return view.view(dtype).reshape(shape)


def _take(n: int) -> np.ndarray | None:
    """A buffer of n to 2n bytes: the smallest free one, else a new one within the cap (free
    ones dropped, oldest first, to make room), else None (the caller's own np.empty)."""
    with _lock:
        best = None
        for i, b in enumerate(_free):
            if n <= b.nbytes <= 2 * n and (best is None or b.nbytes < _free[best].nbytes):
                best = i
        if best is not None:
            return _free.pop(best)
        while _free and _state["made"] + n > _state["cap"]:
            _state["made"] -= _free.pop(0).nbytes
        if _state["made"] + n > _state["cap"]:
            return None
        _state["made"] += n
    # Outside the lock: a new buffer's pages are touched by whoever fills it.
    try:
        return np.empty(n, dtype=np.uint8)
    except MemoryError:
        with _lock:
            _state["made"] -= n
        raise


def _give_back(buffer: np.ndarray) -> None:
    with _lock:
        if _state["users"] and _state["made"] <= _state["cap"]:
            _free.append(buffer)
        else:
            _state["made"] -= buffer.nbytes


@contextmanager
def pooled(cap: int) -> Iterator[None]:
    """Reuse buffers inside this block, at most `cap` bytes of them (nested or concurrent
    blocks share one pool, bounded by the largest cap among them); the free ones are
    released when the last block ends."""
    with _lock:
        _state["users"] += 1
        _state["cap"] = max(_state["cap"], cap)
    try:
        yield
    finally:
        with _lock:
            _state["users"] -= 1
            if not _state["users"]:
                _state["cap"] = 0
                for b in _free:
                    _state["made"] -= b.nbytes
                _free.clear()
