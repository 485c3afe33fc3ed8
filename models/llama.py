"""Decoder LLMs of Llama's layout: HF Llama*, Mistral*, Qwen2*, Qwen3* (and, through
decoder_family, Mixtral and Gemma in mixtral.py and gemma.py).

A pre-norm decoder of RMS norms (a scale, no bias), rotary positions computed at run time
(`rotary_emb.inv_freq` is a non-persistent buffer that older checkpoints still saved: dropped),
grouped-query attention (k_proj and v_proj have num_key_value_heads * head_dim rows) and a
gated MLP (down(act(gate(x)) * up(x))). One layer declaration serves the four families; they
differ only in a few tensors: Qwen2's q/k/v biases, Qwen3's per-head q/k norms, Llama's
optional attention_bias and mlp_bias.

What the shapes do not say is never guessed: the head count (a 4096-row q_proj is 32 heads of
128 or 64 of 64), rope_theta and rms_norm_eps (the releases differ: 1e4, 5e5, 1e6; 1e-5, 1e-6)
must be given; once num_attention_heads is, head_dim and num_key_value_heads follow exactly
from the q_proj and k_proj rows (from_shapes).

HF's TF Mistral spells every name like PyTorch, '/' for '.', except the layer list, which is a
plain Python list attribute named `layers.{i}` (no `layers_._{i}`); its lm_head is a Dense
layer of its own that it stores even when the PyTorch model ties it.
"""
from __future__ import annotations

from typing import Iterable

from . import kerashub as kh
from .engine import Block, Family, Param, Spelling, embedding, linear, param
from .t5 import rms_norm
from .llama_meta import with_meta_view

# The layer block's prefix in each view (TF Mistral's list attribute keeps PyTorch's 'layers.{i}').
LAYER_PREFIX = {"pt": "layers.{i}", "tf2": "layers.{i}"}


def projections(names: Iterable[tuple[str, str]], bias: bool, module: str) -> list[Param]:
    """Linear layers `module`.<raw> as canonical <name>, for (name, raw) pairs."""
    return [p for name, raw in names for p in linear(name, bias=bias, pt=f"{module}.{raw}")]


ATTENTION = (("attn.q", "q_proj"), ("attn.k", "k_proj"), ("attn.v", "v_proj"))
MLP = (("ffn.gate", "gate_proj"), ("ffn.up", "up_proj"), ("ffn.down", "down_proj"))


def decoder_layer(*, qkv_bias: bool = False, qk_norm: bool = False, mlp: list[Param] | None = None,
                  norms: tuple[tuple[str, str], ...] = (("attn.norm", "input_layernorm"),
                                                        ("ffn.norm", "post_attention_layernorm"))) -> Block:
    """One decoder layer: attention (q, k, v with biases if `qkv_bias`, per-head q/k RMS norms
    if `qk_norm`), the feed-forward `mlp` (Llama's gated MLP unless given) and the `norms`
    (canonical name, HF module)."""
    return Block.of("decoder.layers.{i}", [
        projections(ATTENTION, qkv_bias, "self_attn"),
        linear("attn.out", bias=False, pt="self_attn.o_proj"),
        *([rms_norm("attn.q_norm", "self_attn.q_norm"), rms_norm("attn.k_norm", "self_attn.k_norm")]
          if qk_norm else []),
        mlp if mlp is not None else projections(MLP, False, "mlp"),
        *(rms_norm(name, module) for name, module in norms),
    ], repeat="num_hidden_layers", **LAYER_PREFIX)


# Llama's attention_bias and mlp_bias (off in every Llama release, on in some derivatives):
# optional parts, present when the file has the biases.
ATTENTION_BIAS = Block.of("decoder.layers.{i}", [
    param(f"{name}.bias", ("out",), pt=f"self_attn.{raw}.bias", flax=f"self_attn/{raw}/bias")
    for name, raw in (*ATTENTION, ("attn.out", "o_proj"))], repeat="num_hidden_layers", role="attention_bias",
    **LAYER_PREFIX)
MLP_BIAS = Block.of("decoder.layers.{i}", [
    param(f"{name}.bias", ("out",), pt=f"mlp.{raw}.bias") for name, raw in MLP],
    repeat="num_hidden_layers", role="mlp_bias", flax=None, **LAYER_PREFIX)

EMBEDDINGS = Block.of("embeddings", [embedding("word", pt="embed_tokens")], pt="")
FINAL_NORM = Block.of("decoder", [rms_norm("norm", "norm")], pt="")

# lm_head is the word embeddings when tie_word_embeddings is true (HF's files then drop it);
# TF Mistral's own Dense layer stores it either way, as a (hidden, vocab) kernel.
LM_HEAD = Block.of("heads.lm", [
    param("weight", ("rows", "hidden"), tied_to="embeddings.word.weight", pt="weight",
          tf2=("kernel", ("hidden", "rows")), flax=("kernel", ("hidden", "rows"))),
], role="lm", base=False, pt="lm_head")
# FlaxLlamaForCausalLM and FlaxMistralForCausalLM store lm_head even when tied (as TF Mistral);
# FlaxGemmaForCausalLM applies the embedding then and stores none.
LM_HEAD_UNLESS_TIED = Block.of("heads.lm", [
    param("weight", ("rows", "hidden"), tied_to="embeddings.word.weight", pt="weight",
          flax=Spelling("kernel", ("hidden", "rows"), tied_copy=False)),
], role="lm", base=False, pt="lm_head")
# ForSequenceClassification's `score` has no bias, ForTokenClassification's has one: the same
# module, so the bias is a part of its own that only the token classifier has. TF has no token
# classifier (nor a QA class), so those parts have no tf2 names.
SCORE = Block.of("heads.score", [param("weight", ("out", "in"), pt="weight", tf2=("kernel", ("in", "out")))],
                 role="score", base=False, pt="score", flax=None)
SCORE_BIAS = Block.of("heads.score", [param("bias", ("out",), pt="bias")], role="token", base=False,
                      pt="score", tf2=None, flax=None)
QA_HEAD = Block.of("heads.qa", [linear("dense", pt="")], role="qa", base=False, pt="qa_outputs", tf2=None, flax=None)
HEADS = (LM_HEAD, SCORE, SCORE_BIAS, QA_HEAD)

# Each HF class and its heads (roles).
CLASS_ROLES = {"Model": frozenset(), "ForCausalLM": frozenset({"lm"}),
               "ForSequenceClassification": frozenset({"score"}),
               "ForTokenClassification": frozenset({"score", "token"}),
               "ForQuestionAnswering": frozenset({"qa"})}


def infer_decoder_config(model_type: str, intermediate: str = "decoder.layers.0.ffn.gate.weight",
                         counted: tuple[str, ...] = (), bias_flags: bool = False):
    """infer_config of a Llama-layout family: what the shapes decide. `intermediate` is the
    tensor whose rows are intermediate_size; `counted` are repeat counts that are config fields
    too (Mixtral's num_local_experts); `bias_flags`: the family has Llama's attention_bias and
    mlp_bias fields. The head counts come in from_shapes, once given."""
    def infer(specs, counts) -> tuple[dict, list[str]]:
        vocab_size, hidden_size = specs["embeddings.word.weight"].shape
        config = {"model_type": model_type, "vocab_size": vocab_size, "hidden_size": hidden_size,
                  "num_hidden_layers": counts.get("num_hidden_layers", 0),
                  **{key: counts.get(key, 0) for key in counted},
                  # A head that came as its own tensor was not tied (tied ones become aliases).
                  "tie_word_embeddings": "heads.lm.weight" not in specs}
        if intermediate in specs:
            config["intermediate_size"] = specs[intermediate].shape[0]
        if bias_flags:
            config["attention_bias"] = "decoder.layers.0.attn.q.bias" in specs
            config["mlp_bias"] = "decoder.layers.0.ffn.gate.bias" in specs
        if "heads.score.weight" in specs:
            config["num_labels"] = specs["heads.score.weight"].shape[0]
        return config, ["no config given: inferred from tensor shapes"]
    return infer


def heads_from_shapes(config: dict, specs: dict) -> dict:
    """head_dim and num_key_value_heads from a given num_attention_heads and the q_proj and
    k_proj rows (num_attention_heads * head_dim, num_key_value_heads * head_dim)."""
    heads, q, k = (config.get("num_attention_heads"), specs.get("decoder.layers.0.attn.q.weight"),
                   specs.get("decoder.layers.0.attn.k.weight"))
    if not isinstance(heads, int) or isinstance(heads, bool) or heads < 0 or q is None or k is None:
        return config       # not a count: count_field_problems says so
    if heads == 0:
        raise ValueError("num_attention_heads=0: the attention has no heads")
    if q.shape[0] % heads:
        raise ValueError(f"num_attention_heads={heads} does not divide q_proj's {q.shape[0]} rows")
    head_dim = q.shape[0] // heads
    if k.shape[0] % head_dim:
        raise ValueError(f"k_proj's {k.shape[0]} rows are no whole number of heads of {head_dim} "
                         f"(q_proj's {q.shape[0]} rows / num_attention_heads={heads})")
    derived = {"head_dim": head_dim, "num_key_value_heads": k.shape[0] // head_dim}
    for key, value in derived.items():
        if config.get(key) not in (None, value):
            raise ValueError(f"{key}={config[key]!r} does not fit the tensors, which say {key}={value} "
                             f"with num_attention_heads={heads}")
    return dict(config, **derived)


# Fields every Llama-layout family computes with and no tensor holds.
REQUIRED = ("num_attention_heads", "rope_theta", "rms_norm_eps")


# The classes transformers 4.57 has in TF (no token classifier, no QA).
TF_MISTRAL_CLASSES = ("MistralModel", "MistralForCausalLM", "MistralForSequenceClassification")


def class_limits(framework: str, classes: tuple[str, ...], fixed_head_dim: bool = True, fixed_rope: bool = False):
    """What a framework's classes (HF's TF Mistral, Flax Llama and Mistral) cannot run: a class
    they lack, and (`fixed_head_dim`) a head_dim other than hidden_size // num_attention_heads
    (they have no head_dim setting); `fixed_rope`: rotary positions of base 10000 and no
    rope_scaling whatever the config says (HF's Flax Llama, Mistral and Gemma)."""
    def limits(config: dict) -> str | None:
        archs = config.get("architectures") or []
        if archs and archs[0] not in classes:
            return (f"transformers has no {framework}{archs[0]} (its {framework} classes: "
                    f"{', '.join(framework + c for c in classes)})")
        heads, hidden, head_dim = (config.get(k) for k in ("num_attention_heads", "hidden_size", "head_dim"))
        if fixed_head_dim and isinstance(heads, int) and heads > 0 and isinstance(hidden, int) \
                and head_dim not in (None, hidden // heads):
            return (f"head_dim={head_dim}, but HF's {framework} class computes hidden_size / num_attention_heads = "
                    f"{hidden} / {heads} and has no head_dim setting")
        if fixed_rope and (config.get("rope_theta") not in (None, 10000, 10000.0) or config.get("rope_scaling")):
            return (f"rope_theta={config.get('rope_theta')!r}, rope_scaling={config.get('rope_scaling')!r}, but HF's "
                    f"{framework} class computes rotary positions with base 10000 and no scaling")
        return None
    return limits


tf_mistral_limits = class_limits("TF", TF_MISTRAL_CLASSES)
_flax_mistral_classes = class_limits("Flax", ("MistralModel", "MistralForCausalLM"), fixed_rope=True)


def flax_mistral_limits(config: dict) -> str | None:
    """HF's Flax Mistral also masks with triu(causal, -(sliding_window or 0)): with no window
    (null) each token attends to itself alone."""
    if "sliding_window" in config and config["sliding_window"] is None:
        return "sliding_window=null, with which HF's Flax Mistral attends to each token alone"
    return _flax_mistral_classes(config)


def decoder_family(name: str, classes: str, layer_blocks: tuple[Block, ...], *, description: str,
                   qa_prefix: str | None = "model.", required: tuple[str, ...] = (),
                   defaults: dict | None = None, views: tuple[str, ...] = ("pt",),
                   infer=None, tie_default: bool = False, view_limits: dict | None = None,
                   lm_head: Block = LM_HEAD) -> Family:
    """A Llama-layout family: `classes` is HF's class prefix ('Llama'), `qa_prefix` the base
    prefix of its ForQuestionAnswering (None: it has none; Llama's and Qwen's nest the model as
    'transformer.'), `required` and `defaults` what its config adds to REQUIRED and max_position_embeddings."""
    arch = {f"{classes}{suffix}": roles for suffix, roles in CLASS_ROLES.items()
            if qa_prefix is not None or suffix != "ForQuestionAnswering"}
    arch_prefixes = {f"{classes}Model": ""}
    if qa_prefix not in (None, "model."):
        arch_prefixes[f"{classes}ForQuestionAnswering"] = qa_prefix
    return Family(
        name=name, model_types=(name,), declared_views=views,
        blocks=(EMBEDDINGS, *layer_blocks, FINAL_NORM,
                *(lm_head if h is LM_HEAD else h for h in HEADS if qa_prefix or h is not QA_HEAD)),
        base_prefix={"pt": "model.", "tf2": "model/"},
        arch_prefixes={"pt": arch_prefixes},
        architectures=arch,
        infer_config=infer or infer_decoder_config(name),
        required=REQUIRED + required,
        # The sequence classifier scores each row's last token before padding: which id pads
        # changes what it computes (and HF refuses batches without it).
        required_for={f"{classes}ForSequenceClassification": ("pad_token_id",)},
        # Rotary positions have no table: the trained length is the release's word.
        defaults={"max_position_embeddings": 2048, "hidden_act": "silu", **(defaults or {})},
        from_shapes=heads_from_shapes,
        tie_default=tie_default,
        view_limits=view_limits or {},
        ignore={"pt": (r"(^|\.)rotary_emb\.inv_freq$",)},
        description=description,
    )


LLAMA = decoder_family(
    "llama", "Llama", (decoder_layer(), ATTENTION_BIAS, MLP_BIAS), qa_prefix="transformer.",
    views=("pt", "flax"), view_limits={"flax": class_limits("Flax", ("LlamaModel", "LlamaForCausalLM"), fixed_rope=True)},
    defaults={"rope_scaling": None}, infer=infer_decoder_config("llama", bias_flags=True),
    description="Llama (meta-llama; HF LlamaModel/LlamaForCausalLM/LlamaFor{Sequence,Token}Classification/"
                "LlamaForQuestionAnswering)")
# The original Meta release's layout, a view of its own (models/llama_meta.py).
LLAMA = with_meta_view(LLAMA)
MISTRAL = decoder_family(
    "mistral", "Mistral", (decoder_layer(),), views=("pt", "tf2", "flax"),
    view_limits={"tf2": tf_mistral_limits, "flax": flax_mistral_limits},
    # Attention beyond the window is masked: v0.1 has 4096, later releases none (null).
    required=("sliding_window",), defaults={"max_position_embeddings": 131072},
    description="Mistral (mistralai; HF MistralModel/MistralForCausalLM/MistralFor{Sequence,Token}Classification/"
                "MistralForQuestionAnswering; TF TFMistralModel/ForCausalLM/ForSequenceClassification)")
QWEN2 = decoder_family(
    "qwen2", "Qwen2", (decoder_layer(qkv_bias=True),), qa_prefix="transformer.",
    defaults={"max_position_embeddings": 32768, "use_sliding_window": False, "rope_scaling": None},
    description="Qwen2 (Qwen; HF Qwen2Model/Qwen2ForCausalLM/Qwen2For{Sequence,Token}Classification/"
                "Qwen2ForQuestionAnswering)")
QWEN3 = decoder_family(
    "qwen3", "Qwen3", (decoder_layer(qk_norm=True),), qa_prefix="transformer.",
    defaults={"max_position_embeddings": 32768, "use_sliding_window": False, "rope_scaling": None},
    description="Qwen3 (Qwen; HF Qwen3Model/Qwen3ForCausalLM/Qwen3For{Sequence,Token}Classification/"
                "Qwen3ForQuestionAnswering)")


# --------------------------------------------------------------------------- keras-hub views
# keras-hub's Llama, Mistral, Qwen (Qwen2) and Qwen3 Backbones (FORMATS.md §12.3): one tree,
# under each class's own keys. The LM head is the ReversibleEmbedding's second variable when
# untied. Appended here, so the families above stay as declared.

def _hub_layer(qkv_bias: bool = False, qk_norm: bool = False) -> dict:
    att = "_self_attention_layer"
    out = {}
    for name, dense, kind in (("attn.q", "_query_dense", "q"), ("attn.k", "_key_dense", "kv"),
                              ("attn.v", "_value_dense", "kv")):
        out[f"{name}.weight"] = kh.head_kernel(f"{att}/{dense}/vars/0", kind)
        if qkv_bias:
            out[f"{name}.bias"] = kh.head_bias(f"{att}/{dense}/vars/1", kind)
    out["attn.out.weight"] = kh.out_kernel(f"{att}/_output_dense/vars/0")
    if qk_norm:
        out["attn.q_norm.weight"] = kh.plain(f"{att}/_query_dense_layer_norm/vars/0")
        out["attn.k_norm.weight"] = kh.plain(f"{att}/_key_dense_layer_norm/vars/0")
    out.update({"ffn.gate.weight": kh.kernel("_feedforward_gate_dense/vars/0"),
                "ffn.up.weight": kh.kernel("_feedforward_intermediate_dense/vars/0"),
                "ffn.down.weight": kh.kernel("_feedforward_output_dense/vars/0"),
                "attn.norm.weight": kh.plain("_self_attention_layernorm/vars/0"),
                "ffn.norm.weight": kh.plain("_feedforward_layernorm/vars/0")})
    return out


HUB_LM_HEAD = "reversible_embedding_0/vars/1"


def _hub_blocks(decoder: str, final_norm: str, layer: dict, head_copy: bool) -> dict:
    head = kh.HubSpelling(HUB_LM_HEAD, ("hidden", "rows"), tied_copy=head_copy)
    return {"embeddings": ("", {"word.weight": kh.plain("reversible_embedding_0/vars/0")}),
            "decoder.layers.{i}": (f"{decoder}_{{i}}", layer),
            "decoder": ("", {"norm.weight": kh.plain(f"{final_norm}_0/vars/0")}),
            "heads.lm": ("", {"weight": head})}


CORE_PAIRS = (("vocab_size", "vocabulary_size"), ("num_hidden_layers", "num_layers"),
              ("num_attention_heads", "num_query_heads"), ("num_key_value_heads", "num_key_value_heads"),
              ("hidden_size", "hidden_dim"), ("intermediate_size", "intermediate_dim"),
              ("rope_theta", "rope_max_wavelength"), ("rms_norm_eps", "layer_norm_epsilon"))


def _hub_checks(*, head_dim: bool, flags: tuple[str, ...] = ()):
    """to_hub of a keras-hub decoder: what its classes cannot compute is refused (rope
    scaling, biases that the layer has no variable for, a head_dim the class does not take)."""
    def to_hub(hf: dict) -> dict:
        if hf.get("rope_scaling") is not None:
            raise ValueError(f"rope_scaling={hf['rope_scaling']!r}; irconv maps plain rotary positions only")
        for flag in flags:
            if hf.get(flag):
                raise ValueError(f"{flag}=true, which keras-hub's decoder has no variables for")
        hidden, n = kh.require(hf, "hidden_size"), kh.require(hf, "num_attention_heads")
        dim = hf.get("head_dim") or hidden // n
        if not head_dim and dim != hidden // n:
            raise ValueError(f"head_dim={dim}, but the keras-hub class computes hidden_size / num_attention_heads "
                             f"= {hidden // n} and takes no head_dim")
        # A null head_dim (Mistral's default) stays null: both classes then compute hidden / heads.
        return {"dropout": hf.get("attention_dropout", 0.0),
                **({"head_dim": hf["head_dim"] if "head_dim" in hf else dim} if head_dim else {})}
    return to_hub


def _tie_back(args: dict, names: set) -> dict:
    """tie_word_embeddings from the Backbone config, or (LlamaBackbone's get_config drops it,
    keras-hub#3098) from whether the preset stores the untied head."""
    tied = args.get("tie_word_embeddings", HUB_LM_HEAD not in names)
    return {"tie_word_embeddings": bool(tied)}


def _back(*, head_dim: bool = False, extra=None):
    def to_hf(args: dict, names: set) -> dict:
        out = {"attention_dropout": args.get("dropout", 0.0), **_tie_back(args, names)}
        if head_dim:
            out["head_dim"] = args.get("head_dim")
        else:      # the class computes it so
            out["head_dim"] = args["hidden_dim"] // args["num_query_heads"]
        if extra:
            out.update(extra(args))
        return out
    return to_hf


def _with_tie(to_hub):
    return lambda hf: {**to_hub(hf), "tie_word_embeddings": bool(kh.require(hf, "tie_word_embeddings"))}


def _qwen2_hub(hf: dict) -> dict:
    if hf.get("use_sliding_window"):
        raise ValueError("use_sliding_window=true: Qwen2's per-layer windows (max_window_layers) are not "
                         "keras-hub's; irconv maps full attention only")
    return _with_tie(_hub_checks(head_dim=False))(hf)


LLAMA = kh.with_kerashub(LLAMA, kh.HubConfig(
    "LlamaBackbone", "keras_hub.src.models.llama.llama_backbone", "llama", pairs=CORE_PAIRS,
    fixed={"hidden_act": "silu"},
    to_hub=_with_tie(_hub_checks(head_dim=False, flags=("attention_bias", "mlp_bias"))),
    to_hf=_back(), architecture="LlamaForCausalLM", tasks=("CausalLM",), lm_head=HUB_LM_HEAD,
    backbone_class_aliases=("Llama3Backbone",)),
    _hub_blocks("llama_transformer_decoder", "llama_layer_norm", _hub_layer(), head_copy=False),
    roles=frozenset({"lm"}), tasks=kh.causal_lm("LlamaForCausalLM", "LlamaCausalLM", "llama.llama_causal_lm",
                                               aliases=("Llama3CausalLM",)))
# MistralBackbone always has its own head (no tie argument): a tied model is refused (its
# view limit), so that a preset read back is the model that was written.
MISTRAL = kh.with_kerashub(MISTRAL, kh.HubConfig(
    "MistralBackbone", "keras_hub.src.models.mistral.mistral_backbone", "mistral",
    pairs=(*CORE_PAIRS, ("sliding_window", "sliding_window")), fixed={"hidden_act": "silu"},
    to_hub=_hub_checks(head_dim=True), to_hf=_back(head_dim=True), architecture="MistralForCausalLM",
    tasks=("CausalLM",), lm_head=HUB_LM_HEAD, always_untied=True),
    _hub_blocks("mistral_transformer_decoder", "mistral_layer_normalization", _hub_layer(), head_copy=True),
    roles=frozenset({"lm"}), tasks=kh.causal_lm("MistralForCausalLM", "MistralCausalLM", "mistral.mistral_causal_lm"))
QWEN2 = kh.with_kerashub(QWEN2, kh.HubConfig(
    "QwenBackbone", "keras_hub.src.models.qwen.qwen_backbone", "qwen2", pairs=CORE_PAIRS,
    fixed={"hidden_act": "silu"}, to_hub=_qwen2_hub,
    to_hf=_back(extra=lambda a: {"use_sliding_window": bool(a.get("use_sliding_window_attention", False))}),
    architecture="Qwen2ForCausalLM", tasks=("CausalLM",), lm_head=HUB_LM_HEAD),
    _hub_blocks("qwen_transformer_decoder", "qwen_layer_norm", _hub_layer(qkv_bias=True), head_copy=False),
    roles=frozenset({"lm"}), tasks=kh.causal_lm("Qwen2ForCausalLM", "QwenCausalLM", "qwen.qwen_causal_lm"))
def _qwen3_window(hf: dict):
    """Qwen3Backbone masks every layer beyond sliding_window_size (null: none), HF only the
    layers from max_window_layers on, and only with use_sliding_window."""
    if not hf.get("use_sliding_window"):
        return None
    first, layers = kh.require(hf, "max_window_layers"), kh.require(hf, "num_hidden_layers")
    if first >= layers:
        return None
    if first != 0:
        raise ValueError(f"max_window_layers={first}: keras-hub's Qwen3 windows all layers or none")
    return kh.require(hf, "sliding_window")


def _qwen3_hub(hf: dict) -> dict:
    # Qwen3Attention builds its q/k norms with its default epsilon, 1e-5, whatever the
    # Backbone's layer_norm_epsilon; HF uses rms_norm_eps for all of them.
    if kh.require(hf, "rms_norm_eps") != 1e-5:
        raise ValueError(f"rms_norm_eps={hf['rms_norm_eps']}, but keras-hub's Qwen3 computes its q/k norms with "
                         "1e-5 whatever its layer_norm_epsilon: it cannot hold this model")
    return {**_with_tie(_hub_checks(head_dim=True, flags=("attention_bias",)))(hf),
            "sliding_window_size": _qwen3_window(hf)}


def _qwen3_back(args: dict) -> dict:
    if args.get("layer_norm_epsilon") != 1e-5:
        raise ValueError(f"layer_norm_epsilon={args.get('layer_norm_epsilon')}, but its q/k norms compute with "
                         "1e-5, and an HF Qwen3 has one epsilon for all")
    window = args.get("sliding_window_size")
    return {"use_sliding_window": window is not None, "sliding_window": window,
            **({"max_window_layers": 0} if window is not None else {})}


QWEN3 = kh.with_kerashub(QWEN3, kh.HubConfig(
    "Qwen3Backbone", "keras_hub.src.models.qwen3.qwen3_backbone", "qwen3", pairs=CORE_PAIRS,
    fixed={"hidden_act": "silu"},
    to_hub=_qwen3_hub, to_hf=_back(head_dim=True, extra=_qwen3_back), architecture="Qwen3ForCausalLM", tasks=("CausalLM",), lm_head=HUB_LM_HEAD),
    _hub_blocks("qwen3_transformer_decoder", "qwen3_layer_norm", _hub_layer(qk_norm=True), head_copy=False),
    roles=frozenset({"lm"}), tasks=kh.causal_lm("Qwen3ForCausalLM", "Qwen3CausalLM", "qwen3.qwen3_causal_lm"))
# keras-hub's tokenizers (models/kerashub.py HubTokenizer): (HF role, the token the keras class
# fixes, the HF class's default). Llama 2 and Mistral are SentencePiece models (tokenizer.model),
# Qwen byte-pair (vocab.json + merges.txt); a Llama 3 (tokenizer.json only) gets none.
SP_TOKENS = (("bos_token", "<s>", "<s>"), ("eos_token", "</s>", "</s>"))
kh.with_tokenizer("llama", kh.HubTokenizer("LlamaTokenizer", "keras_hub.src.models.llama.llama_tokenizer",
                                           "sentencepiece", "LlamaTokenizer", SP_TOKENS))
kh.with_tokenizer("mistral", kh.HubTokenizer("MistralTokenizer", "keras_hub.src.models.mistral.mistral_tokenizer",
                                             "sentencepiece", "LlamaTokenizer", SP_TOKENS))
kh.with_tokenizer("qwen2", kh.HubTokenizer("QwenTokenizer", "keras_hub.src.models.qwen.qwen_tokenizer", "bpe",
                                           "Qwen2Tokenizer", (("eos_token", "<|endoftext|>", "<|endoftext|>"),
                                                              ("bos_token", None, None))))
kh.with_tokenizer("qwen3", kh.HubTokenizer("Qwen3Tokenizer", "keras_hub.src.models.qwen3.qwen3_tokenizer", "bpe",
                                           "Qwen2Tokenizer", (("eos_token", "<|im_end|>", "<|endoftext|>"),
                                                              ("pad_token", "<|endoftext|>", "<|endoftext|>"),
                                                              ("bos_token", None, None))))
FAMILIES = [LLAMA, MISTRAL, QWEN2, QWEN3]
