"""T5 (google-research/text-to-text-transfer-transformer; HF T5Model, T5ForConditionalGeneration).

An encoder-decoder of pre-norm blocks. Every block is a list of sub-layers (`layer.0`
self-attention, decoder `layer.1` cross-attention, then the feed-forward), each with its own
RMS norm that has a scale and no bias; no linear has a bias. Positions are a learned bias per
(bucket, head), held only by block 0 of each stack and shared by the others. One embedding
matrix (`shared`) feeds both stacks; the LM head reuses it unless tie_word_embeddings is false.

HF's TF classes spell every name like PyTorch (`block_._{i}/layer_._0/SelfAttention/q/kernel`),
but create the shared matrix as its own top-level Keras layer `shared`, under its own name
scope ('shared/shared/embeddings:0'), and the encoder and decoder layers list it again.

HF's Flax classes spell every name like PyTorch too ('encoder/block/0/layer/0/SelfAttention/q/
kernel'), the norms' scale included ('layer_norm/weight', no `scale`); the embeddings (shared,
the position bias) are nn.Embed's `embedding`. The stacks hold no embed_tokens of their own.
"""
from __future__ import annotations

from . import kerashub as kh
from .engine import INFERRED, Block, Family, Spelling, hf_tf_path, linear, param

# The feed-forward's two forms: ReLU/GELU (`wi`, T5 1.0) and gated (act(`wi_0`) * `wi_1`,
# T5 1.1, mT5, flan-t5; feed_forward_proj="gated-gelu"). The tensors present say which.
DENSE_FFN, GATED_FFN = "dense_ffn", "gated_ffn"


def rms_norm(name: str, pt: str) -> list:
    """T5LayerNorm: a scale only, named `weight` in PyTorch and TF alike (it is no keras
    LayerNormalization, so no gamma)."""
    return param(f"{name}.weight", ("hidden",), pt=f"{pt}.weight", tf2=f"{hf_tf_path(pt)}/weight",
                 flax=f"{pt.replace('.', '/')}/weight")


def attention(name: str, pt: str) -> list:
    return [p for leaf, raw in (("q", "q"), ("k", "k"), ("v", "v"), ("out", "o"))
            for p in linear(f"{name}.{leaf}", bias=False, pt=f"{pt}.{raw}")]


def stack(side: str, sublayers: tuple[tuple[str, str], ...]) -> tuple[Block, ...]:
    """The blocks of one stack: `sublayers` are (canonical attention name, HF module name)
    in `layer.{n}` order; the feed-forward is the next sub-layer."""
    ffn = f"layer.{len(sublayers)}"
    repeat = "num_layers" if side == "encoder" else "num_decoder_layers"
    layers = Block.of(f"{side}.layers.{{i}}", [
        *(attention(canon, f"layer.{n}.{module}") + rms_norm(f"{canon}.norm", f"layer.{n}.layer_norm")
          for n, (canon, module) in enumerate(sublayers)),
        rms_norm("ffn.norm", f"{ffn}.layer_norm"),
        linear("ffn.down", bias=False, pt=f"{ffn}.DenseReluDense.wo")],
        repeat=repeat, pt=f"{side}.block.{{i}}",
        # TF's encoder/decoder layer holds the shared embeddings layer: the h5 lists it again.
        lists_also={"tf2": ("shared",)})
    dense = Block.of(f"{side}.layers.{{i}}.ffn", [linear("up", bias=False, pt="wi")], repeat=repeat,
                     role=DENSE_FFN, pt=f"{side}.block.{{i}}.{ffn}.DenseReluDense")
    gated = Block.of(f"{side}.layers.{{i}}.ffn", [linear("gate", bias=False, pt="wi_0"),
                                                   linear("linear", bias=False, pt="wi_1")],
                     repeat=repeat, role=GATED_FFN, pt=f"{side}.block.{{i}}.{ffn}.DenseReluDense")
    # The relative position bias: only block 0's self-attention has the table.
    position = Block.of(f"{side}.position_bias", [
        param("weight", ("buckets", "heads"), pt="relative_attention_bias.weight",
              tf2="relative_attention_bias/embeddings", flax="relative_attention_bias/embedding"),
    ], pt=f"{side}.block.0.layer.0.SelfAttention")
    top = Block.of(side, [
        # The stack's embed_tokens is the shared module itself in HF's PyTorch T5 (whatever
        # tie_word_embeddings says); PyTorch's state dict names it, safetensors files drop it.
        param("embed_tokens.weight", ("rows", "hidden"), tied_to="shared.weight", tie_key=None,
              pt="embed_tokens.weight"),
        rms_norm("final_norm", "final_layer_norm"),
    ], pt=side)
    return top, position, layers, dense, gated


SHARED = Block.of("shared", [param("weight", ("rows", "hidden"), pt="weight", tf2="embeddings", flax="embedding")],
                  pt="shared", h5_scope={"tf2": "shared"})

# The LM head: the shared matrix unless tie_word_embeddings is false. TF's and Flax's classes
# then make an `lm_head` Dense layer (kernel (hidden, vocab)); while tied they have no such layer.
_UNTIED_KERNEL = Spelling("kernel", ("hidden", "rows"), tied_copy=False)
LM_HEAD = Block.of("heads.lm", [
    param("decoder.weight", ("rows", "hidden"), tied_to="shared.weight", pt="weight",
          tf2=_UNTIED_KERNEL, flax=_UNTIED_KERNEL),
], role="lm", pt="lm_head")

ENCODER = stack("encoder", (("self_attn", "SelfAttention"),))
DECODER = stack("decoder", (("self_attn", "SelfAttention"), ("cross_attn", "EncDecAttention")))


def infer_t5_config(specs, counts) -> tuple[dict, list[str]]:
    """HF T5Config fields from tensor shapes, for a weights file that came without one."""
    vocab, d_model = specs["shared.weight"].shape
    buckets, heads = specs["encoder.position_bias.weight"].shape
    q = specs["encoder.layers.0.self_attn.q.weight"].shape
    gated = "encoder.layers.0.ffn.gate.weight" in specs
    up = specs["encoder.layers.0.ffn.gate.weight" if gated else "encoder.layers.0.ffn.up.weight"].shape
    config = {
        "model_type": "t5",
        "vocab_size": vocab,
        "d_model": d_model,
        "num_heads": heads,
        "d_kv": q[0] // heads,
        "d_ff": up[0],
        "num_layers": counts.get("num_layers", 0),
        "num_decoder_layers": counts.get("num_decoder_layers", 0),
        "relative_attention_num_buckets": buckets,
        # The activation leaves no trace: T5 1.0 used ReLU, the gated releases GELU.
        "feed_forward_proj": "gated-gelu" if gated else "relu",
        "tie_word_embeddings": "heads.lm.decoder.weight" not in specs,
    }
    notes = [f"no config given: inferred from tensor shapes; feed_forward_proj={config['feed_forward_proj']!r} "
             "and relative_attention_max_distance (128) are the releases' values, not read from the weights"]
    return config, notes


T5 = Family(
    name="t5", model_types=("t5",), declared_views=("pt", "tf2", "flax"),
    blocks=(SHARED, *ENCODER, *DECODER, LM_HEAD),
    # No framework nests T5 in a base-model prefix.
    base_prefix={},
    architectures={
        "T5ForConditionalGeneration": frozenset({"lm"}),
        "T5Model": frozenset(),
    },
    infer_config=infer_t5_config,
    # Heads and widths are in the shapes (the position bias is buckets x heads); the activation is not.
    defaults={"feed_forward_proj": INFERRED, "layer_norm_epsilon": 1e-6, "relative_attention_max_distance": 128},
    # Older checkpoints carry a relative_attention_bias on decoder block 0's cross-attention,
    # which HF's T5 never had a use for (_keys_to_ignore_on_load_unexpected).
    ignore={"pt": (r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$",)},
    description="T5 (google-research/text-to-text-transfer-transformer, HF T5Model/T5ForConditionalGeneration)",
)


# --------------------------------------------------------------------------- keras-hub view
# keras-hub's T5Backbone (keras_hub/src/models/t5/t5_backbone.py; keras-hub 0.32 has no HF
# loader for T5, only for T5Gemma): one ReversibleEmbedding for both stacks and the LM head
# (its reverse_embeddings, (hidden, vocab), is the untied lm_head), T5TransformerLayers whose
# Dense kernels are (in, out), the relative bias table in layer 0's self-attention of each
# stack, and a T5LayerNorm closing each stack. Both stacks are one layer class, numbered on in
# the preset ('t5_transformer_layer_{L + i}' is decoder layer i: kh.stacks). The class fixes
# 32 buckets and a maximum distance of 128, and has one count for both stacks.
#
# HF's feed_forward_proj '[gated-]act' is the activation and use_gated_activation; HF's
# 'gated-gelu' computes the tanh GELU ('gelu_new'), which keras-hub registers as
# keras_hub>gelu_approximate, while keras' 'gelu' is the exact one (HF 'gelu').
GELU_APPROXIMATE = {"module": "builtins", "class_name": "function", "config": "keras_hub>gelu_approximate",
                    "registered_name": "function"}
HUB_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "silu": "silu", "gelu_new": GELU_APPROXIMATE}


def _t5_hub_args(hf: dict) -> dict:
    layers = kh.require(hf, "num_layers")
    if kh.require(hf, "num_decoder_layers") != layers:
        raise ValueError(f"num_decoder_layers={hf['num_decoder_layers']} but num_layers={layers}; keras-hub's "
                         "T5Backbone has one count for both stacks")
    proj = kh.require(hf, "feed_forward_proj")
    parts = proj.split("-") if isinstance(proj, str) else []
    gated = len(parts) == 2 and parts[0] == "gated"
    act = "gelu_new" if proj == "gated-gelu" else parts[-1] if parts and (gated or len(parts) == 1) else None
    if act not in HUB_ACTIVATIONS:
        raise ValueError(f"feed_forward_proj={proj!r}; keras-hub's T5Backbone computes "
                         f"{', '.join(sorted(HUB_ACTIVATIONS))}, gated or not")
    return {"key_value_dim": kh.require(hf, "d_kv"), "activation": HUB_ACTIVATIONS[act],
            "use_gated_activation": gated,
            # a saved config leaves the tie out where it is HF's default, true
            "tie_embedding_weights": bool(hf.get("tie_word_embeddings", True))}


def _t5_hf(hub: dict, names: set) -> dict:
    act = next((k for k, v in HUB_ACTIVATIONS.items() if v == hub.get("activation")), None)
    gated = hub.get("use_gated_activation", True)
    if act is None or (gated and act == "gelu"):
        raise ValueError(f"activation={hub.get('activation')!r}{' gated' if gated else ''}, which HF's T5 "
                         "feed_forward_proj cannot state")
    proj = "gated-gelu" if gated and act == "gelu_new" else f"gated-{act}" if gated else act
    dim = hub.get("key_value_dim") or hub["hidden_dim"] // hub["num_heads"]
    return {"d_kv": dim, "feed_forward_proj": proj, "num_decoder_layers": hub["num_layers"],
            "tie_word_embeddings": bool(hub.get("tie_embedding_weights", True)), "is_encoder_decoder": True}


def _hub_attention(module: str, name: str) -> dict:
    return {f"{name}.{leaf}.weight": kh.kernel(f"{module}/{raw}_projector/vars/0")
            for leaf, raw in (("q", "query"), ("k", "key"), ("v", "value"), ("out", "output"))}


def _hub_layer(cross: bool) -> dict:
    out = {**_hub_attention("self_attention", "self_attn"),
           "self_attn.norm.weight": kh.plain("self_attention_layer_norm/vars/0"),
           "ffn.norm.weight": kh.plain("layer_norm/vars/0"),
           "ffn.down.weight": kh.kernel("output_projector/vars/0")}
    if cross:
        out.update({**_hub_attention("cross_attention", "cross_attn"),
                    "cross_attn.norm.weight": kh.plain("cross_attention_layer_norm/vars/0")})
    return out


def _hub_stack(side: str, n: int, cross: bool) -> dict:
    layer = f"t5_{side}_layer_{{i}}"
    return {
        side: ("", {"final_norm.weight": kh.plain(f"t5_layer_norm_{n}/vars/0")}),
        f"{side}.position_bias": ("", {"weight": kh.plain(f"t5_{side}_layer_0/self_attention/vars/0")}),
        f"{side}.layers.{{i}}": (layer, _hub_layer(cross)),
        (f"{side}.layers.{{i}}.ffn", DENSE_FFN): (layer, {"up.weight": kh.kernel("input_projector/vars/0")}),
        # HF's wi_0 is the activated half, keras-hub's input_projector; wi_1 its gate_projector.
        (f"{side}.layers.{{i}}.ffn", GATED_FFN): (layer, {"gate.weight": kh.kernel("gated_input_projector/vars/0"),
                                                          "linear.weight": kh.kernel("gate_projector/vars/0")}),
    }


HUB_LM_HEAD = "reversible_embedding_0/vars/1"
_STACKS = kh.stacks("t5_transformer_layer", "num_layers", ("t5_encoder_layer", "t5_decoder_layer"))


def _hub_names(name: str, config: dict, to_view: bool) -> str:
    """Both stacks' layers by stack (kh.stacks); and the activated input_projector, which is
    wi_0 of a gated feed-forward and wi of a dense one, as 'gated_input_projector' where the
    config says gated (the view keeps one name per param)."""
    gated = str(config.get("feed_forward_proj", "")).startswith("gated-")
    if to_view:
        name = _STACKS(name, config, True)
        return name.replace("/input_projector/", "/gated_input_projector/") if gated else name
    return _STACKS(name.replace("/gated_input_projector/", "/input_projector/"), config, False)
T5 = kh.with_kerashub(T5, kh.HubConfig(
    "T5Backbone", "keras_hub.src.models.t5.t5_backbone", "t5",
    pairs=(("vocab_size", "vocabulary_size"), ("num_layers", "num_layers"), ("num_heads", "num_heads"),
           ("d_model", "hidden_dim"), ("d_ff", "intermediate_dim"), ("dropout_rate", "dropout"),
           ("layer_norm_epsilon", "layer_norm_epsilon")),
    fixed={"relative_attention_num_buckets": 32, "relative_attention_max_distance": 128},
    to_hub=_t5_hub_args, to_hf=_t5_hf, architecture="T5ForConditionalGeneration", tasks=("Seq2SeqLM",),
    lm_head=HUB_LM_HEAD, tie_arg="tie_embedding_weights",
    rename=_hub_names), {
    "shared": ("", {"weight": kh.plain("reversible_embedding_0/vars/0")}),
    **_hub_stack("encoder", 0, cross=False),
    **_hub_stack("decoder", 1, cross=True),
    "heads.lm": ("", {"decoder.weight": kh.HubSpelling(HUB_LM_HEAD, ("hidden", "rows"), tied_copy=False)}),
}, roles=frozenset({DENSE_FFN, GATED_FFN, "lm"}))
# keras-hub's T5Tokenizer: SentencePiece (HF's spiece.model) with </s> and <pad> fixed, the
# model's pieces only. HF's T5Tokenizer adds 100 <extra_id_N> sentinels after them unless
# extra_ids=0, which keras-hub's has no place for: only extra_ids=0 is written (and legacy,
# HF's plain SentencePiece encoding, which its default is).
kh.with_tokenizer("t5", kh.HubTokenizer(
    "T5Tokenizer", "keras_hub.src.models.t5.t5_tokenizer", "sentencepiece", "T5Tokenizer",
    (("eos_token", "</s>", "</s>"), ("pad_token", "<pad>", "<pad>")),
    settings=(("extra_ids", 0, 100), ("legacy", True, True)), model_file="spiece.model"))
FAMILIES = [T5]
