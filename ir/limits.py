"""Bounds derived from the input, checked before anything is allocated, walked or opened.

Every reader asks these before it trusts a number a file declares: a tensor's shape is
checked to be non-negative integers whose byte size is what the file (or zip member, or the
stream's remaining declared length) can hold; nesting of JSON and pickles is bounded; a path
is opened only if it is a regular file, so a FIFO or a device given as input is refused
without blocking. Real checkpoints never come near these limits, so no flag lifts them.
"""
from __future__ import annotations

import json
import os
import stat
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from .errors import FormatError

# Deeper than any real config, header or checkpoint pickle nests (HF configs nest ~4 deep).
MAX_DEPTH = 64
# More dimensions than any framework stores (numpy's own limit is 64).
MAX_RANK = 32
# A byte size no real tensor reaches (2**62 B = 4 EiB); keeps products inside int64.
MAX_NBYTES = 1 << 62


def missing(path, kind=FormatError):
    """The error for a path that names nothing: none there, or a link whose target is missing
    (or whose links loop), which "no such file" would hide."""
    if os.path.islink(path):
        return kind("is a symbolic link that leads nowhere (its target is missing, or its links loop)",
                    path=str(path))
    return kind("no such file or directory", path=str(path))


def require_regular(path, what: str = "input") -> None:
    """Refuse (without opening, so without blocking) anything but a regular file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise missing(path) from None
    except OSError as exc:
        raise FormatError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise FormatError(f"is {kind}, not a regular file; refusing to read it as {what}", path=str(path))


def outside(path, root) -> str | None:
    """Where `path` really is (every link followed) when that is not `root` or below it, else
    None: a file of an input directory that is a link out of it. A Hugging Face cache snapshot
    (.../snapshots/<revision>/) links its files into its repository's blobs/, which counts as
    inside."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    allowed = [base]
    if os.path.basename(os.path.dirname(base)) == "snapshots":
        allowed.append(os.path.join(os.path.dirname(os.path.dirname(base)), "blobs"))
    return None if any(os.path.commonpath([real, a]) == a for a in allowed) else real


# The input directories of this run (cli): a file read from inside one must really be inside
# it (outside(): links out are refused, a Hugging Face cache snapshot's into its blobs/ are its
# own), but for the paths the user named themselves, which may be links to anywhere.
_roots: list[str] = []
_named: set[str] = set()
# The files found inside their directory this run: a shard opened once per tensor (a thousand
# times) is resolved once (realpath costs ~0.1 ms: a tenth of an EfficientNet's convert).
_inside: set[str] = set()


def input_root(src) -> str:
    """The directory the files of input `src` must lie in: itself, or a file's own directory."""
    return str(src) if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))


@contextmanager
def inputs(directories: Iterable, named: Iterable = ()) -> Iterator[None]:
    """Within the block, every file read under one of `directories` (lexically) must resolve
    inside it, except the paths in `named` (what the command line gave)."""
    roots = [os.path.abspath(d) for d in directories]
    names = {os.path.abspath(p) for p in named}
    _roots.extend(roots)
    _named.update(names)
    _inside.clear()
    try:
        yield
    finally:
        del _roots[len(_roots) - len(roots):]
        _named.difference_update(names)
        _inside.clear()


def check_inside(path) -> None:
    """Refuse a file of an input directory that is a symbolic link (or lies through one) out of
    it: a crafted model directory's config.json -> ~/.ssh/id_rsa would be read, and could show
    in an error message."""
    if not _roots:
        return
    p = os.path.abspath(path)
    if p in _named or p in _inside:
        return
    for root in _roots:
        if os.path.commonpath([p, root]) == root:
            real = outside(p, root)
            if real is not None:
                raise FormatError(f"is a symbolic link out of the input directory {root} (to {real}); irconv "
                                  "reads only files inside the input it is given (a Hugging Face cache "
                                  "snapshot's links into its blobs/ excepted): give that file itself",
                                  path=str(path))
    _inside.add(p)


def open_regular(path, what: str = "input"):
    """open(path, "rb") for a regular file only. The file is opened non-blocking and checked
    with fstat, so a FIFO swapped in after a stat() still cannot block the process; a file of
    an input directory must be inside it (check_inside)."""
    check_inside(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise missing(path) from None
    except OSError as exc:
        raise FormatError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            require_regular(path, what)     # names the kind
            raise FormatError("is not a regular file", path=str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_size(path) -> int:
    require_regular(path)
    return os.stat(path).st_size


def check_shape(shape: Any, itemsize: int, *, path: str, name: str = "") -> tuple[int, ...]:
    """A declared shape as a tuple of non-negative ints whose byte size stays below MAX_NBYTES."""
    where = f"tensor {name!r}: " if name else ""
    if not isinstance(shape, (list, tuple)):
        raise FormatError(f"{where}shape {shape!r} is not a list of dimensions", path=path)
    if len(shape) > MAX_RANK:
        raise FormatError(f"{where}shape has {len(shape)} dimensions (more than {MAX_RANK})", path=path)
    total = max(int(itemsize), 1)
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise FormatError(f"{where}shape {list(shape)!r} has a dimension that is not a non-negative "
                              "integer", path=path)
        if dim >= 1 << 63:         # an empty tensor's product is 0 whatever its other dimensions
            raise FormatError(f"{where}shape has a dimension past int64", path=path)
        total *= dim
        if total > MAX_NBYTES:
            raise FormatError(f"{where}shape {list(shape)!r} declares more bytes than any file holds",
                              path=path)
    return tuple(int(d) for d in shape)


def nbytes_of(shape: Iterable[int], itemsize: int) -> int:
    n = int(itemsize)
    for d in shape:
        n *= int(d)
    return n


def check_fits(nbytes: int, available: int, *, path: str, name: str = "", what: str = "the file") -> None:
    """A tensor of `nbytes` must fit in the `available` bytes of what holds it."""
    if nbytes > available:
        where = f"tensor {name!r} " if name else ""
        raise FormatError(f"{where}declares {nbytes:,} bytes but {what} holds only {available:,}: "
                          "truncated or corrupt", path=path)


def check_depth(obj: Any, *, path: str, what: str = "data", limit: int = MAX_DEPTH) -> None:
    """Refuse lists/dicts/tuples nested deeper than `limit` (walked iteratively, so a hostile
    depth cannot exhaust the interpreter's stack while being checked)."""
    containers = (dict, list, tuple)
    stack = [(obj, 1)] if isinstance(obj, containers) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise FormatError(f"{what} nests deeper than {limit} levels", path=path)
        # Only the containers are stacked: a flat list of millions of numbers (a crafted
        # config) costs one pass over it, not a (child, depth) pair per number.
        stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
                     if isinstance(child, containers))


def _unique(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"duplicate key {dup!r}")
    return dict(pairs)


def loads_json(text: str | bytes, *, path: str, what: str = "JSON", unique: bool = False) -> Any:
    """json.loads with a bounded nesting depth and every failure as a FormatError; `unique`
    also refuses an object that names a key twice (which json keeps silently, last one wins)."""
    try:
        data = json.loads(text, object_pairs_hook=_unique if unique else None)
    except RecursionError:
        raise FormatError(f"{what} nests too deeply", path=path) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"cannot read {what}: {exc}", path=path) from None
    check_depth(data, path=path, what=what)
    return data
