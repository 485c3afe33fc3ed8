"""BERT (google-research/bert; HF BertModel and its heads).

Canonical names are framework-neutral; the "pt" view is HF PyTorch. The encoder layer is
declared once here and reused by the families built on BERT's encoder.
"""
from __future__ import annotations

from . import kerashub as kh
from .engine import Block, Family, Param, Spelling, ViewConfig, embedding, linear, norm, param


def encoder_layer(**prefixes) -> Block:
    """One post-LN transformer encoder layer, BERT naming (shared by BERT-like families)."""
    return Block.of("encoder.layers.{i}", [
        linear("attn.q", pt="attention.self.query"),
        linear("attn.k", pt="attention.self.key"),
        linear("attn.v", pt="attention.self.value"),
        linear("attn.out", pt="attention.output.dense"),
        norm("attn.norm", pt="attention.output.LayerNorm"),
        linear("ffn.up", pt="intermediate.dense"),
        linear("ffn.down", pt="output.dense"),
        norm("ffn.norm", pt="output.LayerNorm"),
    ], repeat="num_hidden_layers", **prefixes)


EMBEDDINGS = Block.of("embeddings", [
    embedding("word", pt="word_embeddings", tf_leaf="weight"),
    embedding("position", pt="position_embeddings"),
    embedding("token_type", pt="token_type_embeddings"),
    norm("norm", pt="LayerNorm"),
], pt="embeddings")

POOLER = Block.of("pooler", [linear("dense", pt="dense")], role="pooler", pt="pooler")

# The MLM head: HF ties its decoder to the word embeddings (unless tie_word_embeddings is
# false) and its decoder bias to the head's own bias, always.
MLM_HEAD = Block.of("heads.mlm", [
    linear("transform.dense", pt="transform.dense"),
    norm("transform.norm", pt="transform.LayerNorm"),
    param("bias", ("rows",), pt="bias", tf2="bias", tf1="output_bias", flax="bias"),
    param("decoder.weight", ("rows", "hidden"), tied_to="embeddings.word.weight", pt="decoder.weight",
          flax=Spelling("decoder/kernel", ("hidden", "rows"), tied_copy=False)),
    param("decoder.bias", ("rows",), tied_to="heads.mlm.bias", tie_key=None, pt="decoder.bias"),
], role="mlm", base=False, pt="cls.predictions", tf2="mlm___cls/predictions",
   lists_also={"tf2": ("embeddings",)})



def logits_layer() -> list[Param]:
    """A final logits Linear. google-research/bert's scripts create it as two raw variables,
    `output_weights` stored (num_labels, hidden) like PyTorch, and `output_bias`."""
    weight, bias = linear("dense", pt="")
    return [Param(weight.name, weight.axes, {**weight.spellings, "tf1": Spelling("output_weights")}),
            Param(bias.name, bias.axes, {**bias.spellings, "tf1": Spelling("output_bias")})]


NSP_HEAD = Block.of("heads.nsp", [logits_layer()], role="nsp", base=False,
                    pt="cls.seq_relationship", tf2="nsp___cls/seq_relationship")
# run_classifier.py creates its output layer at the top level, run_squad.py under cls/squad.
CLASSIFIER_HEAD = Block.of("heads.classifier", [logits_layer()], role="classifier", base=False,
                           pt="classifier", tf1="")
QA_HEAD = Block.of("heads.qa", [logits_layer()], role="qa", base=False, pt="qa_outputs", tf1="cls/squad")

# bert_config.json of the original release: the same keys as HF's BertConfig, fewer of them.
GOOGLE_CONFIG_KEYS = ("attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
                      "initializer_range", "intermediate_size", "max_position_embeddings",
                      "num_attention_heads", "num_hidden_layers", "type_vocab_size", "vocab_size")
BERT_CONFIG_JSON = ViewConfig(
    "bert_config.json",
    to_canonical=lambda c: {"model_type": "bert", **c},
    from_canonical=lambda c: {k: c[k] for k in GOOGLE_CONFIG_KEYS if k in c})


def infer_bert_config(specs, counts) -> tuple[dict, list[str]]:
    """HF BertConfig fields from tensor shapes, for a weights file that came without one."""
    word = specs["embeddings.word.weight"].shape
    hidden = word[1]
    config = {
        "model_type": "bert",
        "vocab_size": word[0],
        "hidden_size": hidden,
        "num_hidden_layers": counts.get("num_hidden_layers", 0),
        "intermediate_size": specs["encoder.layers.0.ffn.up.weight"].shape[0]
        if "encoder.layers.0.ffn.up.weight" in specs else 4 * hidden,
        "max_position_embeddings": specs["embeddings.position.weight"].shape[0],
        "type_vocab_size": specs["embeddings.token_type.weight"].shape[0],
        # Attention heads leave no trace in the shapes: BERT's releases all use 64 per head.
        "num_attention_heads": max(1, hidden // 64),
    }
    if "heads.classifier.dense.weight" in specs:
        config["num_labels"] = specs["heads.classifier.dense.weight"].shape[0]
    notes = [f"no config given: inferred from tensor shapes; num_attention_heads={config['num_attention_heads']} "
             "is a guess (64 per head), pass --config to set it"]
    return config, notes


# What a BertConfig holds that no tensor decides: the head count (a fused hidden x hidden
# projection is 12 heads of 64 or 6 of 128), and the values every release uses.
BERT_REQUIRED = ("num_attention_heads",)
BERT_DEFAULTS = {"hidden_act": "gelu", "layer_norm_eps": 1e-12, "position_embedding_type": "absolute"}


def bert_like(name: str, model_types: tuple[str, ...], base: str, classes: str, description: str,
              heads=(MLM_HEAD, NSP_HEAD, CLASSIFIER_HEAD, QA_HEAD), views=("pt", "tf2"),
              view_configs=None) -> Family:
    """A family with BERT's embeddings/encoder/pooler under `base.` (roberta, electra, ...)."""
    return Family(
        name=name, model_types=model_types, declared_views=views,
        blocks=(EMBEDDINGS, encoder_layer(pt="encoder.layer.{i}"), POOLER, *heads),
        base_prefix={"pt": f"{base}.", "tf2": f"{base}/", "tf1": f"{base}/"},
        arch_prefixes={"pt": {f"{classes}Model": ""}},
        architectures={
            f"{classes}Model": frozenset({"pooler"}),
            f"{classes}ForPreTraining": frozenset({"pooler", "mlm", "nsp"}),
            f"{classes}ForMaskedLM": frozenset({"mlm"}),
            f"{classes}ForSequenceClassification": frozenset({"pooler", "classifier"}),
            f"{classes}ForQuestionAnswering": frozenset({"qa"}),
        },
        infer_config=infer_bert_config,
        head_widths={"num_attention_heads": "hidden_size"},
        required=BERT_REQUIRED, defaults=BERT_DEFAULTS,
        # Buffers older transformers saved with the weights; they carry no learned values.
        ignore={"pt": (r"(^|\.)embeddings\.position_ids$", r"(^|\.)embeddings\.token_type_ids$"),
                # Training state in the released TF1 checkpoints: step counter, Adam slots.
                "tf1": (r"^global_step$", r"/adam_[mv]$", r"/Adam(_1)?$", r"^beta[12]_power$")},
        view_configs=view_configs or {},
        description=description,
    )


BERT = bert_like("bert", ("bert",), "bert", "Bert", "BERT (google-research/bert, HF Bert*)",
                 views=("pt", "tf1", "tf2", "flax"), view_configs={"tf1": BERT_CONFIG_JSON})


def _bert_hub_args(hf: dict) -> dict:
    """BertBackbone's computed arguments: one dropout for attention and hidden states."""
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"position_embedding_type={hf['position_embedding_type']!r}; keras-hub's "
                         "BertBackbone has absolute positions only")
    return {"dropout": hf.get("hidden_dropout_prob", 0.1)}


# keras-hub's BertBackbone (FORMATS.md §12.3): its GELU is the tanh approximation and its
# epsilons 1e-12, fixed by the class.
BERT_HUB = kh.HubConfig(
    "BertBackbone", "keras_hub.src.models.bert.bert_backbone", "bert",
    pairs=(("vocab_size", "vocabulary_size"), ("num_hidden_layers", "num_layers"),
           ("num_attention_heads", "num_heads"), ("hidden_size", "hidden_dim"),
           ("intermediate_size", "intermediate_dim"), ("max_position_embeddings", "max_sequence_length"),
           ("type_vocab_size", "num_segments")),
    fixed={"layer_norm_eps": 1e-12, "hidden_act": "gelu_pytorch_tanh"},
    to_hub=_bert_hub_args,
    to_hf=lambda hub, names: {"hidden_dropout_prob": hub.get("dropout", 0.1),
                       "attention_probs_dropout_prob": hub.get("dropout", 0.1)},
    architecture="BertModel", tasks=("MaskedLM", "TextClassifier", "TextEmbedder"))
# keras-hub's BertTokenizer (WordPiece) fixes its special tokens, as HF's BertTokenizer defaults them.
BERT_TOKENS = tuple((role, token, token) for role, token in (
    ("cls_token", "[CLS]"), ("sep_token", "[SEP]"), ("pad_token", "[PAD]"), ("mask_token", "[MASK]")))
kh.with_tokenizer("bert", kh.HubTokenizer("BertTokenizer", "keras_hub.src.models.bert.bert_tokenizer", "wordpiece",
                                          "BertTokenizer", BERT_TOKENS))
_SELF = "_self_attention_layer"
BERT_HUB_LAYER = {
    "attn.q.weight": kh.head_kernel(f"{_SELF}/query_dense/vars/0"), "attn.q.bias": kh.head_bias(f"{_SELF}/query_dense/vars/1"),
    "attn.k.weight": kh.head_kernel(f"{_SELF}/key_dense/vars/0"), "attn.k.bias": kh.head_bias(f"{_SELF}/key_dense/vars/1"),
    "attn.v.weight": kh.head_kernel(f"{_SELF}/value_dense/vars/0"), "attn.v.bias": kh.head_bias(f"{_SELF}/value_dense/vars/1"),
    "attn.out.weight": kh.out_kernel(f"{_SELF}/output_dense/vars/0"), "attn.out.bias": kh.plain(f"{_SELF}/output_dense/vars/1"),
    **kh.layer_norm("_self_attention_layer_norm", "attn.norm"),
    **kh.dense("_feedforward_intermediate_dense", "ffn.up"),
    **kh.dense("_feedforward_output_dense", "ffn.down"),
    **kh.layer_norm("_feedforward_layer_norm", "ffn.norm"),
}


def _bert_mlm_limit(hf: dict) -> str:
    return (f"keras-hub's BertMaskedLM computes its head with exact GELU and epsilon 1e-5, and its BertBackbone "
            f"with tanh GELU and 1e-12; an HF BertForMaskedLM computes both with hidden_act="
            f"{hf.get('hidden_act', 'gelu')!r} and layer_norm_eps={hf.get('layer_norm_eps', 1e-12)}")


def _classifier_dropout(hf: dict) -> float:
    """BertForSequenceClassification's dropout: classifier_dropout, else hidden_dropout_prob."""
    own = hf.get("classifier_dropout")
    return own if own is not None else hf.get("hidden_dropout_prob", 0.1)


def _bert_classifier_back(args: dict, backbone: dict) -> dict:
    kh.logits_out(args)
    return {"num_labels": args["num_classes"], "classifier_dropout": args.get("dropout", 0.1)}


# keras-hub's BERT tasks (task.json + task.weights.h5). BertTextClassifier is HF's
# BertForSequenceClassification: the pooled output, a dropout, the logits Dense. The MaskedLM
# head holds the same weights as HF's (transform dense and norm, the decoder tied to the token
# embedding, its own bias), but computes with other constants: refused (its limit).
BERT_TASKS = (
    kh.HubTask("BertForSequenceClassification", "BertTextClassifier", "keras_hub.src.models.bert.bert_text_classifier",
               blocks={"heads.classifier": ("", kh.dense("dense_0", "dense"))},
               to_task=lambda hf: {"num_classes": kh.num_labels(hf), "activation": "linear",
                                   "dropout": _classifier_dropout(hf)},
               to_hf=_bert_classifier_back, sizes={"heads.classifier.dense.weight": (0, "num_classes"),
                      "heads.classifier.dense.bias": (0, "num_classes")},
               # Inputs padded or cut to the longest the model takes (a preprocessing choice).
               preprocessor=("BertTextClassifierPreprocessor", "keras_hub.src.models.bert.bert_text_classifier_preprocessor",
                             lambda hf: {"sequence_length": kh.require(hf, "max_position_embeddings"),
                                         "truncate": "round_robin"})),
    kh.HubTask("BertForMaskedLM", "BertMaskedLM", "keras_hub.src.models.bert.bert_masked_lm",
               blocks={"heads.mlm": ("masked_lm_head_0", {
                   **kh.dense("_intermediate_dense", "transform.dense"),
                   **kh.layer_norm("_intermediate_layer_norm", "transform.norm"),
                   "bias": kh.plain("vars/0")})},
               limit=_bert_mlm_limit),
)
BERT = kh.with_kerashub(BERT, BERT_HUB, {
    "embeddings": ("", {"word.weight": kh.plain("reversible_embedding_0/vars/0"),
                        "position.weight": kh.plain("position_embedding_0/vars/0"),
                        "token_type.weight": kh.plain("embedding_0/vars/0"),
                        **kh.layer_norm("layer_normalization_0", "norm")}),
    "encoder.layers.{i}": ("transformer_encoder_{i}", BERT_HUB_LAYER),
    "pooler": ("", kh.dense("dense_0", "dense")),
}, roles=frozenset({"pooler"}), tasks=BERT_TASKS)
FAMILIES = [BERT]
