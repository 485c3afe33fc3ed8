"""ALBERT (google-research/albert; HF AlbertModel and AlbertForPreTraining).

BERT's embeddings at width `embedding_size`, projected to `hidden_size` by the encoder's
`embedding_hidden_mapping_in`. The encoder stores only num_hidden_groups groups of
inner_group_num layers and makes num_hidden_layers passes over them (pass k runs every layer
of group k * num_hidden_groups // num_hidden_layers), so the tensors repeat over groups and
inner layers, never over num_hidden_layers. The pooler is a bare Linear.
"""
from __future__ import annotations

from . import kerashub as kh
from .bert import BERT, BERT_HUB_LAYER, EMBEDDINGS
from .engine import Block, Family, Spelling, linear, norm, param

# Always present in ALBERT (HF creates it even when embedding_size == hidden_size); canonically
# the same block as ELECTRA's optional projection. Not under 'embeddings.': the MLM head's TF
# layer lists the embeddings block again (lists_also), but not this projection.
EMBEDDINGS_PROJECT = Block.of("embeddings_project", [linear("dense", pt="")],
                              pt="encoder.embedding_hidden_mapping_in")

# One shared layer: the same post-LN maths as BERT's encoder layer, hence its canonical
# leaf names; HF's module names differ (and full_layer_layer_norm is BERT's output.LayerNorm).
LAYER = Block.of("encoder.groups.{g}.layers.{j}", [
    norm("ffn.norm", pt="full_layer_layer_norm"),
    linear("attn.q", pt="attention.query"),
    linear("attn.k", pt="attention.key"),
    linear("attn.v", pt="attention.value"),
    linear("attn.out", pt="attention.dense"),
    norm("attn.norm", pt="attention.LayerNorm"),
    linear("ffn.up", pt="ffn"),
    linear("ffn.down", pt="ffn_output"),
], repeat=(("g", "num_hidden_groups"), ("j", "inner_group_num")),
   pt="encoder.albert_layer_groups.{g}.albert_layers.{j}")

POOLER = Block.of("pooler", [linear("dense", pt="")], role="pooler", pt="pooler")

# The MLM head. PyTorch ties decoder.weight to the word embeddings (tie_word_embeddings) and
# decoder.bias to predictions.bias, always. TF's head holds two bias variables and its forward
# adds only `decoder/bias` (TFAlbertMLMHead.call), so that one is the canonical bias: outputs
# then match in both directions. TF's `predictions/bias`, never read, is kept as a tie spelled
# only in tf2: the importer drops its value, the exporter writes the bias again under its
# name (as HF's own PT->TF conversion of a pytorch_model.bin does, both variables loading
# predictions.bias; from a model.safetensors, which omits the tied predictions.decoder.bias,
# transformers 4.57 leaves decoder/bias at zero and its TF logits are wrong).
MLM_HEAD = Block.of("heads.mlm", [
    linear("transform.dense", pt="dense"),
    norm("transform.norm", pt="LayerNorm"),
    param("bias", ("rows",), pt="bias", tf2="decoder/bias", flax="bias"),
    param("decoder.weight", ("rows", "hidden"), tied_to="embeddings.word.weight", pt="decoder.weight",
          flax=Spelling("decoder/kernel", ("hidden", "rows"), tied_copy=False)),
    param("decoder.bias", ("rows",), tied_to="heads.mlm.bias", tie_key=None, pt="decoder.bias"),
    param("unused_bias", ("rows",), tied_to="heads.mlm.bias", tie_key=None, tf2="bias"),
], role="mlm", base=False, pt="predictions", lists_also={"tf2": ("embeddings",)})

# Sentence-order prediction: two logits from the pooled output (BERT's NSP head, renamed).
SOP_HEAD = Block.of("heads.sop", [linear("dense", pt="")], role="sop", base=False,
                    pt="sop_classifier.classifier")

# The released ALBERT sizes, by hidden_size: (num_hidden_layers, num_attention_heads). Neither
# leaves a trace in the shapes (layers are shared; heads split one matrix).
RELEASES = {768: (12, 12), 1024: (24, 16), 2048: (24, 16), 4096: (12, 64)}


def infer_albert_config(specs, counts) -> tuple[dict, list[str]]:
    """HF AlbertConfig fields from tensor shapes, for a weights file that came without one."""
    word = specs["embeddings.word.weight"].shape
    hidden = specs["embeddings_project.dense.weight"].shape[0]
    up = specs.get("encoder.groups.0.layers.0.ffn.up.weight")
    layers, heads = RELEASES.get(hidden, (12, max(1, hidden // 64)))
    config = {
        "model_type": "albert",
        "vocab_size": word[0],
        "embedding_size": word[1],
        "hidden_size": hidden,
        "num_hidden_groups": counts.get("num_hidden_groups", 0),
        "inner_group_num": counts.get("inner_group_num", 0),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": up.shape[0] if up is not None else 4 * hidden,
        "max_position_embeddings": specs["embeddings.position.weight"].shape[0],
        "type_vocab_size": specs["embeddings.token_type.weight"].shape[0],
    }
    if "heads.sop.dense.weight" in specs:
        # HF sizes the sentence-order classifier by num_labels (2 in every release).
        config["num_labels"] = specs["heads.sop.dense.weight"].shape[0]
    notes = [f"no config given: inferred from tensor shapes; num_hidden_layers={layers} and "
             f"num_attention_heads={heads} are guesses (the released ALBERT of hidden_size {hidden}, "
             "else 12 layers and 64 per head), pass --config to set them"]
    return config, notes


ALBERT = Family(
    name="albert", model_types=("albert",), declared_views=("pt", "tf2", "flax"),
    blocks=(EMBEDDINGS, EMBEDDINGS_PROJECT, LAYER, POOLER, MLM_HEAD, SOP_HEAD),
    base_prefix={"pt": "albert.", "tf2": "albert/"},
    arch_prefixes={"pt": {"AlbertModel": ""}},
    architectures={
        "AlbertModel": frozenset({"pooler"}),
        "AlbertForPreTraining": frozenset({"pooler", "mlm", "sop"}),
    },
    infer_config=infer_albert_config,
    # ALBERT shares layers, so its depth (num_hidden_layers passes) has no tensor of its own.
    head_widths={"num_attention_heads": "hidden_size"},
    required=("num_attention_heads", "num_hidden_layers"),
    defaults={"hidden_act": "gelu_new", "layer_norm_eps": 1e-12, "position_embedding_type": "absolute"},
    # The same non-learned embeddings buffers as BERT's (position_ids, token_type_ids).
    ignore=BERT.ignore,
    description="ALBERT (google-research/albert, HF AlbertModel/AlbertForPreTraining)",
)


# ---- the "kerashub" view: keras-hub's AlbertBackbone (FORMATS.md §12). BERT's embeddings at
# embedding_dim, a Dense projection to hidden_dim, num_groups groups of num_inner_repetitions
# TransformerEncoder layers (tanh GELU, epsilon 1e-12, fixed by the class), each group run
# num_layers // num_groups times in a row, as HF runs group int(i / (layers / groups)) at
# pass i; the tanh pooler. Its layers are keras's transformer_encoder_<k> in creation order,
# k = g * inner_group_num + j, which the view names transformer_encoder_{g}_{j} (FlatIndex).
def _albert_hub_args(hf: dict) -> dict:
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"position_embedding_type={hf['position_embedding_type']!r}; it has absolute positions only")
    layers, groups = kh.require(hf, "num_hidden_layers"), kh.require(hf, "num_hidden_groups")
    if not groups or layers % groups:
        raise ValueError(f"num_hidden_layers={layers} is not a multiple of num_hidden_groups={groups}; it runs "
                         "each group the same number of times")
    return {"num_inner_repetitions": kh.require(hf, "inner_group_num"), "dropout": hf.get("hidden_dropout_prob", 0.0)}


ALBERT = kh.with_kerashub(ALBERT, kh.HubConfig(
    "AlbertBackbone", "keras_hub.src.models.albert.albert_backbone", "albert",
    pairs=(("vocab_size", "vocabulary_size"), ("num_hidden_layers", "num_layers"),
           ("num_attention_heads", "num_heads"), ("num_hidden_groups", "num_groups"),
           ("embedding_size", "embedding_dim"), ("hidden_size", "hidden_dim"),
           ("intermediate_size", "intermediate_dim"), ("max_position_embeddings", "max_sequence_length"),
           ("type_vocab_size", "num_segments")),
    fixed={"layer_norm_eps": 1e-12, "hidden_act": "gelu_new"},
    to_hub=_albert_hub_args,
    to_hf=lambda hub, names: {"inner_group_num": hub.get("num_inner_repetitions", 1),
                              "position_embedding_type": "absolute",
                              "hidden_dropout_prob": hub.get("dropout", 0.0),
                              "attention_probs_dropout_prob": hub.get("dropout", 0.0)},
    architecture="AlbertModel", tasks=("MaskedLM", "TextClassifier"),
    rename=kh.FlatIndex("transformer_encoder", lambda config: config["inner_group_num"])), {
    "embeddings": ("", {"word.weight": kh.plain("reversible_embedding_0/vars/0"),
                        "position.weight": kh.plain("position_embedding_0/vars/0"),
                        "token_type.weight": kh.plain("embedding_0/vars/0"),
                        **kh.layer_norm("layer_normalization_0", "norm")}),
    "embeddings_project": ("", kh.dense("dense_0", "dense")),
    "encoder.groups.{g}.layers.{j}": ("transformer_encoder_{g}_{j}", BERT_HUB_LAYER),
    "pooler": ("", kh.dense("dense_1", "dense")),
}, roles=frozenset({"pooler"}))
# keras-hub's AlbertTokenizer: SentencePiece (HF's spiece.model) with [CLS] [SEP] <pad> [MASK]
# fixed, tokenizing as the model does. HF's AlbertTokenizer lowercases and strips accents
# first unless told not to, so only a source that says do_lower_case=false and
# keep_accents=true is written (and the way back says so).
kh.with_tokenizer("albert", kh.HubTokenizer(
    "AlbertTokenizer", "keras_hub.src.models.albert.albert_tokenizer", "sentencepiece", "AlbertTokenizer",
    tuple((role, token, token) for role, token in (
        ("cls_token", "[CLS]"), ("bos_token", "[CLS]"), ("sep_token", "[SEP]"), ("eos_token", "[SEP]"),
        ("pad_token", "<pad>"), ("mask_token", "[MASK]"))),
    settings=(("do_lower_case", False, True), ("keep_accents", True, False)), model_file="spiece.model"))
FAMILIES = [ALBERT]
