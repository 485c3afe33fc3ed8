"""BART (fairseq; HF BartModel, BartForConditionalGeneration, BartForSequenceClassification).

An encoder-decoder of post-LN transformer layers with biases, learned positions (HF's table
has max_position_embeddings + 2 rows: fairseq's offset of 2, kept for checkpoint
compatibility) and a LayerNorm on the embeddings of each stack. One embedding matrix
(`shared`) feeds both stacks and the LM head; the LM head adds `final_logits_bias`, a
(1, vocab) buffer in PyTorch, a top-level Keras layer of its own in TF.

HF's TF classes spell the layers like PyTorch but index them 'layers.{i}' (not 'layers_._{i}'),
and create the shared matrix under an absolute name scope, 'model.shared/embeddings', outside
the main layer's 'model/' although the 'model' Keras layer holds it. So the tf2 names are
spelled in full (no tf2 base prefix), and the shared block declares its h5 layer and scope.
"""
from __future__ import annotations

from ..ir.layout import UNIT
from .engine import Block, Family, Spelling, embedding, linear, norm, param


def attention(name: str, pt: str) -> list:
    return [p for leaf in ("q", "k", "v", "out")
            for p in linear(f"{name}.{leaf}", pt=f"{pt}.{leaf}_proj")]


def stack(side: str, cross: bool) -> tuple[Block, Block]:
    """One stack's blocks: its embeddings (tokens, positions, LayerNorm) and its layers."""
    embeddings = Block.of(side, [
        # HF's PyTorch stacks take the shared module's matrix when built; PyTorch's state dict
        # names it again, safetensors files drop it, TF never names it.
        param("embed_tokens.weight", ("rows", "hidden"), tied_to="shared.weight", tie_key=None,
              pt="embed_tokens.weight"),
        embedding("embeddings.position", pt="embed_positions"),
        norm("embeddings.norm", pt="layernorm_embedding"),
    ], pt=side, tf2=f"model/{side}")
    sublayers = [("self_attn", "self_attn")] + ([("cross_attn", "encoder_attn")] if cross else [])
    layers = Block.of(f"{side}.layers.{{i}}", [
        [p for canon, module in sublayers
         for p in attention(canon, module) + norm(f"{canon}.norm", pt=f"{module}_layer_norm")],
        linear("ffn.up", pt="fc1"),
        linear("ffn.down", pt="fc2"),
        norm("ffn.norm", pt="final_layer_norm"),
    ], repeat=f"{side}_layers", pt=f"{side}.layers.{{i}}", tf2=f"model/{side}/layers.{{i}}")
    return embeddings, layers


SHARED = Block.of("shared", [param("weight", ("rows", "hidden"), pt="weight", tf2="embeddings", flax="embedding")],
                  pt="shared", tf2="model.shared", h5_layer={"tf2": "model"}, h5_scope={"tf2": "model.shared"})

# The LM head: the shared matrix (unless tie_word_embeddings is false; TF always ties, so it
# names no decoder and an untied model cannot be written as TF2) plus final_logits_bias,
# which both frameworks keep outside any module: PyTorch at the top of the state dict, TF as
# a bare variable 'final_logits_bias:0' in its own Keras layer.
LM_HEAD = Block.of("heads.lm", [
    param("bias", (UNIT, "rows"), pt="final_logits_bias", tf2="final_logits_bias", flax="final_logits_bias"),
    # Flax BART applies the shared matrix when tied, and has an lm_head Dense only untied.
    param("decoder.weight", ("rows", "hidden"), tied_to="shared.weight", pt="lm_head.weight",
          flax=Spelling("lm_head/kernel", ("hidden", "rows"), tied_copy=False)),
], role="lm", base=False, pt="", tf2="")

# BartClassificationHead: dense + tanh on the last <eos> state of the decoder, then the labels.
CLASSIFIER_HEAD = Block.of("heads.classifier", [
    linear("dense", pt="dense"),
    linear("out_proj", pt="out_proj"),
], role="classifier", base=False, pt="classification_head")


def infer_bart_config(specs, counts) -> tuple[dict, list[str]]:
    """HF BartConfig fields from tensor shapes, for a weights file that came without one."""
    vocab, d_model = specs["shared.weight"].shape
    config = {
        "model_type": "bart",
        "vocab_size": vocab,
        "d_model": d_model,
        "encoder_layers": counts.get("encoder_layers", 0),
        "decoder_layers": counts.get("decoder_layers", 0),
        "encoder_ffn_dim": specs["encoder.layers.0.ffn.up.weight"].shape[0]
        if "encoder.layers.0.ffn.up.weight" in specs else 4 * d_model,
        "decoder_ffn_dim": specs["decoder.layers.0.ffn.up.weight"].shape[0]
        if "decoder.layers.0.ffn.up.weight" in specs else 4 * d_model,
        # The table keeps fairseq's 2 leading rows beyond the usable positions.
        "max_position_embeddings": specs["encoder.embeddings.position.weight"].shape[0] - 2,
        # Heads leave no trace in the shapes: every BART release uses 64 per head.
        "encoder_attention_heads": max(1, d_model // 64),
        "decoder_attention_heads": max(1, d_model // 64),
    }
    if "heads.classifier.out_proj.weight" in specs:
        config["num_labels"] = specs["heads.classifier.out_proj.weight"].shape[0]
    notes = [f"no config given: inferred from tensor shapes; attention heads={config['encoder_attention_heads']} "
             "is a guess (64 per head), pass --config to set it"]
    return config, notes


BART = Family(
    name="bart", model_types=("bart",), declared_views=("pt", "tf2", "flax"),
    blocks=(SHARED, *stack("encoder", cross=False), *stack("decoder", cross=True), LM_HEAD, CLASSIFIER_HEAD),
    # TF2 names are spelled in full from the root (see the module docstring).
    base_prefix={"pt": "model."},
    # PyTorch BartModel keys have no 'model.' (TF's BartModel keeps its 'model' main layer).
    arch_prefixes={"pt": {"BartModel": ""}},
    architectures={
        "BartForConditionalGeneration": frozenset({"lm"}),
        "BartForSequenceClassification": frozenset({"classifier"}),
        "BartModel": frozenset(),
    },
    infer_config=infer_bart_config,
    required=("encoder_attention_heads", "decoder_attention_heads"),
    defaults={"activation_function": "gelu", "scale_embedding": False},
    description="BART (fairseq; HF BartModel/BartForConditionalGeneration/BartForSequenceClassification)",
)
FAMILIES = [BART]
