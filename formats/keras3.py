"""Keras 3 weights in h5py + numpy: the bare `.weights.h5` of `model.save_weights` and the
`.keras` zip of `model.save` (metadata.json, config.json, model.weights.h5).

Keras 3 stores variables by position, not by name. Every object that owns variables gets a
group `<path>/vars` holding datasets `0`, `1`, ... in the order its `save_own_variables`
writes them (for most layers: trainable variables, then non-trainable ones, each in creation
order). A Functional or Sequential model puts its layers under `<path>/layers/<key>`, where
the key comes from the layer's *class* (snake case, `_N` for the N+1th of that class:
`batch_normalization_3`), not from the layer; a sublayer reached through an attribute sits at
`<path>/<attribute>`. Keras 3 writes the layer's own name on its `vars` group (attribute
`name`); tf-keras' `.weights.h5` does not.

The rest of irconv wants Keras 2 names ('block1a_bn/gamma'), so every positional variable is
given its Keras 2 leaf name from a per-class table (`LEAVES`) in Keras 3's save order. Which
optional variables exist (a bias, BatchNormalization's gamma/beta) comes from the layer's
config in a `.keras` archive's config.json; in a bare `.weights.h5` it is inferred from the
count, which fails, saying so, where two layouts have the same count.

Nothing here imports keras: the save orders were read from keras 3.15's layer sources.
"""
from __future__ import annotations

import io
import itertools
import os
import re
import shutil
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..ir import limits
from ..ir.errors import FormatError
from ..ir.ranges import crc32
from .kerash5.attrs import _decode, _has_attr, _read_attr
from .kerash5.common import _one_line, h5py
from .kerash5.guard import MAX_INFLATION, Scope, _link_type, child, members, scope_of
from .kerash5.reading import H5Weight, _weight, looks_like, open_h5

_LOCAL_HEADER = struct.Struct("<4s22xHH")   # a zip local header: signature ... name and extra lengths

WEIGHTS_MEMBER = "model.weights.h5"   # keras.src.saving.saving_lib names
CONFIG_MEMBER = "config.json"
NPZ_MEMBER = "model.weights.npz"
TRAINING_STATE = ("optimizer",)       # top-level objects whose variables are not the model's
_CONTAINER_MODELS = ("Functional", "Sequential", "Model")


# --------------------------------------------------------------------------- leaf names

@dataclass(frozen=True)
class Leaves:
    """A layer class's variables in Keras 3's save order, under their Keras 2 names. `flags`
    are the config keys (with Keras' defaults) that decide which optional variables exist;
    `names(flags)` lists the leaves for one setting of them."""
    names: Callable[[Mapping], list[str]]
    flags: Mapping[str, object] = field(default_factory=dict)

    def for_config(self, config: Mapping) -> list[str]:
        return self.names({k: config.get(k, default) for k, default in self.flags.items()})

    def _all(self) -> list[list[str]]:
        settings = itertools.product((True, False), repeat=len(self.flags))
        return [self.names(dict(zip(self.flags, values))) for values in settings]

    def for_count(self, n: int) -> list[list[str]]:
        """Every distinct leaf list of n variables over all flag settings."""
        out: list[list[str]] = []
        for leaves in self._all():
            if len(leaves) == n and leaves not in out:
                out.append(leaves)
        return out

    def counts(self) -> list[int]:
        return sorted({len(leaves) for leaves in self._all()})


def _optional(*pairs) -> Callable[[Mapping], list[str]]:
    """Leaves each present when its predicate on the flags holds (None: always)."""
    return lambda flags: [leaf for leaf, keep in pairs if keep is None or keep(flags)]


_USE_BIAS = {"use_bias": True}
_CONV = Leaves(_optional(("kernel", None), ("bias", lambda f: f["use_bias"])), _USE_BIAS)
# Keras 3 names a depthwise conv's kernel `kernel`; Keras 2 (and the keras view) `depthwise_kernel`.
_DEPTHWISE = Leaves(_optional(("depthwise_kernel", None), ("bias", lambda f: f["use_bias"])), _USE_BIAS)
_SEPARABLE = Leaves(_optional(("depthwise_kernel", None), ("pointwise_kernel", None),
                              ("bias", lambda f: f["use_bias"])), _USE_BIAS)
_GAMMA_BETA = Leaves(_optional(("gamma", lambda f: f["scale"]), ("beta", lambda f: f["center"])),
                     {"scale": True, "center": True})

LEAVES: dict[str, Leaves] = {
    # base_conv.save_own_variables: kernel, bias if use_bias.
    "Conv1D": _CONV, "Conv2D": _CONV, "Conv3D": _CONV,
    # Layer.save_own_variables over build(): kernel, bias if use_bias.
    "Conv1DTranspose": _CONV, "Conv2DTranspose": _CONV, "Conv3DTranspose": _CONV,
    "DepthwiseConv1D": _DEPTHWISE, "DepthwiseConv2D": _DEPTHWISE,
    "SeparableConv1D": _SEPARABLE, "SeparableConv2D": _SEPARABLE,
    # variable_serialization_spec[None]: kernel, bias (skipped when None).
    "Dense": Leaves(_optional(("kernel", None), ("bias", lambda f: f["use_bias"])), _USE_BIAS),
    "EinsumDense": Leaves(_optional(("kernel", None), ("bias", lambda f: bool(f["bias_axes"]))),
                          {"bias_axes": None}),
    "Embedding": Leaves(_optional(("embeddings", None))),
    # build(): gamma if scale, beta if center (trainable), then moving_mean, moving_variance.
    "BatchNormalization": Leaves(_optional(("gamma", lambda f: f["scale"]), ("beta", lambda f: f["center"]),
                                           ("moving_mean", None), ("moving_variance", None)),
                                 {"scale": True, "center": True}),
    # build(): gamma if scale or rms_scaling, beta if center and not rms_scaling.
    "LayerNormalization": Leaves(_optional(("gamma", lambda f: f["scale"] or f["rms_scaling"]),
                                           ("beta", lambda f: f["center"] and not f["rms_scaling"])),
                                 {"scale": True, "center": True, "rms_scaling": False}),
    "GroupNormalization": _GAMMA_BETA,
    # build() (adapted, i.e. no mean/variance given to the constructor): mean, variance, count.
    "Normalization": Leaves(_optional(("mean", None), ("variance", None), ("count", None))),
}


def snake_case(class_name: str) -> str:
    """The key Keras 3 files a layer of this class under in a model's `layers` group, before
    its `_N` suffix: an underscore before each capitalised word and between a lower-case
    letter and a capital (so 'DepthwiseConv2D' -> 'depthwise_conv2d'), lower-cased."""
    words = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", class_name))
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", words).lower()


_BY_SNAKE = {snake_case(c): c for c in LEAVES}


def _quantized(config: Mapping) -> str | None:
    """The dtype policy's name when it is a quantized one (extra, differently ordered vars)."""
    policy = config.get("dtype")
    if isinstance(policy, dict):
        name = str((policy.get("config") or {}).get("name", ""))
        if "_from_" in name or "Quantized" in str(policy.get("class_name", "")):
            return name or str(policy.get("class_name"))
    return None


# --------------------------------------------------------------------------- the walk

@dataclass
class _Owner:
    """One object's `vars` group and what is known of it."""
    where: str                      # its h5 path, e.g. 'layers/batch_normalization_3'
    name: str | None                # the layer's own name ('block1a_bn')
    class_name: str | None          # from config.json, or from the container key
    config: dict | None             # the layer's config.json entry's "config"
    vars: h5py.Group


@dataclass
class Keras3Contents:
    weights: list[H5Weight]         # named 'layer/leaf' (Keras 2, no ':0'); source = h5 path
    skipped: list[str]              # h5 paths of training-state variables (the optimizer's)


def _layer_name(vars_group: h5py.Group, scope: Scope) -> str | None:
    if not _has_attr(vars_group, "name"):
        return None
    return _decode(_read_attr(vars_group, "name", scope), f"{vars_group.name} attribute 'name'", scope.label)


def _object(value) -> dict:
    """A config.json object, or {} for anything else (a hand-edited file may hold anything)."""
    return value if isinstance(value, dict) else {}


def _entries(entry: dict | None) -> list[dict]:
    """A model's config.json layer entries ([] for a layer or no config)."""
    layers = _object(_object(entry).get("config")).get("layers")
    return [e for e in layers if isinstance(e, dict)] if isinstance(layers, list) else []


def _entry_name(entry: dict) -> str | None:
    return _object(entry.get("config")).get("name") or entry.get("name")


def _split_key(key: str) -> tuple[str, int]:
    """A container key's class part and ordinal: 'conv2d_3' -> ('conv2d', 3), 'conv2d' -> ('conv2d', 0)."""
    m = re.fullmatch(r"(.*)_(\d+)", key)
    return (m.group(1), int(m.group(2))) if m else (key, 0)


def _match(entries: list[dict], key: str, name: str | None, where: str, label: str) -> dict | None:
    """The config entry of container child `key`: by the layer's name when the file has it,
    else the Nth entry of the key's class (keys count each class up in `model.layers` order,
    which is also config.json's order)."""
    if not entries:
        return None
    base, n = _split_key(key)
    if name is not None:
        found = next((e for e in entries if _entry_name(e) == name), None)
    else:
        same = [e for e in entries if snake_case(str(e.get("class_name", ""))) == base]
        found = same[n] if n < len(same) else None
    if found is None:
        raise FormatError(f"config.json has no layer for {WEIGHTS_MEMBER}'s {where}"
                          + (f" (layer {name!r})" if name else "") + "; they do not belong together",
                          path=label)
    cls = str(found.get("class_name", ""))
    if snake_case(cls) != base:
        raise FormatError(f"{WEIGHTS_MEMBER}'s {where} holds a {base} but config.json's layer "
                          f"{_entry_name(found)!r} is a {cls}; they do not belong together", path=label)
    return found


def _address(obj) -> int:
    return h5py.h5o.get_info(obj.id).addr


def _datasets(group: h5py.Group, scope: Scope, seen: set) -> list[str]:
    """Relative paths of every dataset under `group`, walked through hard links only (a soft
    or external link is refused, see kerash5.child), each group once: a hard link back to an
    ancestor would otherwise make the walk endless."""
    out: list[str] = []
    stack = [("", group)]
    while stack:
        prefix, g = stack.pop()
        if _address(g) in seen:
            raise scope.fail(f"group {g.name!r} is linked twice into the file's tree (a cycle, or a "
                             "group shared by two layers)")
        seen.add(_address(g))
        for key, obj in members(g, scope):
            if isinstance(obj, h5py.Group):
                stack.append((f"{prefix}{key}/", obj))
            elif isinstance(obj, h5py.Dataset):
                out.append(f"{prefix}{key}")
    return sorted(out)


def _walk(group: h5py.Group, where: str, entry: dict | None, class_name: str | None,
          out: list[_Owner], skipped: list[str], scope: Scope, depth: int = 0) -> None:
    """Collect every `vars` group under `group` (a saveable object's group)."""
    if depth > limits.MAX_DEPTH:
        raise scope.fail(f"{where} nests deeper than {limits.MAX_DEPTH} levels")
    own = child(group, "vars", scope)
    config = _object(entry).get("config")
    config = config if isinstance(config, dict) else None
    if isinstance(own, h5py.Group) and len(own):
        name = _layer_name(own, scope) or _object(config).get("name")
        out.append(_Owner(where or "/", name, class_name, config, own))
    children = child(group, "layers", scope)
    if isinstance(children, h5py.Group):
        entries = _entries(entry)
        for key, sub in members(children, scope):
            if not isinstance(sub, h5py.Group):
                continue
            child_where = f"{where}/layers/{key}".lstrip("/")
            if not _datasets(sub, scope, set()):
                continue          # InputLayer, Activation, ...: nothing to name or to match
            vars_group = child(sub, "vars", scope)
            name = _layer_name(vars_group, scope) if isinstance(vars_group, h5py.Group) else None
            found = _match(entries, key, name, child_where, scope.label)
            base = _split_key(key)[0]
            cls = str(found.get("class_name")) if found else _BY_SNAKE.get(base, base)
            _walk(sub, child_where, found, cls, out, skipped, scope, depth + 1)
    for key, sub in members(group, scope):
        if key in ("vars", "layers") or not isinstance(sub, h5py.Group):
            continue
        child_where = f"{where}/{key}".lstrip("/")
        if not where and key in TRAINING_STATE:
            skipped += [f"{child_where}/{n}" for n in _datasets(sub, scope, set())]
            continue
        _walk(sub, child_where, None, None, out, skipped, scope, depth + 1)   # an attribute: class unknown


def _positional(owner: _Owner, scope: Scope) -> list[h5py.Dataset]:
    """The `vars` datasets in order: keys are positions '0', '1', ... (h5py lists them sorted
    as strings, so '10' before '2')."""
    found = dict(members(owner.vars, scope))
    keys = [str(i) for i in range(len(found))]
    if sorted(found) != sorted(keys):
        raise FormatError(f"{owner.where}/vars holds {sorted(found)[:8]!r}, expected "
                          f"datasets 0..{len(keys) - 1}", path=scope.label)
    datasets = [found[k] for k in keys]
    if not all(isinstance(d, h5py.Dataset) for d in datasets):
        raise FormatError(f"{owner.where}/vars holds a group where a variable should be", path=scope.label)
    return datasets


def _describe(owner: _Owner) -> str:
    """"layer 'bn' (BatchNormalization at layers/batch_normalization)", for errors."""
    at = f"{owner.class_name} at {owner.where}" if owner.class_name else owner.where
    return f"layer {owner.name!r} ({at})" if owner.name else f"the layer at {owner.where}"


def _leaves(owner: _Owner, n: int, label: str, archive: bool) -> list[str]:
    """The Keras 2 leaf names of the owner's n variables, in order."""
    rule = LEAVES.get(owner.class_name or "")
    if rule is None:
        what = "" if owner.class_name else ", of a class the file does not name,"
        raise FormatError(f"{_describe(owner)}{what} holds {n} variables, which this version cannot "
                          f"name (it knows {', '.join(LEAVES)})", path=label)
    if owner.config is not None:
        quantized = _quantized(owner.config)
        if quantized:
            raise FormatError(f"{_describe(owner)} is quantized ({quantized}); quantized layers are "
                              "not supported", path=label)
        if owner.config.get("renorm"):
            raise FormatError(f"{_describe(owner)} uses batch renormalization, whose variables "
                              "this version does not read", path=label)
        leaves = rule.for_config(owner.config)
        if len(leaves) != n:
            raise FormatError(f"{_describe(owner)} holds {n} variables but its "
                              f"config gives {len(leaves)} ({', '.join(leaves)})", path=label)
        return leaves
    fits = rule.for_count(n)
    if len(fits) == 1:
        return fits[0]
    if not fits:
        raise FormatError(f"{_describe(owner)} holds {n} variables, expected "
                          f"{' or '.join(map(str, rule.counts()))}", path=label)
    options = " or ".join("(" + ", ".join(f) + ")" for f in fits)
    hint = "its config.json does not say which" if archive else \
        "read the model's .keras file instead, whose config.json says which"
    raise FormatError(f"{_describe(owner)} holds {n} variables, which may be "
                      f"{options}: {hint}", path=label)


def _read_root(f: h5py.File, source, label: str, config: dict | None) -> Keras3Contents:
    """Name and wrap every variable in an opened Keras 3 weights file. `source` is what the
    lazy loaders reopen (a path or a file object); `label` is what errors name."""
    if _has_attr(f, "layer_names") or _has_attr(f, "layer_names0"):
        raise FormatError("a Keras 2 / tf-keras h5 weights file, not a Keras 3 one", path=label)
    scope = scope_of(source, label)
    if not isinstance(child(f, "layers", scope), h5py.Group) and not isinstance(child(f, "vars", scope), h5py.Group):
        raise FormatError("no 'layers' or 'vars' group: not a Keras 3 weights file", path=label)
    _datasets(f, scope, set())    # every group is reached through hard links only, and once
    owners: list[_Owner] = []
    skipped: list[str] = []
    root_class = str(config.get("class_name")) if config else None
    _walk(f, "", config, root_class, owners, skipped, scope)
    archive = config is not None
    weights = []
    for owner in owners:
        name = owner.name
        if not name:
            raise FormatError(f"{WEIGHTS_MEMBER if archive else 'the file'} does not name the layer at "
                              f"{owner.where} (tf-keras writes no layer names)"
                              + ("" if archive else "; read the model's .keras file instead"), path=label)
        datasets = _positional(owner, scope)
        for ds, leaf in zip(datasets, _leaves(owner, len(datasets), label, archive)):
            # Named by its h5 path first, so the tensor's `source` says where it was read.
            w = _weight(source, name, ds.name.lstrip("/"), ds, scope)
            weights.append(H5Weight(name, f"{name}/{leaf}", w.tensor.with_spec(name=f"{name}/{leaf}")))
    return Keras3Contents(weights, skipped)


def _read_open(open_h5: Callable[[], h5py.File], source, label: str, config: dict | None) -> Keras3Contents:
    try:
        with open_h5() as f:
            return _read_root(f, source, label, config)
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, UnicodeError) as e:
        raise FormatError(f"unreadable Keras 3 weights: {_one_line(e)}", path=label) from None


# --------------------------------------------------------------------------- the files

def is_weights_h5(path) -> bool:
    """Cheap: an HDF5 file whose root has Keras 3's `layers` or `vars` group and no Keras 2
    `layer_names` attribute."""
    path = os.fspath(path)
    if not os.path.isfile(path) or not looks_like(path):
        return False
    try:
        with h5py.File(path, "r") as f:   # links are looked at, not followed (read_weights_h5 refuses them)
            if _has_attr(f, "layer_names") or _has_attr(f, "layer_names0") or _link_type(f, "model_weights"):
                return False
            return _link_type(f, "layers") is not None or _link_type(f, "vars") is not None
    except (OSError, RuntimeError, ValueError):
        return False


def is_archive(path) -> bool:
    """Cheap: a zip whose directory lists config.json and model.weights.h5 (or .npz)."""
    path = os.fspath(path)
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return CONFIG_MEMBER in names and bool({WEIGHTS_MEMBER, NPZ_MEMBER} & names)


def read_weights_h5(path) -> Keras3Contents:
    """Lazy, Keras 2-named weights of a bare Keras 3 `.weights.h5` (no config: optional
    variables are inferred from each layer's class and variable count)."""
    path = os.fspath(path)
    return _read_open(lambda: open_h5(path), path, path, None)


class _Member(io.RawIOBase):
    """A byte range of an open binary file, as a read-only seekable file for h5py: the
    archive's model.weights.h5 read in place (stored) or its extracted temporary copy. It
    stays open for as long as the lazy tensors that reopen it live."""

    def __init__(self, f, start: int, size: int, label: str):
        super().__init__()
        self._f, self._start, self._size, self._pos, self._label = f, start, size, 0, label

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to {base + offset}, before the start")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        if n == 0:
            return 0
        self._f.seek(self._start + self._pos)
        got = self._f.readinto(view[:n]) or 0
        self._pos += got
        return got

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()

    @property
    def size(self) -> int:
        return self._size

    def __str__(self) -> str:
        return self._label


def _stored_offset(f, info: zipfile.ZipInfo, file_size: int, label: str) -> int:
    """Where a stored member's bytes start: after its local header, whose extra field may
    differ from the central directory's."""
    f.seek(info.header_offset)
    header = f.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise FormatError(f"{info.filename}: no local zip header at {info.header_offset} (corrupt file)",
                          path=label)
    _, name_len, extra_len = _LOCAL_HEADER.unpack(header)
    start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    if start + info.file_size > file_size:
        raise FormatError(f"{info.filename} needs bytes up to {start + info.file_size} but the file "
                          f"has {file_size} (truncated?)", path=label)
    return start


def _check_crc(f, start: int, info: zipfile.ZipInfo, path: str) -> None:
    """The stored member's bytes against the zip's CRC-32 (HDF5 has no checksum of its own
    over tensor data; the zip does): one sequential pass before anything is read from it."""
    f.seek(start)
    crc, left = 0, info.file_size
    while left:
        block = f.read(min(left, 1 << 20))
        if not block:
            break
        crc, left = crc32(block, crc), left - len(block)
    if left or crc != info.CRC:
        raise FormatError(f"{info.filename}: CRC-32 {crc:08x} where the zip says {info.CRC:08x}: the "
                          "archive is corrupt", path=path)


def _weights_member(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    """model.weights.h5 as a file h5py can open: in place when stored (Keras writes it so),
    else decompressed once, streaming, into an anonymous temporary file."""
    label = f"{path}:{WEIGHTS_MEMBER}"
    if info.flag_bits & 1:
        raise FormatError(f"{WEIGHTS_MEMBER} is encrypted", path=path)
    if info.compress_type == zipfile.ZIP_STORED:
        f = limits.open_regular(path)
        try:
            start = _stored_offset(f, info, os.fstat(f.fileno()).st_size, path)
            _check_crc(f, start, info, path)
        except BaseException:
            f.close()
            raise
        return _Member(f, start, info.file_size, label)
    _check_inflation(path, info)
    tmp = tempfile.TemporaryFile()
    try:
        with zf.open(info) as src:
            shutil.copyfileobj(src, tmp, 1 << 20)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, ValueError) as e:
        tmp.close()
        raise FormatError(f"cannot decompress {WEIGHTS_MEMBER}: {_one_line(e)}", path=path) from None
    return _Member(tmp, 0, info.file_size, label)


def _check_inflation(path: str, info: zipfile.ZipInfo) -> None:
    """A compressed member may declare no more than deflate can expand its bytes to."""
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > max(info.compress_size, 1) * MAX_INFLATION:
        raise FormatError(f"{info.filename} declares {info.file_size:,} bytes from {info.compress_size:,} "
                          f"compressed (more than {MAX_INFLATION}:1): corrupt", path=path)


def _archive_config(path: str, zf: zipfile.ZipFile) -> dict:
    try:
        info = zf.getinfo(CONFIG_MEMBER)
    except KeyError:
        raise FormatError(f"no {CONFIG_MEMBER} in the archive: not a .keras model file", path=path) from None
    _check_inflation(path, info)
    try:
        text = zf.read(info).decode("utf-8")
    except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError, ValueError, NotImplementedError) as e:
        raise FormatError(f"{CONFIG_MEMBER} is not readable JSON: {_one_line(e)}", path=path) from None
    config = limits.loads_json(text, path=path, what=CONFIG_MEMBER)
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise FormatError(f"{CONFIG_MEMBER} is not a Keras model config (no class_name/config object)",
                          path=path)
    return config


def read_archive(path) -> Keras3Contents:
    """Lazy, Keras 2-named weights of a `.keras` archive, each layer's optional variables
    decided by its config.json entry."""
    path = os.fspath(path)
    limits.require_regular(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise FormatError(f"not a .keras archive (not a readable zip, truncated?): {_one_line(e)}",
                          path=path) from None
    with zf:
        names = set(zf.namelist())
        if WEIGHTS_MEMBER not in names:
            what = (f"only {NPZ_MEMBER} (weights_format='npz'), which this version does not read"
                    if NPZ_MEMBER in names else f"no {WEIGHTS_MEMBER}")
            raise FormatError(f"the archive holds {what}", path=path)
        config = _archive_config(path, zf)
        member = _weights_member(path, zf, zf.getinfo(WEIGHTS_MEMBER))
    try:
        return _read_open(lambda: open_h5(member, path), member, path, config)
    except BaseException:
        member.close()
        raise


__all__ = ["LEAVES", "Leaves", "Keras3Contents", "snake_case", "is_weights_h5", "is_archive",
           "read_weights_h5", "read_archive", "WEIGHTS_MEMBER", "CONFIG_MEMBER"]
