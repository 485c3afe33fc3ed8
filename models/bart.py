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
from . import kerashub as kh
from .engine import Block, Family, Spelling, embedding, linear, norm, param


def attention(name: str, pt: str) -> list:
    return [p for leaf in ("q", "k", "v", "out")
            for p in linear(f"{name}.{leaf}", pt=f"{pt}.{leaf}_proj")]


def stack(side: str, cross: bool) -> tuple[Block, Block]:
    """One stack's blocks: its embeddings (tokens, positions, LayerNorm) and its layers."""
    embeddings = Block.of(side, [
        # HF's PyTorch stacks take the shared module's matrix when built; PyTorch's state dict
        # names it again, safetensors files drop it, TF never names it. Untied, transformers
        # does not re-tie it on load (it re-initialises the matrix, shared with model.shared):
        # irconv's files then carry it, where transformers' own save_pretrained drops it.
        param("embed_tokens.weight", ("rows", "hidden"), tied_to="shared.weight", tie_key=None,
              stored_untied="tie_word_embeddings", pt="embed_tokens.weight"),
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
    head_widths={"encoder_attention_heads": "d_model", "decoder_attention_heads": "d_model"},
    required=("encoder_attention_heads", "decoder_attention_heads"),
    defaults={"activation_function": "gelu", "scale_embedding": False},
    description="BART (fairseq; HF BartModel/BartForConditionalGeneration/BartForSequenceClassification)",
)


# --------------------------------------------------------------------------- keras-hub view
# keras-hub's BartBackbone (keras_hub/src/models/bart/bart_backbone.py): one token embedding for
# both stacks (tied to the LM head: BartSeq2SeqLM computes logits with it in reverse, adding no
# bias), per-stack PositionEmbedding and LayerNormalization, keras' TransformerEncoder and
# TransformerDecoder layers. The class fixes what HF's config states: exact GELU, epsilon
# 1e-5 (HF's nn.LayerNorm default, fixed there too), unscaled embeddings, one count, head
# number and width for both stacks.
#
# HF's position tables have max_position_embeddings + 2 rows and HF's BART reads them from row
# 2 on (BartLearnedPositionalEmbedding adds fairseq's offset of 2 to every position); keras-hub's
# have max_sequence_length rows read from 0. Rows 0 and 1 are never read, and a preset has no
# place for them: they are dropped on export and come back as zeros (LeadingRows), the one
# thing of a BART backbone that does not come back byte for byte. final_logits_bias, which
# keras-hub does not add, is dropped only where it is all zeros, and the tied head with it
# (HubConfig.zero_head): a preset is the BartModel whose token embedding, in reverse, is that head.
def _bart_hub_args(hf: dict) -> dict:
    for key, other in (("decoder_layers", "encoder_layers"), ("decoder_attention_heads", "encoder_attention_heads"),
                       ("decoder_ffn_dim", "encoder_ffn_dim")):
        if kh.require(hf, key) != kh.require(hf, other):
            raise ValueError(f"{key}={hf[key]} but {other}={hf[other]}; keras-hub's BartBackbone has one "
                             "value for both stacks")
    if not hf.get("tie_word_embeddings", True):
        raise ValueError("tie_word_embeddings=false; keras-hub's BartBackbone ties its LM head to the token embeddings")
    return {}


def _bart_hf(hub: dict, names: set) -> dict:
    return {"decoder_layers": hub["num_layers"], "decoder_attention_heads": hub["num_heads"],
            "decoder_ffn_dim": hub["intermediate_dim"]}


def _positions(config: dict):
    return kh.LeadingRows(2, kh.require(config, "max_position_embeddings"))


def _hub_embeddings(n: int) -> dict:
    return {"embeddings.position.weight": kh.HubSpelling(f"position_embedding_{n}/vars/0", None, stored=_positions),
            **kh.layer_norm(f"layer_normalization_{n}", "embeddings.norm")}


def _hub_layer(cross: bool) -> dict:
    out = {**kh.attention("_self_attention_layer", "self_attn"),
           **kh.layer_norm("_self_attention_layer_norm", "self_attn.norm"),
           **kh.dense("_feedforward_intermediate_dense", "ffn.up"),
           **kh.dense("_feedforward_output_dense", "ffn.down"),
           **kh.layer_norm("_feedforward_layer_norm", "ffn.norm")}
    if cross:
        out.update({**kh.attention("_cross_attention_layer", "cross_attn"),
                    **kh.layer_norm("_cross_attention_layer_norm", "cross_attn.norm")})
    return out


BART = kh.with_kerashub(BART, kh.HubConfig(
    "BartBackbone", "keras_hub.src.models.bart.bart_backbone", "bart",
    pairs=(("vocab_size", "vocabulary_size"), ("encoder_layers", "num_layers"),
           ("encoder_attention_heads", "num_heads"), ("d_model", "hidden_dim"), ("encoder_ffn_dim", "intermediate_dim"),
           ("dropout", "dropout"), ("max_position_embeddings", "max_sequence_length")),
    fixed={"activation_function": "gelu", "scale_embedding": False},
    to_hub=_bart_hub_args, to_hf=_bart_hf, architecture="BartModel", tasks=("Seq2SeqLM",),
    zero_head="heads.lm."), {
    "shared": ("", {"weight": kh.plain("reversible_embedding_0/vars/0")}),
    "encoder": ("", _hub_embeddings(0)),
    "encoder.layers.{i}": ("transformer_encoder_{i}", _hub_layer(cross=False)),
    "decoder": ("", _hub_embeddings(1)),
    "decoder.layers.{i}": ("transformer_decoder_{i}", _hub_layer(cross=True)),
})
# keras-hub's BartTokenizer: RoBERTa's byte-pair files with <s> </s> <pad> fixed; HF's <unk>
# and <mask> are other roles it keeps whole (a <mask> that strips the space before it is
# refused, as RoBERTa's: models/roberta.py).
kh.with_tokenizer("bart", kh.HubTokenizer(
    "BartTokenizer", "keras_hub.src.models.bart.bart_tokenizer", "bpe", "BartTokenizer",
    tuple((role, token, token) for role, token in (
        ("bos_token", "<s>"), ("cls_token", "<s>"), ("eos_token", "</s>"), ("sep_token", "</s>"), ("pad_token", "<pad>"))),
    others=(("unk_token", "<unk>"), ("mask_token", "<mask>"))))
FAMILIES = [BART]
