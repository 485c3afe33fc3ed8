"""What an HDF5 file may point at: links followed only when hard, storage checked
against the file before a byte of data is read (see the package's docstring)."""
from __future__ import annotations

import math
import os

from ...ir import limits
from ...ir.errors import FormatError
from .common import _one_line, h5py


# Decompression never expands data more than this: deflate's limit (one 258-byte match per
# two bits is 1032:1); shuffle and fletcher32 do not compress, lzf expands less than deflate.
MAX_INFLATION = 1032
# The filters whose expansion that bounds. Any other (szip, nbit, scaleoffset, which stores a
# constant chunk in a few bytes, or a plugin libhdf5 would load from HDF5_PLUGIN_PATH) is
# refused by name before a byte of data is read.
# (HDF5's filter ids, fixed by the file format: H5Z_FILTER_DEFLATE 1, SHUFFLE 2, FLETCHER32 3;
# LZF is 32000, registered by h5py.)
_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}
_COMPRESSING = {1, 32000}
# h5py's automatic chunking never makes a chunk over 1 MiB; a chunk may exceed its dataset's
# data by no more than this.
MAX_SPARE_CHUNK = 4 << 20
_LINK_KINDS = {1: "soft link", 64: "external link"}       # H5L_TYPE_SOFT, H5L_TYPE_EXTERNAL
_OUTSIDE = "refusing to read a file outside the input"
_H5_ERRORS = (OSError, RuntimeError, KeyError, TypeError, ValueError, UnicodeError)


class Scope:
    """One HDF5 file being read: the label errors name, its size, and how many of its bytes
    the weights read so far occupy. Each weight's storage must be its own: overlapping
    storage, or one dataset hard-linked under many names, would multiply the file."""

    def __init__(self, label: str, size: int):
        self.label, self.size, self.used = label, int(size), 0

    def fail(self, message: str, cls=FormatError) -> FormatError:
        return cls(message, path=self.label)


def scope_of(source, label: str) -> Scope:
    """The Scope of a path (a regular file) or of a sized file object (a zip member)."""
    if isinstance(source, (str, os.PathLike)):
        return Scope(label, limits.file_size(source))
    return Scope(label, source.size)


def _link_type(group: h5py.Group, name: str):
    """The h5py.h5l.TYPE_* of link `name` in `group`, or None if there is none; not followed."""
    try:
        return group.id.links.get_info(name.encode("utf-8", "surrogateescape")).type
    except _H5_ERRORS:
        return None


def _link_target(group: h5py.Group, name: str) -> str:
    try:
        link = group.get(name, getlink=True)
    except _H5_ERRORS:
        return "?"
    if isinstance(link, h5py.ExternalLink):
        return f"{link.filename}:{link.path}"
    return str(getattr(link, "path", "?"))


def child(group: h5py.Group, name: str, scope: Scope, what: str = "member"):
    """Member `name` of `group` if a hard link holds it, None if there is none. A soft,
    external or user-defined link is refused by name, never followed: an external link reads
    another file, and a soft link may lead through one (or anywhere in this file)."""
    kind = _link_type(group, name)
    if kind is None:
        return None
    where = f"{group.name.rstrip('/')}/{name}"
    if kind != h5py.h5l.TYPE_HARD:
        desc = _LINK_KINDS.get(kind, f"user-defined link (type {kind})")
        outside = f"; {_OUTSIDE}" if kind != h5py.h5l.TYPE_SOFT else ""
        raise scope.fail(f"{what} {where!r} is an HDF5 {desc} to {_link_target(group, name)}, not an "
                         f"object stored there; links are not followed{outside}")
    try:
        return group[name]
    except _H5_ERRORS as e:
        raise scope.fail(f"{what} {where!r}: unreadable object header: {_one_line(e)}") from None


def resolve(group: h5py.Group, relpath: str, scope: Scope, what: str = "member"):
    """The object at `relpath` under `group`, one hard link at a time (None if absent)."""
    parts = relpath.split("/")
    if any(p in ("", ".") for p in parts):
        raise scope.fail(f"{what} {relpath!r} under {group.name!r} is not a relative HDF5 path")
    obj = group
    for part in parts:
        if not isinstance(obj, h5py.Group):
            return None
        obj = child(obj, part, scope, what)
        if obj is None:
            return None
    return obj


def members(group: h5py.Group, scope: Scope, what: str = "member"):
    """(name, object) of every member of `group`, each through a hard link (see child)."""
    try:
        names = list(group.keys())
    except _H5_ERRORS as e:
        raise scope.fail(f"cannot list {group.name!r}: {_one_line(e)}") from None
    for name in names:
        yield name, child(group, name, scope, what)


def _check_storage(ds: h5py.Dataset, nbytes: int, scope: Scope, what: str) -> None:
    """Refuse data that lives outside the file (external raw storage, a virtual dataset's
    sources), filters whose expansion is unbounded, and declared sizes the stored bytes
    cannot hold, all before a byte of data is read; then count the storage as used."""
    if ds.is_virtual:
        sources = sorted({m.file_name for m in ds.virtual_sources()})
        raise scope.fail(f"{what} is an HDF5 virtual dataset (data mapped from {', '.join(sources) or '?'}); "
                         f"{_OUTSIDE}")
    external = ds.external
    if external:
        files = ", ".join(sorted({os.fsdecode(e[0]) for e in external}))
        raise scope.fail(f"{what} uses HDF5 external storage (data in {files}); {_OUTSIDE}")
    dcpl = ds.id.get_create_plist()
    filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    unknown = [f for f in filters if f not in _FILTERS]
    if unknown:
        raise scope.fail(f"{what} uses HDF5 filter(s) {unknown!r}, which this version does not read "
                         f"(it reads {', '.join(_FILTERS.values())})")
    layout = dcpl.get_layout()
    if nbytes == 0:
        return
    stored = ds.id.get_storage_size()
    if layout == h5py.h5d.CONTIGUOUS:
        offset = ds.id.get_offset()
        if offset is None or stored < nbytes:
            raise scope.fail(f"{what} declares {nbytes:,} bytes but stores {stored:,} (never written, "
                             "or corrupt)")
        if offset + nbytes > scope.size:
            raise scope.fail(f"{what} declares {nbytes:,} bytes at offset {offset:,} but the file has "
                             f"{scope.size:,}: truncated or corrupt")
    elif layout == h5py.h5d.CHUNKED:
        chunk = dcpl.get_chunk()
        if len(chunk) != len(ds.shape) or min(chunk, default=1) < 1:
            raise scope.fail(f"{what} has chunks {list(chunk)} for shape {list(ds.shape)}")
        grid = math.prod(-(-d // c) for d, c in zip(ds.shape, chunk))
        have = ds.id.get_num_chunks()
        if have < grid:
            raise scope.fail(f"{what} stores {have:,} of its {grid:,} chunks (never fully written, "
                             "or corrupt)")
        chunk_bytes = math.prod(chunk) * ds.dtype.itemsize
        if chunk_bytes > max(nbytes, MAX_SPARE_CHUNK):
            # A resizable dataset may have chunks larger than its data; libhdf5 inflates
            # whole chunks, so a 16 KB weight could cost gigabytes to read.
            raise scope.fail(f"{what} stores its {nbytes:,} bytes in chunks of {chunk_bytes:,}, which "
                             "reading would inflate whole: corrupt or hostile")
        ratio = MAX_INFLATION if set(filters) & _COMPRESSING else 1
        unpacked = grid * chunk_bytes
        if unpacked > stored * ratio:
            how = f"compressed, at most {ratio}:1" if ratio > 1 else "uncompressed"
            raise scope.fail(f"{what} declares {unpacked:,} bytes of chunks but stores {stored:,} "
                             f"({how}): corrupt")
    elif layout != h5py.h5d.COMPACT:
        raise scope.fail(f"{what} has HDF5 storage layout {layout}, which this version does not read")
    if stored > scope.size - scope.used:
        raise scope.fail(f"{what}: the weights' storage adds up to more than the file's "
                         f"{scope.size:,} bytes: datasets overlap or are linked under several names")
    scope.used += stored
