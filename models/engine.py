"""The descriptor engine: families are data, this module turns them into name mappings.

A family is a list of Blocks; a Block is a list of Params (one canonical tensor each) with
a canonical name prefix and, per view, the raw prefix; a Param gives its canonical name and
axes and, per view, the raw name and the axes that view stores. A view is a naming
convention ("pt" = HF PyTorch, "tf2" = HF TF2/Keras, "tf1" = the original TF release, ...).

This module holds the declarations (Param, Block, Family, the spelling styles), the matcher
every template compiles to, and the checks of a config against the shapes; views.py maps raw
names to canonical ones and back with them, and before any byte moves reports, in one error,
every raw tensor it could not place and every required canonical tensor that is missing.
Layout changes are never written per tensor: the view's axes and the canonical axes name
them, ir.layout computes the move.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from ..ir.checkpoint import Checkpoint
from ..ir.errors import MappingError, UsageError
from ..ir.layout import DENSE_PT, DENSE_TF, UNIT, Axes, Transform
from ..ir.tensor import TensorSpec

if TYPE_CHECKING:
    from .views import FamilyView

# --------------------------------------------------------------------------- spelling styles


@dataclass(frozen=True)
class Style:
    """How a framework spells the parameters of its common modules."""
    sep: str
    kernel: str
    kernel_axes: Axes
    bias: str
    norm_weight: str
    norm_bias: str
    embedding: str


PT_STYLE = Style(".", "weight", DENSE_PT, "bias", "weight", "bias", "weight")
TF_STYLE = Style("/", "kernel", DENSE_TF, "bias", "gamma", "beta", "embeddings")
# TF1 code (google-research/bert) made embedding tables plain variables: no leaf name.
TF1_STYLE = Style("/", "kernel", DENSE_TF, "bias", "gamma", "beta", "")
# HF Flax (flax_model.msgpack): linen Dense kernels (in, out), LayerNorm scale/bias, nn.Embed.
FLAX_STYLE = Style("/", "kernel", DENSE_TF, "bias", "scale", "bias", "embedding")

# Every view a family may declare, and the style its module helpers use.
VIEW_STYLES: dict[str, Style] = {"pt": PT_STYLE, "tf2": TF_STYLE, "tf1": TF1_STYLE, "fairseq": PT_STYLE, "keras": TF_STYLE,
                                   # research releases' PyTorch code ("orig"), DALL-E's module tree
                                   "orig": PT_STYLE, "dalle": PT_STYLE,
                                   # the original Meta Llama release (consolidated.NN.pth)
                                   "meta": PT_STYLE, "flax": FLAX_STYLE}


@dataclass(frozen=True)
class Spelling:
    template: str            # raw name relative to the block's raw prefix; may use {i}
    axes: Axes | None = None  # storage axes in this view; None = the canonical axes
    # For a tied param: whether the view stores a copy under this name while tied (HF TF2's
    # MLM heads list the tied matrix again) or has the name only when untied (TF T5 makes
    # its lm_head layer only when tie_word_embeddings is false).
    tied_copy: bool = True
    # The axis (a name of `axes`) a model-parallel release splits this tensor along across its
    # shard files (Meta's consolidated.NN.pth: column-parallel 'out', row-parallel 'in'); None
    # = every shard holds all of it (norms), which the importer checks rather than trusts.
    shard: str | None = None
    # config -> the transform from the stored tensor (in canonical axes) to the canonical one,
    # where the view orders its values otherwise (Meta's interleaved rotary q/k rows); its
    # inverse writes the view's order back.
    transform: Callable[[dict], Transform] | None = None


@dataclass(frozen=True)
class Param:
    name: str                              # canonical, relative to the block
    axes: Axes                             # canonical axes (HF PyTorch storage order)
    spellings: Mapping[str, Spelling]
    tied_to: str | None = None             # canonical name it shares when the model ties it
    tie_key: str | None = "tie_word_embeddings"   # config flag deciding the tie (default
                                                  # true); None = always tied; a list flag
                                                  # holds one flag per index (tie_projs)
    # A non-learned buffer that some views store and others do not (TransfoXL's PyTorch
    # pos_emb.inv_freq): config -> array, computed on import where the view has no name for it
    # and dropped on export to such a view.
    derive: Callable[[dict], object] | None = None
    # A config flag (default true) where false means transformers' from_pretrained does not
    # re-tie this name to its target (BART's stacks' embed_tokens with tie_word_embeddings
    # false: the name is missing, and re-initialising it overwrote the shared matrix): a view
    # then stores it as a tensor of its own, even in a file that drops tied copies.
    stored_untied: str | None = None


def _tf_path(pt_path: str, index_joint: str) -> str:
    parts: list[str] = []
    for part in pt_path.split("."):
        if parts and (part.isdigit() or re.fullmatch(r"\{\w+\}", part)):
            parts[-1] += index_joint + part
        else:
            parts.append(part)
    return "/".join(parts)


def hf_tf_path(pt_path: str) -> str:
    """'encoder.layer.{i}.attention' -> 'encoder/layer_._{i}/attention' (HF TF2)."""
    return _tf_path(pt_path, "_._")


def google_tf1_path(pt_path: str) -> str:
    """'encoder.layer.{i}.attention' -> 'encoder/layer_{i}/attention' (TF1 releases)."""
    return _tf_path(pt_path, "_")


# HF's TF2 classes are written so that transformers' TF->PT name rule (FORMATS.md §1.4:
# '/' -> '.', 'layer_._3' -> 'layer.3', kernel/gamma/embeddings -> weight, beta -> bias)
# maps every TF weight onto its PyTorch twin; HF's PyTorch BERT was in turn named after
# google-research/bert's TF1 scopes ('layer_3'). So "tf2" and "tf1" spellings follow from
# the "pt" one and the module kind; descriptors spell only the exceptions ('mlm___cls'
# scopes, 'output_weights'). A family only claims the views it declares (and tests).
# HF's Flax modules are named after the PyTorch ones too (transformers' PT<->Flax rule only
# renames the leaf: weight -> kernel/scale/embedding), with '/' between all path parts
# ('encoder/layer/3/attention').
DERIVED_VIEWS = {"tf2": ("pt", hf_tf_path), "tf1": ("pt", google_tf1_path), "flax": ("pt", lambda p: p.replace(".", "/"))}


def _with_derived(views: dict) -> dict:
    views = dict(views)
    for view, (base, derive) in DERIVED_VIEWS.items():
        if view not in views and isinstance(views.get(base), str):
            views[view] = derive(views[base])
    return {v: p for v, p in views.items() if p is not None}


def _as_spelling(value) -> Spelling:
    if isinstance(value, Spelling):
        return value
    if isinstance(value, tuple):
        return Spelling(value[0], tuple(value[1]))
    return Spelling(value)


def param(name: str, axes: Axes, *, tied_to: str | None = None, tie_key: str | None = "tie_word_embeddings",
          derive: Callable[[dict], object] | None = None, stored_untied: str | None = None,
          **views) -> list[Param]:
    """One canonical tensor: `view="raw.name"` or `view=("raw/name", axes)` per view."""
    return [Param(name, tuple(axes), {v: _as_spelling(s) for v, s in views.items()}, tied_to, tie_key, derive,
                  stored_untied)]


def _module(name: str, leaves, **views) -> list[Param]:
    """Params of one module: `leaves` is [(canonical leaf, canonical axes, style -> (leaf, axes))]."""
    out = []
    for leaf, axes, spell in leaves:
        spellings = {}
        for view, path in _with_derived(views).items():
            style = VIEW_STYLES[view]
            raw_leaf, raw_axes = spell(style)
            raw_name = style.sep.join(p for p in (path, raw_leaf) if p)
            spellings[view] = Spelling(raw_name, None if raw_axes == axes else raw_axes)
        out.append(Param(f"{name}.{leaf}", axes, spellings))
    return out


def linear(name: str, bias: bool = True, **views) -> list[Param]:
    """A dense layer: PyTorch (out, in) weight, TF (in, out) kernel, plus bias."""
    leaves = [("weight", ("out", "in"), lambda s: (s.kernel, s.kernel_axes))]
    if bias:
        leaves.append(("bias", ("out",), lambda s: (s.bias, ("out",))))
    return _module(name, leaves, **views)


def with_view(block: "Block", view: str, prefix: str, spellings: Mapping[str, object],
              derive: Mapping[str, Callable[[dict], object]] | None = None) -> "Block":
    """`block` with one more view: its raw prefix and each param's spelling there (by the
    param's canonical name in the block); `derive` gives params that view does not store
    (computed on import, like fairseq RoBERTa's absent token_type embeddings)."""
    derive = derive or {}
    params = []
    for p in block.params:
        extra = {view: _as_spelling(spellings[p.name])} if p.name in spellings else {}
        params.append(replace(p, spellings={**p.spellings, **extra},
                              derive=derive.get(p.name, p.derive)))
    unknown = (set(spellings) | set(derive)) - {p.name for p in block.params}
    if unknown:
        raise ValueError(f"block {block.name!r} has no params {sorted(unknown)}")
    return replace(block, params=tuple(params), prefixes={**block.prefixes, view: prefix})


def nested(block: "Block", name: str, prefixes: Mapping[str, str | None], spell_as: Mapping[str, str] | None = None,
           repeat_keys: Mapping[str, str] | None = None, role: str | None = "same") -> "Block":
    """`block` as a part of a bigger model (ALIGN's text tower is BERT's encoder, FLAVA's
    towers are ViT-like encoders): canonical name `name.<block name>` (ties re-pointed there
    too), each view's raw prefix `prefixes[view]` + the block's own (a None prefix: that view
    lacks the block). A view in `spell_as` that the block does not spell itself borrows another
    view's spelling: ALIGN's Keras checkpoint holds a TFBertModel, so its "keras" names are
    BERT's "tf2" ones; FLAVA's original names are HF's wherever they do not differ.
    `repeat_keys` renames the config keys of the block's counts ('num_hidden_layers' ->
    'text_config.num_hidden_layers'); `role` replaces the block's role unless "same". The result
    is never under a base-model prefix; its views are those `prefixes` gives a prefix."""
    spell_as, repeat_keys = spell_as or {}, repeat_keys or {}

    def source(view: str, spelled) -> str | None:
        return view if view in spelled else spell_as.get(view) if spell_as.get(view) in spelled else None

    own = {}
    for view, outer in prefixes.items():
        inner_view = source(view, block.prefixes)
        if outer is not None and inner_view is not None:
            sep = VIEW_STYLES[view].sep
            own[view] = sep.join(part for part in (outer.rstrip(sep), block.prefixes[inner_view]) if part)
    params = []
    for p in block.params:
        spellings = {v: p.spellings[source(v, p.spellings)] for v in own if source(v, p.spellings)}
        params.append(replace(p, spellings=spellings, tied_to=p.tied_to and f"{name}.{p.tied_to}"))
    repeats = tuple((f, repeat_keys.get(k, k)) for f, k in block.repeats)
    return Block(".".join(part for part in (name, block.name) if part), tuple(params), own, repeats,
                 block.role if role == "same" else role, False, first=block.first)


def conv1d(name: str, **views) -> list[Param]:
    """HF's Conv1D (GPT-2, OpenAI GPT): a dense layer whose PyTorch weight is already stored
    (in, out), as TF stores it, so its canonical axes are (in, out) and nothing moves. TF
    names that weight 'weight', not 'kernel', and keeps the bias as a (1, out) matrix."""
    return _module(name, [("weight", ("in", "out"), lambda s: ("kernel", ("out", "in")) if s is FLAX_STYLE
                           else ("weight", ("in", "out"))),
                          ("bias", ("out",), lambda s: ("bias", (UNIT, "out") if s is TF_STYLE else ("out",)))],
                   **views)


def norm(name: str, **views) -> list[Param]:
    """A LayerNorm: weight/bias in PyTorch, gamma/beta in TF."""
    return _module(name, [("weight", ("hidden",), lambda s: (s.norm_weight, ("hidden",))),
                          ("bias", ("hidden",), lambda s: (s.norm_bias, ("hidden",)))], **views)


def embedding(name: str, tf_leaf: str | None = None, **views) -> list[Param]:
    """An embedding table (rows, hidden), same layout everywhere. `tf_leaf` overrides TF's
    leaf name ('weight' for HF TF word embeddings, which are not a keras Embedding)."""
    return _module(name, [("weight", ("rows", "hidden"),
                           lambda s: ((tf_leaf or s.embedding) if s is TF_STYLE else s.embedding,
                                      ("rows", "hidden")))], **views)


@dataclass(frozen=True)
class Fused:
    """Params of a block that one view stores stacked in a single tensor (phi3's qkv_proj holds
    the q, k and v rows): read, the stored tensor is split into them (ir.layout.Split), written,
    they are concatenated back, so other views name them apart."""
    template: str                  # the stored name, relative to the block's raw prefix
    parts: tuple[str, ...]         # the params' names in the block, in storage order
    axis: str                      # the canonical axis they are stacked along
    sizes: Callable[[dict, int], tuple[int, ...]]   # (config, stored extent) -> each part's extent
    # The stored tensor's axes, where they are not the parts' canonical ones (a TF Conv1D
    # bias is (1, out), a Flax Conv1D kernel (out, in)).
    axes: Axes | None = None


def fused(template: str, parts: Iterable[str], axis: str, sizes: Callable[[dict, int], tuple[int, ...]],
          axes: Axes | None = None) -> Fused:
    return Fused(template, tuple(parts), axis, sizes, axes)


@dataclass(frozen=True)
class Block:
    """Params sharing a canonical prefix, repeated over the indices in `repeats`: pairs of
    (template field, config key of its count), e.g. (("i", "num_hidden_layers"),)."""
    name: str
    params: tuple[Param, ...]
    prefixes: Mapping[str, str]         # view -> raw prefix template
    repeats: tuple[tuple[str, str], ...] = ()
    role: str | None = None             # None = required; else an optional part (a head)
    base: bool = True                   # under the family's base-model prefix ("bert.")
    # view -> canonical block names this block's framework layer lists again (HF TF2 heads
    # hold the embeddings layer, so the h5 stores those weights a second time).
    lists_also: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # view -> Keras layer (h5 group) holding the block, where it is not the first component
    # of its raw names (TF BART creates the shared embeddings as 'model.shared/...', in the
    # 'model' layer).
    h5_layer: Mapping[str, str] = field(default_factory=dict)
    # view -> name scope the TF class creates the block's variables under instead of the
    # Keras model name (the first component of the stored name, which HF's loader drops
    # but its shard names keep: 'model.shared/model.shared/embeddings:0'); '' = none.
    h5_scope: Mapping[str, str] = field(default_factory=dict)
    # template field -> its first index, where names count from 1 (DALL-E's and HF's
    # 'block_1', 'block_2' ...) rather than 0; the config key still holds the count.
    first: Mapping[str, int] = field(default_factory=dict)
    # view -> params that view stores stacked in one tensor (see Fused)
    fused: Mapping[str, tuple[Fused, ...]] = field(default_factory=dict)

    @staticmethod
    def of(name: str, params: Iterable[Iterable[Param]], *, repeat: str | tuple = (), role=None,
           base=True, lists_also=None, h5_layer=None, h5_scope=None, first=None, fused=None, **prefixes) -> "Block":
        """`repeat="num_hidden_layers"` is short for repeats=(("i", "num_hidden_layers"),)."""
        repeats = (("i", repeat),) if isinstance(repeat, str) else tuple(repeat)
        return Block(name, tuple(p for group in params for p in group), _with_derived(prefixes),
                     repeats, role, base, lists_also or {}, h5_layer or {}, h5_scope or {}, first or {},
                     {view: tuple(f) for view, f in (fused or {}).items()})

    def fused_parts(self, view: str) -> set[str]:
        return {part for f in self.fused.get(view, ()) for part in f.parts}

    def indices(self, counts: Mapping[str, int]) -> list[dict[str, int]]:
        """Every index assignment, outermost first ([{}] for a block that does not repeat)."""
        out: list[dict[str, int]] = [{}]
        for field_name, key in self.repeats:
            start = self.first.get(field_name, 0)
            out = [dict(d, **{field_name: n}) for d in out for n in range(start, start + counts.get(key, 0))]
        return out


# --------------------------------------------------------------------------- families


def config_value(config: dict, key: str):
    """config[key]; a dotted key reads a nested config ('text_config.num_hidden_layers' in a
    composite model such as ALIGN, whose towers keep their own configs)."""
    value = config
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value



INFERRED = "(as inferred)"     # Family.defaults: the value infer_config sets is the stated default


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def repeat_count_problems(fam: "Family", config: dict, counts: Mapping[str, int]) -> list[str]:
    """Where the config's counts of repeated blocks (num_hidden_layers ...) are not counts, or
    disagree with `counts`, what the tensors hold (1 + their largest index). Checked before any
    name table is built from a count: a config cannot make irconv list (or wait for) more
    layers than the file holds."""
    problems = []
    for key in sorted({key for block in fam.blocks for _, key in block.repeats}):
        want = config_value(config, key)
        if want is None:
            continue
        if not _is_count(want):
            problems.append(f"config.json {key}={want!r} is not a count (a non-negative integer)")
            continue
        n = counts.get(key)
        if n is None:
            continue
        if n > want:
            problems.append(f"tensors for index {n - 1} of {key!r} but config.json says {key}={want}")
        elif want > n:
            problems.append(f"config.json says {key}={want}, but the tensors hold {n}")
    return problems


# Config fields that tensor shapes decide in every family that has them (a width is a
# tensor's extent): a given config must agree with the tensors on these. Other fields an
# infer_config fills (head counts, a fallback for a tensor the file lacks) are not read off
# the shapes, so a config is never held to them. Counts of repeated blocks are checked
# against the tensors' indices in to_canonical.
SHAPE_FIELDS = frozenset({"vocab_size", "hidden_size", "d_model", "n_embd", "emb_dim", "dim", "embedding_size",
                          "intermediate_size", "d_ff", "d_inner", "dff", "hidden_dim", "n_inner",
                          "type_vocab_size", "max_position_embeddings", "n_positions", "projection_dim"})


def config_contradictions(fam: "Family", config: dict, specs: dict, counts: dict) -> list[str]:
    """Where a given config disagrees with what the tensors decide: each field the family's
    infer_config reads off the shapes must have the same type and value in the config
    (hidden_size 64 beside 32-wide tensors, num_hidden_layers "x"). Fields a config leaves
    out are not contradictions (transformers fills its defaults)."""
    out = [f"config.json {problem}" for problem in count_field_problems(config)]
    try:
        inferred, _ = fam.infer_config(specs, counts)
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
        return out         # a tensor set infer_config does not cover (a headless variant): nothing to compare

    def walk(given: dict, decided: dict, prefix: str) -> None:
        for key, want in decided.items():
            have = given.get(key)
            if have is None:
                continue       # left out (or null): transformers' default, not a contradiction
            if isinstance(want, dict):
                if isinstance(have, dict):
                    walk(have, want, f"{prefix}{key}.")
                else:
                    out.append(f"config.json {prefix}{key}={have!r} is not an object")
            elif key not in SHAPE_FIELDS or isinstance(want, bool) or not isinstance(want, int):
                continue
            elif not _is_count(have):
                out.append(f"config.json {prefix}{key}={have!r} is not a non-negative integer")
            elif have != want:
                out.append(f"config.json says {prefix}{key}={have}, the tensors say {want}")

    walk(config, inferred, "")
    out += [f"config.json {p}" for p in head_split_problems(fam, config, inferred)]
    if fam.from_shapes is not None:
        try:
            fam.from_shapes(config, specs)      # the head counts a config gives must fit the projections
        except ValueError as exc:
            out.append(f"config.json: {exc}")
    return list(dict.fromkeys(out))


def head_split_problems(fam: "Family", config: dict, widths: dict | None = None) -> list[str]:
    """Where a head count does not divide the width its family's HF classes split into equal
    heads (Family.head_widths: BertConfig's num_attention_heads=5 beside hidden_size 768):
    transformers raises building such a model, or builds one whose projections the tensors do
    not fit. The width is the config's, else `widths`' (what the tensors decide, where the
    config leaves it out); a field that is absent or not a count is not judged here."""
    out = []
    for heads_key, width_key in fam.head_widths.items():
        heads, width = config_value(config, heads_key), config_value(config, width_key)
        if width is None and widths is not None:
            width = config_value(widths, width_key)
        if _is_count(heads) and _is_count(width) and (heads == 0 or width % heads):
            out.append(f"{heads_key}={heads} does not divide {width_key}={width} into equal heads")
    return out


# Field names that hold a count or a size in every HF config (num_attention_heads, n_layer,
# hidden_size, d_model, ...): given as anything but a non-negative integer (or null), they
# would make a model that cannot be built, or silently another one.
_COUNT_FIELD = re.compile(r"^(num_|n_)(?!.*(_prob|_eps|ratio)).*|.*_(heads|layers|size|dim|groups)$|^d_(model|ff|kv|inner|head)$")


def bad_counts(config: dict) -> list[tuple[str, object]]:
    """(dotted key, value) of the count and size fields that are not a non-negative integer."""
    return [(key, value) for key, value in _count_fields(config) if not _is_count(value)]


def count_field_problems(config: dict) -> list[str]:
    return [f"{key}={value!r} is not a non-negative integer" for key, value in bad_counts(config)]


def _count_fields(config: dict, prefix: str = ""):
    for key, value in config.items():
        if isinstance(value, dict):
            yield from _count_fields(value, f"{prefix}{key}.")
        elif (isinstance(key, str) and _COUNT_FIELD.match(key) and value is not None
              and not isinstance(value, (list, tuple))):
            yield f"{prefix}{key}", value


@dataclass(frozen=True)
class ViewConfig:
    """A view's own config file (bert_config.json for the TF1 release) and its mapping to
    and from the canonical HF config."""
    filename: str
    to_canonical: Callable[[dict], dict]
    from_canonical: Callable[[dict], dict]
    # For formats whose config names an architecture (fairseq): whether this family is it,
    # given the config and the raw tensor shapes, and the architecture names it claims.
    matches: Callable[[dict, dict], bool] = lambda config, shapes: False
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Part:
    """Canonical tensors under `prefix.` that a view without names for them takes from a second
    file: the original FLAVA checkpoint holds no image codebook, which is DALL-E's encoder,
    released on its own. `--with NAME=PATH` reads PATH as family `family` (detected like any
    input) and merges its tensors under `prefix.` and its config under `config_key`."""
    name: str                     # the NAME of --with NAME=PATH
    family: str                   # registry name of the part's own family
    prefix: str                   # canonical prefix of its tensors in the whole model
    config_key: str               # the whole config's key holding the part's config
    config_keys: tuple[str, ...]  # the part config's fields its tensors decide (a given config must agree)
    flag: str | None = None       # config flag saying whether the model has the part at all
    what: str = ""                # what file to pass, for messages


@dataclass
class Family:
    name: str
    model_types: tuple[str, ...]          # config.json model_type values
    declared_views: tuple[str, ...]       # the views this family claims (each tested)
    blocks: tuple[Block, ...]
    base_prefix: Mapping[str, str]        # view -> prefix of the base model when heads exist
    architectures: Mapping[str, frozenset[str]]   # HF class -> roles it has
    infer_config: Callable[[dict[str, TensorSpec], dict[str, int]], tuple[dict, list[str]]]
    ignore: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # view -> regexes
    # view -> architecture -> base prefix, where a class differs from base_prefix: HF PyTorch
    # BertModel keys have no 'bert.', DPR's three classes each nest the encoder differently.
    arch_prefixes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    view_configs: Mapping[str, ViewConfig] = field(default_factory=dict)
    description: str = ""
    # view -> (regex, twin template): raw names that are copies of another tensor of the same
    # file (the original FLAVA release saves each tower's embeddings twice). A match whose twin
    # the file holds is dropped, listed by `ls` as a copy, and counted once by --check-sum.
    duplicates: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # Canonical tensors that some views take from a second file (see Part).
    parts: tuple["Part", ...] = ()
    # Config fields that change what the model computes and that no tensor decides, for a
    # file that comes without a config (importers/config.py settles them): `required` must be
    # given (--config, --set; head counts leave no trace in fused projections), `defaults` are
    # stated values taken only with --accept-defaults (INFERRED: the value infer_config sets).
    # Dotted keys name a tower's config ('text_config.num_attention_heads').
    required: tuple[str, ...] = ()
    # class -> fields its computation needs beyond `required` (a decoder's sequence classifier
    # reads pad_token_id to find each row's last token); a stated default of the family wins.
    required_for: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    defaults: Mapping[str, object] = field(default_factory=dict)
    # config -> config with the fields that follow from others recomputed (EfficientNet's
    # depthwise_padding from image_size), run when --set or --accept-defaults changed a field.
    complete: Callable[[dict], dict] | None = None
    # role -> the role it stands in for when naming the class: another spelling of the same
    # head (DeBERTa-v2's original MLM head, 'lm', is DebertaV2ForMaskedLM's as the legacy 'mlm').
    role_aliases: Mapping[str, str] = field(default_factory=dict)
    # (config, tensor specs) -> config with the fields the shapes decide once a --set field is
    # known (a decoder's head_dim and num_key_value_heads follow from num_attention_heads and
    # the q/k projections' rows); raises ValueError where the given value does not fit them.
    from_shapes: Callable[[dict, dict[str, TensorSpec]], dict] | None = None
    # What the family's HF config class assumes for tie_word_embeddings when a config.json
    # leaves it out: True in PretrainedConfig, False in LlamaConfig and its kin (whose saved
    # configs then name it only when true).
    tie_default: bool = True
    # view -> config -> why that view's framework class would compute another model (None: it
    # would not); export to the view is then refused. HF's TF Mistral ignores config.head_dim.
    view_limits: Mapping[str, Callable[[dict], str | None]] = field(default_factory=dict)
    # heads field -> the width field the family's HF classes split into that many equal heads
    # (num_attention_heads -> hidden_size): a head count that does not divide it is refused
    # (head_split_problems), from a file's config, a stream's or --set alike. Families whose
    # head size is a field of its own (T5's d_kv) or follows from the projections (a decoder's
    # from_shapes) leave it out.
    head_widths: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self._views: dict[str, FamilyView] = {}
        if "flax" in self.declared_views:
            # Flax's base-model prefixes are PyTorch's ('bert/' for 'bert.'), unless spelled.
            flax = lambda p: p.replace(".", "/")
            self.base_prefix = {**self.base_prefix, "flax": self.base_prefix.get("flax", flax(self.base_prefix.get("pt", "")))}
            if "pt" in self.arch_prefixes and "flax" not in self.arch_prefixes:
                self.arch_prefixes = {**self.arch_prefixes, "flax": {a: flax(p) for a, p in self.arch_prefixes["pt"].items()}}

    def required_fields(self, architectures) -> tuple[str, ...]:
        """`required`, plus what the classes named in `architectures` need (required_for)."""
        extra = [k for arch in architectures or () for k in self.required_for.get(arch, ())
                 if k not in self.defaults and k not in self.required]
        return self.required + tuple(dict.fromkeys(extra))

    @property
    def views(self) -> list[str]:
        return list(self.declared_views)

    def unspelled(self, view: str) -> list[str]:
        """Params the view cannot name. Only tied params may be unspelled: the view then
        always ties them (HF TF2 heads reuse the embedding matrix, they store no decoder);
        and derived buffers, which the view then recomputes from the config. An optional block
        (a role) may be absent from a view whose framework never has it (fairseq RoBERTa has
        no pooler): that view then cannot hold a model with it."""
        missing = []
        for block in self.blocks:
            if view not in block.prefixes:
                if not block.role:
                    missing.append(f"block {block.name!r}")
                continue
            stacked = block.fused_parts(view)
            missing += [f"{block.name}.{p.name}" for p in block.params if view not in p.spellings
                        and p.tied_to is None and p.derive is None and p.name not in stacked]
        return missing

    def view(self, name: str) -> "FamilyView":
        if name not in self.views:
            raise UsageError(f"family {self.name!r} has no {name!r} view; it has {', '.join(self.views)}")
        if name not in self._views:
            from .views import FamilyView       # the mapping (views.py) builds on this module
            self._views[name] = FamilyView(self, name)
        return self._views[name]

    def roles(self) -> list[str]:
        return sorted({b.role for b in self.blocks if b.role})

    def canonical_problems(self, config: dict, specs: Mapping[str, TensorSpec]) -> list[str]:
        """What an import from files refuses, for a checkpoint that arrives already canonical (an
        IR stream, whose header anyone can write): a repeat count (layers) the config gives that
        the tensors do not hold or exceed, and config fields the shapes contradict
        (config_contradictions: hidden_size 64 beside 32-wide tensors, head counts that do not
        divide the projections). A config that leaves a field out contradicts nothing."""
        if not isinstance(config, dict):
            return ["the config is not a map"]
        matcher = self.__dict__.get("_canonical_blocks")
        if matcher is None:
            matcher = _Matcher()
            for block in self.blocks:
                for p in block.params:
                    try:
                        matcher.add(_join(block.name, p.name, "."), block)
                    except ValueError:     # a name two views' blocks share: either tells the count
                        pass
            self.__dict__["_canonical_blocks"] = matcher
        counts: dict[str, int] = {}
        problems: list[str] = []
        for name in specs:
            hit = matcher.match(name)
            if hit is None:
                continue            # not the family's: the exporter names it
            block, idx = hit
            for field_name, key in block.repeats:
                n = idx[field_name] - block.first.get(field_name, 0)
                if n < 0:
                    problems.append(f"{name!r}: index {idx[field_name]} of {key!r} counts from "
                                    f"{block.first[field_name]}")
                counts[key] = max(counts.get(key, 0), n + 1)
        problems += repeat_count_problems(self, config, counts)
        if problems:
            return problems
        return config_contradictions(self, config, dict(specs), counts)

    def architecture_for(self, roles: Iterable[str]) -> str | None:
        # Only roles that tell classes apart count (not, say, an optional projection).
        telling = frozenset().union(*self.architectures.values())
        roles = frozenset(self.role_aliases.get(r, r) for r in roles) & telling
        for arch, arch_roles in self.architectures.items():
            if arch_roles == roles:
                return arch
        return None


# --------------------------------------------------------------------------- matching

_INDEX = re.compile(r"\{(\w+)\}")


_DIGITS = re.compile(r"\d+")


@functools.lru_cache(maxsize=1 << 17)
def _shape_key(name: str) -> str:
    """Names that differ only in their numbers share a key: lookups are O(1) per name. Cached:
    family detection asks it of every name once per family view (76 of them)."""
    return _DIGITS.sub("#", name)


class _Matcher:
    """Maps concrete names to (payload, indices) for a set of templates. A template without
    an index ('blocks.3.conv.weight', as EfficientNet's concrete tables have thousands) is a
    dict entry; one with indices ('layers.{i}.attn.q.weight') a regex, tried only for names
    of its shape."""

    def __init__(self):
        self._exact: dict[str, object] = {}
        self._by_key: dict[str, list[tuple[re.Pattern, object]]] = {}
        self._patterns: dict[str, object] = {}

    def add(self, template: str, payload) -> None:
        parts = _INDEX.split(template)
        if len(parts) == 1:
            if template in self._exact:
                raise ValueError(f"template {template!r} declared twice ({self._exact[template]} and {payload})")
            self._exact[template] = payload
            return
        pattern = "^" + "".join(f"(?P<{part}>\\d+)" if n % 2 else re.escape(part)
                                for n, part in enumerate(parts)) + "$"
        if pattern in self._patterns:
            raise ValueError(f"template {template!r} declared twice ({self._patterns[pattern]} and {payload})")
        self._patterns[pattern] = payload
        key = _shape_key(_INDEX.sub("0", template))
        self._by_key.setdefault(key, []).append((re.compile(pattern), payload))

    def could_match(self, name: str) -> bool:
        """False when match(name) is certainly None (a dict lookup or two: no regex)."""
        return name in self._exact or _shape_key(name) in self._by_key

    def match(self, name: str):
        if name in self._exact:
            return self._exact[name], {}
        for regex, payload in self._by_key.get(_shape_key(name), ()):
            m = regex.match(name)
            if m:
                return payload, {k: int(v) for k, v in m.groupdict().items()}
        return None


@dataclass(frozen=True)
class _Entry:
    block: Block
    param: Param
    canonical: str      # full canonical template
    raw: str            # full raw template, without the family's base prefix
    raw_axes: Axes


def _join(prefix: str, name: str, sep: str) -> str:
    return f"{prefix}{sep}{name}" if prefix else name


# --------------------------------------------------------------------------- config-built families


class ConfigFamily(Family):
    """A family whose block table follows from its config (EfficientNet's per-variant block
    names, ALIGN's image tower): `build(config)` makes the concrete Family of one config, and
    each import or export maps names through that one. The registered blocks are one
    representative config's, for listings. A file that comes without a config is tried
    against `candidates()` (label, config) in order; the first whose table places every
    tensor and that `check` accepts wins, and `inferred_note` says which was chosen."""

    def build(self, config: dict) -> Family:
        raise NotImplementedError

    def candidates(self) -> list[tuple[str, dict]]:
        return []

    def check(self, ckpt: Checkpoint, config: dict) -> str | None:
        return None

    def inferred_note(self, label: str, config: dict) -> str:
        return f"no config: {label}, inferred from the tensor names and shapes (pass --config to set it)"

    def concrete(self, config: dict) -> Family:
        cache = self.__dict__.setdefault("_concrete", {})
        key = json.dumps(config, sort_keys=True, default=str)     # a family per distinct config
        if key not in cache:
            try:
                cache[key] = self.build(config)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise MappingError(f"the config does not describe a {self.name} irconv can lay out "
                                   f"({type(exc).__name__}: {exc})") from None
        return cache[key]

    def view(self, name: str):
        static = super().view(name)         # validates the name (and the static spellings)
        views = self.__dict__.setdefault("_config_views", {})
        if name not in views:
            from .views import ConfigView
            views[name] = ConfigView(self, static)
        return views[name]
