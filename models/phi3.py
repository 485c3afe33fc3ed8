"""Phi-3 (microsoft/Phi-3-*; HF Phi3Model, Phi3ForCausalLM, Phi3For{Sequence,Token}Classification).

Llama's decoder (RMS norms, rotary attention with grouped-query k/v, a gated MLP) with two
projections stored fused: `self_attn.qkv_proj` holds the q, k and v rows one after the other
(num_attention_heads * head_dim, then num_key_value_heads * head_dim twice), `mlp.gate_up_proj`
the gate and up rows (intermediate_size each). The canonical tensors are the separate ones,
named as the llama family names them, so the fused pair is a declared split (engine.Fused)
that other views can name apart, and writing the pt view concatenates them back.
"""
from __future__ import annotations

from .engine import INFERRED, Block, fused, linear, param
from .llama import decoder_family
from .t5 import rms_norm


def qkv_sizes(config: dict, rows: int) -> tuple[int, int, int]:
    """q, k and v rows of qkv_proj. Phi3Attention's head_dim is hidden_size // heads unless the
    config sets one; a config without heads (a bare file's, inferred) has q = hidden_size rows,
    k and v the rest, halved."""
    heads = config.get("num_attention_heads")
    if not heads:
        q = config["hidden_size"]
        return q, (rows - q) // 2, (rows - q) // 2
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    kv = (config.get("num_key_value_heads") or heads) * head_dim
    return heads * head_dim, kv, kv


def gate_up_sizes(config: dict, rows: int) -> tuple[int, int]:
    inner = config.get("intermediate_size") or rows // 2
    return inner, inner


LAYER = Block.of("decoder.layers.{i}", [
    param("attn.q.weight", ("out", "in")),
    param("attn.k.weight", ("out", "in")),
    param("attn.v.weight", ("out", "in")),
    linear("attn.out", bias=False, pt="self_attn.o_proj"),
    param("ffn.gate.weight", ("out", "in")),
    param("ffn.up.weight", ("out", "in")),
    linear("ffn.down", bias=False, pt="mlp.down_proj"),
    rms_norm("attn.norm", "input_layernorm"),
    rms_norm("ffn.norm", "post_attention_layernorm"),
], repeat="num_hidden_layers", pt="layers.{i}", fused={"pt": (
    fused("self_attn.qkv_proj.weight", ("attn.q.weight", "attn.k.weight", "attn.v.weight"), "out", qkv_sizes),
    fused("mlp.gate_up_proj.weight", ("ffn.gate.weight", "ffn.up.weight"), "out", gate_up_sizes),
)})


# Llama's family but for the layer: its heads (no QA class), what a bare file must be given
# (the head count, rotary base, norm epsilon; the k/v heads and head_dim then follow from the
# split q and k rows), and Phi-3's own stated defaults, its long-context releases' rotary
# scaling and window among them.
PHI3 = decoder_family(
    "phi3", "Phi3", (LAYER,), qa_prefix=None,
    defaults={"max_position_embeddings": 4096, "original_max_position_embeddings": 4096, "rope_scaling": None,
              "partial_rotary_factor": 1.0, "sliding_window": None,
              # the releases' padding token (which token a sequence classifier reads)
              "pad_token_id": 32000, "tie_word_embeddings": INFERRED},
    description="Phi-3 (microsoft; HF Phi3Model/Phi3ForCausalLM/Phi3For{Sequence,Token}Classification)")
FAMILIES = [PHI3]
