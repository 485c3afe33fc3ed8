"""Reading Keras / HF TF2 h5 files into lazy tensors."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...ir import limits
from ...ir.dtypes import DType, from_numpy
from ...ir.errors import DTypeError, FormatError
from ...ir.stages import stage
from ...ir.tensor import Tensor, TensorSpec
from ..sharding import read_index
from .common import MODEL_WEIGHTS_GROUP, TOP_LEVEL_GROUP, _DTYPE_ATTR, _HDF5_SIGNATURE, _OPAQUE, _one_line, h5py, strip_model_name
from .guard import Scope, _H5_ERRORS, _check_storage, _link_type, child, resolve, scope_of
from .attrs import _decode, _has_attr, _has_name_list, _read_attr, load_name_list


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
    if isinstance(source, (str, os.PathLike)):
        limits.check_inside(source)
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
    them file to file (ir/tensor.py); None for any other."""
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
