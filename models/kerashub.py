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

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import numpy as np

from ..ir.layout import Axes, Compose, Permute, Transform
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
class HubSpelling(Spelling):
    # config -> the transform from the tensor as the preset stores it to `axes`.
    stored: Callable[[dict], Transform] | None = None


def stored_transform(spelling: Spelling, config: dict) -> Transform | None:
    return spelling.stored(config) if isinstance(spelling, HubSpelling) and spelling.stored else None


# --------------------------------------------------------------------------- head geometry

def heads(config: dict, kind: str) -> tuple[int, int, int]:
    """(hidden, heads, head_dim) of the q ('q') or k/v ('kv') projection from an HF config."""
    hidden = config.get("hidden_size", config.get("n_embd", config.get("dim")))
    n_q = config.get("num_attention_heads", config.get("n_head", config.get("n_heads")))
    n_kv = config.get("num_key_value_heads", n_q) if kind == "kv" else n_q
    head_dim = config.get("head_dim") or hidden // n_q
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


def gemma_head_kernel(raw: str, kind: str = "q") -> HubSpelling:
    return HubSpelling(raw, None, stored=_heads_in_d(kind))


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


# --------------------------------------------------------------------------- config mapping

@dataclass(frozen=True)
class HubConfig:
    """A family's Backbone and its config mapping. `pairs` (HF key, Backbone arg) carry a value
    unchanged both ways. `fixed` are HF fields the Backbone class hard-codes: an HF config must
    hold that value (or leave the field out where HF's default is it: `fixed_default`), and the
    way back writes it. `to_hub(hf)` / `to_hf(hub)` add what is not a plain pair (computed
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

    def backbone_names(self) -> tuple[str, ...]:
        return (self.backbone, *self.backbone_class_aliases)


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
    args = {arg: require(config, key) for key, arg in hub.pairs}
    args.update(hub.to_hub(config))
    return args


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

def with_kerashub(family: Family, hub: HubConfig, blocks: Mapping[str, tuple[str, Mapping[str, Spelling]]],
                  roles: frozenset[str] = frozenset()) -> Family:
    """`family` with a "kerashub" view: `blocks` maps a block's canonical name to its raw
    prefix and its params' spellings (a block left out, or an optional part whose role is not
    in `roles`, is absent from presets); `hub` is its config mapping."""
    new_blocks = []
    used = set()
    for block in family.blocks:
        spec = blocks.get(block.name)
        if spec is None or (block.role and block.role not in roles):
            new_blocks.append(block)
            continue
        used.add(block.name)
        prefix, spellings = spec
        new_blocks.append(with_view(block, VIEW, prefix, dict(spellings)))
    unknown = set(blocks) - used
    if unknown:
        raise ValueError(f"family {family.name!r}: no blocks {sorted(map(str, unknown))} for the kerashub view")
    out = replace(family, blocks=tuple(new_blocks), declared_views=(*family.declared_views, VIEW),
                  base_prefix={**family.base_prefix, VIEW: ""},
                  view_limits={**family.view_limits, VIEW: lambda config: hub_limits(family, hub, config)})
    HUB_CONFIGS[family.name] = hub
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
    tied = args.get("tie_word_embeddings", False) and not hub.always_untied
    if hub.lm_head and not tied and "lm" not in roles:
        return (f"keras-hub's {hub.backbone} computes logits with its own LM head, and this untied "
                f"{archs[0]} has none: convert the model with its LM head")
    return None


def hub_config(family_name: str) -> HubConfig | None:
    return HUB_CONFIGS.get(family_name)


def family_for_backbone(class_name: str, args: dict | None = None) -> str | None:
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
    class's default for that role), which an HF tokenizer must agree with to be written."""
    cls: str
    module: str
    kind: str
    hf_class: str
    tokens: tuple[tuple[str, str | None, str | None], ...] = ()

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
    return next((t for t in HUB_TOKENIZERS.values() if t.cls == class_name), None)
