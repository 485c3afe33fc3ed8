"""CTRL (salesforce/ctrl; HF CTRLModel, CTRLLMHeadModel).

A pre-LN decoder with plain Linear layers (PyTorch (out, in), TF (in, out) kernels), separate
Wq/Wk/Wv projections, a two-layer feed-forward kept as an nn.Sequential (`ffn.0`, `ffn.2`),
and sinusoidal positions computed at run time (no tensor: `pos_encoding` is a plain
attribute, never in a state dict). Canonical names are those of the other decoders (gpt2.py).
"""
from __future__ import annotations

from ..ir.layout import UNIT
from .engine import Block, Family, embedding, linear, norm, param

LAYER = Block.of("decoder.layers.{i}", [
    linear("attn.q", pt="multi_head_attention.Wq"),
    linear("attn.k", pt="multi_head_attention.Wk"),
    linear("attn.v", pt="multi_head_attention.Wv"),
    linear("attn.out", pt="multi_head_attention.dense"),
    # The feed-forward is a Keras list of layers in TF too, but indexed as plain scope names
    # ('ffn/0'), not HF's 'ffn_._0' list spelling the derived tf2 rule would give.
    linear("ffn.up", pt="ffn.0", tf2="ffn/0"),
    linear("ffn.down", pt="ffn.2", tf2="ffn/2"),
    norm("attn.norm", pt="layernorm1"),
    norm("ffn.norm", pt="layernorm2"),
], repeat="n_layer", pt="h.{i}")

EMBEDDINGS = Block.of("embeddings", [embedding("word", pt="w")], pt="")
FINAL_NORM = Block.of("decoder", [norm("norm", pt="layernorm")], pt="")

# lm_head is the word embeddings (tied unless tie_word_embeddings is false; TF always reuses
# the matrix and stores no name for it) plus a bias of its own. TF keeps that bias in its own
# top-level layer named 'lm_head' (so h5 group 'lm_head', weight 'lm_head/bias'), shaped
# (1, vocab) where PyTorch has (vocab,).
LM_HEAD = Block.of("heads.lm", [
    param("weight", ("rows", "hidden"), tied_to="embeddings.word.weight", pt="weight"),
    param("bias", ("rows",), pt="bias", tf2=("bias", (UNIT, "rows"))),
], role="lm", base=False, pt="lm_head")


def infer_ctrl_config(specs, counts) -> tuple[dict, list[str]]:
    """HF CTRLConfig fields from tensor shapes, for a weights file that came without one."""
    vocab_size, n_embd = specs["embeddings.word.weight"].shape
    up = specs.get("decoder.layers.0.ffn.up.weight")
    config = {
        "model_type": "ctrl",
        "vocab_size": vocab_size,
        "n_embd": n_embd,
        "n_layer": counts.get("n_layer", 0),
        "dff": up.shape[0] if up is not None else 4 * n_embd,
        # Heads leave no trace in the shapes; the CTRL release has 16 heads of 80 (1280 wide).
        "n_head": max(1, n_embd // 80),
    }
    if "heads.lm.weight" in specs:
        config["tie_word_embeddings"] = False
    notes = [f"no config given: inferred from tensor shapes; n_head={config['n_head']} is a guess "
             "(80 per head, as in the release) and n_positions (sinusoidal, no tensor) is left at "
             "CTRLConfig's default; pass --config to set them"]
    return config, notes


CTRL = Family(
    name="ctrl", model_types=("ctrl",), declared_views=("pt", "tf2"),
    blocks=(EMBEDDINGS, LAYER, FINAL_NORM, LM_HEAD),
    base_prefix={"pt": "transformer.", "tf2": "transformer/"},
    # The bare PyTorch model saves its keys unprefixed; TF always nests its main layer.
    arch_prefixes={"pt": {"CTRLModel": ""}},
    architectures={"CTRLLMHeadModel": frozenset({"lm"}), "CTRLModel": frozenset()},
    infer_config=infer_ctrl_config,
    # Sinusoidal positions: no table says how many.
    head_widths={"n_head": "n_embd"},
    required=("n_head",), defaults={"layer_norm_epsilon": 1e-6, "n_positions": 256},
    description="CTRL (salesforce/ctrl; HF CTRLModel/CTRLLMHeadModel)",
)
FAMILIES = [CTRL]
