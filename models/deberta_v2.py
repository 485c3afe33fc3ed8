"""DeBERTa-v2 and v3 (microsoft/DeBERTa; HF DebertaV2Model and its heads).

BERT's post-LN encoder with disentangled attention: each layer's query_proj/key_proj/value_proj
(and, with share_att_key false, its own pos_key_proj/pos_query_proj, which HF's TF class calls
pos_proj/pos_q_proj) attend over the encoder's relative position embeddings
(encoder.rel_embeddings, layer-normed by encoder.LayerNorm when norm_rel_ebd has layer_norm).
Which tensors exist follows the config, so each optional one is its own block: position
embeddings (position_biased_input), token types (type_vocab_size > 0), the projection from a
narrower embedding (embedding_size), the relative tables, and the conv layer beside the first
layer (conv_kernel_size > 0). TF2 names follow the PyTorch ones, except rel_embeddings.weight,
one Keras weight with a dot in its name.

The MLM head comes in two spellings: `legacy` (transformers' default, BERT's cls.predictions
with a decoder tied to the word embeddings; the only one HF's TF class has) and the original
release's lm_predictions.lm_head, which always multiplies by the word embeddings and stores
no decoder at all (pt view only).
"""
from __future__ import annotations

from dataclasses import replace

from ..ir.layout import CONV1D_PT, CONV1D_TF
from . import bert
from .engine import INFERRED, Block, Family, embedding, linear, norm, param

EMBEDDINGS = Block.of("embeddings", [
    embedding("word", pt="word_embeddings", tf_leaf="weight"),
    norm("norm", pt="LayerNorm"),
], pt="embeddings")
POSITION = Block.of("embeddings", [embedding("position", pt="position_embeddings")], role="position",
                    pt="embeddings")
TOKEN_TYPE = Block.of("embeddings", [embedding("token_type", pt="token_type_embeddings")], role="token_type",
                      pt="embeddings")
# embedding_size < hidden_size. HF's TF class builds its position table hidden_size wide, so only
# a model without position embeddings (v3's layout) loads there with a projection.
EMBED_PROJ = Block.of("embeddings", [linear("project", bias=False, pt="embed_proj")], role="embed_proj",
                      pt="embeddings")

LAYER = Block.of("encoder.layers.{i}", [
    linear("attn.q", pt="attention.self.query_proj"),
    linear("attn.k", pt="attention.self.key_proj"),
    linear("attn.v", pt="attention.self.value_proj"),
    linear("attn.out", pt="attention.output.dense"),
    norm("attn.norm", pt="attention.output.LayerNorm"),
    linear("ffn.up", pt="intermediate.dense"),
    linear("ffn.down", pt="output.dense"),
    norm("ffn.norm", pt="output.LayerNorm"),
], repeat="num_hidden_layers", pt="encoder.layer.{i}")

# share_att_key false: the relative embeddings get projections of their own, c2p's for keys and
# p2c's for queries.
POS_KEY_PROJ = Block.of("encoder.layers.{i}", [linear("attn.pos_k", pt="pos_key_proj", tf2="pos_proj")],
                        repeat="num_hidden_layers", role="pos_key_proj", pt="encoder.layer.{i}.attention.self")
POS_QUERY_PROJ = Block.of("encoder.layers.{i}", [linear("attn.pos_q", pt="pos_query_proj", tf2="pos_q_proj")],
                          repeat="num_hidden_layers", role="pos_query_proj", pt="encoder.layer.{i}.attention.self")

RELATIVE = Block.of("encoder", [
    param("rel_embeddings.weight", ("rows", "hidden"), pt="rel_embeddings.weight", tf2="rel_embeddings.weight"),
], role="relative", pt="encoder")
REL_NORM = Block.of("encoder", [norm("rel_norm", pt="LayerNorm")], role="rel_norm", pt="encoder")

# A Conv1d over the sequence (PyTorch (out, in / groups, kernel), TF (kernel, in, out)), its own
# LayerNorm. HF's TF class builds no groups.
CONV = Block.of("encoder.conv", [
    param("conv.weight", CONV1D_PT, pt="conv.weight", tf2=("conv/kernel", CONV1D_TF)),
    param("conv.bias", ("out",), pt="conv.bias", tf2="conv/bias"),
    norm("norm", pt="LayerNorm"),
], role="conv", pt="encoder.conv")

# transformers' default (legacy=True): BERT's MLM head; TF names it cls/predictions.
MLM_HEAD = replace(bert.MLM_HEAD, prefixes={**bert.MLM_HEAD.prefixes, "tf2": "cls/predictions"})
# legacy=False: the original release's head, logits = transform(x) @ word_embeddings.T + bias.
LM_HEAD = Block.of("heads.lm", [
    linear("dense", pt="dense"),
    norm("norm", pt="LayerNorm"),
    param("bias", ("rows",), pt="bias"),
], role="lm", base=False, pt="lm_predictions.lm_head", tf2=None)

# ContextPooler: the first token through a dense layer, outside the base model.
POOLER = Block.of("pooler", [linear("dense", pt="dense")], role="pooler", base=False, pt="pooler")
CLASSIFIER_HEAD = Block.of("heads.classifier", [linear("dense", pt="")], role="classifier", base=False,
                           pt="classifier")
QA_HEAD = Block.of("heads.qa", [linear("dense", pt="")], role="qa", base=False, pt="qa_outputs")


def infer_deberta_v2_config(specs, counts) -> tuple[dict, list[str]]:
    """HF DebertaV2Config fields from tensor shapes, for a weights file that came without one."""
    word = specs["embeddings.word.weight"].shape
    hidden = specs["embeddings.norm.weight"].shape[0]
    has = specs.__contains__
    config = {
        "model_type": "deberta-v2",
        "vocab_size": word[0],
        "embedding_size": word[1],
        "hidden_size": hidden,
        "num_hidden_layers": counts.get("num_hidden_layers", 0),
        "intermediate_size": specs["encoder.layers.0.ffn.up.weight"].shape[0],
        "position_biased_input": has("embeddings.position.weight"),
        "type_vocab_size": specs["embeddings.token_type.weight"].shape[0] if has("embeddings.token_type.weight") else 0,
        "relative_attention": has("encoder.rel_embeddings.weight"),
        "norm_rel_ebd": "layer_norm" if has("encoder.rel_norm.weight") else "none",
        # Heads leave no trace in the shapes: DeBERTa's releases all use 64 per head.
        "num_attention_heads": max(1, hidden // 64),
        # The span the relative buckets are scaled to: max_position_embeddings (the position
        # table's length) when max_relative_positions < 1, as in every release; without a table,
        # the releases' 512 itself.
        "max_relative_positions": -1 if has("embeddings.position.weight") else 512,
        # With share_att_key false each layer has the projections of the kinds it uses.
        "share_att_key": not (has("encoder.layers.0.attn.pos_k.weight") or has("encoder.layers.0.attn.pos_q.weight")),
        "pos_att_type": ["p2c", "c2p"],
    }
    if not config["share_att_key"]:
        config["pos_att_type"] = [kind for kind, name in (("p2c", "pos_q"), ("c2p", "pos_k"))
                                  if has(f"encoder.layers.0.attn.{name}.weight")]
    if has("embeddings.position.weight"):
        config["max_position_embeddings"] = specs["embeddings.position.weight"].shape[0]
    # Releases bucket the relative positions (256 buckets, a table of 512 rows); without
    # buckets the table is 2 * max_relative_positions rows.
    config["position_buckets"] = specs["encoder.rel_embeddings.weight"].shape[0] // 2 \
        if config["relative_attention"] else -1
    if has("encoder.conv.conv.weight"):
        _, per_group, kernel = specs["encoder.conv.conv.weight"].shape
        config.update(conv_kernel_size=kernel, conv_groups=hidden // per_group)
    else:
        config["conv_kernel_size"] = 0
    if has("pooler.dense.weight"):
        config["pooler_hidden_size"] = specs["pooler.dense.weight"].shape[0]
    for head in ("classifier", "qa"):
        if has(f"heads.{head}.dense.weight"):
            config["num_labels"] = specs[f"heads.{head}.dense.weight"].shape[0]
    if has("heads.lm.bias"):
        # The original head says legacy=False. It multiplies by the word embeddings whatever
        # tie_word_embeddings says; transformers 4.57.6 mis-ties it when the flag is true (its
        # save drops the word embeddings, its load leaves them unset), so the flag that loads
        # is written.
        config.update(legacy=False, tie_word_embeddings=False)
    notes = [f"no config given: inferred from tensor shapes; num_attention_heads={config['num_attention_heads']} "
             "is a guess (64 per head), pass --config to set it"]
    return config, notes


DEBERTA_V2 = Family(
    name="deberta-v2", model_types=("deberta-v2",), declared_views=("pt", "tf2"),
    blocks=(EMBEDDINGS, POSITION, TOKEN_TYPE, EMBED_PROJ, LAYER, POS_KEY_PROJ, POS_QUERY_PROJ, RELATIVE, REL_NORM,
            CONV, MLM_HEAD, LM_HEAD, POOLER, CLASSIFIER_HEAD, QA_HEAD),
    base_prefix={"pt": "deberta.", "tf2": "deberta/"},
    # PyTorch's bare DebertaV2Model keys have no prefix; TF's keeps its main layer 'deberta'.
    arch_prefixes={"pt": {"DebertaV2Model": ""}},
    architectures={
        "DebertaV2Model": frozenset(),
        "DebertaV2ForMaskedLM": frozenset({"mlm"}),
        "DebertaV2ForSequenceClassification": frozenset({"pooler", "classifier"}),
        "DebertaV2ForTokenClassification": frozenset({"classifier"}),
        "DebertaV2ForQuestionAnswering": frozenset({"qa"}),
        # The same tensors as sequence classification with one label: only a config tells them
        # apart, so without one the class is a stated default (below).
        "DebertaV2ForMultipleChoice": frozenset({"pooler", "classifier"}),
    },
    role_aliases={"lm": "mlm"},
    infer_config=infer_deberta_v2_config,
    required=("num_attention_heads",),
    # What no tensor decides: the releases' values (or, INFERRED, the one infer_config read off
    # the shapes under an assumption: buckets = half the relative table, share_att_key without
    # position projections, a relative span of 512 where no position table holds one, the class).
    defaults={"architectures": INFERRED, "hidden_act": "gelu", "pooler_hidden_act": "gelu", "layer_norm_eps": 1e-7,
              "conv_act": "tanh", "pos_att_type": INFERRED, "share_att_key": INFERRED,
              "position_buckets": INFERRED, "max_relative_positions": INFERRED},
    # An old buffer; and the original MLM checkpoints' replaced-token-detection head, which
    # transformers' DebertaV2ForMaskedLM drops on load too.
    ignore={"pt": (r"(^|\.)embeddings\.position_ids$", r"^mask_predictions\.")},
    description="DeBERTa-v2/v3 (microsoft/DeBERTa, HF DebertaV2*)",
)
FAMILIES = [DEBERTA_V2]
