"""XLNet (zihangdai/xlnet; HF XLNetModel and XLNetLMHeadModel).

A Transformer-XL encoder with two-stream relative attention. Each layer's attention keeps its
projections as raw (d_model, n_head, d_head) parameters (q, k, v, o, r), not Linear modules,
and HF's PyTorch and TF classes store them in that same order, so no view transposes them.
The relative biases (r_w/r_r/r_s) and the segment embedding are per layer in both HF classes:
the original release's `untie_r=false` shares one set across layers, but HF only reads that
flag when loading a TF1 checkpoint, and its own files always hold one set per layer.
"""
from __future__ import annotations

from .engine import Block, Family, embedding, linear, norm, param

HEADS = ("hidden", "heads", "head_dim")

# The [MASK] query-stream start vector, a bare (1, 1, d_model) parameter of the base model.
MASK_EMB = Block.of("mask_emb", [param("weight", ("one", "seq", "hidden"), pt="mask_emb", tf2="mask_emb")],
                    pt="")

# Its own block, because TF's LM head layer holds the word embedding (and only it), so the h5
# lists that weight again in the head's group (lists_also).
WORD_EMBEDDING = Block.of("embeddings", [embedding("word", pt="word_embedding", tf_leaf="weight")], pt="")


def _raw(name: str, axes) -> list:
    """A bare attention parameter, stored the same way (and spelled alike) in PT and TF."""
    return param(name, axes, pt=f"rel_attn.{name}", tf2=f"rel_attn/{name}")


LAYER = Block.of("encoder.layers.{i}", [
    *(_raw(name, HEADS) for name in ("q", "k", "v", "o", "r")),
    _raw("r_r_bias", HEADS[1:]),
    _raw("r_s_bias", HEADS[1:]),
    _raw("r_w_bias", HEADS[1:]),
    _raw("seg_embed", ("segments",) + HEADS[1:]),
    norm("attn.norm", pt="rel_attn.layer_norm"),
    norm("ffn.norm", pt="ff.layer_norm"),
    linear("ffn.up", pt="ff.layer_1"),
    linear("ffn.down", pt="ff.layer_2"),
], repeat="n_layer", pt="layer.{i}")

# lm_loss: a Linear whose weight is the word embedding unless tie_word_embeddings is false (TF
# always ties it, storing only the bias) and whose bias is the head's own.
LM_HEAD = Block.of("heads.lm.decoder", [
    param("weight", ("rows", "hidden"), tied_to="embeddings.word.weight", pt="weight"),
    param("bias", ("rows",), pt="bias", tf2="bias"),
], role="lm", base=False, pt="lm_loss", lists_also={"tf2": ("embeddings",)})


def infer_xlnet_config(specs, counts) -> tuple[dict, list[str]]:
    """HF XLNetConfig fields from tensor shapes: the raw (d_model, n_head, d_head) attention
    tensors give the head count exactly, unlike BERT-style fused matrices."""
    word = specs["embeddings.word.weight"].shape
    q = specs.get("encoder.layers.0.q")
    up = specs.get("encoder.layers.0.ffn.up.weight")
    config = {
        "model_type": "xlnet",
        "vocab_size": word[0],
        "d_model": word[1],
        "n_layer": counts.get("n_layer", 0),
        "n_head": q.shape[1] if q is not None else max(1, word[1] // 64),
        "d_head": q.shape[2] if q is not None else 64,
        "d_inner": up.shape[0] if up is not None else 4 * word[1],
    }
    if "heads.lm.decoder.weight" in specs:
        config["tie_word_embeddings"] = False
    return config, ["no config given: inferred from tensor shapes; ff_activation, mem_len and the "
                    "attention settings (attn_type, bi_data, clamp_len) are HF's defaults, not read "
                    "from the weights"]


def heads_fit(config: dict, specs: dict) -> dict:
    """The raw (d_model, n_head, d_head) attention tensors decide n_head and d_head: a config
    that says otherwise (or whose d_head is not d_model // n_head, which XLNetConfig demands)
    would make a model the tensors do not fit."""
    q = specs.get("encoder.layers.0.q")
    if q is None or len(q.shape) != 3:
        return config
    for key, value in (("n_head", q.shape[1]), ("d_head", q.shape[2])):
        if config.get(key) is not None and config[key] != value:
            raise ValueError(f"{key}={config[key]!r} does not fit the tensors, which say {key}={value}")
    if q.shape[0] != q.shape[1] * q.shape[2]:
        raise ValueError(f"the attention tensors' {q.shape[1]} heads of {q.shape[2]} are not d_model={q.shape[0]} "
                         "(XLNetConfig sets d_head = d_model // n_head)")
    return config


XLNET = Family(
    name="xlnet", model_types=("xlnet",), declared_views=("pt", "tf2"),
    blocks=(MASK_EMB, WORD_EMBEDDING, LAYER, LM_HEAD),
    base_prefix={"pt": "transformer.", "tf2": "transformer/"},
    # XLNetModel saves its keys bare; TF's bare model keeps its main layer 'transformer/'.
    arch_prefixes={"pt": {"XLNetModel": ""}},
    architectures={
        "XLNetModel": frozenset(),
        "XLNetLMHeadModel": frozenset({"lm"}),
    },
    infer_config=infer_xlnet_config,
    head_widths={"n_head": "d_model"},
    from_shapes=heads_fit,
    # The raw (d_model, n_head, d_head) attention tensors give the heads.
    defaults={"ff_activation": "gelu", "layer_norm_eps": 1e-12, "attn_type": "bi", "bi_data": False,
              "clamp_len": -1, "same_length": False},
    description="XLNet (zihangdai/xlnet; HF XLNetModel/XLNetLMHeadModel)",
)
FAMILIES = [XLNET]
