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

h5py has no bfloat16 or fp8, so those are stored the Keras 3 way: an opaque dataset of the
same item size with the attribute `dtype` naming the ml_dtypes type. transformers' TF loader
(`np.asarray(dataset)` then `K.batch_set_value`) cannot load such tensors; convert them to
float32 first when the file is meant for `TF*.from_pretrained`.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import h5py
import numpy as np

from ..ir.dtypes import DTYPES, DType, from_numpy
from ..ir.errors import DTypeError, FormatError, UsageError
from ..ir.tensor import Tensor, TensorSpec
from .partial import PartialWriter
from .sharding import parse_size, plan_shards, read_index, shard_names, shard_weight_map, write_index

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
    # Not the dtype kind: ml_dtypes reports bfloat16 as 'V' but float8_e5m2 as 'f'.
    return dtype.numpy.type.__module__.split(".")[0] == "ml_dtypes"


# The dtypes numpy knows only through ml_dtypes: stored opaque, named by attribute.
_OPAQUE: dict[str, DType] = {d.numpy.name: d for d in DTYPES.values() if _is_ml_dtype(d)}


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


def _read_attr(obj, key, path: str):
    try:
        return obj.attrs[key]
    except (OSError, TypeError, ValueError, UnicodeError) as e:
        raise FormatError(f"cannot read attribute {key!r} of {obj.name!r}: {_one_line(e)}",
                          path=path) from None


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
    return name in obj.attrs or f"{name}0" in obj.attrs


def load_name_list(obj, name: str, path: str) -> list[str]:
    """`name`, or the chunks `name0`, `name1`, ... (tf-keras load_attributes_from_hdf5_group)."""
    where = f"{obj.name} attribute"
    if name in obj.attrs:
        return _string_list(_read_attr(obj, name, path), f"{where} {name!r}", path)
    out: list[str] = []
    i = 0
    while f"{name}{i}" in obj.attrs:
        key = f"{name}{i}"
        out += _string_list(_read_attr(obj, key, path), f"{where} {key!r}", path)
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
    """An HDF5 signature at offset 0, 512, 1024, ... (HDF5 allows a user block before it)."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            if f.read(8) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _open(path: str, mode: str = "r") -> h5py.File:
    if not os.path.isfile(path):
        raise FormatError("no such file" if not os.path.exists(path) else "not a file", path=path)
    if not looks_like(path):
        raise FormatError("not an HDF5 file (no HDF5 signature); expected a Keras .h5 weights "
                          "file", path=path)
    try:
        return h5py.File(path, mode)
    except OSError as e:
        raise FormatError(f"unreadable or truncated HDF5 file: {_one_line(e)}", path=path) from None


def _dtype_of(ds: h5py.Dataset, name: str, path: str) -> tuple[DType, bool]:
    """The IR dtype of a dataset, and whether its raw items must be reinterpreted (opaque bf16/fp8)."""
    dt = ds.dtype
    tag = ds.attrs.get(_DTYPE_ATTR)
    if isinstance(tag, (str, bytes, np.bytes_)):
        tag = _decode(tag, f"dataset {ds.name!r} attribute 'dtype'", path)
        target = _OPAQUE.get(tag)
        # Keras 3 writes opaque |V2; other writers stored the bits as a same-sized uint.
        if (target is not None and dt.kind in "Vu" and dt.names is None
                and dt.itemsize == target.itemsize):
            return target, True
    if dt.kind == "V" and dt.names is None:
        raise DTypeError(f"weight {name!r}: opaque {dt.itemsize}-byte dataset {ds.name!r} without "
                         f"a known 'dtype' attribute (got {tag!r}; known: {sorted(_OPAQUE)})",
                         path=path)
    try:
        return from_numpy(dt), False
    except DTypeError as e:
        raise DTypeError(f"weight {name!r}: dataset {ds.name!r}: {e}", path=path) from None


def _loader(path: str, dset_path: str, spec: TensorSpec, reinterpret: bool):
    def load() -> np.ndarray:
        try:
            with h5py.File(path, "r") as f:
                arr = np.asarray(f[dset_path][()])
        except (OSError, KeyError, TypeError, ValueError) as e:
            raise FormatError(f"weight {spec.name!r}: cannot read dataset {dset_path!r}: "
                              f"{_one_line(e)} (file changed since it was read?)", path=path) from None
        if reinterpret:
            return arr.view(spec.dtype.numpy)
        if arr.dtype != spec.dtype.numpy:   # big-endian files: same values, native order
            arr = arr.astype(spec.dtype.numpy)
        return arr
    return load


def _weight(path: str, layer: str, name: str, ds: h5py.Dataset) -> H5Weight:
    if ds.shape is None:
        raise FormatError(f"weight {name!r}: dataset {ds.name!r} has a null dataspace (no shape)",
                          path=path)
    dtype, reinterpret = _dtype_of(ds, name, path)
    spec = TensorSpec(name, dtype, tuple(int(d) for d in ds.shape))
    return H5Weight(layer, name, Tensor(spec, _loader(path, ds.name, spec, reinterpret)))


def _weights_root(f: h5py.File, path: str) -> h5py.Group:
    if _has_name_list(f, "layer_names"):
        return f
    mw = f.get(MODEL_WEIGHTS_GROUP)
    if isinstance(mw, h5py.Group) and _has_name_list(mw, "layer_names"):
        return mw
    hint = ""
    if "layers" in f or "vars" in f:
        hint = " (it looks like a Keras 3 .weights.h5 file, a different format)"
    raise FormatError(f"HDF5 file has no 'layer_names' attribute at / or /{MODEL_WEIGHTS_GROUP}: "
                      f"not a Keras weights file{hint}", path=path)


def _attrs(f: h5py.File, root: h5py.Group, path: str) -> dict:
    out = {}
    for obj in (f, root) if root is not f else (f,):
        for raw_key in obj.attrs:
            key = _decode(raw_key, f"{obj.name} attribute name", path)
            if key == "layer_names" or (key.startswith("layer_names") and key[11:].isdigit()):
                continue
            value = _read_attr(obj, raw_key, path)
            if isinstance(value, (str, bytes, np.bytes_)):
                value = _decode(value, f"attribute {key!r}", path)
            out[key] = value
    return out


def read(path) -> H5Contents:
    """Layer names, lazy weights (layer_names order, then weight_names order; tied weights
    listed by several layers appear once per layer) and root attributes of a Keras 2 .h5
    weights or full-model file, or of an HF TF shard (then layer='' and name = dataset path)."""
    path = os.fspath(path)
    with _open(path) as f:
        try:
            return _read_open(f, path)
        except (OSError, RuntimeError, UnicodeError) as e:   # h5py on damaged object headers
            raise FormatError(f"unreadable HDF5 structure: {_one_line(e)}", path=path) from None


def _read_open(f: h5py.File, path: str) -> H5Contents:
    root = _weights_root(f, path)
    layer_names = load_name_list(root, "layer_names", path)
    attrs = _attrs(f, root, path)
    first = root.get(layer_names[0]) if layer_names else None
    weights: list[H5Weight] = []
    dangling: list[str] = []
    if isinstance(first, h5py.Dataset):   # HF shard: layer_names are datasets at the root
        for name in layer_names:
            ds = root.get(name)
            if isinstance(ds, h5py.Dataset):
                weights.append(_weight(path, "", name, ds))
            else:
                dangling.append(name)
        if dangling:
            raise FormatError(f"HF shard layer_names without a dataset ({len(dangling)}): "
                              f"{dangling!r}", path=path)
        return H5Contents(layer_names, weights, attrs, shard=True)
    no_group = [n for n in layer_names if not isinstance(root.get(n), h5py.Group)]
    if no_group:
        raise FormatError(f"layer(s) {no_group!r} listed in layer_names have no group",
                          path=path)
    # A subclassed model's own variables (ALIGN's `temperature`) sit in a group that
    # layer_names does not list; Keras 2 saves and loads them after the layers'.
    own = [TOP_LEVEL_GROUP] if isinstance(root.get(TOP_LEVEL_GROUP), h5py.Group) else []
    for layer in [*layer_names, *own]:
        g = root[layer]
        for name in load_name_list(g, "weight_names", path):
            ds = g.get(name)
            if isinstance(ds, h5py.Dataset):
                weights.append(_weight(path, layer, name, ds))
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


def _create_dataset(group, name: str, spec: TensorSpec) -> None:
    ds = group.create_dataset(name, spec.shape, dtype=_storage_dtype(spec.dtype))
    if _is_ml_dtype(spec.dtype):
        ds.attrs[_DTYPE_ATTR] = spec.dtype.numpy.name


def _fill(ds, spec: TensorSpec, array: np.ndarray) -> None:
    if spec.numel:
        ds[...] = array.view(ds.dtype) if _is_ml_dtype(spec.dtype) else array


class KerasH5Writer(PartialWriter):
    """Write a Keras 2 / tf-keras weights file (what `save_weights("x.h5")` writes).

    `layers` is [(layer name, [spec, ...])] in model.layers order; spec.name is the full
    weight name ('dense/kernel:0'). A name under several layers is a tied weight: it is
    stored once per layer, as Keras does, and one write() fills every copy.
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
        self._targets: dict[str, list[str]] = {}
        conflicts = []
        for layer, specs in layers:
            _check_paths([s.name for s in specs], f"layer {layer!r}", self.path)
            for s in specs:
                known = self._specs.setdefault(s.name, s)
                if (known.dtype, known.shape) != (s.dtype, s.shape):
                    conflicts.append(f"{s.name}: {known.dtype} {list(known.shape)} vs "
                                     f"{s.dtype} {list(s.shape)} in {layer!r}")
                self._targets.setdefault(s.name, []).append(f"/{layer}/{s.name}")
        if conflicts:
            raise UsageError(f"weights listed under several layers must agree in dtype and shape: "
                             f"{conflicts!r}", path=self.path)
        encoded = [(layer, _check_name_list([s.name for s in specs], f"layer {layer!r}", self.path))
                   for layer, specs in layers]
        names = _check_name_list(layer_names, "layer_names", self.path)

        self._tmp = self.path + ".partial"
        self._file: h5py.File | None = h5py.File(self._tmp, "w")
        try:
            f = self._file
            save_name_list(f, "layer_names", names)
            f.attrs["backend"] = backend.encode("utf-8")
            f.attrs["keras_version"] = str(keras_version).encode("utf-8")
            by_layer = dict(zip(layer_names, zip(layers, encoded)))
            # tf-keras creates the groups in sorted name order ("to avoid prefix issues").
            for layer in sorted(layer_names):
                (_, specs), (_, weight_names) = by_layer[layer]
                g = f.create_group(layer)
                save_name_list(g, "weight_names", weight_names)
                for spec in specs:
                    _create_dataset(g, spec.name, spec)
            save_name_list(f.create_group(TOP_LEVEL_GROUP), "weight_names", [])
        except BaseException:
            self.abort()
            raise

    def write(self, name: str, array: np.ndarray) -> None:
        """Write one weight into every layer that lists it."""
        spec, array = self._accept(name, array)
        for dset_path in self._targets[name]:
            _fill(self._file[dset_path], spec, array)
        self._wrote(name)

    def close(self) -> None:
        """Finish the file; raises (and leaves no file at `path`) if a weight is missing."""
        if self._closed:
            return
        self._missing_check()
        self._file.close()
        self._file = None
        self._closed = True
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the unfinished file."""
        self._closed = True
        if self._file is not None:
            self._file.close()
            self._file = None
        if os.path.exists(self._tmp):
            os.remove(self._tmp)


class HFShardedH5Writer(PartialWriter):
    """Write an HF transformers TF sharded checkpoint: `tf_model-0000k-of-0000N.h5` shards
    and `tf_model.h5.index.json`, as `TFPreTrainedModel.save_pretrained(max_shard_size=...)`.

    `shards` is the plan (see plan()); spec.name is the unstripped TF variable name
    ('tf_bert_for_masked_lm/bert/...:0'), which the index keeps; the shard stores it at
    the stripped path ('bert/...:0'). At most one shard file is open at a time.
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
        self._file: h5py.File | None = None
        self._open_shard = -1
        try:
            for tmp, (fname, ordered, names) in zip(self._tmps, layouts):
                with h5py.File(tmp, "w") as f:
                    for spec in ordered:
                        _create_dataset(f, strip_model_name(spec.name), spec)
                    save_name_list(f, "layer_names", names)
        except BaseException:
            self.abort()
            raise

    @staticmethod
    def plan(specs: Iterable[TensorSpec], max_shard_size="10GB") -> list[list[TensorSpec]]:
        """Greedy shards of at most max_shard_size bytes (int or '20KB'), in the given order.
        Like transformers' tf_shard_checkpoint except that an over-sized tensor gets a shard
        of its own (sharding.plan_shards) instead of starting the next one."""
        return plan_shards(specs, parse_size(max_shard_size))

    def write(self, name: str, array: np.ndarray) -> None:
        """Write one tensor into its shard (reopening it if another shard was last)."""
        spec, array = self._accept(name, array)
        i = self._shard_of[name]
        if self._open_shard != i:
            self._close_current()
            self._file = h5py.File(self._tmps[i], "r+")
            self._open_shard = i
        _fill(self._file[strip_model_name(name)], spec, array)
        self._wrote(name)

    def _close_current(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._open_shard = -1

    def close(self) -> None:
        """Rename every shard into place, then write the index; raises (and leaves no files)
        if a tensor is missing."""
        if self._closed:
            return
        self._missing_check()
        self._close_current()
        self._closed = True
        for tmp, fname in zip(self._tmps, self.files):
            os.replace(tmp, os.path.join(self.directory, fname))
        tmp_index = self.path + ".partial"
        write_index(tmp_index, self._weight_map, self.total_size)
        os.replace(tmp_index, self.path)

    def abort(self) -> None:
        """Drop every unfinished shard."""
        self._closed = True
        self._close_current()
        for tmp in getattr(self, "_tmps", []):
            if os.path.exists(tmp):
                os.remove(tmp)


def write(path, layers: Sequence[tuple[str, Sequence[Tensor]]], **kwargs) -> None:
    """Write lazy tensors as a Keras weights file, loading (and releasing) each name once."""
    layers = [(layer, list(tensors)) for layer, tensors in layers]
    with KerasH5Writer(path, [(layer, [t.spec for t in ts]) for layer, ts in layers], **kwargs) as w:
        done = set()
        for _, tensors in layers:
            for t in tensors:
                if t.name not in done:
                    w.write(t.name, t.load())
                    done.add(t.name)


def write_hf_sharded(directory, tensors: Sequence[Tensor], max_shard_size="10GB") -> list[str]:
    """Write lazy tensors (unstripped names, model.weights order) as an HF TF sharded
    checkpoint; returns the shard file names."""
    tensors = list(tensors)
    plan = HFShardedH5Writer.plan([t.spec for t in tensors], max_shard_size)
    with HFShardedH5Writer(directory, plan) as w:
        for t in tensors:
            w.write(t.name, t.load())
    return list(w.files)


__all__ = ["H5Weight", "H5Contents", "read", "read_hf_sharded", "shard_files", "looks_like",
           "strip_model_name", "KerasH5Writer", "HFShardedH5Writer", "write", "write_hf_sharded",
           "load_name_list", "save_name_list", "HDF5_OBJECT_HEADER_LIMIT", "TF2_WEIGHTS_NAME",
           "TF2_WEIGHTS_INDEX_NAME"]
