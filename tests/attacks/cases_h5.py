"""Attacks on HDF5 inputs and outputs: HF TF2 tf_model.h5, Keras 2 h5, Keras 3 .weights.h5 and
.keras archives (formats/kerash5/, formats/keras3.py).

HDF5 can put a dataset's bytes anywhere: in another file (external raw storage, a virtual
dataset's sources, an external link), behind a soft link, or nowhere at all (a declared
shape with no storage, read back as fill values). Each is refused by name before a byte of
data is read. A full disk under the h5 writer is one line, exit 2, nothing at OUT.

Bases: the corpus' "tf2" (a tiny BERT), plus a quarter-width EfficientNet built here with
numpy (no torch, no TF) as safetensors and converted by irconv itself to a Keras 2 h5; the
Keras 3 .weights.h5 and .keras archive are laid out from that h5 with h5py as Keras 3 saves
them (one `layers/<class key>/vars/<i>` group per layer, the layer's name as an attribute).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np

from attacks.corpus import SECRET, case

TF2_H5 = "tf_model.h5"
GAMMA = "/bert/tf_bert_for_pre_training/bert/embeddings/LayerNorm/gamma:0"              # (32,) F32
WORDS = "/bert/tf_bert_for_pre_training/bert/embeddings/word_embeddings/weight:0"       # (128, 32) F32
KERAS_TARGET = "block2a_bn"        # a BatchNormalization layer: its gamma is a plain (48,) F32 vector
CONFIG_ARGS = ("--config", "in/config.json")   # the cases' cwd is the work directory, the input under in/


# --------------------------------------------------------------------------- bases

# A quarter-width, half-depth EfficientNet on 32x32 images (tests/zoo.py's), as HF's
# EfficientNetModel names and shapes its state dict.
EFFNET = dict(model_type="efficientnet", architectures=["EfficientNetModel"], width_coefficient=0.25,
              depth_coefficient=0.5, image_size=32, hidden_dim=320, num_channels=3, depth_divisor=8,
              kernel_sizes=[3, 3, 5, 3, 5, 5, 3], in_channels=[32, 16, 24, 40, 80, 112, 192],
              out_channels=[16, 24, 40, 80, 112, 192, 320], strides=[1, 2, 2, 2, 1, 2, 1],
              num_block_repeats=[1, 2, 2, 3, 3, 4, 1], expand_ratios=[1, 6, 6, 6, 6, 6, 6],
              squeeze_expansion_ratio=0.25)


def _round_filters(channels: int) -> int:
    width, divisor = EFFNET["width_coefficient"], EFFNET["depth_divisor"]
    channels *= width
    new = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return int(new + divisor) if new < 0.9 * channels else int(new)


def _effnet_shapes() -> dict[str, tuple]:
    """HF EfficientNetModel's state dict: name -> (shape, dtype)."""
    out: dict[str, tuple] = {}

    def bn(p, n):
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            out[f"{p}.{leaf}"] = ((n,), np.float32)
        out[f"{p}.num_batches_tracked"] = ((), np.int64)

    def conv(p, o, i, k, bias=False):
        out[f"{p}.weight"] = ((o, i, k, k), np.float32)
        if bias:
            out[f"{p}.bias"] = ((o,), np.float32)

    e, c = "efficientnet.", EFFNET
    conv(e + "embeddings.convolution", _round_filters(32), c["num_channels"], 3)
    bn(e + "embeddings.batchnorm", _round_filters(32))
    n = 0
    for stage in range(len(c["in_channels"])):
        in_dim, out_dim = _round_filters(c["in_channels"][stage]), _round_filters(c["out_channels"][stage])
        k, ratio = c["kernel_sizes"][stage], c["expand_ratios"][stage]
        for j in range(int(math.ceil(c["depth_coefficient"] * c["num_block_repeats"][stage]))):
            in_dim = out_dim if j else in_dim
            p, dim = f"{e}encoder.blocks.{n}.", in_dim * ratio
            if ratio != 1:
                conv(p + "expansion.expand_conv", dim, in_dim, 1)
                bn(p + "expansion.expand_bn", dim)
            out[p + "depthwise_conv.depthwise_conv.weight"] = ((dim, 1, k, k), np.float32)
            bn(p + "depthwise_conv.depthwise_norm", dim)
            se = max(1, int(in_dim * c["squeeze_expansion_ratio"]))
            conv(p + "squeeze_excite.reduce", se, dim, 1, True)
            conv(p + "squeeze_excite.expand", dim, se, 1, True)
            conv(p + "projection.project_conv", out_dim, dim, 1)
            bn(p + "projection.project_bn", out_dim)
            n += 1
    conv(e + "encoder.top_conv", _round_filters(1280), out_dim, 1)
    bn(e + "encoder.top_bn", c["hidden_dim"])
    return out


def _make_effnet_pt(dest: Path) -> Path:
    from irconv.formats import safetensors
    from irconv.ir.dtypes import from_numpy
    from irconv.ir.tensor import Tensor, TensorSpec
    dest.mkdir(parents=True)
    rng = np.random.default_rng(0)
    tensors = []
    for name, (shape, dt) in _effnet_shapes().items():
        arr = rng.standard_normal(shape).astype(dt) if dt == np.float32 else np.zeros(shape, dt)
        tensors.append(Tensor(TensorSpec(name, from_numpy(dt), shape), lambda a=arr: a))
    safetensors.write(dest / "model.safetensors", tensors)
    (dest / "config.json").write_text(json.dumps(EFFNET))
    return dest


def _keras3_class(layer: str, leaves: list[str]) -> tuple[str, dict]:
    """The Keras 3 class (and the config flags its variables need) of an EfficientNet layer."""
    if layer.startswith("normalization"):
        return "Normalization", {}
    if "gamma" in leaves:
        return "BatchNormalization", {}
    if layer.endswith("_dwconv"):
        return "DepthwiseConv2D", {"use_bias": False}
    return "Conv2D", {"use_bias": "bias" in leaves}


def _snake(cls: str) -> str:
    from irconv.formats.keras3 import snake_case
    return snake_case(cls)


def _make_keras3(keras2_h5: Path, weights_h5: Path) -> dict:
    """A Keras 3 .weights.h5 holding the Keras 2 file's variables; returns the .keras config
    and, under "_where", each layer's vars group path."""
    counts: dict[str, int] = {}
    entries, where = [], {}
    with h5py.File(keras2_h5, "r") as src, h5py.File(weights_h5, "w") as dst:
        for layer in [n.decode() if isinstance(n, bytes) else n for n in src.attrs["layer_names"]]:
            names = [n.decode() if isinstance(n, bytes) else n for n in src[layer].attrs["weight_names"]]
            if not names:
                continue
            leaves = [n.split("/")[-1][:-2] for n in names]
            cls, flags = _keras3_class(layer, leaves)
            base = _snake(cls)
            key = base if base not in counts else f"{base}_{counts[base]}"
            counts[base] = counts.get(base, 0) + 1
            g = dst.create_group(f"layers/{key}/vars")
            g.attrs["name"] = layer
            for i, n in enumerate(names):
                g.create_dataset(str(i), data=src[layer][n][()])
            entries.append({"class_name": cls, "config": {"name": layer, **flags}})
            where[layer] = f"/layers/{key}/vars"
    return {"class_name": "Functional", "config": {"name": "efficientnet", "layers": entries}, "_where": where}


def _zip_archive(dest: Path, config: dict, weights_h5: Path) -> None:
    with zipfile.ZipFile(dest, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.0"}))
        zf.writestr("config.json", json.dumps(config))
        zf.write(weights_h5, "model.weights.h5", compress_type=zipfile.ZIP_STORED)


_BASES: dict[tuple, Path] = {}


def _base(ctx, kind: str) -> Path:
    """A directory holding base `kind` ('effnet-pt', 'keras2', 'keras3'), built once per ctx."""
    key = (str(ctx.root), kind)
    if key in _BASES:
        return _BASES[key]
    root = ctx.root / "h5-bases" / kind
    if not root.exists():
        tmp = Path(tempfile.mkdtemp(dir=ctx.root))
        if kind == "effnet-pt":
            _make_effnet_pt(tmp / "m")
        elif kind == "keras2":
            import irconv
            irconv.convert(_base(ctx, "effnet-pt"), tmp / "m", to="keras")
        elif kind == "keras3":
            (tmp / "m").mkdir()
            k2 = _base(ctx, "keras2")
            shutil.copyfile(k2 / "config.json", tmp / "m" / "config.json")
            config = _make_keras3(k2 / "model.h5", tmp / "m" / "model.weights.h5")
            (tmp / "m" / "where.json").write_text(json.dumps(config.pop("_where")))
            _zip_archive(tmp / "m" / "model.keras", config, tmp / "m" / "model.weights.h5")
            (tmp / "m" / "keras-config.json").write_text(json.dumps(config))
        root.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / "m", root)
        shutil.rmtree(tmp)
    _BASES[key] = root
    return root


def _secret_h5(ctx, n: int) -> Path:
    """An HDF5 file outside the input whose dataset '/secret' holds the secret's first 4n bytes
    as n float32 (what a virtual dataset or an external link would pull in)."""
    path = ctx.root / f"secret-{n}.h5"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with h5py.File(tmp, "w") as f:
            f["secret"] = np.frombuffer(SECRET[:4 * n], np.float32)
        os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- one input per container

class Target:
    """A copy of a valid input and the dataset an attack replaces in its HDF5 file."""

    def __init__(self, entry: Path, h5: Path, dataset: str, rezip=None):
        self.entry, self.h5, self.dataset, self._rezip = entry, h5, dataset, rezip

    def done(self) -> Path:
        if self._rezip:
            self._rezip()
        return self.entry


def _tf2(d, ctx) -> Target:
    src = ctx.bases.copy("tf2", d / "m")
    return Target(src, src / TF2_H5, GAMMA)


def _keras2(d, ctx) -> Target:
    base = _base(ctx, "keras2")
    shutil.copyfile(base / "config.json", d / "config.json")
    shutil.copyfile(base / "model.h5", d / "model.h5")
    return Target(d / "model.h5", d / "model.h5", f"/{KERAS_TARGET}/{KERAS_TARGET}/gamma:0")


def _keras3_dataset(ctx) -> str:
    where = json.loads((_base(ctx, "keras3") / "where.json").read_text())
    return f"{where[KERAS_TARGET]}/0"


def _keras3(d, ctx) -> Target:
    base = _base(ctx, "keras3")
    shutil.copyfile(base / "config.json", d / "config.json")
    shutil.copyfile(base / "model.weights.h5", d / "model.weights.h5")
    return Target(d / "model.weights.h5", d / "model.weights.h5", _keras3_dataset(ctx))


def _archive(d, ctx) -> Target:
    base = _base(ctx, "keras3")
    shutil.copyfile(base / "config.json", d / "config.json")
    work = d / ".work"
    work.mkdir()
    shutil.copyfile(base / "model.weights.h5", work / "model.weights.h5")
    config = json.loads((base / "keras-config.json").read_text())

    def rezip():
        _zip_archive(d / "model.keras", config, work / "model.weights.h5")
        shutil.rmtree(work)
    return Target(d / "model.keras", work / "model.weights.h5", _keras3_dataset(ctx), rezip)


CONTAINERS = {
    "tf2": (_tf2, "tf2", (), TF2_H5),
    "keras2": (_keras2, "keras", CONFIG_ARGS, "model.h5"),
    "keras3": (_keras3, "keras", CONFIG_ARGS, "model.weights.h5"),
    "archive": (_archive, "keras", CONFIG_ARGS, "model.keras"),
}


def _replace(t: Target, make) -> Path:
    """Replace t.dataset by what make(file, path, array) creates there."""
    with h5py.File(t.h5, "r+") as f:
        arr = f[t.dataset][()]
        del f[t.dataset]
        make(f, t.dataset, arr)
    return t.done()


# --------------------------------------------------------------------------- redirections

def _external(ctx):
    def make(f, name, arr):
        f.create_dataset(name, arr.shape, arr.dtype, external=[(str(ctx.secret), 0, arr.nbytes)])
    return make


def _virtual(ctx):
    def make(f, name, arr):
        n = arr.size
        layout = h5py.VirtualLayout(shape=arr.shape, dtype=np.float32)
        layout[...] = h5py.VirtualSource(str(_secret_h5(ctx, n)), "secret", shape=(n,))
        f.create_virtual_dataset(name, layout)
    return make


def _extlink(ctx):
    def make(f, name, arr):
        f[name] = h5py.ExternalLink(str(_secret_h5(ctx, arr.size)), "/secret")
    return make


def _softlink_out(ctx):
    """A soft link to a name that is itself an external link: leaving the file by two hops."""
    def make(f, name, arr):
        f["leak"] = h5py.ExternalLink(str(_secret_h5(ctx, arr.size)), "/secret")
        f[name] = h5py.SoftLink("/leak")
    return make


def _softlink_in(ctx):
    """A soft link to a sibling dataset in the same file: never written by Keras or HF."""
    def make(f, name, arr):
        f["elsewhere"] = arr
        f[name] = h5py.SoftLink("/elsewhere")
    return make


REDIRECTS = {
    "external-storage": (_external, "external storage"),
    "virtual-dataset": (_virtual, "virtual dataset"),
    "external-link": (_extlink, "external link"),
    "soft-link-out": (_softlink_out, "link"),
    "soft-link-in": (_softlink_in, "soft link"),
}


def _register_redirect(kind: str, attack: str):
    opener, fmt, args, fname = CONTAINERS[kind]
    make, needle = REDIRECTS[attack]

    @case(f"h5/{kind}-{attack}", fmt=fmt, args=args, verbs=("convert", "ls", "import", "diff"), needle=needle,
          names=fname)
    def build(d, ctx):
        return _replace(opener(d, ctx), make(ctx))
    build.__doc__ = f"{kind}: the {attack} attack on one weight ({needle}); reads a file outside the input, before."


for _kind in CONTAINERS:
    for _attack in REDIRECTS:
        _register_redirect(_kind, _attack)


@case("h5/tf2-layer-group-external-link", fmt="tf2", verbs=("convert", "ls", "import"), needle="external link",
      names=TF2_H5)
def tf2_layer_group_link(d, ctx):
    """The whole 'bert' layer group an external link into another tf_model.h5 (outside the
    input) whose gamma holds the secret."""
    other = ctx.root / "secret-tf2.h5"
    if not other.exists():
        tmp = ctx.root / "secret-tf2.tmp"
        ctx.bases.copy("tf2", tmp)
        with h5py.File(tmp / TF2_H5, "r+") as f:
            f[GAMMA][...] = np.frombuffer(SECRET[:128], np.float32)
        os.replace(tmp / TF2_H5, other)
        shutil.rmtree(tmp)
    t = _tf2(d, ctx)
    with h5py.File(t.h5, "r+") as f:
        del f["bert"]
        f["bert"] = h5py.ExternalLink(str(other), "/bert")
    return t.done()


# --------------------------------------------------------------------------- declared sizes

def _tf2_with(d, ctx, make, dataset=WORDS, config=None):
    t = _tf2(d, ctx)
    t.dataset = dataset
    if config:
        cfg = json.loads((t.entry / "config.json").read_text())
        cfg.update(config)
        (t.entry / "config.json").write_text(json.dumps(cfg))
    return _replace(t, make)


@case("h5/tf2-huge-shape-unwritten", fmt="tf2", verbs=("convert", "ls", "import"), needle="declares", names=TF2_H5)
def tf2_huge_unwritten(d, ctx):
    """word_embeddings declared (2^30, 32) F32 (128 GiB) in a 200 KB file, its contiguous
    storage never allocated: read back as fill values, it was allocated whole, before."""
    return _tf2_with(d, ctx, lambda f, n, a: f.create_dataset(n, (1 << 30, 32), np.float32),
                     config={"vocab_size": 1 << 30})


@case("h5/tf2-huge-shape-one-chunk", fmt="tf2", verbs=("convert", "ls", "import"), needle="chunks", names=TF2_H5)
def tf2_huge_one_chunk(d, ctx):
    """word_embeddings declared (2^24, 32) F32 (2 GiB), chunked, with one chunk written."""
    def make(f, n, a):
        ds = f.create_dataset(n, (1 << 24, 32), np.float32, chunks=(128, 32))
        ds[:128] = a
    return _tf2_with(d, ctx, make, config={"vocab_size": 1 << 24})


@case("h5/tf2-chunk-larger-than-data", fmt="tf2", verbs=("convert", "ls"), needle="chunks of",
      names=TF2_H5)
def tf2_big_chunk(d, ctx):
    """A (128, 32) dataset in one deflated (2^18, 32) chunk (a resizable dataset may have
    chunks larger than itself): libhdf5 inflated the whole 32 MiB chunk to read 16 KB (and
    the chunk may be as large as 4 GiB)."""
    def make(f, n, a):
        ds = f.create_dataset(n, a.shape, np.float32, chunks=(1 << 18, 32), maxshape=(None, 32),
                              compression="gzip")
        ds[...] = a
    return _tf2_with(d, ctx, make)


@case("h5/tf2-scaleoffset-filter", fmt="tf2", verbs=("convert", "ls", "import"), needle="filter", names=TF2_H5)
def tf2_scaleoffset(d, ctx):
    """word_embeddings through the scale-offset filter, which stores a constant chunk in a few
    bytes whatever its size: no bound on what it expands to."""
    return _tf2_with(d, ctx, lambda f, n, a: f.create_dataset(n, data=a, chunks=(128, 32), scaleoffset=0))


@case("h5/tf2-gzip-ok", fmt="tf2", verbs=("convert", "ls"), expect="clean")
def tf2_gzip(d, ctx):
    """Control: every weight gzip-compressed and shuffled, as h5py users may write: still read."""
    t = _tf2(d, ctx)
    with h5py.File(t.h5, "r+") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in names:
            arr = f[n][()]
            del f[n]
            f.create_dataset(n, data=arr, compression="gzip", shuffle=True, chunks=arr.shape or None)
    return t.done()


def _dtype_case(name: str, make, needle: str, doc: str):
    @case(f"h5/tf2-dtype-{name}", fmt="tf2", verbs=("convert", "ls", "import"), needle=needle, names=TF2_H5)
    def build(d, ctx):
        return _tf2_with(d, ctx, make, dataset=GAMMA)
    build.__doc__ = doc


_dtype_case("compound", lambda f, n, a: f.create_dataset(n, (32,), np.dtype([("a", "<f4"), ("b", "<i4")])),
            "compound", "gamma a compound (struct) dataset.")
_dtype_case("vlen-string", lambda f, n, a: f.create_dataset(n, data=["x"] * 32, dtype=h5py.string_dtype()),
            "string", "gamma a variable-length string dataset.")
_dtype_case("fixed-string", lambda f, n, a: f.create_dataset(n, data=np.array([b"abcd"] * 32)),
            "string", "gamma a fixed-length string dataset.")
_dtype_case("vlen-float", lambda f, n, a: f.create_dataset(n, (32,), h5py.vlen_dtype(np.float32)),
            "variable-length", "gamma a variable-length float sequence per element.")
_dtype_case("reference", lambda f, n, a: f.create_dataset(n, (32,), h5py.ref_dtype),
            "reference", "gamma a dataset of object references.")
_dtype_case("array", lambda f, n, a: f.create_dataset(n, (8,), np.dtype(("<f4", (4,)))),
            "array", "gamma an array-typed dataset ((8,) of float32[4]).")


@case("h5/tf2-weight-name-not-utf8", fmt="tf2", verbs=("convert", "ls", "import"), needle="utf-8", names=TF2_H5)
def tf2_name_bytes(d, ctx):
    """A weight_names entry with bytes that are not UTF-8."""
    t = _tf2(d, ctx)
    with h5py.File(t.h5, "r+") as f:
        names = list(f["bert"].attrs["weight_names"])
        names[0] = b"tf_bert_for_pre_training/\xff\xfe:0"
        f["bert"].attrs["weight_names"] = np.array(names, dtype=h5py.string_dtype("ascii"))
    return t.done()


@case("h5/tf2-weight-name-absolute", fmt="tf2", verbs=("convert", "ls", "import"), needle="relative", names=TF2_H5)
def tf2_name_absolute(d, ctx):
    """A weight_names entry that is an absolute HDF5 path (leaves the layer's group)."""
    t = _tf2(d, ctx)
    with h5py.File(t.h5, "r+") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f["bert"].attrs["weight_names"]]
        names[0] = "/mlm___cls/" + names[0]
        f["bert"].attrs["weight_names"] = names
    return t.done()


# --------------------------------------------------------------------------- not a regular file

def _fifo_case(kind: str):
    opener, fmt, args, fname = CONTAINERS[kind]

    @case(f"h5/{kind}-fifo", fmt=fmt, args=args, verbs=("convert", "ls", "import"), needle="fifo", names=fname,
          timeout=5)
    def build(d, ctx):
        t = opener(d, ctx)
        t.done()
        fifo = t.entry if t.entry.is_file() else t.h5      # the archive, or the h5 in its directory
        fifo.unlink()
        os.mkfifo(fifo)
        return t.entry
    build.__doc__ = f"{kind}: the h5 file (or archive) a FIFO that nobody writes to: h5py.File blocked, before."


for _kind in CONTAINERS:
    _fifo_case(_kind)


# --------------------------------------------------------------------------- full disk

@case("h5/write-tf2-efbig", verbs=("convert",), to="tf2", fsize=100_000, needle="file too large", names=TF2_H5)
def write_tf2_efbig(d, ctx):
    """tf_model.h5 (211 KB) past a 100 KB file-size limit: a segfault after 450 lines of
    HDF5 errors, before."""
    return ctx.bases.copy("pt", d / "m")


@case("h5/write-tf2-sharded-efbig", verbs=("convert",), to="tf2", out_args=("--max-shard-size", "150000B"),
      fsize=60_000, needle="file too large", names="tf_model-0000")
def write_tf2_sharded_efbig(d, ctx):
    """An HF TF sharded export whose shards outgrow the file-size limit."""
    return ctx.bases.copy("pt", d / "m")


@case("h5/write-tf2-stream-efbig", verbs=("export",), stream=True, to="tf2", fsize=100_000,
      needle="file too large", names=TF2_H5)
def write_tf2_stream_efbig(d, ctx):
    """`export tf2` from an IR stream onto a full disk."""
    return ctx.bases.copy("stream", d / "model.irs")


@case("h5/write-keras-efbig", verbs=("convert",), to="keras", fsize=300_000, needle="file too large",
      names="model.h5")
def write_keras_efbig(d, ctx):
    """The Keras exporter's model.h5 (1 MB) past a 300 KB limit."""
    shutil.copytree(_base(ctx, "effnet-pt"), d / "m")
    return d / "m"


# --------------------------------------------------------------------------- truncation, corruption

CUTS = (0.0, 0.01, 0.1, 0.5, 0.9, 0.999)


def _truncate(h5: Path, fraction: float) -> None:
    data = h5.read_bytes()
    h5.write_bytes(data[:int(len(data) * fraction)] if fraction else b"")


def _flip(h5: Path, fraction: float) -> None:
    data = bytearray(h5.read_bytes())
    data[int(len(data) * fraction)] ^= 0x5A
    h5.write_bytes(bytes(data))


def _damage_case(kind: str, how: str, fraction: float, expect: str):
    opener, fmt, args, fname = CONTAINERS[kind]
    label = f"{fraction:g}".replace(".", "_")

    verbs = ("convert", "ls") if how == "truncated" else ("convert",)   # a flip is seen on reading data

    @case(f"h5/{kind}-{how}-{label}", fmt=fmt, args=args, verbs=verbs, names=fname, expect=expect)
    def build(d, ctx):
        t = opener(d, ctx)
        (_truncate if how == "truncated" else _flip)(t.h5, fraction)
        return t.done()
    build.__doc__ = f"{kind}: the h5 {how} at {fraction:.1%} of its length."


for _kind in CONTAINERS:
    for _cut in CUTS:
        _damage_case(_kind, "truncated", _cut, "refuse")
# Metadata sits at both ends of a file libhdf5 wrote (superblock, root group and headers first,
# then the name lists at the end); tensor data between. h5 has no checksums of its own.
FLIPS = (0.0, 0.0001, 0.001, 0.003, 0.01, 0.02, 0.05, 0.2, 0.5, 0.8, 0.95, 0.98, 0.99, 0.995, 0.999)
for _at in FLIPS:
    _damage_case("tf2", "flipped", _at, "clean")
for _at in FLIPS[::3]:      # a clean EfficientNet conversion costs more than a BERT one
    _damage_case("keras2", "flipped", _at, "clean")


def _member_span(archive: Path, member: str = "model.weights.h5") -> tuple[int, int]:
    """Where a stored member's bytes are in the zip: (start, size)."""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    with open(archive, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(f.read(4), "<u2")
    return info.header_offset + 30 + int(name_len) + int(extra_len), info.file_size


def _archive_damage_case(how: str, fraction: float):
    label = f"{fraction:g}".replace(".", "_")

    @case(f"h5/archive-zip-{how}-{label}", fmt="keras", args=CONFIG_ARGS, verbs=("convert", "ls"),
          names="model.keras")
    def build(d, ctx):
        t = _archive(d, ctx)
        path = t.done()
        if how == "truncated":
            _truncate(path, fraction)
        else:   # a byte of the stored model.weights.h5: the zip's CRC-32 covers it
            start, size = _member_span(path)
            data = bytearray(path.read_bytes())
            data[start + int(size * fraction)] ^= 0x5A
            path.write_bytes(bytes(data))
        return path
    build.__doc__ = (f"the .keras zip truncated at {fraction:.1%}" if how == "truncated" else
                     f"a byte of the stored model.weights.h5 at {fraction:.1%} of it flipped (tensor data "
                     "too: it converted silently, before)")


for _cut in (0.0, 0.1, 0.5, 0.9, 0.999):
    _archive_damage_case("truncated", _cut)
for _at in (0.0, 0.01, 0.3, 0.6, 0.9, 0.999):
    _archive_damage_case("member-flipped", _at)


@case("h5/tf2-rank-0-gamma", fmt="tf2", verbs=("convert", "ls", "import"), needle="layernorm", names=TF2_H5)
def tf2_rank0(d, ctx):
    """gamma a 0-d scalar where a (32,) vector belongs."""
    return _tf2_with(d, ctx, lambda f, n, a: f.create_dataset(n, data=np.float32(1)), dataset=GAMMA)


@case("h5/tf2-null-dataspace", fmt="tf2", verbs=("convert", "ls", "import"), needle="null dataspace", names=TF2_H5)
def tf2_null(d, ctx):
    """gamma a dataset with a null dataspace (no shape at all)."""
    return _tf2_with(d, ctx, lambda f, n, a: f.create_dataset(n, data=h5py.Empty("f4")), dataset=GAMMA)
