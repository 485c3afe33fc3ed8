"""XLM (facebookresearch/XLM; HF XLMModel, XLMWithLMHeadModel) and FlauBERT (HF Flaubert*),
which is XLM's architecture with optional pre-norm layers.

The encoder keeps each kind of sub-layer in its own module list (attentions, layer_norm1,
ffns, layer_norm2), so a layer's tensors are spelled `<list>.{i}.<module>` in PyTorch and
`<list>_._{i}/<module>` in TF; canonically they are one encoder layer with BERT's leaf names
(DistilBERT has the same q_lin/k_lin/v_lin/out_lin/lin1/lin2 modules). FlauBERT's `pre_norm`
changes where layer_norm1/layer_norm2 are applied, not what is stored, so both layouts share
one descriptor. The adaptive-softmax output layer (`asm=true`) has no TF class and is not
declared.
"""
from __future__ import annotations

from .engine import Block, Family, embedding, linear, norm, param

EMBEDDINGS = Block.of("embeddings", [
    embedding("position", pt="position_embeddings"),
    norm("norm", pt="layer_norm_emb"),
], pt="")

# Present exactly when n_langs > 1 and use_lang_emb; its role names no class. TF adds it as a
# raw weight under a 'lang_embeddings' scope, spelled like a Keras Embedding's.
LANG_EMBEDDINGS = Block.of("embeddings.lang", [param("weight", ("rows", "hidden"), pt="weight", tf2="embeddings")],
                           role="lang", pt="lang_embeddings")

# Its own block, because TF's prediction layer holds the word embeddings (and only them), so
# the h5 lists that weight again in the head's group (lists_also). Not a Keras Embedding in TF.
WORD_EMBEDDINGS = Block.of("embeddings.word", [param("weight", ("rows", "hidden"), pt="weight", tf2="weight")],
                           pt="embeddings")

LAYER = Block.of("encoder.layers.{i}", [
    linear("attn.q", pt="attentions.{i}.q_lin"),
    linear("attn.k", pt="attentions.{i}.k_lin"),
    linear("attn.v", pt="attentions.{i}.v_lin"),
    linear("attn.out", pt="attentions.{i}.out_lin"),
    norm("attn.norm", pt="layer_norm1.{i}"),
    linear("ffn.up", pt="ffns.{i}.lin1"),
    linear("ffn.down", pt="ffns.{i}.lin2"),
    norm("ffn.norm", pt="layer_norm2.{i}"),
], repeat="n_layers", pt="")

# pred_layer.proj: a Linear whose weight is the word embeddings unless tie_word_embeddings is
# false (TF always ties, storing only the bias). TF names the layer 'pred_layer_._proj', one
# scope where PyTorch has two modules, so its prefix is spelled, not derived.
LM_HEAD = Block.of("heads.lm.decoder", [
    param("weight", ("rows", "hidden"), tied_to="embeddings.word.weight", pt="weight"),
    param("bias", ("rows",), pt="bias", tf2="bias"),
], role="lm", base=False, pt="pred_layer.proj", tf2="pred_layer_._proj",
   lists_also={"tf2": ("embeddings.word",)})


def xlm_config(model_type: str):
    """infer_config for an XLM-architecture model_type."""
    def infer(specs, counts) -> tuple[dict, list[str]]:
        word = specs["embeddings.word.weight"].shape
        lang = specs.get("embeddings.lang.weight")
        config = {
            "model_type": model_type,
            "vocab_size": word[0],
            "emb_dim": word[1],
            "n_layers": counts.get("n_layers", 0),
            "max_position_embeddings": specs["embeddings.position.weight"].shape[0],
            # Heads leave no trace in the shapes: the released XLM and FlauBERT models all use
            # 64 per head (the FFN is always 4 * emb_dim, not a config field).
            "n_heads": max(1, word[1] // 64),
            "n_langs": lang.shape[0] if lang is not None else 1,
        }
        if "heads.lm.decoder.weight" in specs:
            config["tie_word_embeddings"] = False
        notes = [f"no config given: inferred from tensor shapes; n_heads={config['n_heads']} is a guess "
                 "(64 per head), and causal, gelu_activation, sinusoidal_embeddings (and FlauBERT's "
                 "pre_norm) are HF's defaults; pass --config to set them"]
        return config, notes
    return infer


def xlm_like(name: str, classes: str, description: str) -> Family:
    return Family(
        name=name, model_types=(name,), declared_views=("pt", "tf2"),
        blocks=(EMBEDDINGS, LANG_EMBEDDINGS, WORD_EMBEDDINGS, LAYER, LM_HEAD),
        base_prefix={"pt": "transformer.", "tf2": "transformer/"},
        # The bare model saves its keys without 'transformer.'; TF's keeps its main layer.
        arch_prefixes={"pt": {f"{classes}Model": ""}},
        architectures={
            f"{classes}Model": frozenset(),
            f"{classes}WithLMHeadModel": frozenset({"lm"}),
        },
        infer_config=xlm_config(name),
        head_widths={"n_heads": "emb_dim"},
        required=("n_heads",),
        defaults={"gelu_activation": True, "sinusoidal_embeddings": False, "causal": False, "layer_norm_eps": 1e-12,
                  **({"pre_norm": False} if name == "flaubert" else {})},
        # A non-persistent buffer (arange of positions) that older transformers saved.
        ignore={"pt": (r"(^|\.)position_ids$",)},
        description=description,
    )


XLM = xlm_like("xlm", "XLM", "XLM (facebookresearch/XLM; HF XLMModel/XLMWithLMHeadModel)")
FLAUBERT = xlm_like("flaubert", "Flaubert", "FlauBERT (getalp/Flaubert; HF FlaubertModel/FlaubertWithLMHeadModel)")
FAMILIES = [XLM, FLAUBERT]
