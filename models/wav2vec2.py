"""wav2vec 2.0 (HF Wav2Vec2Model).

A 1-D conv feature encoder over raw audio, a projection, a weight-normed convolutional
positional embedding and a transformer encoder. HF's TF2 class names its list layers
`conv_layers.{i}` / `layers.{i}` (a dot inside one Keras scope), not `_._`, so its names are
spelled here rather than derived from the PyTorch ones.
"""
from __future__ import annotations

from ..ir.layout import CONV1D_PT, CONV1D_TF
from .engine import Block, Family, linear, norm, param

# Conv kernels: PyTorch Conv1d stores (out, in, kernel), Keras Conv1D (kernel, in, out).
PT_CONV, TF_CONV = CONV1D_PT, CONV1D_TF
FLAX_CONV = tuple(reversed(CONV1D_PT))     # flax.linen.Conv: (width, in, out), the PyTorch weight transposed


def conv1d(name: str, pt: str, tf2: str, bias: bool) -> list:
    flax = pt.replace(".", "/")
    out = param(f"{name}.weight", PT_CONV, pt=f"{pt}.weight", tf2=(f"{tf2}/kernel", TF_CONV),
                flax=(f"{flax}/kernel", FLAX_CONV))
    if bias:
        out += param(f"{name}.bias", ("out",), pt=f"{pt}.bias", tf2=f"{tf2}/bias", flax=f"{flax}/bias")
    return out


FEATURE_CONV = Block.of("feature_extractor.conv_layers.{i}", [
    conv1d("conv", "conv", "conv", bias=False),
], repeat="num_feat_extract_layers", pt="feature_extractor.conv_layers.{i}",
   tf2="feature_extractor/conv_layers.{i}")

# conv_bias=True (wav2vec2-large-lv60 and its kin) gives every conv a bias.
FEATURE_CONV_BIAS = Block.of("feature_extractor.conv_layers.{i}", [
    param("conv.bias", ("out",), pt="conv.bias", tf2="conv/bias", flax="conv/bias"),
], repeat="num_feat_extract_layers", role="conv_bias", pt="feature_extractor.conv_layers.{i}",
   tf2="feature_extractor/conv_layers.{i}")

# feat_extract_norm="group" puts a GroupNorm on conv layer 0 only, "layer" a LayerNorm on
# every conv layer; both frameworks call either `layer_norm` and store one (channels,) pair.
# The config has no key counting them, so the count key names no config field: the engine
# then counts the indices present in the file (1 or num_feat_extract_layers).
FEATURE_NORM = Block.of("feature_extractor.conv_layers.{i}", [
    norm("norm", pt="layer_norm", tf2="layer_norm"),
], repeat="num_feat_extract_norms", role="feature_norm", pt="feature_extractor.conv_layers.{i}",
   tf2="feature_extractor/conv_layers.{i}")

FEATURE_PROJECTION = Block.of("feature_projection", [
    norm("norm", pt="layer_norm"),
    linear("projection", pt="projection"),
], pt="feature_projection")

# The positional conv is weight-normed over its kernel axis (torch weight_norm dim=2):
# g holds one norm per kernel position. torch >= 2.1 saves the pair as parametrizations
# original0 (g, shape (1, 1, kernel)) and original1 (v, (out, in/groups, kernel)). TF keeps
# v in PyTorch's layout (it transposes its Keras kernel into `weight_v`) and g as
# (kernel, 1, 1), which it transposes before use: the same values with the axes reversed,
# so both are plain permutations of named axes.
POS_CONV = Block.of("encoder.pos_conv", [
    # Flax's weight-normed conv keeps PyTorch's g and v as they are (transformers' rule 7).
    param("weight_g", PT_CONV, pt="parametrizations.weight.original0", tf2=("weight_g", TF_CONV), flax="weight_g"),
    param("weight_v", PT_CONV, pt="parametrizations.weight.original1", tf2="weight_v", flax="weight_v"),
    param("bias", ("out",), pt="bias", tf2="bias", flax="bias"),
], pt="encoder.pos_conv_embed.conv")

ENCODER_NORM = Block.of("encoder", [norm("norm", pt="layer_norm")], pt="encoder")

# Post-LN (feat_extract_norm="group") and pre-LN (do_stable_layer_norm) layers share names.
LAYER = Block.of("encoder.layers.{i}", [
    linear("attn.q", pt="attention.q_proj"),
    linear("attn.k", pt="attention.k_proj"),
    linear("attn.v", pt="attention.v_proj"),
    linear("attn.out", pt="attention.out_proj"),
    norm("attn.norm", pt="layer_norm"),
    linear("ffn.up", pt="feed_forward.intermediate_dense"),
    linear("ffn.down", pt="feed_forward.output_dense"),
    norm("ffn.norm", pt="final_layer_norm"),
], repeat="num_hidden_layers", pt="encoder.layers.{i}", tf2="encoder/layers.{i}")

# Only built when mask_time_prob or mask_feature_prob is above zero (SpecAugment's fill).
MASKED_SPEC = Block.of("", [param("masked_spec_embed", ("hidden",), pt="masked_spec_embed",
                                  tf2="masked_spec_embed", flax="masked_spec_embed")], role="masked_spec", pt="", tf2="")


def infer_wav2vec2_config(specs, counts) -> tuple[dict, list[str]]:
    """HF Wav2Vec2Config fields from tensor shapes, for a weights file that came without one."""
    n_conv = counts.get("num_feat_extract_layers", 0)
    convs = [specs[f"feature_extractor.conv_layers.{i}.conv.weight"].shape for i in range(n_conv)]
    pos = specs["encoder.pos_conv.weight_v"].shape
    hidden = specs["feature_projection.projection.weight"].shape[0]
    n_norms = counts.get("num_feat_extract_norms", 0)
    config = {
        "model_type": "wav2vec2",
        "hidden_size": hidden,
        "num_hidden_layers": counts.get("num_hidden_layers", 0),
        "intermediate_size": specs["encoder.layers.0.ffn.up.weight"].shape[0],
        "conv_dim": [s[0] for s in convs],
        "conv_kernel": [s[2] for s in convs],
        # Strides leave no trace either; every release uses 5 then 2s (320x downsampling).
        "conv_stride": [5] + [2] * (n_conv - 1),
        "conv_bias": "feature_extractor.conv_layers.0.conv.bias" in specs,
        "feat_extract_norm": "layer" if n_norms > 1 else "group",
        "num_conv_pos_embeddings": pos[2],
        "num_conv_pos_embedding_groups": hidden // pos[1],
        # Heads leave no trace in the shapes: wav2vec2's releases all use 64 per head.
        "num_attention_heads": max(1, hidden // 64),
    }
    if "masked_spec_embed" not in specs:
        config.update(mask_time_prob=0.0, mask_feature_prob=0.0)
    notes = ["no config given: inferred from tensor shapes; conv_stride, do_stable_layer_norm and "
             f"num_attention_heads={config['num_attention_heads']} (64 per head) are guesses, pass --config"]
    return config, notes


WAV2VEC2 = Family(
    name="wav2vec2", model_types=("wav2vec2",), declared_views=("pt", "tf2", "flax"),
    # transformers 4.57.6's FlaxWav2Vec2 builds only the stable (pre-LN) layer norm layout.
    # (A config that leaves the fields out is let through: the Flax class itself refuses it, loudly.)
    view_limits={"flax": lambda c: None if c.get("do_stable_layer_norm", True) and c.get("feat_extract_norm", "layer")
                 == "layer" else "HF's Flax Wav2Vec2 builds only do_stable_layer_norm: true with feat_extract_norm: 'layer'"},
    blocks=(MASKED_SPEC, FEATURE_CONV, FEATURE_CONV_BIAS, FEATURE_NORM, FEATURE_PROJECTION, POS_CONV,
            ENCODER_NORM, LAYER),
    base_prefix={"pt": "wav2vec2.", "tf2": "wav2vec2/"},
    # PyTorch's bare Wav2Vec2Model keys have no prefix; TF's keeps its main layer.
    arch_prefixes={"pt": {"Wav2Vec2Model": ""}},
    architectures={"Wav2Vec2Model": frozenset()},
    infer_config=infer_wav2vec2_config,
    # Conv strides leave no trace in the kernels; neither do the heads.
    head_widths={"num_attention_heads": "hidden_size"},
    required=("num_attention_heads", "conv_stride"),
    defaults={"hidden_act": "gelu", "feat_extract_activation": "gelu", "layer_norm_eps": 1e-5,
              "do_stable_layer_norm": False},
    description="wav2vec 2.0 (HF Wav2Vec2Model)",
)
FAMILIES = [WAV2VEC2]
