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
FAMILIES = [T5]
