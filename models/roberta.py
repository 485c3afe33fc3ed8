"""RoBERTa and the families that are RoBERTa under another name (XLM-RoBERTa, CamemBERT).

The body is BERT's (embeddings, encoder layer, pooler, imported from bert.py); RoBERTa differs
only in its heads and in how it counts positions. HF names all three the same way, base model
under 'roberta' (PyTorch 'roberta.', TF2 'roberta/'), so one factory declares them; they stay
separate families because config.json's model_type (and the HF classes) tell them apart.
"""
from __future__ import annotations

import numpy as np

from . import kerashub as kh
from .bert import BERT, BERT_HUB_LAYER, EMBEDDINGS, POOLER, encoder_layer, infer_bert_config
from .engine import INFERRED, Block, Family, Spelling, ViewConfig, linear, norm, param, with_view

# RobertaLMHead: BERT's prediction head (dense, gelu, LayerNorm, decoder) under other names,
# so it takes BERT's canonical names. The decoder is tied to the word embeddings unless
# tie_word_embeddings is false, and decoder.bias is the head's own bias, always (older
# checkpoints store it, HF drops it on save). TF2's head reuses the embedding matrix and stores
# no decoder, and its Keras layer holds the embeddings layer, so the h5 lists them again.
LM_HEAD = Block.of("heads.mlm", [
    linear("transform.dense", pt="dense"),
    norm("transform.norm", pt="layer_norm"),
    param("bias", ("rows",), pt="bias", tf2="bias", flax="bias"),
    param("decoder.weight", ("rows", "hidden"), tied_to="embeddings.word.weight", pt="decoder.weight",
          flax=Spelling("decoder/kernel", ("hidden", "rows"), tied_copy=False)),
    param("decoder.bias", ("rows",), tied_to="heads.mlm.bias", tie_key=None, pt="decoder.bias"),
], role="lm", base=False, pt="lm_head", lists_also={"tf2": ("embeddings",)})

# RobertaClassificationHead: dense + tanh on the <s> token, then the label projection (no pooler).
CLASSIFIER_HEAD = Block.of("heads.classifier", [
    linear("dense", pt="dense"),
    linear("out_proj", pt="out_proj"),
], role="classifier", base=False, pt="classifier")

# Class suffix -> roles. RobertaForMaskedLM and RobertaForCausalLM have the same tensors (the
# same lm_head, no pooler): only config.json (architectures, is_decoder) tells them apart, and
# the engine picks a class from roles alone, so a weights file without a config becomes the
# first listed, ForMaskedLM. A config's own architectures always win, so a CausalLM stays one.
CLASS_ROLES = {
    "ForMaskedLM": frozenset({"lm"}),
    "ForCausalLM": frozenset({"lm"}),
    "ForSequenceClassification": frozenset({"classifier"}),
    "Model": frozenset({"pooler"}),
}


def roberta_config(model_type: str):
    """infer_config for a RoBERTa-like model_type."""
    def infer(specs, counts) -> tuple[dict, list[str]]:
        config, notes = infer_bert_config(specs, counts)
        config["model_type"] = model_type
        # BERT's guess would read the classifier's hidden dense; RoBERTa's labels are out_proj's rows.
        config.pop("num_labels", None)
        if "heads.classifier.out_proj.weight" in specs:
            config["num_labels"] = specs["heads.classifier.out_proj.weight"].shape[0]
        # Positions start after padding_idx (<pad> = 1), so the table has 2 rows more than the
        # usable length (514 for 512). HF's max_position_embeddings counts the rows, so the
        # shape is taken as is; pad/bos/eos are fairseq's dictionary ids every release uses.
        config.update(pad_token_id=1, bos_token_id=0, eos_token_id=2)
        # Shapes do not show the LayerNorm epsilon; RoBERTa, XLM-R and CamemBERT all use
        # fairseq's 1e-5, not the 1e-12 default of HF's config classes.
        config["layer_norm_eps"] = 1e-5
        notes.append("layer_norm_eps=1e-5 and pad/bos/eos ids 1/0/2 are fairseq's values (every "
                     "released checkpoint), not read from the weights; is_decoder (ForCausalLM) "
                     "cannot be told from the weights either")
        return config, notes
    return infer


# ---- the "fairseq" view: fairseq >= 0.10 names (the importer first applies the renames
# fairseq itself applies to older checkpoints on load).


def zero_token_types(config: dict):
    """fairseq RoBERTa has no token type embeddings; HF's has one row, which the seed fills with
    zeros, so adding it changes nothing."""
    return np.zeros((config.get("type_vocab_size", 1), config["hidden_size"]), np.float32)


def _pairs(**modules):
    """{canonical leaf: fairseq name} for weight and bias of each canonical module."""
    return {f"{c}.{leaf}": f"{f}.{leaf}" for c, f in modules.items() for leaf in ("weight", "bias")}


FAIRSEQ_EMBEDDINGS = with_view(EMBEDDINGS, "fairseq", "encoder.sentence_encoder", {
    "word.weight": "embed_tokens.weight", "position.weight": "embed_positions.weight",
    **_pairs(norm="layernorm_embedding")}, derive={"token_type.weight": zero_token_types})
FAIRSEQ_LAYER = with_view(encoder_layer(pt="encoder.layer.{i}"), "fairseq", "encoder.sentence_encoder.layers.{i}",
                          _pairs(**{"attn.q": "self_attn.q_proj", "attn.k": "self_attn.k_proj",
                                    "attn.v": "self_attn.v_proj", "attn.out": "self_attn.out_proj",
                                    "attn.norm": "self_attn_layer_norm", "ffn.up": "fc1", "ffn.down": "fc2",
                                    "ffn.norm": "final_layer_norm"}))
# fairseq's lm_head.weight is the embedding matrix (tied); lm_head.bias is the output bias.
FAIRSEQ_LM_HEAD = with_view(LM_HEAD, "fairseq", "encoder.lm_head", {
    **_pairs(**{"transform.dense": "dense", "transform.norm": "layer_norm"}),
    "bias": "bias", "decoder.weight": "weight"})
# classification_heads.<name>: the importer names the chosen head 'head'.
FAIRSEQ_CLASSIFIER = with_view(CLASSIFIER_HEAD, "fairseq", "classification_heads.head",
                               _pairs(dense="dense", out_proj="out_proj"))
FAIRSEQ_IGNORE = (
    r"^encoder\.sentence_encoder\.version$",      # a format version counter buffer
    # fairseq 0.12.2 runs also save BetterTransformer copies of every layer's weights
    # (zeros in practice; fairseq recomputes them on load from the real ones).
    r"^encoder\.sentence_encoder\.layers\.\d+\.(in_proj|out_proj|fc1|fc2)_(weight|bias)$",
)


def fairseq_config(model_type: str, classes: str):
    """fairseq's model args -> the HF config, as the seed conversions set it."""
    def to_canonical(c: dict) -> dict:
        shapes = c["__shapes__"]
        vocab, hidden = shapes["encoder.sentence_encoder.embed_tokens.weight"]
        layers = 1 + max(int(n.split(".")[3]) for n in shapes if n.startswith("encoder.sentence_encoder.layers."))
        config = {
            "model_type": model_type, "vocab_size": vocab, "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": c.get("encoder_attention_heads", max(1, hidden // 64)),
            "intermediate_size": shapes["encoder.sentence_encoder.layers.0.fc1.weight"][0],
            "max_position_embeddings": shapes["encoder.sentence_encoder.embed_positions.weight"][0],
            "type_vocab_size": 1, "layer_norm_eps": 1e-5,
            "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
            "hidden_act": c.get("activation_fn", "gelu"),
            "hidden_dropout_prob": c.get("dropout", 0.1),
            "attention_probs_dropout_prob": c.get("attention_dropout", 0.1),
        }
        if c.get("__head__"):
            config["num_labels"] = shapes["classification_heads.head.out_proj.weight"][0]
            config["architectures"] = [f"{classes}ForSequenceClassification"]
        else:
            config["architectures"] = [f"{classes}ForMaskedLM"]
        return config
    return to_canonical


def roberta_like(name: str, model_type: str, classes: str, kinds: tuple[str, ...], description: str,
                 fairseq_claims=None, flax: bool = False) -> Family:
    """A RoBERTa-architecture family whose HF classes are `classes` + each of `kinds`;
    `fairseq_claims(fairseq_args, shapes)` says which fairseq checkpoints are this family."""
    views = ("pt", "tf2") + (("fairseq",) if fairseq_claims else ()) + (("flax",) if flax else ())
    blocks = (FAIRSEQ_EMBEDDINGS, FAIRSEQ_LAYER, POOLER, FAIRSEQ_LM_HEAD, FAIRSEQ_CLASSIFIER)
    return Family(
        name=name, model_types=(model_type,), declared_views=views,
        blocks=blocks,
        view_configs={"fairseq": ViewConfig("model.pt", fairseq_config(model_type, classes), dict,
                                            fairseq_claims, ("roberta_base", "roberta_large", "roberta"))}
        if fairseq_claims else {},
        base_prefix={"pt": "roberta.", "tf2": "roberta/"},
        # RobertaModel saves its keys bare (like BertModel); TF2 always nests them in 'roberta/'.
        arch_prefixes={"pt": {f"{classes}Model": ""}},
        architectures={f"{classes}{kind}": CLASS_ROLES[kind] for kind in kinds},
        infer_config=roberta_config(model_type),
        # padding_idx offsets RoBERTa's position ids, so it computes too.
        head_widths={"num_attention_heads": "hidden_size"},
        required=("num_attention_heads",),
        defaults={"hidden_act": "gelu", "layer_norm_eps": INFERRED, "position_embedding_type": "absolute",
                  "pad_token_id": 1},
        # The same non-learned buffers (position_ids, token_type_ids) BERT checkpoints carry.
        ignore={**BERT.ignore, "fairseq": FAIRSEQ_IGNORE},
        description=description,
    )




def _post_ln(c: dict) -> bool:
    return not c.get("encoder_normalize_before", False)


def _vocab(shapes: dict) -> int:
    """Rows of fairseq RoBERTa's token table; 0 when the checkpoint is not a RoBERTa encoder
    (a translation model's encoder has no sentence_encoder), which no family claims."""
    return shapes.get("encoder.sentence_encoder.embed_tokens.weight", (0,))[0]


# RoBERTa and XLM-R share fairseq's architecture and arch names; only XLM-R's 250k-word
# multilingual vocabulary tells them apart (--model overrides).
XLMR_VOCAB = 250_000
ROBERTA = roberta_like("roberta", "roberta", "Roberta",
                       ("ForMaskedLM", "ForCausalLM", "ForSequenceClassification", "Model"),
                       "RoBERTa (fairseq; HF Roberta*)",
                       fairseq_claims=lambda c, shapes: _post_ln(c) and 0 < _vocab(shapes) < XLMR_VOCAB, flax=True)
XLM_ROBERTA = roberta_like("xlm-roberta", "xlm-roberta", "XLMRoberta", ("ForMaskedLM", "Model"),
                           "XLM-RoBERTa (fairseq; HF XLMRoberta*)",
                           fairseq_claims=lambda c, shapes: _post_ln(c) and _vocab(shapes) >= XLMR_VOCAB, flax=True)
CAMEMBERT = roberta_like("camembert", "camembert", "Camembert", ("ForMaskedLM", "Model"),
                         "CamemBERT (fairseq; HF Camembert*)")

# ---- the "kerashub" view: keras-hub's RobertaBackbone / XLMRobertaBackbone (FORMATS.md §12).
# A TokenAndPositionEmbedding (positions from 0), LayerNorm, BERT's TransformerEncoder layers
# with exact GELU and epsilon 1e-5 (fixed by the class); no token types, no pooler, no heads.
#
# Positions: HF gives the non-pad token at index t (right padding) the position row
# padding_idx + 1 + t, so rows 0..padding_idx are reserved; the Backbone holds the rows from
# padding_idx + 1 on (max_sequence_length = max_position_embeddings - 2 for padding_idx 1,
# which is what keras-hub's own converter slices). padding_idx is fixed at 1 (the class has
# no argument for it; every release uses fairseq's <pad> = 1). The way back writes zeros for
# rows 0 and 1: HF never reads row 0, and reads row 1 only at <pad> tokens, which a trained
# model keeps at zero (nn.Embedding's padding_idx row: initialised zero, never updated), and
# which the preset never held (keras-hub gives a pad token the row of its index).
#
# Token types: HF adds token_type_embeddings[0] (type_vocab_size 1) to every token; the
# Backbone has no place for it. HF's conversion of fairseq's release zeroes it (as irconv's
# fairseq view derives it), so a zero row is mapped (and derived as zeros on the way back); a
# non-zero one (a fine-tuned model) is refused: folding it into the position rows (what
# keras-hub's XLM-R loader does) would round differently and not come back bit for bit.
RESERVED = "rows 0..padding_idx (HF's reserved rows: row 0 never read, row padding_idx only at <pad> tokens) " \
           "are not stored; the way back writes zeros"


def _roberta_hub_args(hf: dict) -> dict:
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"position_embedding_type={hf['position_embedding_type']!r}; it has absolute positions only")
    for flag in ("is_decoder", "add_cross_attention"):
        if hf.get(flag):
            raise ValueError(f"{flag}=true; it is a bidirectional encoder without cross-attention")
    rows = kh.require(hf, "max_position_embeddings")
    if not isinstance(rows, int) or rows <= 2:
        raise ValueError(f"max_position_embeddings={rows!r} leaves no position after the 2 reserved rows")
    return {"dropout": hf.get("hidden_dropout_prob", 0.1), "max_sequence_length": rows - 2}


def roberta_hub(backbone: str, module: str, model_type: str, classes: str) -> kh.HubConfig:
    return kh.HubConfig(
        backbone, f"keras_hub.src.models.{module}.{module}_backbone", model_type,
        pairs=(("vocab_size", "vocabulary_size"), ("num_hidden_layers", "num_layers"),
               ("num_attention_heads", "num_heads"), ("hidden_size", "hidden_dim"),
               ("intermediate_size", "intermediate_dim")),
        fixed={"layer_norm_eps": 1e-5, "hidden_act": "gelu", "pad_token_id": 1, "type_vocab_size": 1},
        to_hub=_roberta_hub_args,
        to_hf=lambda hub, names: {"max_position_embeddings": hub["max_sequence_length"] + 2,
                                  "position_embedding_type": "absolute",
                                  "hidden_dropout_prob": hub.get("dropout", 0.1),
                                  "attention_probs_dropout_prob": hub.get("dropout", 0.1)},
        architecture=f"{classes}Model", tasks=("MaskedLM", "TextClassifier"),
        zero_only=("embeddings.token_type.weight",),
        dropped_rows={"embeddings.position.weight": RESERVED})


ROBERTA_HUB_BLOCKS = {
    "embeddings": ("", {"word.weight": kh.plain("token_and_position_embedding_0/token_embedding/vars/0"),
                        "position.weight": kh.reserved_rows("token_and_position_embedding_0/position_embedding/vars/0",
                                                            lambda config: config["pad_token_id"] + 1,
                                                            lambda config: config["max_position_embeddings"]
                                                            - config["pad_token_id"] - 1),
                        **kh.layer_norm("layer_normalization_0", "norm")}),
    "encoder.layers.{i}": ("transformer_encoder_{i}", BERT_HUB_LAYER),
}
ROBERTA = kh.with_kerashub(ROBERTA, roberta_hub("RobertaBackbone", "roberta", "roberta", "Roberta"), ROBERTA_HUB_BLOCKS)
XLM_ROBERTA = kh.with_kerashub(XLM_ROBERTA, roberta_hub("XLMRobertaBackbone", "xlm_roberta", "xlm-roberta", "XLMRoberta"),
                               ROBERTA_HUB_BLOCKS)

# Their tokenizers (FORMATS.md §12.1). keras-hub's RobertaTokenizer is byte-pair (vocab.json +
# merges.txt) with <s> </s> <pad> <mask> fixed; HF's <unk> is another role it keeps whole.
# XLMRobertaTokenizer is SentencePiece (HF's sentencepiece.bpe.model) with fairseq's ids, as
# HF's class maps them: <s> <pad> </s> <unk> at 0-3, the model's pieces one up, <mask> last.
# HF's <mask> strips the space before it (lstrip), which keras-hub's unsplittable tokens do not:
# such a source is refused (formats/hubtokenizer.py), and the way back writes lstrip=false.
ROBERTA_TOKENS = tuple((role, token, token) for role, token in (
    ("bos_token", "<s>"), ("cls_token", "<s>"), ("eos_token", "</s>"), ("sep_token", "</s>"),
    ("pad_token", "<pad>"), ("mask_token", "<mask>")))
kh.with_tokenizer("roberta", kh.HubTokenizer("RobertaTokenizer", "keras_hub.src.models.roberta.roberta_tokenizer",
                                             "bpe", "RobertaTokenizer", ROBERTA_TOKENS,
                                             others=(("unk_token", "<unk>"),)))
kh.with_tokenizer("xlm-roberta", kh.HubTokenizer(
    "XLMRobertaTokenizer", "keras_hub.src.models.xlm_roberta.xlm_roberta_tokenizer", "sentencepiece",
    "XLMRobertaTokenizer", ROBERTA_TOKENS + (("unk_token", "<unk>", "<unk>"),), model_file="sentencepiece.bpe.model",
    fairseq=True))

# The three spell every tensor alike, so names cannot tell them apart: a weights file with no
# config.json needs --model (bare RobertaModel keys are BertModel's too).
FAMILIES = [ROBERTA, XLM_ROBERTA, CAMEMBERT]
