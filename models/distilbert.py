"""DistilBERT (HF DistilBertModel, DistilBertForMaskedLM, DistilBertForSequenceClassification,
DistilBertForQuestionAnswering).

BERT's post-LN encoder under other names (q_lin/k_lin/v_lin/out_lin, sa_layer_norm, ffn.lin1/
lin2, output_layer_norm), counted by `n_layers`, and embeddings without token types. The
canonical names are BERT's, so the same tensor has the same name in both families.
"""
from __future__ import annotations

from . import kerashub as kh
from .bert import BERT, BERT_HUB_LAYER, BERT_TOKENS, QA_HEAD
from .engine import Block, Family, Spelling, embedding, linear, norm, param

EMBEDDINGS = Block.of("embeddings", [
    embedding("word", pt="word_embeddings", tf_leaf="weight"),
    embedding("position", pt="position_embeddings"),
    norm("norm", pt="LayerNorm"),
], pt="embeddings")

LAYER = Block.of("encoder.layers.{i}", [
    linear("attn.q", pt="attention.q_lin"),
    linear("attn.k", pt="attention.k_lin"),
    linear("attn.v", pt="attention.v_lin"),
    linear("attn.out", pt="attention.out_lin"),
    norm("attn.norm", pt="sa_layer_norm"),
    linear("ffn.up", pt="ffn.lin1"),
    linear("ffn.down", pt="ffn.lin2"),
    norm("ffn.norm", pt="output_layer_norm"),
], repeat="n_layers", pt="transformer.layer.{i}")

# The MLM head is three top-level modules, not a `cls.predictions` scope. Two blocks, because
# the projector alone is a TF layer that lists the embeddings again (it holds that layer to
# reuse the word matrix), and `lists_also` is declared per block.
MLM_TRANSFORM = Block.of("heads.mlm.transform", [
    linear("dense", pt="vocab_transform"),
    norm("norm", pt="vocab_layer_norm"),
], role="mlm", base=False, pt="")

# vocab_projector: its weight is the word embeddings (unless tie_word_embeddings is false; TF
# always ties, so stores no name for it); its bias is the head's own, real bias.
MLM_DECODER = Block.of("heads.mlm.decoder", [
    param("weight", ("rows", "hidden"), tied_to="embeddings.word.weight", pt="weight",
          flax=Spelling("kernel", ("hidden", "rows"), tied_copy=False)),
    param("bias", ("rows",), pt="bias", tf2="bias", flax="bias"),
], role="mlm", base=False, pt="vocab_projector", lists_also={"tf2": ("embeddings",)})


# DistilBertForSequenceClassification: the first token's state through pre_classifier (dim ->
# dim), ReLU, dropout and the logits layer; top-level modules, as the MLM head's.
CLASSIFIER_HEAD = Block.of("heads.classifier", [
    linear("pre", pt="pre_classifier"),
    linear("dense", pt="classifier"),
], role="classifier", base=False, pt="")


def infer_distilbert_config(specs, counts) -> tuple[dict, list[str]]:
    """HF DistilBertConfig fields from tensor shapes, for a weights file that came without one."""
    word = specs["embeddings.word.weight"].shape
    dim = word[1]
    up = specs.get("encoder.layers.0.ffn.up.weight")
    config = {
        "model_type": "distilbert",
        "vocab_size": word[0],
        "dim": dim,
        "n_layers": counts.get("n_layers", 0),
        "hidden_dim": up.shape[0] if up is not None else 4 * dim,
        "max_position_embeddings": specs["embeddings.position.weight"].shape[0],
        # Heads leave no trace in the shapes: DistilBERT's releases all use 64 per head.
        "n_heads": max(1, dim // 64),
    }
    # A decoder that came as its own tensor was not tied (tied ones become aliases).
    if "heads.mlm.decoder.weight" in specs:
        config["tie_word_embeddings"] = False
    if "heads.classifier.dense.weight" in specs:
        config["num_labels"] = specs["heads.classifier.dense.weight"].shape[0]
    notes = [f"no config given: inferred from tensor shapes; n_heads={config['n_heads']} "
             "is a guess (64 per head), pass --config to set it"]
    return config, notes


DISTILBERT = Family(
    name="distilbert", model_types=("distilbert",), declared_views=("pt", "tf2", "flax"),
    blocks=(EMBEDDINGS, LAYER, MLM_TRANSFORM, MLM_DECODER, CLASSIFIER_HEAD, QA_HEAD),
    base_prefix={"pt": "distilbert.", "tf2": "distilbert/"},
    # PyTorch DistilBertModel keys have no 'distilbert.'; TF's bare model keeps its main layer.
    arch_prefixes={"pt": {"DistilBertModel": ""}},
    architectures={
        "DistilBertModel": frozenset(),
        "DistilBertForMaskedLM": frozenset({"mlm"}),
        "DistilBertForSequenceClassification": frozenset({"classifier"}),
        "DistilBertForQuestionAnswering": frozenset({"qa"}),
    },
    infer_config=infer_distilbert_config,
    head_widths={"n_heads": "dim"},
    required=("n_heads",), defaults={"activation": "gelu", "sinusoidal_pos_embds": False},
    # The same non-learned embeddings buffers (position_ids) older transformers saved.
    ignore=BERT.ignore,
    description="DistilBERT (HF DistilBertModel/DistilBertForMaskedLM/DistilBertForSequenceClassification/"
                "DistilBertForQuestionAnswering)",
)


# keras-hub's DistilBertBackbone (FORMATS.md §12.3): BERT's TransformerEncoder layers under a
# TokenAndPositionEmbedding, no token types, no pooler; its exact GELU and its epsilons 1e-12
# are fixed by the class, as HF DistilBERT fixes its own epsilon.
def _distilbert_hub_args(hf: dict) -> dict:
    if hf.get("sinusoidal_pos_embds", False):
        raise ValueError("sinusoidal_pos_embds=true; keras-hub's DistilBertBackbone has learned positions only")
    if hf.get("dropout", 0.1) != hf.get("attention_dropout", 0.1):
        raise ValueError(f"dropout={hf.get('dropout', 0.1)} but attention_dropout={hf.get('attention_dropout', 0.1)}; "
                         "keras-hub's DistilBertBackbone has one dropout for both")
    return {"dropout": hf.get("dropout", 0.1)}


def _distilbert_classifier_back(args: dict, backbone: dict) -> dict:
    kh.logits_out(args)
    if args.get("hidden_dim") not in (None, backbone.get("hidden_dim")):
        raise ValueError(f"hidden_dim={args['hidden_dim']}, but HF's pre_classifier keeps the hidden size "
                         f"{backbone.get('hidden_dim')}")
    return {"num_labels": args["num_classes"], "seq_classif_dropout": args.get("dropout", 0.2)}


DISTILBERT = kh.with_kerashub(DISTILBERT, kh.HubConfig(
    "DistilBertBackbone", "keras_hub.src.models.distil_bert.distil_bert_backbone", "distilbert",
    pairs=(("vocab_size", "vocabulary_size"), ("n_layers", "num_layers"), ("n_heads", "num_heads"),
           ("dim", "hidden_dim"), ("hidden_dim", "intermediate_dim"), ("max_position_embeddings", "max_sequence_length")),
    fixed={"activation": "gelu"}, to_hub=_distilbert_hub_args,
    to_hf=lambda hub, names: {"sinusoidal_pos_embds": False, "dropout": hub.get("dropout", 0.1),
                              "attention_dropout": hub.get("dropout", 0.1)},
    architecture="DistilBertModel", tasks=("MaskedLM", "TextClassifier")), {
    "embeddings": ("", {"word.weight": kh.plain("token_and_position_embedding_0/token_embedding/vars/0"),
                        "position.weight": kh.plain("token_and_position_embedding_0/position_embedding/vars/0"),
                        **kh.layer_norm("layer_normalization_0", "norm")}),
    "encoder.layers.{i}": ("transformer_encoder_{i}", BERT_HUB_LAYER),
}, tasks=(
    # keras-hub's DistilBertTextClassifier is HF's DistilBertForSequenceClassification.
    kh.HubTask("DistilBertForSequenceClassification", "DistilBertTextClassifier",
               "keras_hub.src.models.distil_bert.distil_bert_text_classifier",
               blocks={"heads.classifier": ("", {**kh.dense("dense_0", "pre"), **kh.dense("dense_1", "dense")})},
               to_task=lambda hf: {"num_classes": kh.num_labels(hf), "activation": "linear",
                                   "hidden_dim": kh.require(hf, "dim"), "dropout": hf.get("seq_classif_dropout", 0.2)},
               to_hf=_distilbert_classifier_back, sizes={"heads.classifier.dense.weight": (0, "num_classes"),
                                                                 "heads.classifier.dense.bias": (0, "num_classes")}),
    # keras-hub's DistilBertMaskedLM: HF's head weights (the projector tied to the token
    # embedding), but its norm's epsilon is 1e-5 where HF's class fixes 1e-12: refused.
    kh.HubTask("DistilBertForMaskedLM", "DistilBertMaskedLM", "keras_hub.src.models.distil_bert.distil_bert_masked_lm",
               blocks={"heads.mlm.transform": ("masked_lm_head_0", {
                           **kh.dense("_intermediate_dense", "dense"), **kh.layer_norm("_intermediate_layer_norm", "norm")}),
                       "heads.mlm.decoder": ("masked_lm_head_0", {"bias": kh.plain("vars/0")})},
               limit=lambda hf: "keras-hub's DistilBertMaskedLM normalizes its head with epsilon 1e-5, HF's "
                                "DistilBertForMaskedLM with 1e-12 (both fixed by the classes)"),
))
kh.with_tokenizer("distilbert", kh.HubTokenizer(
    "DistilBertTokenizer", "keras_hub.src.models.distil_bert.distil_bert_tokenizer", "wordpiece",
    "DistilBertTokenizer", BERT_TOKENS))
FAMILIES = [DISTILBERT]
