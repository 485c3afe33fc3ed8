"""Transformer-XL (HF TransfoXLLMHeadModel; transformers.models.deprecated.transfo_xl).

An adaptive input embedding (one table per vocabulary cluster, each div_val times narrower
than the last, projected to d_model), relative-position attention layers with learned
content/position biases (per layer when untie_r, else shared), and an adaptive softmax whose
cluster tables and projections PyTorch ties to the embedding's: tables by
tie_word_embeddings, projections one by one by the per-cluster list tie_projs. HF's TF class
keeps its own copy of every softmax tensor, so the "tf2" view stores the tied ones twice.

Supported layouts: div_val > 1 (the released wt103 model), and div_val == 1 with
d_embed == d_model (no projections). div_val == 1 with d_embed != d_model ties every softmax
projection to the single embedding projection, which this descriptor does not express.

transformers 4.57.6's TFTransfoXLLMHeadModel.from_pretrained cannot load any h5: its build
makes no variables, so every stored weight is "unexpected" (tests/test_families_transfo_xl.py
shows it for transformers' own file). The h5 irconv writes is the one TF's save_pretrained
writes, and loads into a model built by a call (transformers' load_tf_weights).
"""
from __future__ import annotations

import numpy as np

from .engine import Block, Family, embedding, linear, norm, param

# The adaptive parts (clusters + the shortlist) have no count field in the config (it is
# len(cutoffs) + 1, or 1 when div_val == 1), so the engine counts the indices in the file.
PARTS = "num_adaptive_parts"


def inv_freq(config: dict) -> np.ndarray:
    """PyTorch's sinusoid frequencies buffer, 1 / 10000 ** (2k / d_model), in float32. TF keeps
    no such tensor; torch's float32 pow may differ from this in the last bit of a few entries."""
    d = int(config["d_model"])
    exponent = np.arange(0, d, 2, dtype=np.float32) / np.float32(d)
    return (np.float32(1) / (10000.0 ** exponent.astype(np.float64)).astype(np.float32)).astype(np.float32)


POS_EMB = Block.of("", [param("pos_emb.inv_freq", ("half",), pt="pos_emb.inv_freq", derive=inv_freq)], pt="")

# One embedding table per part, same layout everywhere.
EMB_TABLES = Block.of("embeddings.parts.{i}", [embedding("table", pt="emb_layers.{i}")], repeat=PARTS,
                      pt="word_emb")

# Projections from each part's width to d_model: (d_model, d_part) in PyTorch (applied as a
# Linear weight), the transpose in TF. Absent when div_val == 1 and d_embed == d_model; the
# softmax projections come and go with them, hence one role for both blocks.
EMB_PROJS = Block.of("embeddings.parts.{i}", [
    param("proj", ("out", "in"), pt="emb_projs.{i}", tf2=("emb_projs_._{i}", ("in", "out"))),
], repeat=PARTS, role="projections", pt="word_emb")

# The content (r_w) and position (r_r) biases, (n_head, d_head), per layer (untie_r, every
# release). untie_r=False is not declared: transformers 4.57.6 can neither save it in PyTorch
# (the shared pair is one tensor under n_layer + 1 names) nor build it in TF (its main layer
# never creates the shared pair), so no file of that layout exists to check against.
R_BIAS = ("heads", "head_dim")
LAYER = Block.of("layers.{i}", [
    linear("attn.qkv", bias=False, pt="dec_attn.qkv_net"),
    linear("attn.out", bias=False, pt="dec_attn.o_net"),
    norm("attn.norm", pt="dec_attn.layer_norm"),
    linear("attn.r", bias=False, pt="dec_attn.r_net"),
    param("attn.r_w_bias", R_BIAS, pt="dec_attn.r_w_bias", tf2="dec_attn/r_w_bias"),
    param("attn.r_r_bias", R_BIAS, pt="dec_attn.r_r_bias", tf2="dec_attn/r_r_bias"),
    linear("ffn.up", pt="pos_ff.CoreNet.0"),
    linear("ffn.down", pt="pos_ff.CoreNet.3"),
    norm("ffn.norm", pt="pos_ff.layer_norm"),
], repeat="n_layer", pt="layers.{i}")


# The adaptive softmax (`crit`). Its head scores the shortlist plus one logit per cluster:
# cluster_weight (n_clusters, d_embed) and cluster_bias, stored alike in both frameworks.
CLUSTERS = Block.of("heads.lm", [
    param("cluster_weight", ("clusters", "hidden"), pt="cluster_weight", tf2="cluster_weight"),
    param("cluster_bias", ("clusters",), pt="cluster_bias", tf2="cluster_bias"),
], role="clusters", base=False, pt="crit")

# TF creates the output tables as bare variables named 'out_layers_._{i}_._weight' (no
# Keras layer per part), which HF's TF->PT rule turns into 'out_layers.{i}.weight'.
SOFTMAX_PARTS = Block.of("heads.lm.parts.{i}", [
    param("weight", ("rows", "hidden"), tied_to="embeddings.parts.{i}.table.weight",
          pt="out_layers.{i}.weight", tf2="out_layers_._{i}_._weight"),
    param("bias", ("rows",), pt="out_layers.{i}.bias", tf2="out_layers_._{i}_._bias"),
], repeat=PARTS, role="lm", base=False, pt="crit")

SOFTMAX_PROJS = Block.of("heads.lm.parts.{i}", [
    param("proj", ("out", "in"), tied_to="embeddings.parts.{i}.proj", tie_key="tie_projs",
          pt="out_projs.{i}", tf2=("out_projs_._{i}", ("in", "out"))),
], repeat=PARTS, role="projections", base=False, pt="crit")


def infer_transfo_xl_config(specs, counts) -> tuple[dict, list[str]]:
    """HF TransfoXLConfig fields from tensor shapes, for a weights file that came without one."""
    parts = counts.get(PARTS, 1)
    tables = [specs[f"embeddings.parts.{i}.table.weight"].shape for i in range(parts)]
    d_embed = tables[0][1]
    rw = specs.get("layers.0.attn.r_w_bias")
    qkv = specs.get("layers.0.attn.qkv.weight")
    config = {
        "model_type": "transfo-xl",
        "vocab_size": sum(t[0] for t in tables),
        "cutoffs": list(np.cumsum([t[0] for t in tables[:-1]]).tolist()),
        "d_embed": d_embed,
        "d_model": qkv.shape[1] if qkv is not None else d_embed,
        "div_val": d_embed // tables[1][1] if parts > 1 else 1,
        "n_layer": counts.get("n_layer", 0),
        "untie_r": True,
        # A part's tensor that came on its own was not tied (tied ones became aliases).
        "tie_word_embeddings": "heads.lm.parts.0.weight" not in specs,
        "tie_projs": [f"heads.lm.parts.{i}.proj" not in specs for i in range(parts)],
    }
    if rw is not None:
        config.update(n_head=rw.shape[0], d_head=rw.shape[1])
    if "layers.0.ffn.up.weight" in specs:
        config["d_inner"] = specs["layers.0.ffn.up.weight"].shape[0]
    notes = ["no config given: inferred from tensor shapes; mem_len, clamp_len, same_length and "
             "pre_lnorm leave no trace in the weights, pass --config to set them"]
    return config, notes


TRANSFO_XL = Family(
    name="transfo-xl", model_types=("transfo-xl",), declared_views=("pt", "tf2"),
    blocks=(EMB_TABLES, EMB_PROJS, POS_EMB, LAYER, CLUSTERS, SOFTMAX_PARTS, SOFTMAX_PROJS),
    base_prefix={"pt": "transformer.", "tf2": "transformer/"},
    architectures={"TransfoXLLMHeadModel": frozenset({"lm"})},
    infer_config=infer_transfo_xl_config,
    defaults={"mem_len": 1600, "clamp_len": 1000, "same_length": True, "pre_lnorm": False,
              "layer_norm_epsilon": 1e-5},
    description="Transformer-XL (HF TransfoXLLMHeadModel, deprecated in transformers)",
)
FAMILIES = [TRANSFO_XL]
