"""The "kerashub" view's shared parts: keras-hub presets (config.json naming a keras_hub
Backbone, model.weights.h5 in Keras 3's positional layout; FORMATS.md §12).

Raw names are the weights file's paths below `layers/`, with the class-derived key of each
top-level layer given its ordinal explicitly ('transformer_encoder' -> 'transformer_encoder_0',
'transformer_encoder_1' stays), so a repeated block is one template
('transformer_encoder_{i}/_self_attention_layer/query_dense/vars/0'). Positions are kept
(`vars/N`): below the top level a preset names sublayers by attribute, not by class, and the
view, which knows each module, says which position is the kernel and which the bias.

keras-hub keeps attention kernels per head, (in, heads, head_dim) and (heads, head_dim, out),
where the canonical tensors are HF's (out, in) matrices: a `HubSpelling` adds the reshape
between the stored tensor and the spelling's axes (`stored`, computed from the canonical
config), which the kerashub importer and exporter apply around the engine's mapping.

A family's kerashub view also maps its config both ways (`HubConfig`): HF config fields to the
Backbone's constructor arguments. What the Backbone class fixes (BERT's epsilon 1e-12) must
agree with the HF config, else the export is refused; nothing is filled from a default.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import numpy as np

from ..ir.errors import MappingError
from ..ir.layout import Axes, Compose, Permute, Split, Transform
from ..ir.tensor import Tensor
from .engine import TF_STYLE, VIEW_STYLES, Family, Spelling, with_view

VIEW = "kerashub"
VIEW_STYLES[VIEW] = TF_STYLE      # '/'-joined paths; every leaf is spelled here, never by style
ABSENT = object()


@dataclass(frozen=True)
class Reshape(Transform):
    """A C-order reshape between two fixed shapes (the same bytes in the same order)."""
    src: tuple[int, ...]
    dst: tuple[int, ...]
    moves_bytes = False

    def spec(self, shape, axes):
        if tuple(shape) != self.src:
            raise ValueError(f"shape {list(shape)} is not the {list(self.src)} the config gives")
        return self.dst, None

    def apply(self, array):
        return np.ascontiguousarray(array).reshape(self.dst)

    def inverse(self):
        return Reshape(self.dst, self.src)


@dataclass(frozen=True)
class LeadingRows(Transform):
    """A stored (rows, ...) table as the canonical (skip + rows, ...) one: `skip` zero rows
    first. Its inverse drops them, so it is exact only where they are zero; a view uses it
    for rows no computation reads (BART's position table, indexed from row 2), documented
    where the view uses it."""
    skip: int
    rows: int

    def spec(self, shape, axes):
        if not shape or shape[0] != self.rows:
            raise ValueError(f"shape {list(shape)} does not have the {self.rows} rows the config gives")
        return (self.skip + self.rows, *shape[1:]), axes

    def apply(self, array):
        return np.concatenate([np.zeros((self.skip, *array.shape[1:]), array.dtype), array])

    def inverse(self):
        return DropRows(self.skip, self.rows)


@dataclass(frozen=True)
class DropRows(Transform):
    """The canonical (skip + rows, ...) table without its first `skip` rows."""
    skip: int
    rows: int

    def spec(self, shape, axes):
        if not shape or shape[0] != self.skip + self.rows:
            raise ValueError(f"shape {list(shape)} does not have the {self.skip} + {self.rows} rows the config gives")
        return (self.rows, *shape[1:]), axes

    def apply(self, array):
        return np.ascontiguousarray(array[self.skip:])

    def inverse(self):
        return LeadingRows(self.skip, self.rows)


@dataclass(frozen=True)
class HubSpelling(Spelling):
    # config -> the transform from the tensor as the preset stores it to `axes`.
    stored: Callable[[dict], Transform] | None = None


def stored_transform(spelling: Spelling, config: dict) -> Transform | None:
    """How keras-hub stores a tensor of this spelling (a per-head reshape), from the config;
    a config whose head geometry is not one (a count of the wrong type) is a MappingError."""
    if not (isinstance(spelling, HubSpelling) and spelling.stored):
        return None
    try:
        return spelling.stored(config)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise MappingError(f"the config gives no keras-hub head layout: {exc}") from None


# --------------------------------------------------------------------------- head geometry

def heads(config: dict, kind: str) -> tuple[int, int, int]:
    """(hidden, heads, head_dim) of the q ('q') or k/v ('kv') projection from an HF config."""
    hidden = config.get("hidden_size", config.get("n_embd", config.get("dim", config.get("d_model"))))
    n_q = config.get("num_attention_heads", config.get("n_head", config.get("n_heads", config.get("encoder_attention_heads"))))
    n_kv = config.get("num_key_value_heads", n_q) if kind == "kv" else n_q
    for key, value in (("hidden_size", hidden), ("num_attention_heads", n_q), ("num_key_value_heads", n_kv)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"config {key}={value!r} is not a positive integer")
    head_dim = config.get("head_dim") or hidden // n_q
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim <= 0:
        raise ValueError(f"config head_dim={head_dim!r} is not a positive integer")
    return hidden, n_kv, head_dim


def _in_heads(kind: str, bias: bool = False):
    """(in, heads*head_dim) stored as (in, heads, head_dim); a bias (heads, head_dim)."""
    def make(config):
        d, h, hd = heads(config, kind)
        return Reshape((h, hd), (h * hd,)) if bias else Reshape((d, h, hd), (d, h * hd))
    return make


def _heads_out(config):
    d, h, hd = heads(config, "q")
    return Reshape((h, hd, d), (h * hd, d))


def _heads_in_d(kind: str):
    """Gemma's (heads, in, head_dim) q/k/v kernels, as the canonical (heads*head_dim, in)."""
    def make(config):
        d, h, hd = heads(config, kind)
        return Compose((Permute(("h", "in", "d"), ("h", "d", "in")), Reshape((h, hd, d), (h * hd, d))))
    return make


def kernel(raw: str) -> HubSpelling:
    """A Dense kernel (in, out)."""
    return HubSpelling(raw, ("in", "out"))


def plain(raw: str, axes: Axes | None = None) -> HubSpelling:
    return HubSpelling(raw, axes)


def head_kernel(raw: str, kind: str = "q") -> HubSpelling:
    return HubSpelling(raw, ("in", "out"), stored=_in_heads(kind))


def head_bias(raw: str, kind: str = "q") -> HubSpelling:
    return HubSpelling(raw, None, stored=_in_heads(kind, bias=True))


def out_kernel(raw: str) -> HubSpelling:
    """The attention output EinsumDense (heads, head_dim, out): canonical (out, in=heads*head_dim)."""
    return HubSpelling(raw, ("in", "out"), stored=_heads_out)


def reserved_rows(raw: str, skip: Callable[[dict], int], rows: Callable[[dict], int]) -> HubSpelling:
    """A table stored without its first skip(config) rows, rows(config) rows left (LeadingRows)."""
    return HubSpelling(raw, None, stored=lambda config: LeadingRows(skip(config), rows(config)))


def gemma_head_kernel(raw: str, kind: str = "q") -> HubSpelling:
    return HubSpelling(raw, None, stored=_heads_in_d(kind))


def attention(module: str, name: str) -> dict[str, HubSpelling]:
    """keras MultiHeadAttention at `module` (query/key/value/output_dense, biased) as the
    canonical `name`.{q,k,v,out}.{weight,bias}."""
    out = {}
    for leaf, dense_name in (("q", "query"), ("k", "key"), ("v", "value")):
        out[f"{name}.{leaf}.weight"] = head_kernel(f"{module}/{dense_name}_dense/vars/0")
        out[f"{name}.{leaf}.bias"] = head_bias(f"{module}/{dense_name}_dense/vars/1")
    out[f"{name}.out.weight"] = out_kernel(f"{module}/output_dense/vars/0")
    out[f"{name}.out.bias"] = plain(f"{module}/output_dense/vars/1")
    return out


def dense(module: str, name: str, bias: bool = True) -> dict[str, HubSpelling]:
    """The canonical `name`.weight/.bias of a keras Dense layer at `module`."""
    out = {f"{name}.weight": kernel(f"{module}/vars/0")}
    if bias:
        out[f"{name}.bias"] = plain(f"{module}/vars/1")
    return out


def layer_norm(module: str, name: str, bias: bool = True) -> dict[str, HubSpelling]:
    out = {f"{name}.weight": plain(f"{module}/vars/0")}
    if bias:
        out[f"{name}.bias"] = plain(f"{module}/vars/1")
    return out


# --------------------------------------------------------------------------- stacked tensors
# A preset may hold a repeated module's kernels in one variable, stacked along a leading axis
# (Mixtral's expert bank: (experts, in, out)). The view spells each slice as the variable's
# raw name, STACK and the slice's index ('.../expert_bank/vars/0#{j}'); the importer cuts the
# variable into them (unstack) and the exporter stacks them back (restack), both lazily.
STACK = "#"


def stacked(raw: str, axes: Axes | None = None, index: str = "j") -> HubSpelling:
    """Slice {index} of the stacked variable `raw`."""
    return HubSpelling(f"{raw}{STACK}{{{index}}}", axes)


def unstack(view, tensors: list[Tensor]) -> list[Tensor]:
    """Each variable the view spells as stacked, cut into its slices along its first axis."""
    out = []
    for t in tensors:
        if not t.shape or view.canonical_name(f"{t.name}{STACK}0", "") is None:
            out.append(t)
            continue
        n, rest = t.shape[0], tuple(t.shape[1:])
        parts = Split(0, (1,) * n).apply(t, tuple(f"{t.name}{STACK}{k}" for k in range(n)))
        out.extend(part.transformed(Reshape((1, *rest), rest)) for part in parts)
    return out


def restack(tensors: list[Tensor]) -> list[Tensor]:
    """The inverse of unstack: slices `<raw>#<k>` stacked into `raw`, in the first slice's place.
    ValueError if the slices are not 0..n-1 or do not stack."""
    groups: dict[str, dict[int, Tensor]] = {}
    for t in tensors:
        raw, sep, k = t.name.rpartition(STACK)
        if sep and k.isdigit():
            groups.setdefault(raw, {})[int(k)] = t
    out = []
    for t in tensors:
        raw, sep, k = t.name.rpartition(STACK)
        if not (sep and k.isdigit()):
            out.append(t)
            continue
        slices = groups.pop(raw, None)
        if slices is None:
            continue                     # stacked at its first slice
        if sorted(slices) != list(range(len(slices))):
            raise ValueError(f"{raw!r}: slices {sorted(slices)} are not 0..{len(slices) - 1}")
        parts = [slices[k].transformed(Reshape(tuple(slices[k].shape), (1, *slices[k].shape)))
                 for k in range(len(slices))]
        out.append(Split(0, (1,) * len(parts)).merge(parts, raw))
    return out


# --------------------------------------------------------------------------- config mapping

@dataclass(frozen=True)
class FlatIndex:
    """Layers a view names by two indices, `<key>_{g}_{j}`, which keras keys in creation order:
    `<key>_<g * per + j>` (ALBERT's j-th layer of group g; per = config -> layers per group)."""
    key: str
    per: Callable[[dict], int]

    def to_stored(self, raw: str, config: dict) -> str:
        m = re.fullmatch(rf"{re.escape(self.key)}_(\d+)_(\d+)(/.*)", raw)
        return f"{self.key}_{int(m[1]) * self.per(config) + int(m[2])}{m[3]}" if m else raw

    def to_view(self, raw: str, config: dict) -> str:
        m = re.fullmatch(rf"{re.escape(self.key)}_(\d+)(/.*)", raw)
        if not m:
            return raw
        g, j = divmod(int(m[1]), self.per(config))
        return f"{self.key}_{g}_{j}{m[2]}"

    def __call__(self, raw: str, config: dict, to_view: bool) -> str:      # a HubConfig.rename
        return self.to_view(raw, config) if to_view else self.to_stored(raw, config)


@dataclass(frozen=True)
class HubConfig:
    """A family's Backbone and its config mapping. `pairs` (HF key, Backbone arg) carry a value
    unchanged both ways. `fixed` are HF fields the Backbone class hard-codes: an HF config must
    hold that value (a field HF's classes default is checked in `to_hub`, as HF computes it),
    and the way back writes it. `to_hub(hf)` / `to_hf(hub)` add what is not a plain pair (computed
    fields; `to_hf` also gets the preset's raw tensor names: whether it stores an untied LM
    head says tie_word_embeddings where the Backbone's config leaves it out); they raise
    ValueError for what the Backbone cannot compute."""
    backbone: str
    module: str
    model_type: str
    pairs: tuple[tuple[str, str], ...]
    fixed: Mapping[str, object] = field(default_factory=dict)
    to_hub: Callable[[dict], dict] = lambda hf: {}
    to_hf: Callable[[dict, set], dict] = lambda hub, names: {}
    architecture: str = ""                # the HF class a preset's backbone is written back as
    tasks: tuple[str, ...] = ()           # metadata.json "tasks"
    # The raw name of a decoder's untied LM head, which the Backbone always has unless tied;
    # `always_untied`: the class has no tie argument (MistralBackbone) and always stores it.
    lm_head: str = ""
    always_untied: bool = False
    # Other Backbone classes of the same layout (Llama3Backbone subclasses LlamaBackbone).
    backbone_class_aliases: tuple[str, ...] = ()
    # Backbone args -> whether a preset of this class is this family (GemmaBackbone holds
    # Gemma and Gemma 2, told apart by its post-norm flags).
    claims: Callable[[dict], bool] = lambda args: True
    # Backbone variables that no HF tensor is (ElectraBackbone's pooled_dense: HF's ElectraModel
    # has no pooler), Backbone args -> {raw name: stored shape}. Nothing the HF model computes
    # reads them: an export writes them as zeros (the Backbone's extra output is then a
    # constant), an import skips them and lists them so (`irconv ls`).
    unmapped: Callable[[dict], Mapping[str, tuple[int, ...]]] = lambda args: {}
    # The Backbone argument that ties its LM head to the token embeddings.
    tie_arg: str = "tie_word_embeddings"
    # The canonical prefix of a head the Backbone computes without: its tensors are dropped
    # where every value is zero (they then add nothing: BART's final_logits_bias) and refused
    # otherwise; its tied aliases go with them (the Backbone's token embedding is that head).
    zero_head: str = ""
    # (raw name, HF config, to_view) -> the name as the view spells it (to_view) or as the
    # preset stores it, where the stored name alone does not say which param it is (both
    # stacks of one layer class: `stacks`).
    rename: Callable[[str, dict, bool], str] | None = None
    # Canonical tensors the Backbone has no place for, which the way back derives as zeros
    # (RoBERTa's one token type row): an export holding anything else there is refused
    # (value_problems), since leaving it out would change what the model computes.
    zero_only: tuple[str, ...] = ()
    # Canonical tensor -> what of it the preset does not store, and why that changes no output
    # (RoBERTa's reserved position rows); said by `irconv ls --to kerashub`.
    dropped_rows: Mapping[str, str] = field(default_factory=dict)

    def backbone_names(self) -> tuple[str, ...]:
        return (self.backbone, *self.backbone_class_aliases)


def stacks(key: str, count: str, names: tuple[str, str]) -> Callable[[str, dict, bool], str]:
    """A HubConfig.rename for one layer class both stacks use: the preset numbers its keys on
    from the first stack to the second (T5's 't5_transformer_layer_0' .. '_{2L-1}'); the view
    names the first `config[count]` as `names[0]`, the others as `names[1]` counted from 0."""
    def rename(name: str, config: dict, to_view: bool) -> str:
        top, sep, rest = name.partition("/")
        base, _, n = top.rpartition("_")
        layers = config.get(count)
        if not isinstance(layers, int) or not n.isdigit():
            return name
        if to_view and base == key:
            k = int(n)
            return f"{names[0]}_{k}{sep}{rest}" if k < layers else f"{names[1]}_{k - layers}{sep}{rest}"
        if not to_view and base in names:
            return f"{key}_{int(n) + (layers if base == names[1] else 0)}{sep}{rest}"
        return name
    return rename


def renamed(hub: HubConfig, name: str, config: dict, to_view: bool = True) -> str:
    """A raw name as the view spells it (`to_view`) or as the preset stores it (hub.rename)."""
    return hub.rename(name, config, to_view) if hub.rename else name


def view_names(hub: HubConfig, tensors: list, config: dict, to_view: bool = True) -> list:
    """The preset's tensors named as the view spells them (or back, `to_view=False`)."""
    if hub.rename is None:
        return tensors
    return [t.with_spec(name=renamed(hub, t.name, config, to_view)) for t in tensors]


class Missing(ValueError):
    """A field the Backbone needs that the config does not give (not a contradiction)."""


def require(config: dict, key: str):
    """config[key], or a Missing error saying that the HF config must give it."""
    if config.get(key, ABSENT) is ABSENT:
        raise Missing(f"the config has no {key!r}, which the keras-hub Backbone needs "
                         f"(give it with --set {key}=...)")
    return config[key]


def hf_to_hub(hub: HubConfig, config: dict) -> dict:
    """The Backbone's constructor arguments for an HF config (ValueError: it cannot be one)."""
    for key, want in hub.fixed.items():
        have = config.get(key, ABSENT)
        if have is ABSENT:
            raise Missing(f"the config has no {key!r}; keras-hub's {hub.backbone} computes with "
                             f"{key}={want!r} (give it with --set {key}=...)")
        if have != want and not (isinstance(want, float) and isinstance(have, (int, float))
                                 and float(have) == want):
            raise ValueError(f"{key}={have!r}, but keras-hub's {hub.backbone} computes with "
                             f"{key}={want!r}: it cannot hold this model")
    # The computed arguments first: what they find the Backbone cannot compute is a contradiction,
    # which a plain field the config leaves out (Missing) must not hide.
    computed = hub.to_hub(config)
    return {**{arg: require(config, key) for key, arg in hub.pairs}, **computed}


def hub_to_hf(hub: HubConfig, args: dict, names: set) -> dict:
    """The HF config of a Backbone's constructor arguments (ValueError: an argument missing)."""
    missing = [arg for _, arg in hub.pairs if arg not in args]
    if missing:
        raise ValueError(f"config.json's {hub.backbone} config has no {', '.join(missing)}")
    config = {"model_type": hub.model_type, **{key: args[arg] for key, arg in hub.pairs}, **hub.fixed}
    config.update(hub.to_hf(args, names))
    if hub.architecture:
        config["architectures"] = [hub.architecture]
    return config


# --------------------------------------------------------------------------- the view

def with_kerashub(family: Family, hub: HubConfig, blocks: Mapping[object, tuple[str, Mapping[str, Spelling]]],
                  roles: frozenset[str] = frozenset(), tasks: tuple["HubTask", ...] = ()) -> Family:
    """`family` with a "kerashub" view: `blocks` maps a block's canonical name (or its (name,
    role), where blocks share a name) to its raw prefix and its params' spellings (a block left
    out, or an optional part whose role is not in `roles`, is absent from presets); `hub` is
    its config mapping; `tasks` the keras-hub tasks a preset of it may be, whose heads' blocks
    are named in task.weights.h5 (TASK/...)."""
    blocks = dict(blocks)
    for task in tasks:
        for name, (prefix, spellings) in task.blocks.items():
            if name in blocks:
                raise ValueError(f"family {family.name!r}: block {name!r} is in two tasks, or in the Backbone too")
            blocks[name] = (f"{TASK}/{prefix}" if prefix else TASK, spellings)
        roles = roles | {b.role for b in family.blocks if b.name in task.blocks and b.role}
    new_blocks = []
    used = set()
    for block in family.blocks:
        # Blocks of one name that are alternatives (T5's dense and gated feed-forwards) are
        # keyed by (name, role).
        key = (block.name, block.role) if (block.name, block.role) in blocks else block.name
        spec = blocks.get(key)
        if spec is None or (block.role and block.role not in roles):
            new_blocks.append(block)
            continue
        used.add(key)
        prefix, spellings = spec
        new_blocks.append(with_view(block, VIEW, prefix, dict(spellings)))
    unknown = set(blocks) - used
    if unknown:
        raise ValueError(f"family {family.name!r}: no blocks {sorted(map(str, unknown))} for the kerashub view")
    out = replace(family, blocks=tuple(new_blocks), declared_views=(*family.declared_views, VIEW),
                  base_prefix={**family.base_prefix, VIEW: ""},
                  view_limits={**family.view_limits, VIEW: lambda config: hub_limits(family, hub, config)})
    HUB_CONFIGS[family.name] = hub
    HUB_TASKS[family.name] = tuple(tasks)
    return out


HUB_CONFIGS: dict[str, HubConfig] = {}


def hub_limits(family: Family, hub: HubConfig, config: dict) -> str | None:
    """Why the Backbone would compute another model than `config` (the view's limit), or None.
    A field the config leaves out is no contradiction: the exporter asks for it (hf_to_hub)."""
    try:
        args = hf_to_hub(hub, config)
    except Missing:
        return None
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        return f"keras-hub's {hub.backbone}: {exc}"
    archs = config.get("architectures") or []
    roles = family.architectures.get(archs[0], frozenset()) if archs else frozenset({"lm"})
    if hub.always_untied and config.get("tie_word_embeddings", family.tie_default):
        return (f"keras-hub's {hub.backbone} always has an LM head of its own (no tie setting), and this model "
                "ties it to the embeddings")
    tied = args.get(hub.tie_arg, False) and not hub.always_untied
    if hub.lm_head and not tied and "lm" not in roles:
        return (f"keras-hub's {hub.backbone} computes logits with its own LM head, and this untied "
                f"{archs[0]} has none: convert the model with its LM head")
    task = task_for(family.name, hf_class=archs[0]) if archs else None
    if task is not None:
        try:
            problem = task.limit(config)
            task.to_task(config)
        except Missing:
            return None
        except (ValueError, TypeError) as exc:
            problem = str(exc)
        if problem:
            return (f"keras-hub's {task.task} cannot hold this {task.hf_class}: {problem} "
                    "(--base-model writes the Backbone alone, without the heads)")
    return None


# --------------------------------------------------------------------------- tasks

TASK = "task"        # raw names of task.weights.h5's weights: 'task/<layer key>_<n>/.../vars/N'


@dataclass(frozen=True)
class HubTask:
    """A keras-hub task class a preset may hold (task.json), as the HF class it computes.
    `blocks` are its heads' weights in task.weights.h5 (block -> raw prefix below its `layers/`,
    spellings), keyed like the Backbone's ('dense_0' is the task's first Dense; the Backbone's
    layers are skipped in that file, not counted). `to_task(hf)` gives its constructor arguments
    beside backbone/preprocessor/name (ValueError: the task cannot hold this config),
    `to_hf(args, backbone args)` the HF config fields of them. `limit(hf)` says why the task would compute
    another model than the HF class with this config (checked both ways), or None. `sizes`:
    canonical tensor -> (axis, argument) whose extent the argument must equal. `preprocessor`:
    (class, module, hf -> its arguments beside the tokenizer), the task's preprocessor where the
    preset has a tokenizer (otherwise the task takes token ids, as HF's class does)."""
    hf_class: str
    task: str
    module: str
    blocks: Mapping[str, tuple[str, Mapping[str, Spelling]]] = field(default_factory=dict)
    to_task: Callable[[dict], dict] = lambda hf: {}
    to_hf: Callable[[dict, dict], dict] = lambda args, backbone: {}
    limit: Callable[[dict], str | None] = lambda hf: None
    sizes: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    preprocessor: tuple[str, str, Callable[[dict], dict]] | None = None
    # Other task classes read as this one (Llama3CausalLM, over a Llama3Backbone); written as `task`.
    aliases: tuple[str, ...] = ()


HUB_TASKS: dict[str, tuple[HubTask, ...]] = {}


def size_problems(task: HubTask, args: dict, shapes: Mapping[str, tuple]) -> list[str]:
    """Where a task argument disagrees with the extent of the tensor it sizes."""
    out = []
    for canonical, (axis, arg) in task.sizes.items():
        if canonical in shapes and args.get(arg) != shapes[canonical][axis]:
            out.append(f"{arg}={args.get(arg)!r}, but {canonical} has {shapes[canonical][axis]}")
    return out


def causal_lm(hf_class: str, task: str, module: str, aliases: tuple[str, ...] = ()) -> tuple[HubTask]:
    """A decoder's CausalLM task: no weights of its own (the Backbone holds the LM head);
    `module` below keras_hub.src.models."""
    return (HubTask(hf_class, task, f"keras_hub.src.models.{module}", aliases=aliases),)


def num_labels(hf: dict) -> int:
    """A sequence classifier's class count: HF's num_labels, or its saved id2label's size."""
    if hf.get("num_labels") is not None:
        return hf["num_labels"]
    if isinstance(hf.get("id2label"), dict):
        return len(hf["id2label"])
    raise Missing("the config has neither 'num_labels' nor 'id2label', which the keras-hub classifier's "
                  "num_classes needs (give it with --set num_labels=...)")


def logits_out(args: dict) -> None:
    """A keras-hub classifier's `activation` must leave its logits as they are (HF's output)."""
    act = args.get("activation")
    if act not in (None, "linear"):
        raise ValueError(f"activation={act!r}: the keras-hub classifier outputs activation(logits), "
                         "HF's class the logits")


def task_for(family_name: str, *, hf_class: str | None = None, task: str | None = None) -> HubTask | None:
    """The family's keras-hub task of an HF class, or of a task.json class name."""
    for t in HUB_TASKS.get(family_name, ()):
        if (hf_class is not None and t.hf_class == hf_class) or (task is not None and task in (t.task, *t.aliases)):
            return t
    return None


def zero_checked(hub: HubConfig, names) -> list[str]:
    """The tensors of `names` a preset holds only as zeros: the zero_only ones (no place; the
    way back derives them as zeros) and the zero_head's (dropped; the way back has no head)."""
    return [n for n in names if n in hub.zero_only or (hub.zero_head and n.startswith(hub.zero_head))]


def value_problems(family: Family, hub: HubConfig, tensors: Mapping) -> list[str]:
    """The zero_checked tensors that hold a non-zero value (reads them)."""
    out = []
    for name in zero_checked(hub, tensors):
        if not np.any(tensors[name].load()):
            continue
        if name in hub.zero_only:
            out.append(f"1 canonical tensor(s) have no name in the {family.name} {VIEW!r} view: {name!r} is not "
                       f"all zeros, and keras-hub's {hub.backbone} has no place for it (HF adds it to every "
                       "token; dropping it would change the outputs)")
        else:
            out.append(f"1 canonical tensor(s) have no name in the {family.name} {VIEW!r} view: {name!r} is not "
                       f"zero, and keras-hub's {hub.backbone} computes without it (only a zero one is dropped)")
    return out


def hub_config(family_name: str) -> HubConfig | None:
    return HUB_CONFIGS.get(family_name)


def _every_family() -> None:
    """The families' modules fill HUB_CONFIGS, HUB_TASKS and HUB_TOKENIZERS as they are
    imported (models.FAMILIES imports a module when one of its families is asked for): a lookup
    by a family's name finds its entries, one by a keras-hub class needs them all."""
    from . import FAMILIES
    FAMILIES.load_all()


def known_backbones() -> list[str]:
    _every_family()
    return sorted(b for hub in HUB_CONFIGS.values() for b in hub.backbone_names())


def family_for_backbone(class_name: str, args: dict | None = None) -> str | None:
    _every_family()
    for name, hub in HUB_CONFIGS.items():
        if class_name in hub.backbone_names() and hub.claims(args if isinstance(args, dict) else {}):
            return name
    return None


# --------------------------------------------------------------------------- tokenizers

@dataclass(frozen=True)
class HubTokenizer:
    """A family's keras-hub tokenizer: its class, the kind of vocabulary it reads
    ("wordpiece": vocab.txt, "bpe": vocab.json + merges.txt, "sentencepiece": tokenizer.model;
    formats/hubtokenizer.py holds the per-kind code), the transformers class the way back
    names, and `tokens`: (HF role, the token the keras class fixes for it or None, the HF
    class's default for that role), which an HF tokenizer must agree with to be written.

    `others`: (HF role, the HF class's default) of the roles keras-hub's class does not fix; HF
    keeps them whole in text, so a byte-pair preset keeps them unsplittable, and the way back
    names each only where the preset keeps it whole (else null). `settings`: (tokenizer_config
    key, the value keras-hub's class computes as, the HF class's default), for the HF class's
    own text preprocessing (ALBERT's lowercasing, T5's extra ids). `model_file`: the
    SentencePiece model's HF file name. `fairseq`: keras-hub's and HF's XLM-R id layout, the
    model's pieces one up behind <s> <pad> </s> <unk>, with <mask> after them. `appended`: a
    token the keras class places after the model's pieces where the model has no such piece
    (DebertaV3Tokenizer's [MASK], which HF's DebertaV2Tokenizer adds there too)."""
    cls: str
    module: str
    kind: str
    hf_class: str
    tokens: tuple[tuple[str, str | None, str | None], ...] = ()
    others: tuple[tuple[str, str], ...] = ()
    settings: tuple[tuple[str, object, object], ...] = ()
    model_file: str = "tokenizer.model"
    fairseq: bool = False
    appended: str = ""

    def fixed(self) -> dict[str, str]:
        return {role: token for role, token, _ in self.tokens if token is not None}


HUB_TOKENIZERS: dict[str, HubTokenizer] = {}


def with_tokenizer(family_name: str, tokenizer: HubTokenizer) -> HubTokenizer:
    """Declares `family_name`'s keras-hub tokenizer (independent of its Backbone view)."""
    HUB_TOKENIZERS[family_name] = tokenizer
    return tokenizer


def hub_tokenizer(family_name: str) -> HubTokenizer | None:
    return HUB_TOKENIZERS.get(family_name)


def tokenizer_for_class(class_name: str) -> HubTokenizer | None:
    _every_family()
    return next((t for t in HUB_TOKENIZERS.values() if t.cls == class_name), None)
