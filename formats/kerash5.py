"""Keras 2 / tf-keras HDF5 weights and HF transformers TF2 `.h5` checkpoints, in h5py + numpy
(FORMATS.md §1).

Three layouts share one reader:

* a Keras weights file (`save_weights("x.h5")`, HF's unsharded `tf_model.h5`): root attribute
  `layer_names`, one group per layer whose `weight_names` attribute lists full variable names,
  each a dataset at `/<layer>/<weight name>`;
* a full-model file (`model.save("x.h5")`): the same under `/model_weights`;
* an HF TF shard (`tf_model-0000k-of-0000N.h5`): root `layer_names` lists *stripped* weight
  names, each a dataset at `/<stripped name>`; its index keeps the unstripped names.

Writers lay out every group, attribute and dataset up front, so tensors may be written in
any order, one array in memory at a time, into a `.partial` file that only a successful
`close()` renames into place.

Reading trusts nothing the file declares: every object is reached through hard links only
(soft, external and user-defined links are refused by name, never followed); external raw
storage and virtual datasets are refused by name; a dataset's declared bytes must fit what it
stores in the file (contiguous), or what its allocated chunks can inflate to (chunked); the
weights' storage together must fit the file; attributes' declared sizes are checked before
they are read. All of it before a byte of tensor data is read. Writers write through a guard
that keeps libhdf5 from ever seeing a failed write (a full disk), then fail cleanly themselves.

h5py has no bfloat16 or fp8, so those are stored the Keras 3 way: an opaque dataset of the
same item size with the attribute `dtype` naming the ml_dtypes type. transformers' TF loader
(`np.asarray(dataset)` then `K.batch_set_value`) cannot load such tensors; convert them to
float32 first when the file is meant for `TF*.from_pretrained`.
"""
from __future__ import annotations

import io
import math
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..ir import limits
from ..ir.dtypes import DTYPES, DType, from_numpy
from ..ir.errors import DTypeError, FormatError, UsageError
from ..ir.stages import stage
from ..ir.tensor import Tensor, TensorSpec
from .partial import PartialWriter, copy_extent, copy_range, pwrite_at
from . import lazy_module
from .sharding import write_errors, parse_size, plan_shards, read_index, shard_names, shard_weight_map, write_index

h5py = lazy_module("h5py")

# tf_keras/src/saving/legacy/hdf5_format.py: name lists longer than this (as a numpy |S
# array) are split over attributes <name>0, <name>1, ... because of HDF5's object header limit.
HDF5_OBJECT_HEADER_LIMIT = 64512
TOP_LEVEL_GROUP = "top_level_model_weights"   # weights owned by the Model itself; not a layer
MODEL_WEIGHTS_GROUP = "model_weights"         # where model.save("x.h5") puts the weights file
TF2_WEIGHTS_NAME = "tf_model.h5"              # transformers.utils constants
TF2_WEIGHTS_STEM = "tf_model"
TF2_WEIGHTS_INDEX_NAME = "tf_model.h5.index.json"

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_DTYPE_ATTR = "dtype"


def _is_ml_dtype(dtype: DType) -> bool:
    # From the table, not the dtype kind: ml_dtypes reports bfloat16 as 'V' but float8_e5m2 as 'f'.
    return dtype.numpy_name.startswith("ml_dtypes.")


# The dtypes numpy knows only through ml_dtypes: stored opaque, named by attribute.
_OPAQUE: dict[str, DType] = {d.numpy_name.split(".", 1)[1]: d for d in DTYPES.values() if _is_ml_dtype(d)}


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def strip_model_name(name: str) -> str:
    """transformers' strip_model_name_and_prefix without a prefix: drop the Keras model name
    ('tf_bert_for_masked_lm/bert/x:0' -> 'bert/x:0') unless 'model.' is in the name or it
    has a single component."""
    parts = name.split("/")
    if "model." not in name and len(parts) > 1:
        return "/".join(parts[1:])
    return name


# --------------------------------------------------------------------------- what a file may point at

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


# --------------------------------------------------------------------------- attributes

def _decode(item, what: str, path: str) -> str:
    if isinstance(item, (bytes, np.bytes_)):
        try:
            return bytes(item).decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{what} holds {bytes(item)[:40]!r}, which is not UTF-8",
                              path=path) from None
    if isinstance(item, str):
        try:   # h5py hands out undecodable names as str with surrogate escapes
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise FormatError(f"{what} holds {item[:40]!r}, which is not UTF-8", path=path) from None
        return str(item)
    raise FormatError(f"{what} holds {item!r} ({type(item).__name__}), expected a string",
                      path=path)


def _has_attr(obj, key: str) -> bool:
    try:
        return key in obj.attrs
    except _H5_ERRORS:
        return False


def _read_attr(obj, key, scope: Scope):
    """An attribute's value, its declared size checked against the file first (a damaged
    dataspace could otherwise ask for any amount of memory)."""
    what = f"attribute {key!r} of {obj.name!r}"
    try:
        aid = obj.attrs.get_id(key)
        count = math.prod(aid.shape or ())
        per = aid.dtype.itemsize
        if aid.dtype.kind == "O":       # variable-length: a 16-byte heap reference each in the file
            per = max(per, 16)
    except _H5_ERRORS as e:
        raise scope.fail(f"cannot read {what}: {_one_line(e)}") from None
    if count * per > scope.size:
        raise scope.fail(f"{what} declares {count:,} items ({count * per:,} bytes) but the file has "
                         f"{scope.size:,}: corrupt")
    try:
        return obj.attrs[key]
    except _H5_ERRORS as e:
        raise scope.fail(f"cannot read {what}: {_one_line(e)}") from None


def _string_list(value, what: str, path: str) -> list[str]:
    """A name list as tf-keras writes it: vlen str/bytes, fixed |S, a scalar, or the empty
    float64 array that `attrs[name] = []` makes."""
    arr = np.asarray(value)
    if arr.size == 0:
        return []
    if arr.dtype.kind not in "OSU":
        raise FormatError(f"{what} is a {arr.dtype} array, expected strings", path=path)
    return [_decode(x, what, path) for x in arr.reshape(-1)]


def _has_name_list(obj, name: str) -> bool:
    return _has_attr(obj, name) or _has_attr(obj, f"{name}0")


def load_name_list(obj, name: str, scope: Scope) -> list[str]:
    """`name`, or the chunks `name0`, `name1`, ... (tf-keras load_attributes_from_hdf5_group)."""
    where = f"{obj.name} attribute"
    if _has_attr(obj, name):
        return _string_list(_read_attr(obj, name, scope), f"{where} {name!r}", scope.label)
    out: list[str] = []
    i = 0
    while _has_attr(obj, f"{name}{i}"):
        key = f"{name}{i}"
        out += _string_list(_read_attr(obj, key, scope), f"{where} {key!r}", scope.label)
        i += 1
    return out


def _check_name_list(items: Sequence[str], what: str, path: str) -> list[bytes]:
    data = [s.encode("utf-8") for s in items]
    too_long = [s for s, b in zip(items, data) if len(b) > HDF5_OBJECT_HEADER_LIMIT]
    if too_long:
        raise UsageError(f"{what}: names longer than {HDF5_OBJECT_HEADER_LIMIT} bytes cannot be "
                         f"stored in an HDF5 attribute: {[s[:60] + '...' for s in too_long]!r}",
                         path=path)
    return data


def save_name_list(obj, name: str, data: list[bytes]) -> None:
    """Write a name list exactly as tf-keras save_attributes_to_hdf5_group does: a list of
    bytes (h5py stores variable-length ASCII) or, past the header limit, np.array_split
    chunks of the fixed-length |S array under `name0`, `name1`, ..."""
    if not data:
        obj.attrs[name] = np.asarray([])   # float64 (0,), as `attrs[name] = []` gives
        return
    arr = np.asarray(data)
    # Keras counts up from 1; any n below total/limit leaves some chunk over the limit, so
    # starting there finds the same (smallest) n without the quadratic walk.
    n = max(1, math.ceil(arr.nbytes / HDF5_OBJECT_HEADER_LIMIT))
    chunks = np.array_split(arr, n)
    while any(c.nbytes > HDF5_OBJECT_HEADER_LIMIT for c in chunks):
        n += 1
        chunks = np.array_split(arr, n)
    if n == 1:
        obj.attrs[name] = data
    else:
        for i, chunk in enumerate(chunks):
            obj.attrs[f"{name}{i}"] = chunk


# --------------------------------------------------------------------------- reading

@dataclass
class H5Weight:
    layer: str       # the layer group ('' for HF shards, which have none)
    name: str        # full weight name as listed in weight_names (or the index key / shard path)
    tensor: Tensor   # lazy; tensor.spec.name == name


@dataclass
class H5Contents:
    layer_names: list[str]
    weights: list[H5Weight]
    attrs: dict = field(default_factory=dict)   # backend, keras_version, model_config, ...
    shard: bool = False                         # an HF TF shard: layer_names are weight names


def looks_like(path) -> bool:
    """An HDF5 signature at offset 0, 512, 1024, ... (HDF5 allows a user block before it).
    A FIFO or device is refused (FormatError), not opened."""
    with limits.open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            if f.read(8) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def open_h5(source, label: str | None = None) -> h5py.File:
    """An HDF5 file opened for reading: a path (a regular file with an HDF5 signature) or a
    file object. libhdf5's own errors become one FormatError naming `label`."""
    label = label or os.fspath(source)
    if isinstance(source, (str, os.PathLike)) and not looks_like(source):
        raise FormatError("not an HDF5 file (no HDF5 signature); expected a Keras .h5 weights "
                          "file", path=label)
    try:
        return h5py.File(source, "r")
    except _H5_ERRORS as e:
        raise FormatError(f"unreadable or truncated HDF5 file: {_one_line(e)}", path=label) from None


def _open(path: str) -> h5py.File:
    return open_h5(path, path)


def _dtype_of(ds: h5py.Dataset, name: str, scope: Scope) -> tuple[DType, bool]:
    """The IR dtype of a dataset, and whether its raw items must be reinterpreted (opaque bf16/fp8)."""
    where = f"weight {name!r}: dataset {ds.name!r}"
    try:
        dt = ds.dtype
    except _H5_ERRORS as e:
        raise scope.fail(f"{where} has an HDF5 type numpy cannot hold: {_one_line(e)}", DTypeError) from None
    kind = ("a compound" if dt.names is not None else "an array-typed" if dt.subdtype is not None
            else "an object-reference" if h5py.check_ref_dtype(dt) is not None
            else "a string" if dt.kind in "SU" or h5py.check_string_dtype(dt) is not None
            else "a variable-length" if dt.kind == "O" else None)
    if kind:
        raise scope.fail(f"{where} is {kind} dataset ({dt}), expected numbers", DTypeError)
    tag = _read_attr(ds, _DTYPE_ATTR, scope) if _has_attr(ds, _DTYPE_ATTR) else None
    if isinstance(tag, (str, bytes, np.bytes_)):
        tag = _decode(tag, f"dataset {ds.name!r} attribute 'dtype'", scope.label)
        target = _OPAQUE.get(tag)
        # Keras 3 writes opaque |V2; other writers stored the bits as a same-sized uint.
        if target is not None and dt.kind in "Vu" and dt.itemsize == target.itemsize:
            return target, True
    if dt.kind == "V":
        raise scope.fail(f"weight {name!r}: opaque {dt.itemsize}-byte dataset {ds.name!r} without a known "
                         f"'dtype' attribute (got {tag!r}; known: {sorted(_OPAQUE)})", DTypeError)
    try:
        return from_numpy(dt), False
    except DTypeError as e:
        raise scope.fail(f"{where}: {e}", DTypeError) from None


def _spec(ds: h5py.Dataset, name: str, scope: Scope) -> tuple[TensorSpec, bool]:
    """A dataset's spec, after every check that it is one irconv may read (see _check_storage)."""
    try:
        if ds.shape is None:
            raise scope.fail(f"weight {name!r}: dataset {ds.name!r} has a null dataspace (no shape)")
        dtype, reinterpret = _dtype_of(ds, name, scope)
        shape = limits.check_shape(list(ds.shape), ds.dtype.itemsize, path=scope.label, name=name)
        spec = TensorSpec(name, dtype, shape)
        _check_storage(ds, spec.numel * ds.dtype.itemsize, scope, f"weight {name!r}: dataset {ds.name!r}")
    except _H5_ERRORS as e:
        raise scope.fail(f"weight {name!r}: dataset {ds.name!r}: unreadable metadata: {_one_line(e)}") from None
    return spec, reinterpret


def _loader(source, label: str, dset_path: str, spec: TensorSpec, reinterpret: bool):
    def load() -> np.ndarray:
        # Reopened and checked again: the file may have changed since it was listed.
        scope = scope_of(source, label)
        with open_h5(source, label) as f:
            try:
                ds = resolve(f, dset_path.lstrip("/"), scope, "dataset")
                if not isinstance(ds, h5py.Dataset):
                    raise KeyError("no such dataset")
                again, _ = _spec(ds, spec.name, scope)
                if (again.dtype, again.shape) != (spec.dtype, spec.shape):
                    raise ValueError(f"it is {again.dtype} {list(again.shape)} now")
                with stage("read", spec.nbytes):
                    arr = np.asarray(ds[()])
            except _H5_ERRORS as e:
                raise FormatError(f"weight {spec.name!r}: cannot read dataset {dset_path!r}: "
                                  f"{_one_line(e)} (file changed since it was read?)", path=label) from None
        if reinterpret:
            return arr.view(spec.dtype.carrier)
        if arr.dtype != spec.dtype.carrier:   # big-endian files: same values, native order
            arr = arr.astype(spec.dtype.carrier)
        return arr
    return load


def _weight(source, layer: str, name: str, ds: h5py.Dataset, scope: Scope) -> H5Weight:
    """A lazy weight of dataset `ds` in the file `source` (a path or a file object) is."""
    spec, reinterpret = _spec(ds, name, scope)
    tensor = Tensor(spec, _loader(source, scope.label, ds.name, spec, reinterpret))
    tensor.extent = _extent(source, ds, spec, reinterpret)
    return H5Weight(layer, name, tensor)


def _extent(source, ds: h5py.Dataset, spec: TensorSpec, reinterpret: bool) -> tuple[str, int] | None:
    """(file, offset) of a dataset whose bytes lie in the file as the tensor's (contiguous,
    unfiltered, little-endian or opaque; _check_storage has bounded it), for writers that copy
    them in the kernel (ir/tensor.py); None for any other."""
    if not isinstance(source, (str, os.PathLike)) or not spec.numel:
        return None
    try:
        dcpl = ds.id.get_create_plist()
        if dcpl.get_layout() != h5py.h5d.CONTIGUOUS or dcpl.get_nfilters():
            return None
        if not reinterpret and ds.dtype != spec.dtype.numpy:
            return None           # big-endian: the values are converted on load
        offset = ds.id.get_offset()
    except _H5_ERRORS:
        return None
    return (os.fspath(source), offset) if offset is not None else None


def _weights_root(f: h5py.File, scope: Scope) -> h5py.Group:
    if _has_name_list(f, "layer_names"):
        return f
    mw = child(f, MODEL_WEIGHTS_GROUP, scope, "group")
    if isinstance(mw, h5py.Group) and _has_name_list(mw, "layer_names"):
        return mw
    hint = ""
    if _link_type(f, "layers") is not None or _link_type(f, "vars") is not None:
        hint = " (it looks like a Keras 3 .weights.h5 file, a different format)"
    raise scope.fail(f"HDF5 file has no 'layer_names' attribute at / or /{MODEL_WEIGHTS_GROUP}: "
                     f"not a Keras weights file{hint}")


def _attrs(f: h5py.File, root: h5py.Group, scope: Scope) -> dict:
    out = {}
    for obj in (f, root) if root is not f else (f,):
        for raw_key in obj.attrs:
            key = _decode(raw_key, f"{obj.name} attribute name", scope.label)
            if key == "layer_names" or (key.startswith("layer_names") and key[11:].isdigit()):
                continue
            value = _read_attr(obj, raw_key, scope)
            if isinstance(value, (str, bytes, np.bytes_)):
                value = _decode(value, f"attribute {key!r}", scope.label)
            out[key] = value
    return out


def read(path) -> H5Contents:
    """Layer names, lazy weights (layer_names order, then weight_names order; tied weights
    listed by several layers appear once per layer) and root attributes of a Keras 2 .h5
    weights or full-model file, or of an HF TF shard (then layer='' and name = dataset path)."""
    path = os.fspath(path)
    scope = scope_of(path, path)
    with _open(path) as f:
        try:
            return _read_open(f, path, scope)
        except _H5_ERRORS as e:   # h5py on damaged object headers
            raise FormatError(f"unreadable HDF5 structure: {_one_line(e)}", path=path) from None


def _read_open(f: h5py.File, path: str, scope: Scope) -> H5Contents:
    root = _weights_root(f, scope)
    layer_names = load_name_list(root, "layer_names", scope)
    attrs = _attrs(f, root, scope)
    weights: list[H5Weight] = []
    dangling: list[str] = []
    first = resolve(root, layer_names[0], scope, "layer") if layer_names else None
    if isinstance(first, h5py.Dataset):   # HF shard: layer_names are datasets at the root
        for name in layer_names:
            ds = resolve(root, name, scope, "weight")
            if isinstance(ds, h5py.Dataset):
                weights.append(_weight(path, "", name, ds, scope))
            else:
                dangling.append(name)
        if dangling:
            raise FormatError(f"HF shard layer_names without a dataset ({len(dangling)}): "
                              f"{dangling!r}", path=path)
        return H5Contents(layer_names, weights, attrs, shard=True)
    groups = {n: resolve(root, n, scope, "layer") for n in layer_names}
    no_group = [n for n, g in groups.items() if not isinstance(g, h5py.Group)]
    if no_group:
        raise FormatError(f"layer(s) {no_group!r} listed in layer_names have no group",
                          path=path)
    # A subclassed model's own variables (ALIGN's `temperature`) sit in a group that
    # layer_names does not list; Keras 2 saves and loads them after the layers'.
    own = child(root, TOP_LEVEL_GROUP, scope, "group")
    layers = [(n, groups[n]) for n in layer_names] + ([(TOP_LEVEL_GROUP, own)] if isinstance(own, h5py.Group) else [])
    for layer, g in layers:
        for name in load_name_list(g, "weight_names", scope):
            ds = resolve(g, name, scope, "weight")
            if isinstance(ds, h5py.Dataset):
                weights.append(_weight(path, layer, name, ds, scope))
            else:
                dangling.append(f"{layer}/{name}")
    if dangling:
        raise FormatError(f"weight_names entries without a dataset ({len(dangling)}): "
                          f"{dangling!r}; the file is incomplete or was edited", path=path)
    return H5Contents(layer_names, weights, attrs)


def read_hf_sharded(index_path) -> list[H5Weight]:
    """Lazy weights of an HF TF sharded checkpoint (tf_model.h5.index.json), in index order,
    named by the index's unstripped keys (layer=''); each is found in its shard at the
    stripped path."""
    index_path = os.fspath(index_path)
    wmap = read_index(index_path)
    by_shard: dict[str, dict[str, H5Weight]] = {}
    out: list[H5Weight] = []
    missing: list[str] = []
    for key, shard in wmap.items():
        shard = os.fspath(shard)
        if shard not in by_shard:
            contents = read(shard)
            if contents.layer_names and not contents.shard:
                raise FormatError(f"shard {os.path.basename(shard)!r} listed in the index is a "
                                  "Keras weights file, not an HF TF shard", path=index_path)
            by_shard[shard] = {w.name: w for w in contents.weights}
        w = by_shard[shard].get(strip_model_name(key))
        if w is None:
            missing.append(f"{key} -> {os.path.basename(shard)}:{strip_model_name(key)}")
        else:
            out.append(H5Weight("", key, w.tensor.with_spec(name=key)))
    if missing:
        raise FormatError(f"index entries without a dataset in their shard ({len(missing)}): "
                          f"{missing!r}", path=index_path)
    return out


def shard_files(index_path) -> list[Path]:
    """The shard Paths an HF index names, each once, in name order (all checked to exist)."""
    return sorted(set(read_index(os.fspath(index_path)).values()))


# --------------------------------------------------------------------------- writing

def _storage_dtype(dtype: DType) -> np.dtype:
    return np.dtype(f"V{dtype.itemsize}") if _is_ml_dtype(dtype) else dtype.numpy


def _duplicates(names: Sequence[str]) -> list[str]:
    return sorted(n for n, count in Counter(names).items() if count > 1)


def _check_paths(names: Iterable[str], what: str, path: str) -> None:
    """Weight names become HDF5 paths: refuse those that would not land where they say, and
    pairs where one name is a group on the way to the other ('a' and 'a/b')."""
    names = list(names)
    bad = [n for n in names if not isinstance(n, str) or not n or n.startswith("/")
           or n.endswith("/") or "//" in n or "." in n.split("/")]
    if bad:
        raise UsageError(f"{what}: weight names {bad!r} are not relative HDF5 paths "
                         "(no empty, leading or trailing '/' or '.' components)", path=path)
    dupes = _duplicates(names)
    if dupes:
        raise UsageError(f"{what}: duplicate weight names {dupes!r}", path=path)
    full = set(names)
    clash = sorted(n for n in names
                   for i in range(1, n.count("/") + 1) if "/".join(n.split("/")[:i]) in full)
    if clash:
        raise UsageError(f"{what}: weight names {clash!r} need another weight name as a group",
                         path=path)


def _placed_dcpl():
    """Dataset creation properties of a placed dataset: contiguous, allocated early, never filled."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.CONTIGUOUS)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


def _create_dataset(group, name: str, spec: TensorSpec, dcpl) -> int | None:
    """Make the dataset with its storage in the file now (contiguous, allocated early, never
    filled) and return where its bytes go, or None when it holds none. The writers then put
    the tensors there with pwrite, from any thread, with libhdf5 long closed. dcpl: _placed_dcpl()."""
    ds = group.create_dataset(name, spec.shape, dtype=_storage_dtype(spec.dtype), dcpl=dcpl)
    if _is_ml_dtype(spec.dtype):
        ds.attrs[_DTYPE_ATTR] = spec.dtype.numpy_name.rpartition(".")[2]
    if not spec.numel:
        return None
    if ds.id.get_offset() is None:     # libhdf5 allocates a scalar's storage at its first write
        ds[()] = np.zeros((), ds.dtype)
    at = ds.id.get_offset()
    if at is None or ds.id.get_storage_size() != spec.nbytes:
        raise FormatError(f"libhdf5 gave dataset {name!r} no contiguous storage of "
                          f"{spec.nbytes} bytes")
    return at


class _Placed(PartialWriter):
    """A writer whose HDF5 files are complete but for the tensors' bytes, each dataset's place
    known (_create_dataset): write() and copy() pwrite or kernel-copy them there, in any order,
    from several threads at once (exporters/base.write_all), and the files come out the same
    bytes whatever the order. Subclasses fill self._specs and self._places (name -> [(file
    index, offset)], one per stored copy), self._tmps and self._finals (their paths)."""

    concurrent = True

    def _lay_out_behind(self, builds: list) -> None:
        """Lay out file i with builds[i] (see _lay_out) on a thread of its own, so that the
        first tensors are read and relaid out while libhdf5 makes the files (~0.1 s for
        BERT's 200 datasets); every write, close() and abort() waits for it first (_ready)."""
        self._layout_error: BaseException | None = None

        def run() -> None:
            try:
                for i, build in enumerate(builds):
                    self._lay_out(i, build)
            except BaseException as exc:     # noqa: BLE001 - handed to whoever waits
                self._layout_error = exc

        self._layout = threading.Thread(target=run, name="irconv-h5-layout", daemon=True)
        self._layout.start()

    def _ready(self, raising: bool = True) -> None:
        """Wait for the layout; raise what stopped it."""
        layout = getattr(self, "_layout", None)
        if layout is not None:
            layout.join()
            if raising and self._layout_error is not None:
                raise self._layout_error

    def _ready_or_abort(self) -> None:
        try:
            self._ready()
        except BaseException:
            self.abort()
            raise

    def _put(self, name: str, put, with_file: bool = False) -> None:
        self._ready()
        for i, at in self._places[name]:
            with write_errors(self._finals[i]):
                fd = os.open(self._tmps[i], os.O_RDWR)   # one open per tensor: shards are many
                try:
                    put(i, fd, at) if with_file else put(fd, at)
                finally:
                    os.close(fd)

    def write(self, name: str, array: np.ndarray) -> None:
        """Write one weight at every place that stores it."""
        spec, array = self._accept(name, array)
        self._put(name, lambda fd, at: pwrite_at(fd, array, at))
        self._wrote(name)

    def copy(self, name: str, spec: TensorSpec, extent: tuple[str, int]) -> None:
        """Write tensor `name` (of `spec`) by copying its bytes from `extent` = (file, offset)
        in the kernel, with no read into memory."""
        self._accept_copy(name, spec)
        first: list[tuple[int, int]] = []

        def put(i: int, fd: int, at: int) -> None:
            if first and not isinstance(extent, tuple):
                # A stream's bytes come once: a tied weight's other copies are taken from the first.
                copy_range(self._tmps[first[0][0]], first[0][1], fd, at, spec.nbytes, name)
            else:
                copy_extent(extent, fd, at, spec.nbytes, name)
            first.append((i, at))

        self._put(name, put, with_file=True)
        self._wrote(name)

    def _lay_out(self, i: int, build) -> None:
        """Make file i: build(file, place) creates its groups and attributes and calls
        place(group, leaf, spec) for each dataset; libhdf5 is closed once it is done."""
        dcpl = _placed_dcpl()
        groups: dict[tuple[int, str], tuple] = {}

        def place(group, leaf: str, spec: TensorSpec) -> None:
            # A leaf 'a/b/c' goes into group a/b, made once: h5py would look the path up
            # again for every dataset (a third of the layout's time for BERT's 200).
            parent, _, base = leaf.rpartition("/")
            if parent:
                known = groups.get((id(group), parent))
                if known is None:
                    known = groups[(id(group), parent)] = (group, group.require_group(parent))
                group = known[1]
            at = _create_dataset(group, base, spec, dcpl)
            if at is not None:
                self._places[spec.name].append((i, at))

        out = _H5Out(self._tmps[i], self._finals[i])
        try:
            build(out.file, place)
            out.check()
        except BaseException:
            out.discard()
            raise
        out.close()

    def _drop(self) -> None:
        self._ready(raising=False)
        for tmp in getattr(self, "_tmps", []):
            if os.path.exists(tmp):
                os.remove(tmp)


class _GuardedFile(io.RawIOBase):
    """The file a writer's libhdf5 writes through (h5py's file-object driver). The first
    failed write (ENOSPC, EFBIG) is kept and every later write dropped, so libhdf5 never
    sees a failure: a failed write inside it leaves its caches half-flushed and its handles
    torn down, and closing them then prints pages of errors or crashes the interpreter. The
    writer checks `error` after each step and raises it itself (see _H5Out)."""

    def __init__(self, path: str, mode: str):
        super().__init__()
        self._f = open(path, mode, buffering=0)
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buf) -> int:
        return self._f.readinto(buf)

    def write(self, buf) -> int:
        view = memoryview(buf).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):
                    done += self._f.write(view[done:]) or 0
            except OSError as e:
                self.error = e
        return len(view)

    def truncate(self, size=None) -> int:
        if self.error is None:
            try:
                return self._f.truncate(size)
            except OSError as e:
                self.error = e
        return self._f.tell() if size is None else size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


class _H5Out:
    """An HDF5 file being written at `tmp` for `path` (what errors name)."""

    def __init__(self, tmp: str, path: str, mode: str = "w"):
        self.tmp, self.path = tmp, path
        self._guard = _GuardedFile(tmp, "w+b" if mode == "w" else "r+b")
        try:
            self.file = h5py.File(self._guard, mode)
        except BaseException:
            self._guard.close()
            self.check()        # the disk filled while libhdf5 wrote the superblock
            raise

    def check(self) -> None:
        """Raise the write failure libhdf5 was kept from seeing, naming the final file."""
        e = self._guard.error
        if e is not None:
            raise OSError(e.errno, e.strerror or str(e), self.path)

    def close(self) -> None:
        """Finish the file; raises the first write failure, if any (the file is then closed)."""
        try:
            self.file.close()
        finally:
            self._guard.close()
        self.check()

    def discard(self) -> None:
        """Close without raising, and remove the file."""
        try:
            self.file.close()
        except Exception:    # noqa: BLE001 - whatever libhdf5 says, the file is being dropped
            pass
        self._guard.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


class KerasH5Writer(_Placed):
    """Write a Keras 2 / tf-keras weights file (what `save_weights("x.h5")` writes).

    `layers` is [(layer name, [spec, ...])] in model.layers order; spec.name is the full
    weight name ('dense/kernel:0'). A name under several layers is a tied weight: it is
    stored once per layer, as Keras does, and one write() fills every copy. Writes may come
    in any order, from several threads at once.
    """

    def __init__(self, path, layers: Sequence[tuple[str, Sequence[TensorSpec]]],
                 keras_version: str = "2.21.0", backend: str = "tensorflow"):
        super().__init__(os.fspath(path))
        layers = [(layer, list(specs)) for layer, specs in layers]
        layer_names = [layer for layer, _ in layers]
        bad = [n for n in layer_names if not isinstance(n, str) or not n or "/" in n or n == "."]
        if bad:
            raise UsageError(f"layer names {bad!r} must be non-empty and without '/'", path=self.path)
        dupes = _duplicates(layer_names)
        if dupes:
            raise UsageError(f"duplicate layer names {dupes!r}", path=self.path)
        if TOP_LEVEL_GROUP in layer_names:
            raise UsageError(f"layer name {TOP_LEVEL_GROUP!r} is reserved for the model's own "
                             "weights", path=self.path)
        self._specs: dict[str, TensorSpec] = {}
        conflicts = []
        for layer, specs in layers:
            _check_paths([s.name for s in specs], f"layer {layer!r}", self.path)
            for s in specs:
                known = self._specs.setdefault(s.name, s)
                if (known.dtype, known.shape) != (s.dtype, s.shape):
                    conflicts.append(f"{s.name}: {known.dtype} {list(known.shape)} vs "
                                     f"{s.dtype} {list(s.shape)} in {layer!r}")
        if conflicts:
            raise UsageError(f"weights listed under several layers must agree in dtype and shape: "
                             f"{conflicts!r}", path=self.path)
        encoded = [(layer, _check_name_list([s.name for s in specs], f"layer {layer!r}", self.path))
                   for layer, specs in layers]
        names = _check_name_list(layer_names, "layer_names", self.path)

        self._tmps, self._finals = [self.path + ".partial"], [self.path]
        self._places: dict[str, list[tuple[int, int]]] = {name: [] for name in self._specs}
        by_layer = dict(zip(layer_names, zip(layers, encoded)))

        def build(f, place) -> None:
            save_name_list(f, "layer_names", names)
            f.attrs["backend"] = backend.encode("utf-8")
            f.attrs["keras_version"] = str(keras_version).encode("utf-8")
            # tf-keras creates the groups in sorted name order ("to avoid prefix issues").
            for layer in sorted(layer_names):
                (_, specs), (_, weight_names) = by_layer[layer]
                g = f.create_group(layer)
                save_name_list(g, "weight_names", weight_names)
                for spec in specs:
                    place(g, spec.name, spec)
            save_name_list(f.create_group(TOP_LEVEL_GROUP), "weight_names", [])

        self._lay_out_behind([build])

    def close(self) -> None:
        """Rename the file (or, in a subclass, each file) into place; raises (and leaves no file at
        `path`) if a weight is missing."""
        if self._closed:
            return
        self._ready_or_abort()
        self._missing_check()
        self._closed = True
        for tmp, final in zip(self._tmps, self._finals):
            os.replace(tmp, final)

    def abort(self) -> None:
        """Drop the unfinished file."""
        self._closed = True
        self._drop()


class HFShardedH5Writer(_Placed):
    """Write an HF transformers TF sharded checkpoint: `tf_model-0000k-of-0000N.h5` shards
    and `tf_model.h5.index.json`, as `TFPreTrainedModel.save_pretrained(max_shard_size=...)`.

    `shards` is the plan (see plan()); spec.name is the unstripped TF variable name
    ('tf_bert_for_masked_lm/bert/...:0'), which the index keeps; the shard stores it at
    the stripped path ('bert/...:0'). Writes may come in any order, from several threads.
    """

    def __init__(self, directory, shards: Sequence[Sequence[TensorSpec]],
                 stem: str = TF2_WEIGHTS_STEM):
        self.directory = os.fspath(directory)
        super().__init__(os.path.join(self.directory, f"{stem}.h5.index.json"))
        shards = [list(s) for s in shards]
        if not shards:
            raise UsageError("no shards: pass at least one (possibly empty) list of specs",
                             path=self.path)
        if os.path.exists(os.path.join(self.directory, f"{stem}.h5")):
            raise UsageError(f"{stem}.h5 already exists there and transformers would load it "
                             "instead of the index; remove it first", path=self.directory)
        all_names = [s.name for shard in shards for s in shard]
        dupes = _duplicates(all_names)
        if dupes:
            raise UsageError(f"duplicate tensor names {dupes!r}", path=self.path)
        # A single shard keeps its -00001-of-00001 name: a file called tf_model.h5 would be
        # loaded as a Keras file (and then not at all), the index being ignored.
        self.files = shard_names(stem, "h5", len(shards)) if len(shards) > 1 \
            else [f"{stem}-00001-of-00001.h5"]
        self._specs = {s.name: s for shard in shards for s in shard}
        self._shard_of: dict[str, int] = {}
        layouts = []
        for i, (shard, fname) in enumerate(zip(shards, self.files)):
            ordered = sorted(shard, key=lambda s: s.name)    # transformers sorts by w.name
            stripped = [strip_model_name(s.name) for s in ordered]
            _check_paths(stripped, f"shard {fname!r} (stripped names)", self.path)
            layouts.append((fname, ordered, _check_name_list(stripped, fname, self.path)))
            for s in shard:
                self._shard_of[s.name] = i
        self._weight_map = shard_weight_map(shards, self.files)
        self.total_size = sum(s.nbytes for s in self._specs.values())

        os.makedirs(self.directory, exist_ok=True)
        self._tmps = [os.path.join(self.directory, f + ".partial") for f in self.files]
        self._finals = [os.path.join(self.directory, f) for f in self.files]
        self._places: dict[str, list[tuple[int, int]]] = {name: [] for name in self._specs}
        def build(ordered, names):
            def lay(f, place) -> None:
                for spec in ordered:
                    place(f, strip_model_name(spec.name), spec)
                save_name_list(f, "layer_names", names)
            return lay

        self._lay_out_behind([build(ordered, names) for _, ordered, names in layouts])

    @staticmethod
    def plan(specs: Iterable[TensorSpec], max_shard_size="10GB") -> list[list[TensorSpec]]:
        """Greedy shards of at most max_shard_size bytes (int or '20KB'), in the given order.
        Like transformers' tf_shard_checkpoint except that an over-sized tensor gets a shard
        of its own (sharding.plan_shards) instead of starting the next one."""
        return plan_shards(specs, parse_size(max_shard_size))

    def close(self) -> None:
        """Rename every shard into place, then write the index; raises (and leaves no files)
        if a tensor is missing."""
        if self._closed:
            return
        self._ready_or_abort()
        self._missing_check()
        self._closed = True
        for tmp, fname in zip(self._tmps, self.files):
            os.replace(tmp, os.path.join(self.directory, fname))
        tmp_index = self.path + ".partial"
        write_index(tmp_index, self._weight_map, self.total_size)
        os.replace(tmp_index, self.path)

    def abort(self) -> None:
        """Drop every unfinished shard."""
        self._closed = True
        self._drop()


def write(path, layers: Sequence[tuple[str, Sequence[Tensor]]], **kwargs) -> None:
    """Write lazy tensors as a Keras weights file, loading (and releasing) each name once."""
    layers = [(layer, list(tensors)) for layer, tensors in layers]
    with KerasH5Writer(path, [(layer, [t.spec for t in ts]) for layer, ts in layers], **kwargs) as w:
        done = set()
        for _, tensors in layers:
            for t in tensors:
                if t.name not in done:
                    w.write(t.name, t.load_raw())
                    done.add(t.name)


def write_hf_sharded(directory, tensors: Sequence[Tensor], max_shard_size="10GB") -> list[str]:
    """Write lazy tensors (unstripped names, model.weights order) as an HF TF sharded
    checkpoint; returns the shard file names."""
    tensors = list(tensors)
    plan = HFShardedH5Writer.plan([t.spec for t in tensors], max_shard_size)
    with HFShardedH5Writer(directory, plan) as w:
        for t in tensors:
            w.write(t.name, t.load_raw())
    return list(w.files)


__all__ = ["H5Weight", "H5Contents", "read", "read_hf_sharded", "shard_files", "looks_like",
           "strip_model_name", "KerasH5Writer", "HFShardedH5Writer", "write", "write_hf_sharded",
           "load_name_list", "save_name_list", "HDF5_OBJECT_HEADER_LIMIT", "TF2_WEIGHTS_NAME",
           "TF2_WEIGHTS_INDEX_NAME"]
