"""XLM-RoBERTa-XL / XXL (fairseq; HF XLMRobertaXL*): RoBERTa with pre-LN encoder layers.

Compared with RoBERTa (roberta.py), the embeddings have no LayerNorm, each layer normalises
before attention and before the FFN instead of after them, and the encoder ends in a final
LayerNorm. The heads, the pooler and the 'roberta.' base prefix are RoBERTa's, imported.
HF has no TF class for this family, so only the "pt" view is declared.

Canonical name -> HF PyTorch -> fairseq 0.12.2 (RoBERTa, encoder_normalize_before=True; the
fairseq view is declared elsewhere, this table records the correspondence):

  embeddings.word.weight        embeddings.word_embeddings.weight       encoder.sentence_encoder.embed_tokens.weight
  embeddings.position.weight    embeddings.position_embeddings.weight   encoder.sentence_encoder.embed_positions.weight
  embeddings.token_type.weight  embeddings.token_type_embeddings.weight (none: HF's one-row table, type_vocab_size=1)
  encoder.layers.{i}.           encoder.layer.{i}.                      encoder.sentence_encoder.layers.{i}.
    attn.norm.{weight,bias}       attention.self_attn_layer_norm.*        self_attn_layer_norm.*
    attn.q.{weight,bias}          attention.self.query.*                  self_attn.q_proj.*
    attn.k.{weight,bias}          attention.self.key.*                    self_attn.k_proj.*
    attn.v.{weight,bias}          attention.self.value.*                  self_attn.v_proj.*
    attn.out.{weight,bias}        attention.output.dense.*                self_attn.out_proj.*
    ffn.up.{weight,bias}          intermediate.dense.*                    fc1.*
    ffn.down.{weight,bias}        output.dense.*                          fc2.*
    ffn.norm.{weight,bias}        LayerNorm.*                             final_layer_norm.*
  encoder.norm.{weight,bias}    encoder.LayerNorm.*                     encoder.sentence_encoder.layer_norm.*
  pooler.dense.*                pooler.dense.*                          (none: fairseq has no pooler)
  heads.mlm.transform.dense.*   lm_head.dense.*                         encoder.lm_head.dense.*
  heads.mlm.transform.norm.*    lm_head.layer_norm.*                    encoder.lm_head.layer_norm.*
  heads.mlm.bias                lm_head.bias (= lm_head.decoder.bias)   encoder.lm_head.bias
  heads.mlm.decoder.weight      lm_head.decoder.weight (tied)           encoder.lm_head.weight (tied to embed_tokens)
  heads.classifier.dense.*      classifier.dense.*                      classification_heads.<name>.dense.*
  heads.classifier.out_proj.*   classifier.out_proj.*                   classification_heads.<name>.out_proj.*

HF's PyTorch names carry the base prefix 'roberta.' under the head classes (bare in
XLMRobertaXLModel); fairseq's base prefix is 'encoder.sentence_encoder.' and its heads sit
at 'encoder.lm_head.' and 'classification_heads.<name>.'.
"""
from __future__ import annotations

from .bert import EMBEDDINGS, POOLER
from .engine import INFERRED, Block, Family, ViewConfig, linear, norm, with_view
from .roberta import (CLASS_ROLES, FAIRSEQ_CLASSIFIER, FAIRSEQ_LM_HEAD, ROBERTA, _pairs, _vocab, fairseq_config,
                      roberta_config, zero_token_types)

# BERT's embedding tables (word, position, token_type), without the LayerNorm: in the pre-LN
# layout the first layer's attn.norm normalises the embeddings' sum instead.
XL_EMBEDDINGS = Block.of("embeddings", [[p for p in EMBEDDINGS.params if not p.name.startswith("norm.")]],
                         pt="embeddings")


def pre_ln_encoder_layer(**prefixes) -> Block:
    """One pre-LN encoder layer. The tensors that play BERT's roles keep BERT's canonical
    names (attn.q/k/v/out, ffn.up/down); the two norms are named for the sub-block they sit
    in front of: attn.norm normalises the attention's input, ffn.norm the FFN's input (in
    BERT, post-LN, each normalises its sub-block's output). Order = HF's state-dict order."""
    return Block.of("encoder.layers.{i}", [
        norm("attn.norm", pt="attention.self_attn_layer_norm"),
        linear("attn.q", pt="attention.self.query"),
        linear("attn.k", pt="attention.self.key"),
        linear("attn.v", pt="attention.self.value"),
        linear("attn.out", pt="attention.output.dense"),
        linear("ffn.up", pt="intermediate.dense"),
        linear("ffn.down", pt="output.dense"),
        # HF keeps the pre-FFN norm on the layer itself, as 'LayerNorm'.
        norm("ffn.norm", pt="LayerNorm"),
    ], repeat="num_hidden_layers", **prefixes)


# Pre-LN leaves the last layer's output unnormalised: the encoder ends in its own LayerNorm.
FINAL_NORM = Block.of("encoder", [norm("norm", pt="LayerNorm")], pt="encoder")


def infer_xl_config(specs, counts) -> tuple[dict, list[str]]:
    config, notes = roberta_config("xlm-roberta-xl")(specs, counts)
    # Shapes show no head count. BERT's 64-per-head guess is wrong here: both releases use 32
    # heads (XL: 2560 wide, 80 per head; XXL: 4096 wide, 128 per head).
    hidden = config["hidden_size"]
    config["num_attention_heads"] = 32 if hidden % 32 == 0 else max(1, hidden // 64)
    notes[0] = (f"no config given: inferred from tensor shapes; num_attention_heads="
                f"{config['num_attention_heads']} is a guess (32, as XLM-R XL and XXL), pass --config to set it")
    return config, notes


# The "fairseq" view (fairseq >= 0.10 names; the importer applies fairseq's own legacy renames).
FAIRSEQ_EMBEDDINGS = with_view(XL_EMBEDDINGS, "fairseq", "encoder.sentence_encoder", {
    "word.weight": "embed_tokens.weight", "position.weight": "embed_positions.weight"},
    derive={"token_type.weight": zero_token_types})
FAIRSEQ_LAYER = with_view(pre_ln_encoder_layer(pt="encoder.layer.{i}"), "fairseq",
                          "encoder.sentence_encoder.layers.{i}",
                          _pairs(**{"attn.q": "self_attn.q_proj", "attn.k": "self_attn.k_proj",
                                    "attn.v": "self_attn.v_proj", "attn.out": "self_attn.out_proj",
                                    "attn.norm": "self_attn_layer_norm", "ffn.up": "fc1", "ffn.down": "fc2",
                                    "ffn.norm": "final_layer_norm"}))
FAIRSEQ_FINAL_NORM = with_view(FINAL_NORM, "fairseq", "encoder.sentence_encoder", _pairs(norm="layer_norm"))

XLM_ROBERTA_XL = Family(
    name="xlm-roberta-xl", model_types=("xlm-roberta-xl",), declared_views=("pt", "fairseq"),
    blocks=(FAIRSEQ_EMBEDDINGS, FAIRSEQ_LAYER, FAIRSEQ_FINAL_NORM, POOLER, FAIRSEQ_LM_HEAD, FAIRSEQ_CLASSIFIER),
    # fairseq's pre-LN RoBERTa (encoder_normalize_before) is XLM-R XL / XXL.
    view_configs={"fairseq": ViewConfig(
        "model.pt", fairseq_config("xlm-roberta-xl", "XLMRobertaXL"), dict,
        lambda c, shapes: bool(c.get("encoder_normalize_before")) and _vocab(shapes) > 0,
        ("roberta_prenorm", "xlm_roberta_xl"))},
    base_prefix={"pt": "roberta."},
    # XLMRobertaXLModel saves its keys bare, like RobertaModel.
    arch_prefixes={"pt": {"XLMRobertaXLModel": ""}},
    architectures={f"XLMRobertaXL{kind}": CLASS_ROLES[kind]
                   for kind in ("ForMaskedLM", "ForSequenceClassification", "Model")},
    infer_config=infer_xl_config,
    head_widths={"num_attention_heads": "hidden_size"},
    required=("num_attention_heads",),
    defaults={"hidden_act": "gelu", "layer_norm_eps": INFERRED, "position_embedding_type": "absolute",
              "pad_token_id": 1},
    # RoBERTa's (BERT's) non-learned buffers: embeddings.position_ids / token_type_ids.
    ignore=ROBERTA.ignore,
    description="XLM-RoBERTa-XL/XXL (fairseq; HF XLMRobertaXL*), pre-LN RoBERTa",
)

FAMILIES = [XLM_ROBERTA_XL]
