"""Loading ahead: tensors are read and relaid out on worker threads while the caller writes.

An exporter's loop is read -> relayout -> checksum -> write, one tensor after the other. The
reads (readinto, zip and h5 records) and the copies (relayouts, casts, checksums) release
the GIL, so on a machine with more than one core they can run ahead of the writer:
`loaded(tensors)` yields each tensor with its array, in order, while the next ones load on
`jobs` threads. What is loaded and not yet written is bounded by a byte budget: each load
costs the bytes it holds at most (Tensor.holds: its array, and a relayout's source while it is
copied), and the budget is twice the largest tensor of the model (at least MIN_BUDGET), so
peak memory stays within twice the largest tensor however many threads there are, and a
model whose largest tensor is copied file to file (an embedding) still relays out two or
three of its layer matrices at once. A writer whose writes may come in any order from any
thread (one whose layout is fixed up front: safetensors) hands the whole job to the threads instead:
`done(tensors, work)` runs work(tensor) (load, relayout, write) on them and yields each
tensor, in order, once its work is done.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from typing import Callable, Iterable, Iterator

import numpy as np

from . import buffers
from .tensor import Tensor

# The least budget: a model of small tensors still has a few in flight.
MIN_BUDGET = 8 << 20


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_jobs() -> int:
    """Worker threads when --jobs is not given: one more than the cores, at most 8. A file
    takes one write at a time (formats/partial.one_writer), so a worker waiting for its turn
    to write leaves its core to the others' reads and relayouts: with one per core, 4 GB
    converts to tf1 and tf2 and BERT-base's to tf2 ran 2-10% longer here (bench/README.md).
    The memory budget, not the thread count, bounds what is in flight."""
    return max(1, min(cores() + 1, 8))


def loaded(tensors: Iterable[Tensor], *, jobs: int | None = None, budget: int | None = None,
           ordered: bool = False) -> Iterator[tuple[Tensor, np.ndarray]]:
    """(tensor, tensor.load_raw()) for each tensor, in the given order.

    jobs: worker threads loading ahead (None: default_jobs(); 0: load in line, no thread).
    ordered: the source must be read in order (an IR stream): the reads then take turns, one
    tensor after the other, while the relayouts of the ones read run beside them.
    A load's error is raised here, at that tensor, and loads not yet started are cancelled."""
    return _ahead(tensors, Tensor.load_raw, jobs, budget, ordered, Tensor.holds)


def mapped(tensors: Iterable[Tensor], fn: Callable[[Tensor], object], *, jobs: int | None = None,
           budget: int | None = None, ordered: bool = False,
           cost: Callable[[Tensor], int] = Tensor.holds) -> Iterator[tuple[Tensor, object]]:
    """(tensor, fn(tensor)) for each tensor, in the given order, fn running ahead as in
    loaded() (which is mapped(tensors, Tensor.load_raw)); cost: as in done()."""
    return _ahead(tensors, fn, jobs, budget, ordered, cost)


def done(tensors: Iterable[Tensor], work: Callable[[Tensor], None], *, jobs: int | None = None,
         budget: int | None = None, ordered: bool = False,
         cost: Callable[[Tensor], int] = Tensor.holds,
         in_turn: Callable[[Tensor], bool] = lambda t: False) -> Iterator[Tensor]:
    """Run work(tensor) for each tensor on `jobs` threads (0: in line), at most `budget`
    bytes of cost(tensor) in flight (a job that holds no array, a file-to-file copy, costs 0);
    yield each tensor, in the given order, once its work is done. An error is raised at its
    tensor; jobs not yet started are then cancelled. in_turn(tensor): for an ordered source,
    the work itself reads the source (it copies the bytes from the stream into the file), so
    all of it runs in the stream's turn."""
    return (t for t, _ in _ahead(tensors, work, jobs, budget, ordered, cost, in_turn))


def _ahead(tensors, fn, jobs, budget, ordered, cost, in_turn=lambda t: False) -> Iterator[tuple[Tensor, object]]:
    """(tensor, fn(tensor)) in order, fn running ahead on `jobs` threads while at most
    `budget` of cost() is submitted and not yet handed back and released."""
    tensors = list(tensors)
    jobs = default_jobs() if jobs is None else jobs
    if jobs <= 0 or len(tensors) <= 1:
        for t in tensors:
            yield t, fn(t)
        return
    costs = [cost(t) for t in tensors]
    # From a source read in order, a relayout whose source and result held at once would take
    # more than the largest tensor reads its source strip by strip in the source's turn (the
    # relayout then waits for the reads before it, so only where memory needs it).
    strips = [False] * len(tensors)
    if ordered:
        largest = max(t.nbytes for t in tensors)
        for i, t in enumerate(tensors):
            held = t.in_turn_holds()
            if held is not None and costs[i] > largest and held < costs[i]:
                strips[i], costs[i] = True, held
    if budget is None:
        budget = max(max(costs), 2 * max(t.nbytes for t in tensors), MIN_BUDGET)
    from concurrent.futures import ThreadPoolExecutor     # only when threads run: not at start-up
    job = _in_turn(fn, in_turn, strips) if ordered else (lambda t, i: fn(t))
    pending: deque = deque()
    in_flight = 0            # cost submitted and not yet handed back and released
    ahead = 0                # index of the next tensor to submit
    # Buffers are reused within the budget (ir/buffers.py): what is in flight is bounded by it.
    with buffers.pooled(budget), ThreadPoolExecutor(jobs, thread_name_prefix="irconv-work") as pool:
        try:
            for _ in range(len(tensors)):
                while ahead < len(tensors) and (not pending or in_flight + costs[ahead] <= budget):
                    t = tensors[ahead]
                    pending.append((t, costs[ahead], pool.submit(job, t, ahead)))
                    in_flight += costs[ahead]
                    ahead += 1
                t, spent, future = pending.popleft()
                result = future.result()
                yield t, result
                del result, future
                in_flight -= spent
        finally:
            for _, _, future in pending:
                future.cancel()


def _in_turn(fn, whole, strips):
    """fn(tensor) for a source that must be read in order, on several threads: job i reads
    its tensor's source bytes (Tensor.prefetched) once job i - 1 has read its own, then runs
    fn (the relayout, the write) beside the next one's read. Jobs are taken from the pool's
    queue in the order they were submitted, so the job whose turn it is has always started:
    no turn is waited for that cannot come, and a failed read passes the turn on too."""
    turn = [0]
    changed = threading.Condition()

    def job(t: Tensor, i: int):
        with changed:
            changed.wait_for(lambda: turn[0] == i)
        try:
            if whole(t):              # fn reads the source itself (a copy out of the stream)
                return fn(t)
            t = t.read_in_turn() if strips[i] else t.prefetched()
        finally:
            with changed:
                turn[0] = i + 1
                changed.notify_all()
        return fn(t)
    return job
