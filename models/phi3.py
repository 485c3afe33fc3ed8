"""Phi-3 (microsoft/Phi-3-*; HF Phi3Model, Phi3ForCausalLM, Phi3For{Sequence,Token}Classification).

Llama's decoder (RMS norms, rotary attention with grouped-query k/v, a gated MLP) with two
projections stored fused: `self_attn.qkv_proj` holds the q, k and v rows one after the other
(num_attention_heads * head_dim, then num_key_value_heads * head_dim twice), `mlp.gate_up_proj`
the gate and up rows (intermediate_size each). The canonical tensors are the separate ones,
named as the llama family names them, so the fused pair is a declared split (engine.Fused)
that other views can name apart, and writing the pt view concatenates them back.
"""
from __future__ import annotations

from .engine import INFERRED, Block, Family, fused, linear, param
from .llama import CLASS_ROLES, EMBEDDINGS, FINAL_NORM, LM_HEAD, REQUIRED, SCORE, SCORE_BIAS, heads_from_shapes
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


def infer_phi3_config(specs, counts) -> tuple[dict, list[str]]:
    """What the shapes decide; the head counts are given (--config, --set)."""
    vocab_size, hidden_size = specs["embeddings.word.weight"].shape
    config = {"model_type": "phi3", "vocab_size": vocab_size, "hidden_size": hidden_size,
              "num_hidden_layers": counts.get("num_hidden_layers", 0),
              # A head that came as its own tensor was not tied (tied ones become aliases).
              "tie_word_embeddings": "heads.lm.weight" not in specs}
    down = specs.get("decoder.layers.0.ffn.down.weight")
    if down is not None:
        config["intermediate_size"] = down.shape[1]
    if "heads.score.weight" in specs:
        config["num_labels"] = specs["heads.score.weight"].shape[0]
    return config, ["no config given: inferred from tensor shapes"]


PHI3 = Family(
    name="phi3", model_types=("phi3",), declared_views=("pt",),
    blocks=(EMBEDDINGS, LAYER, FINAL_NORM, LM_HEAD, SCORE, SCORE_BIAS),
    base_prefix={"pt": "model."},
    arch_prefixes={"pt": {"Phi3Model": ""}},
    architectures={f"Phi3{suffix}": roles for suffix, roles in CLASS_ROLES.items()
                   if suffix != "ForQuestionAnswering"},
    infer_config=infer_phi3_config,
    # As for llama: the head count, rotary base and norm epsilon are given; the k/v heads and
    # head_dim then follow from the split q and k rows. Phi-3's long-context releases add
    # their rotary scaling and window, taken only as stated defaults.
    required=REQUIRED,
    defaults={"hidden_act": "silu", "max_position_embeddings": 4096, "original_max_position_embeddings": 4096,
              "rope_scaling": None, "partial_rotary_factor": 1.0, "sliding_window": None,
              # the releases' padding token (which token a sequence classifier reads)
              "pad_token_id": 32000, "tie_word_embeddings": INFERRED},
    from_shapes=heads_from_shapes,
    tie_default=False,          # Phi3Config's
    # Older checkpoints saved the rotary frequencies, a buffer computed at run time.
    ignore={"pt": (r"(^|\.)rotary_emb\.inv_freq$",)},
    description="Phi-3 (microsoft; HF Phi3Model/Phi3ForCausalLM/Phi3For{Sequence,Token}Classification)",
)
FAMILIES = [PHI3]
