"""RoBERTa and the families that are RoBERTa under another name (XLM-RoBERTa, CamemBERT).

The body is BERT's (embeddings, encoder layer, pooler, imported from bert.py); RoBERTa differs
only in its heads and in how it counts positions. HF names all three the same way, base model
under 'roberta' (PyTorch 'roberta.', TF2 'roberta/'), so one factory declares them; they stay
separate families because config.json's model_type (and the HF classes) tell them apart.
"""
from __future__ import annotations

from .bert import BERT, EMBEDDINGS, POOLER, encoder_layer, infer_bert_config
from .engine import Block, Family, linear, norm, param

# RobertaLMHead: BERT's prediction head (dense, gelu, LayerNorm, decoder) under other names,
# so it takes BERT's canonical names. The decoder is tied to the word embeddings unless
# tie_word_embeddings is false, and decoder.bias is the head's own bias, always (older
# checkpoints store it, HF drops it on save). TF2's head reuses the embedding matrix and stores
# no decoder, and its Keras layer holds the embeddings layer, so the h5 lists them again.
LM_HEAD = Block.of("heads.mlm", [
    linear("transform.dense", pt="dense"),
    norm("transform.norm", pt="layer_norm"),
    param("bias", ("rows",), pt="bias", tf2="bias"),
    param("decoder.weight", ("rows", "hidden"), tied_to="embeddings.word.weight", pt="decoder.weight"),
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


def roberta_like(name: str, model_type: str, classes: str, kinds: tuple[str, ...], description: str) -> Family:
    """A RoBERTa-architecture family whose HF classes are `classes` + each of `kinds`."""
    return Family(
        name=name, model_types=(model_type,), declared_views=("pt", "tf2"),
        blocks=(EMBEDDINGS, encoder_layer(pt="encoder.layer.{i}"), POOLER, LM_HEAD, CLASSIFIER_HEAD),
        base_prefix={"pt": "roberta.", "tf2": "roberta/"},
        # RobertaModel saves its keys bare (like BertModel); TF2 always nests them in 'roberta/'.
        arch_prefixes={"pt": {f"{classes}Model": ""}},
        architectures={f"{classes}{kind}": CLASS_ROLES[kind] for kind in kinds},
        infer_config=roberta_config(model_type),
        # The same non-learned buffers (position_ids, token_type_ids) BERT checkpoints carry.
        ignore=BERT.ignore,
        description=description,
    )


ROBERTA = roberta_like("roberta", "roberta", "Roberta",
                       ("ForMaskedLM", "ForCausalLM", "ForSequenceClassification", "Model"),
                       "RoBERTa (fairseq; HF Roberta*)")
XLM_ROBERTA = roberta_like("xlm-roberta", "xlm-roberta", "XLMRoberta", ("ForMaskedLM", "Model"),
                           "XLM-RoBERTa (fairseq; HF XLMRoberta*)")
CAMEMBERT = roberta_like("camembert", "camembert", "Camembert", ("ForMaskedLM", "Model"),
                         "CamemBERT (fairseq; HF Camembert*)")

# The three spell every tensor alike, so names cannot tell them apart: a weights file with no
# config.json needs --model (bare RobertaModel keys are BertModel's too).
FAMILIES = [ROBERTA, XLM_ROBERTA, CAMEMBERT]
