"""Gemma and Gemma 2 (google; HF GemmaModel/Gemma2Model, ForCausalLM and the classifiers).

Llama's layout (llama.decoder_layer) with two differences that leave the bytes alone: the
model scales the embeddings by sqrt(hidden_size) in its forward (the stored table is not
scaled), and its RMS norms store w and compute with (1 + w). So the tensors are carried as
they are. Gemma 2 adds a norm after attention and one after the feed-forward
(`post_attention_layernorm` is there the post-attention norm, `pre_feedforward_layernorm`
the one before the MLP). Both tie lm_head to the embeddings by default and have no
ForQuestionAnswering.

Gemma's head_dim is never hidden_size // heads by default (GemmaConfig says 256), so the
written config always names it; Gemma 2's query_pre_attn_scalar (head_dim in the 2B and 9B,
hidden_size / heads in the 27B) and sliding_window are given, never guessed.
"""
from __future__ import annotations

from . import kerashub as kh
from .llama import LM_HEAD_UNLESS_TIED, class_limits, decoder_family, decoder_layer

GEMMA = decoder_family(
    "gemma", "Gemma", (decoder_layer(),), qa_prefix=None, tie_default=True,
    views=("pt", "flax"), lm_head=LM_HEAD_UNLESS_TIED,
    view_limits={"flax": class_limits("Flax", ("GemmaModel", "GemmaForCausalLM"), fixed_head_dim=False, fixed_rope=True)},
    defaults={"max_position_embeddings": 8192, "hidden_act": "gelu_pytorch_tanh"},
    description="Gemma (google; HF GemmaModel/GemmaForCausalLM/GemmaFor{Sequence,Token}Classification)")
GEMMA2 = decoder_family(
    "gemma2", "Gemma2", (decoder_layer(norms=(("attn.norm", "input_layernorm"),
                                              ("attn.post_norm", "post_attention_layernorm"),
                                              ("ffn.norm", "pre_feedforward_layernorm"),
                                              ("ffn.post_norm", "post_feedforward_layernorm"))),),
    qa_prefix=None, tie_default=True, required=("query_pre_attn_scalar", "sliding_window"),
    defaults={"max_position_embeddings": 8192, "hidden_act": "gelu_pytorch_tanh",
              "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
    description="Gemma 2 (google; HF Gemma2Model/Gemma2ForCausalLM/Gemma2For{Sequence,Token}Classification)")


# keras-hub's GemmaBackbone (FORMATS.md §12.3): per-head kernels stored (heads, in, head_dim),
# its two feed-forward halves counted as one intermediate_dim, rope at 10000 and the tanh GELU
# fixed by the class, the LM head always the embeddings. Appended, so GEMMA stays as declared.
def _gemma_checks(hf: dict) -> dict:
    """What both Gemma generations' GemmaBackbone cannot compute is refused; the arguments they share."""
    for flag in ("attention_bias",):
        if hf.get(flag):
            raise ValueError(f"{flag}=true, which keras-hub's Gemma has no variables for")
    if hf.get("rope_scaling") is not None:
        raise ValueError(f"rope_scaling={hf['rope_scaling']!r}; keras-hub's Gemma has plain rotary positions")
    if hf.get("hidden_activation") not in (None, "gelu_pytorch_tanh"):
        raise ValueError(f"hidden_activation={hf['hidden_activation']!r}; keras-hub's Gemma computes the tanh GELU")
    if not hf.get("tie_word_embeddings", True):
        raise ValueError("tie_word_embeddings=false; keras-hub's Gemma always ties its LM head to the embeddings")
    return {"intermediate_dim": 2 * kh.require(hf, "intermediate_size"), "query_head_dim_normalize": True,
            "dropout": hf.get("attention_dropout", 0.0)}


def _gemma_hub(hf: dict) -> dict:
    return {**_gemma_checks(hf), "use_post_ffw_norm": False, "use_post_attention_norm": False}


def _is_gemma2(args: dict) -> bool:
    return bool(args.get("use_post_ffw_norm") or args.get("use_post_attention_norm"))


def _gemma_back(args: dict, names: set) -> dict:
    if args.get("intermediate_dim", 0) % 2 or not args.get("query_head_dim_normalize", True) \
            or args.get("use_post_ffw_norm") or args.get("use_post_attention_norm") \
            or args.get("use_sliding_window_attention") or args.get("attention_logit_soft_cap") is not None \
            or args.get("final_logit_soft_cap") is not None:
        raise ValueError("a GemmaBackbone with soft caps, sliding windows or another query normalization "
                         "but no post norms is neither an HF Gemma nor a Gemma 2")
    return {"intermediate_size": args["intermediate_dim"] // 2, "tie_word_embeddings": True,
            "attention_dropout": args.get("dropout", 0.0)}


_ATT = "attention"
GEMMA_PAIRS = (("vocab_size", "vocabulary_size"), ("num_hidden_layers", "num_layers"),
               ("num_attention_heads", "num_query_heads"), ("num_key_value_heads", "num_key_value_heads"),
               ("hidden_size", "hidden_dim"), ("head_dim", "head_dim"), ("rms_norm_eps", "layer_norm_epsilon"))
GEMMA_FIXED = {"hidden_act": "gelu_pytorch_tanh", "rope_theta": 10000.0}
GEMMA_HUB_LAYER = {
    "attn.q.weight": kh.gemma_head_kernel(f"{_ATT}/query_dense/vars/0", "q"),
    "attn.k.weight": kh.gemma_head_kernel(f"{_ATT}/key_dense/vars/0", "kv"),
    "attn.v.weight": kh.gemma_head_kernel(f"{_ATT}/value_dense/vars/0", "kv"),
    "attn.out.weight": kh.out_kernel(f"{_ATT}/output_dense/vars/0"),
    "ffn.gate.weight": kh.kernel("gating_ffw/vars/0"), "ffn.up.weight": kh.kernel("gating_ffw_2/vars/0"),
    "ffn.down.weight": kh.kernel("ffw_linear/vars/0"),
    "attn.norm.weight": kh.plain("pre_attention_norm/vars/0"), "ffn.norm.weight": kh.plain("pre_ffw_norm/vars/0")}


def _gemma_blocks(layer: dict) -> dict:
    return {"embeddings": ("", {"word.weight": kh.plain("reversible_embedding_0/vars/0")}),
            "decoder.layers.{i}": ("gemma_decoder_block_{i}", layer),
            "decoder": ("", {"norm.weight": kh.plain("rms_normalization_0/vars/0")}),
            "heads.lm": ("", {})}            # the embeddings, never stored again


GEMMA = kh.with_kerashub(GEMMA, kh.HubConfig(
    "GemmaBackbone", "keras_hub.src.models.gemma.gemma_backbone", "gemma", pairs=GEMMA_PAIRS, fixed=GEMMA_FIXED,
    to_hub=_gemma_hub, to_hf=_gemma_back, architecture="GemmaForCausalLM", tasks=("CausalLM",),
    claims=lambda args: not _is_gemma2(args)), _gemma_blocks(GEMMA_HUB_LAYER), roles=frozenset({"lm"}),
    tasks=kh.causal_lm("GemmaForCausalLM", "GemmaCausalLM", "gemma.gemma_causal_lm"))


# Gemma 2 is the same GemmaBackbone with both post norms, soft caps and a sliding window on
# every even layer (HF's layer_types default; keras-hub's `i % 2 == 0`, both masking keys
# `sliding_window` or more behind). keras-hub's decoder block always scales queries by
# 1/sqrt(head_dim), whatever query_head_dim_normalize says: query_pre_attn_scalar must be head_dim.
def _gemma2_hub(hf: dict) -> dict:
    head_dim = kh.require(hf, "head_dim")
    if kh.require(hf, "query_pre_attn_scalar") != head_dim:
        raise ValueError(f"query_pre_attn_scalar={hf['query_pre_attn_scalar']}, but keras-hub's Gemma scales "
                         f"queries by head_dim={head_dim} whatever its query_head_dim_normalize")
    layers = kh.require(hf, "num_hidden_layers")
    pattern = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)]
    if hf.get("layer_types") is not None and list(hf["layer_types"]) != pattern:
        raise ValueError(f"layer_types={hf['layer_types']!r}; keras-hub's Gemma windows the even layers only")
    if kh.require(hf, "sliding_window") is None:
        raise ValueError("sliding_window=null; keras-hub's Gemma 2 windows its even layers")
    return {**_gemma_checks(hf), "use_post_ffw_norm": True, "use_post_attention_norm": True,
            "use_sliding_window_attention": True}


def _gemma2_back(args: dict, names: set) -> dict:
    if args.get("intermediate_dim", 0) % 2 or not (args.get("use_post_ffw_norm") and args.get("use_post_attention_norm")) \
            or not args.get("use_sliding_window_attention"):
        raise ValueError("a GemmaBackbone with one post norm only, or no sliding window, is no HF Gemma 2")
    return {"intermediate_size": args["intermediate_dim"] // 2, "tie_word_embeddings": True,
            "attention_dropout": args.get("dropout", 0.0), "query_pre_attn_scalar": args["head_dim"]}


GEMMA2 = kh.with_kerashub(GEMMA2, kh.HubConfig(
    "GemmaBackbone", "keras_hub.src.models.gemma.gemma_backbone", "gemma2",
    pairs=(*GEMMA_PAIRS, ("sliding_window", "sliding_window_size"),
           ("attn_logit_softcapping", "attention_logit_soft_cap"), ("final_logit_softcapping", "final_logit_soft_cap")),
    fixed={"hidden_activation": "gelu_pytorch_tanh", "rope_theta": 10000.0}, to_hub=_gemma2_hub, to_hf=_gemma2_back, architecture="Gemma2ForCausalLM",
    tasks=("CausalLM",), claims=_is_gemma2), _gemma_blocks({
        **GEMMA_HUB_LAYER, "attn.post_norm.weight": kh.plain("post_attention_norm/vars/0"),
        "ffn.post_norm.weight": kh.plain("post_ffw_norm/vars/0")}), roles=frozenset({"lm"}),
    tasks=kh.causal_lm("Gemma2ForCausalLM", "GemmaCausalLM", "gemma.gemma_causal_lm"))
_GEMMA_TOKENIZER = kh.HubTokenizer("GemmaTokenizer", "keras_hub.src.models.gemma.gemma_tokenizer", "sentencepiece",
                                   "GemmaTokenizer", (("bos_token", "<bos>", "<bos>"), ("eos_token", "<eos>", "<eos>"),
                                                      ("pad_token", "<pad>", "<pad>")))
kh.with_tokenizer("gemma", _GEMMA_TOKENIZER)
kh.with_tokenizer("gemma2", _GEMMA_TOKENIZER)
FAMILIES = [GEMMA, GEMMA2]
