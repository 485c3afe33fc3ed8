"""Writing Keras / HF TF2 h5 files: every dataset placed up front, tensors then pwritten
from any thread into a `.partial` file that close() renames into place."""
from __future__ import annotations

import io
import os
import threading
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from ...ir.dtypes import DType
from ...ir.errors import FormatError, UsageError
from ...ir.tensor import Tensor, TensorSpec
from ..partial import PartialWriter, copy_extent, copy_range, pwrite_at
from ..sharding import write_errors, parse_size, plan_shards, shard_names, shard_weight_map, write_index
from .common import TF2_WEIGHTS_STEM, TOP_LEVEL_GROUP, _DTYPE_ATTR, _is_ml_dtype, h5py, strip_model_name
from .attrs import _check_name_list, save_name_list


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
    known (_create_dataset): write() and copy() pwrite or copy them there, in any order,
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
        file to file a MiB at a time (partial.copy_range), with no tensor in memory."""
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

        def group_at(group, path: str):
            # Group `path` under `group`, made once, a component at a time from the nearest
            # one made: h5py's require_group would look the path up first, for every
            # dataset (a third of the layout's time for BERT's 200), and its membership test
            # was most of what was left.
            known = groups.get((id(group), path))
            if known is None:
                parent, _, name = path.rpartition("/")
                above = group_at(group, parent) if parent else group
                try:
                    made = above.create_group(name)
                except ValueError:      # the layout made it itself (a Keras layer's group)
                    made = above[name]
                known = groups[(id(group), path)] = (group, made)
            return known[1]

        def place(group, leaf: str, spec: TensorSpec) -> None:
            parent, _, base = leaf.rpartition("/")
            if parent:
                group = group_at(group, parent)
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

    def close(self) -> None:
        """Rename each file into place; raises (and leaves no file) if a weight is missing."""
        if self._closed:
            return
        self._ready_or_abort()
        self._missing_check()
        self._closed = True
        for tmp, final in zip(self._tmps, self._finals):
            os.replace(tmp, final)

    def abort(self) -> None:
        """Drop every unfinished file."""
        self._closed = True
        self._drop()

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
        super().close()
        tmp_index = self.path + ".partial"
        write_index(tmp_index, self._weight_map, self.total_size)
        os.replace(tmp_index, self.path)


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
