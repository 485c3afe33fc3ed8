"""The format graph the round-trip properties walk, read from the registries: every family
(models FAMILIES) with a tiny model of it, every format that writes it (EXPORTERS, each
read back by whichever importer detects the output), and the IR stream.

A family's model is drawn, not written by hand: zoo's tiny HF config at a drawn variant
(class, depth, tie, vocabulary size) is built once per process by transformers (the oracle)
and lifted by irconv, which gives the names, shapes, axes, config and tied aliases; the
tensor values are then drawn afresh for every example (random bit patterns of the drawn
dtype, NaN, -0.0, infinities and subnormals included). So a new family or format is covered
with no new test code: a family needs only its zoo.CONFIGS entry (which test_pt_families
needs anyway), a format only its registration.

What cannot be generated this way is declared in NOT_GENERATED, with the reason."""
from __future__ import annotations

import functools
import hashlib
import io
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import irconv
from irconv import EXPORTERS, FAMILIES, IMPORTERS
from irconv.ir import Checkpoint, DTypeError, IrconvError, MappingError, UsageError
from irconv.ir.dtypes import DTYPES
from irconv.ir.stream import read_stream, write_stream
from irconv.ir.tensor import from_array
from irconv.models.engine import ConfigFamily

# family -> why the property tests do not draw it (everything else in FAMILIES is drawn).
NOT_GENERATED: dict[str, str] = {}
# format -> why the walks do not take it (every other registered exporter is a hop).
NOT_WALKED: dict[str, str] = {
    "meta": "params.json maps back to the config only with the merged tensors' shapes "
            "(models/llama_meta.py), which kept_config does not have yet; tests/test_meta_llama.py "
            "checks the format both ways against a fixture written by torch alone",
}

# (format, family) -> why the walks do not take that format for that family.
NOT_WALKED_FOR: dict[tuple[str, str], str] = {
    ("kerashub", "bert"): "zoo's BERT computes the erf GELU, which keras-hub's BertBackbone (tanh GELU) "
                          "cannot, and every class but BertModel has heads a Backbone has no place for; "
                          "tests/test_kerashub.py converts BertModel presets both ways",
}

STREAM = "stream"              # the IR stream as a hop of its own (in-process; the CLI pipe in its own test)
FLOATS = ("F32", "F16", "BF16")
# Dtypes every format holds: a refusal of these is a failure, whatever the format.
HELD_EVERYWHERE = frozenset({"F32", "F16"})


def generated_families() -> list[str]:
    import zoo
    out = []
    for fam in FAMILIES:
        if fam.name in NOT_GENERATED:
            continue
        if fam.name not in zoo.CONFIGS:
            raise AssertionError(f"family {fam.name!r} has no tiny config in zoo.CONFIGS (add one, or a reason "
                                 "to formatgraph.NOT_GENERATED)")
        out.append(fam.name)
    return out


def writers(family: str) -> list[str]:
    """The formats that write `family` (their exporter has a view for it)."""
    fam = FAMILIES.get(family)
    out = []
    for exporter in EXPORTERS:
        if exporter.name in NOT_WALKED or (exporter.name, family) in NOT_WALKED_FOR:
            continue
        try:
            exporter.view_for(fam)
        except IrconvError:
            continue
        out.append(exporter.name)
    return out


# ------------------------------------------------------------------ templates (shapes, config)


@dataclass(frozen=True)
class Variant:
    family: str
    arch: str
    shallow: bool = False       # every repeat count 1 instead of zoo's
    untied: bool = False        # tie_word_embeddings false
    wider_vocab: bool = False   # vocab_size + 5


@dataclass
class Template:
    config: dict
    specs: list[tuple[str, str, tuple, tuple]]   # canonical name, dtype name, shape, axes
    aliases: dict[str, str]
    fixed: dict[str, np.ndarray]                 # derived buffers (computed from the config): kept as built


def tieable(family: str) -> bool:
    fam = FAMILIES.get(family)
    return any(p.tied_to and p.tie_key == "tie_word_embeddings" for b in fam.blocks for p in b.params)


def _overrides(variant: Variant) -> dict:
    import zoo
    fam = FAMILIES.get(variant.family)
    kwargs = dict(zoo.CONFIGS[variant.family][1])
    out: dict = {}
    if variant.shallow:
        for key in {key for block in fam.blocks for _, key in block.repeats}:
            head, _, leaf = key.rpartition(".")
            if not head and key in kwargs:
                out[key] = 1
            elif head and isinstance(kwargs.get(head), dict):
                out[head] = dict(out.get(head, kwargs[head]), **{leaf: 1})
    if variant.untied:
        out["tie_word_embeddings"] = False
    if variant.wider_vocab and "vocab_size" in kwargs:
        out["vocab_size"] = kwargs["vocab_size"] + 5
    return out


@functools.lru_cache(maxsize=None)
def template(variant: Variant) -> Template | None:
    """The variant's names, shapes, axes, config and ties, from a model transformers builds;
    None if transformers refuses that variant (a depth its class cannot have)."""
    import zoo
    try:
        model = zoo.make_pt(variant.family, variant.arch, seed=0, **_overrides(variant))
    except (ValueError, TypeError, AssertionError, IndexError, RuntimeError):
        return None
    where = Path(tempfile.mkdtemp(prefix="irconv-template-"))
    try:
        model.save_pretrained(where)
        ckpt = irconv.load(where)
        fam = FAMILIES.get(variant.family)
        derived = set(ckpt.source.get("derived", ())) | {
            name for name in ckpt.tensors if _param(fam, ckpt.config, name).derive is not None}
        specs = [(n, t.dtype.name, tuple(t.shape), tuple(t.axes)) for n, t in ckpt.tensors.items()]
        fixed = {n: ckpt.tensors[n].load().copy() for n in derived}
        return Template(dict(ckpt.config), specs, dict(ckpt.aliases), fixed)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _param(fam, config, canonical: str):
    """The descriptor Param a canonical name is an instance of (through the view's compiled
    canonical-name matcher, which the engine keeps private)."""
    if isinstance(fam, ConfigFamily):
        fam = fam.concrete(config)      # its table follows its config
    return fam.view("pt" if "pt" in fam.views else fam.views[0])._canonical.match(canonical)[0].param


# ------------------------------------------------------------------ values


SPECIALS = {  # bit patterns no arithmetic should touch: NaN with a payload, -0.0, -inf, the least subnormal
    "F32": (0x7FC00001, 0x80000000, 0xFF800000, 0x00000001),
    "F16": (0x7E01, 0x8000, 0xFC00, 0x0001),
    "BF16": (0x7FC1, 0x8000, 0xFF80, 0x0001),
}


def values(dtype: str, shape: tuple, rng: np.random.Generator, specials: bool) -> np.ndarray:
    d = DTYPES[dtype]
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == "BOOL":
        return rng.integers(0, 2, n).astype(bool).reshape(shape)
    raw = rng.integers(0, 256, n * d.itemsize, dtype=np.uint8)
    if specials and dtype in SPECIALS and n:
        bits = raw.view(np.uint32 if d.itemsize == 4 else np.uint16)
        for k, pattern in enumerate(SPECIALS[dtype][:n]):
            bits[k] = pattern
    return raw.view(d.numpy).reshape(shape)


def checkpoint(variant: Variant, dtype: str, seed: int, specials: bool) -> Checkpoint | None:
    """A Checkpoint of the variant's layout with fresh values: floating tensors in `dtype`,
    others (BatchNorm counters) in their own; derived buffers as the config computes them."""
    tpl = template(variant)
    if tpl is None:
        return None
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, dt, shape, axes in tpl.specs:
        if name in tpl.fixed:
            array = tpl.fixed[name]
        else:
            array = values(dtype if dt in FLOATS else dt, shape, rng, specials)
        tensors[name] = from_array(name, array, axes)
    return Checkpoint(variant.family, dict(tpl.config), tensors, dict(tpl.aliases), {"format": "drawn"})


# ------------------------------------------------------------------ hops


@dataclass(frozen=True)
class Hop:
    format: str
    bin: bool = False
    shards: int = 1         # > 1: --max-shard-size of about 1/shards of the model


def shard_size(ckpt: Checkpoint, shards: int) -> int | None:
    if shards <= 1:
        return None
    total = sum(t.spec.nbytes for t in ckpt.tensors.values())
    return max(1, total // shards)


def refusal(exc: IrconvError, ckpt: Checkpoint, hop: Hop) -> str | None:
    """Why `hop` may refuse `ckpt` (a documented refusal), or None if this error is a failure.
    A dtype: DTypeError naming it and --cast, never for F32/F16. An untied tensor that the
    format's view only knows tied (HF's TF heads always tie): MappingError naming it. Sharding
    a format that is one file (Keras h5, Meta's consolidated.00.pth): UsageError naming
    --max-shard-size. A class or model a view's framework has no counterpart of: MappingError
    naming the unnamed tensors, or the view's declared limit. A layout an IR stream cannot give
    in its order (keras-hub's stacked Mixtral experts): UsageError saying so."""
    message = str(exc)
    if isinstance(exc, UsageError) and hop.shards > 1 and "--max-shard-size" in message:
        return "option"
    if isinstance(exc, UsageError) and ckpt.ordered and "an IR stream cannot give in its order" in message:
        return "stream order"      # keras-hub's stacked Mixtral experts, from a stream
    dtypes = {t.dtype.name for t in ckpt.tensors.values()}
    if isinstance(exc, DTypeError):
        refused, _, fix = message.partition("--cast")
        named = dtypes & set(re.findall(r"[A-Z][A-Z0-9_]*", refused))
        if named and not named & HELD_EVERYWHERE and fix:
            return "dtype"
        return None
    if isinstance(exc, MappingError) and "have no name in the" in message:
        fam = FAMILIES.get(ckpt.family)
        named = [n for n in ckpt.tensors if repr(n) in message]
        if named and all(_param(fam, ckpt.config, n).tied_to for n in named) and ckpt.config.get(
                "tie_word_embeddings") is False:
            return "untied"
        # A class the framework has no counterpart of (HF has no TF ViTForMaskedImageModeling):
        # its head's tensors have no name in that view at all.
        view = fam.view(EXPORTERS.get(hop.format).view_for(fam)) if hop.format != STREAM else None
        if named and view is not None and all(view.raw_name(n, "") is None for n in named):
            return "unnamed"
    if isinstance(exc, MappingError) and "cannot hold this model" in message and hop.format != STREAM:
        # A view's declared limit (models/*.py view_limits): Meta's layout holds no other head_dim,
        # HF's TF Mistral no token classifier. The limit must say so for this config.
        fam = FAMILIES.get(ckpt.family)
        limit = fam.view_limits.get(EXPORTERS.get(hop.format).view_for(fam))
        if limit is not None and limit(ckpt.config):
            return "limit"
    return None


def write(ckpt: Checkpoint, hop: Hop, out: Path):
    """Write `ckpt` in `hop`; returns a function giving a fresh lazy reading of what was written
    (the importer found by detection, or the stream read again from its first byte)."""
    if hop.format == STREAM:
        buf = io.BytesIO()
        write_stream(ckpt, buf)
        data = buf.getvalue()
        return lambda: read_stream(io.BytesIO(data), "<test stream>")
    irconv.save(ckpt, out, hop.format, bin=hop.bin, max_shard_size=shard_size(ckpt, hop.shards))
    return lambda: irconv.load(out)


def kept_config(config: dict, family: str, fmt: str) -> dict:
    """The config fields a hop through `fmt` keeps: all of config.json; for a format that writes
    its view's own config file (Google's bert_config.json), the fields that file maps back."""
    if fmt == STREAM:
        return dict(config)
    fam = FAMILIES.get(family)
    view = EXPORTERS.get(fmt).view_for(fam)
    if view == "kerashub":            # config.json is the Backbone's: the HF fields it maps back
        from irconv.models import kerashub as kh
        hub = kh.hub_config(family)
        back = kh.hub_to_hf(hub, kh.hf_to_hub(hub, config), set())
        return {k: v for k, v in config.items() if k in back}
    view_config = fam.view_configs.get(view)
    if view_config is None or view_config.filename == "config.json":
        return dict(config)
    back = view_config.to_canonical(view_config.from_canonical(config))
    return {k: v for k, v in config.items() if k in back}


def assert_same(want: Checkpoint, got: Checkpoint, config: dict, where: str) -> None:
    """Same family, tensor names (in order), dtypes, shapes, axes and bytes, tied aliases, and
    every field of `config` (what the path so far keeps) with its value."""
    assert got.family == want.family, where
    assert list(got.tensors) == list(want.tensors), (where, sorted(set(got.tensors) ^ set(want.tensors)))
    for name, t in want.tensors.items():
        g = got.tensors[name]
        assert (g.dtype.name, tuple(g.shape), tuple(g.axes)) == (t.dtype.name, tuple(t.shape), tuple(t.axes)), \
            (where, name)
        a, b = t.load(), g.load()
        assert a.tobytes() == b.tobytes(), (where, name, "bytes differ")
    assert got.aliases == want.aliases, where
    got.close()            # a stream is verified to its trailer
    changed = {k: (v, got.config.get(k)) for k, v in config.items() if got.config.get(k) != v}
    assert not changed, (where, changed)


# ------------------------------------------------------------------ independent readers


def _digest(array: np.ndarray) -> tuple:
    array = np.ascontiguousarray(array)
    return tuple(array.shape), hashlib.sha1(array.reshape(-1).view(np.uint8).tobytes()).hexdigest()


def _safetensors(path: Path) -> dict:
    from safetensors.numpy import load_file
    try:
        return load_file(path)
    except (TypeError, ValueError):        # numpy has no bfloat16: read through torch
        from safetensors.torch import load_file as torch_load
        return {k: _torch_array(v) for k, v in torch_load(path).items()}


def _torch_array(t) -> np.ndarray:
    import torch
    if t.dtype in (torch.bfloat16,):
        return t.contiguous().view(torch.int16).numpy()
    return t.contiguous().numpy()


def _torch_bin(path: Path) -> dict:
    import torch
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: _torch_array(v) for k, v in state.items()}


def _h5(path: Path) -> dict:
    """Every dataset by its weight name (the path inside its layer group): a Keras layer that
    lists another's weights again (HF TF2 heads holding the embeddings) holds the same variable,
    whose copies must agree."""
    import h5py
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                array = obj[()] if obj.shape == () else obj[...]
                weight = name.split("/", 1)[-1]
                if weight in out and out[weight].tobytes() != array.tobytes():
                    # An HF TF shard stores datasets by their whole name, without a layer group:
                    # 'vocab_transform/bias:0' and 'vocab_projector/bias:0' are two weights.
                    weight = name
                assert weight not in out or out[weight].tobytes() == array.tobytes(), (path, name)
                out[weight] = array
        f.visititems(visit)
    return out


def _tf_checkpoint(index: Path) -> dict:
    import tensorflow as tf
    reader = tf.train.load_checkpoint(str(index)[: -len(".index")])
    return {k: np.asarray(reader.get_tensor(k)) for k in reader.get_variable_to_shape_map()
            if not k.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


def _msgpack(path: Path) -> dict:
    from flax.serialization import msgpack_restore
    out = {}

    def walk(tree, prefix):
        for k, v in tree.items():
            walk(v, f"{prefix}{k}/") if isinstance(v, dict) else out.__setitem__(prefix + k, np.asarray(v))
    walk(msgpack_restore(path.read_bytes()), "")
    return out


# file name pattern -> the framework's own reader: {stored name: array}
INDEPENDENT = {"*.safetensors": _safetensors, "*.bin": _torch_bin, "*.h5": _h5, "*.index": _tf_checkpoint,
               "*.msgpack": _msgpack}


def read_independently(out: Path) -> tuple[set[str], Counter]:
    """Which readers opened `out`'s weights files, and the multiset of (shape, bytes digest)
    of every array they found."""
    kinds, found = set(), Counter()
    for pattern, reader in INDEPENDENT.items():
        for path in sorted(out.glob(pattern)):
            kinds.add(pattern)
            for array in reader(path).values():
                found[_digest(array)] += 1
    return kinds, found


def irconv_raw(out: Path, fmt: str) -> Counter:
    """The same multiset from irconv's own reading of the stored tensors (before any view)."""
    importer = IMPORTERS.get(fmt)
    return Counter(_digest(t.load()) for t in importer.raw(out))


def assert_read_independently(out: Path, ckpt_in: Checkpoint) -> set[str]:
    """Every array a framework reader finds in `out` is one irconv reads there, and each one
    irconv reads is found: both sides decode the same stored bytes. Returns the reader kinds."""
    kinds, found = read_independently(out)
    assert kinds, f"no file in {sorted(p.name for p in out.iterdir())} has an independent reader"
    fmt = irconv.detect_format(out)
    assert found == irconv_raw(out, fmt), (out, fmt)
    return kinds


# ------------------------------------------------------------------ a walk


def _write_or_refuse(source, hop: Hop, out: Path, k: int):
    """(reread, hop written, None), or (None, hop, why) for a documented refusal, which must
    leave nothing at `out`; an option the format does not take (sharding one Keras file) is
    refused and the hop written without it."""
    current = source()
    try:
        return write(current, hop, out), hop, None
    except IrconvError as exc:
        why = refusal(exc, current, hop)
        assert why, f"hop {k} {hop} failed: {type(exc).__name__}: {exc}"
        assert not out.exists(), f"hop {k} {hop} refused ({why}) but wrote {out}"
    if why == "option":
        return _write_or_refuse(source, Hop(hop.format, hop.bin), out, k)
    return None, hop, why


def as_read_from(want: Checkpoint, got: Checkpoint, hop: Hop) -> Checkpoint:
    """What the walk expects from here on. A keras-hub decoder Backbone computes logits with its
    embeddings and a preset names no HF class, so a bare decoder (GemmaModel) of a family that
    ties its LM head comes back from kerashub as the model it computes: its LM head tied (the
    alias, and nothing else, is new; the class is its task class). Anything else stays as drawn."""
    if hop.format == "kerashub":
        want = kept_by_preset(want)
    extra = {a: t for a, t in got.aliases.items() if a not in want.aliases}
    if hop.format != "kerashub" or not extra or got.aliases != {**want.aliases, **extra}:
        return want
    fam = FAMILIES.get(want.family)
    if all(a not in want.tensors and _param(fam, want.config, a).tied_to for a in extra):
        return replace(want, aliases=dict(got.aliases),
                       config={**want.config, "architectures": got.config.get("architectures")})
    return want


def kept_by_preset(want: Checkpoint) -> Checkpoint:
    """`want` as a preset keeps it: each tensor through its kerashub spelling's stored form and
    back, which is itself where the view's reshape is exact, and zeroes what the view declares
    it drops (BART's position rows 0-1, which HF never reads: kh.LeadingRows)."""
    from irconv.models import kerashub as kh
    fam = FAMILIES.get(want.family)
    if kh.VIEW not in fam.views:
        return want
    tensors = dict(want.tensors)
    for name, t in want.tensors.items():
        spelling = _param(fam, want.config, name).spellings.get(kh.VIEW)
        transform = kh.stored_transform(spelling, want.config) if spelling else None
        if isinstance(transform, kh.LeadingRows):
            tensors[name] = t.transformed(transform.inverse()).transformed(transform)
    return replace(want, tensors=tensors)


# (format read from, hop) edges whose output a framework reader has opened in this process.
READ_EDGES: set[tuple[str, Hop]] = set()


def walk(ckpt: Checkpoint, hops: list[Hop], root: Path, read_all: bool = False) -> tuple[list[str], set[str]]:
    """Write `ckpt` through every hop in turn, each hop reading the previous one's output, and
    check after each that the model read back is `ckpt` (bit for bit, names, axes, ties, the
    config fields the path keeps); framework readers check that they find the bytes irconv reads
    in each edge's first output of the process (every output with `read_all`). A documented
    refusal (see refusal()) must leave nothing behind; the walk then goes on from the last
    output. Returns what each hop did (for the failure report) and the readers used."""
    done, readers, config, source, came_from = [], set(), dict(ckpt.config), lambda: ckpt, "drawn"
    for k, hop in enumerate(hops):
        out = root / f"{k}-{hop.format}"
        reread, hop, why = _write_or_refuse(source, hop, out, k)
        if reread is None:
            done.append(f"{hop} refused: {why}")
            continue
        config = kept_config(config, ckpt.family, hop.format)
        ckpt = as_read_from(ckpt, reread(), hop)
        if "architectures" in config:
            config["architectures"] = ckpt.config.get("architectures")
        assert_same(ckpt, reread(), config, f"hop {k} {hop}")
        if hop.format != STREAM and (read_all or (came_from, hop) not in READ_EDGES):
            readers |= assert_read_independently(out, ckpt)
            READ_EDGES.add((came_from, hop))
        done.append(str(hop))
        source, came_from = reread, hop.format
    return done, readers
