"""ViT (google-research/vision_transformer; HF ViTModel and its heads).

Patches are embedded by a Conv2d whose stride is its kernel (PyTorch (out, in, h, w), Keras
(h, w, in, out)); a learned cls token is prepended and learned position embeddings added, both
raw parameters with leading unit axes. The encoder is the pre-LN layer FLAVA's towers share.
HF's TF2 class names everything after the PyTorch module, so tf2 names are derived.
"""
from __future__ import annotations

import math

from ..ir.layout import CONV2D_PT, CONV2D_TF, UNIT
from . import flava
from .engine import INFERRED, Block, Family, linear, norm, param

EMBEDDINGS = Block.of("embeddings", [
    param("cls_token", (UNIT, UNIT, "hidden"), pt="cls_token", tf2="cls_token", flax="cls_token"),
    param("position", (UNIT, "rows", "hidden"), pt="position_embeddings", tf2="position_embeddings",
          flax="position_embeddings"),
    param("patch.weight", CONV2D_PT, pt="patch_embeddings.projection.weight",
          tf2=("patch_embeddings/projection/kernel", CONV2D_TF), flax=("patch_embeddings/projection/kernel", CONV2D_TF)),
    param("patch.bias", ("out",), pt="patch_embeddings.projection.bias", tf2="patch_embeddings/projection/bias",
          flax="patch_embeddings/projection/bias"),
], pt="embeddings")

# Built only with use_mask_token (ViTForMaskedImageModeling); HF's TF class has none.
MASK_TOKEN = Block.of("embeddings", [param("mask_token", (UNIT, UNIT, "hidden"), pt="mask_token")],
                      role="mask_token", pt="embeddings", tf2=None, flax=None)

FINAL_NORM = Block.of("", [norm("norm", pt="layernorm")], pt="")
POOLER = Block.of("pooler", [linear("dense", pt="dense")], role="pooler", pt="pooler")
CLASSIFIER_HEAD = Block.of("heads.classifier", [linear("dense", pt="")], role="classifier", base=False,
                           pt="classifier")

# SimMIM's decoder: a 1x1 conv to encoder_stride**2 * num_channels, then a pixel shuffle.
# ViTForMaskedImageModeling has no TF class.
MIM_HEAD = Block.of("heads.mim", [
    param("conv.weight", CONV2D_PT, pt="0.weight"),
    param("conv.bias", ("out",), pt="0.bias"),
], role="mim", base=False, pt="decoder", tf2=None, flax=None)


def infer_vit_config(specs, counts) -> tuple[dict, list[str]]:
    """HF ViTConfig fields from tensor shapes, for a weights file that came without one."""
    hidden, channels, patch_h, patch_w = specs["embeddings.patch.weight"].shape
    patches = specs["embeddings.position"].shape[1] - 1            # less the cls token
    side = math.isqrt(patches)
    config = {
        "model_type": "vit",
        "hidden_size": hidden,
        "num_hidden_layers": counts.get("num_hidden_layers", 0),
        "intermediate_size": specs["encoder.layers.0.ffn.up.weight"].shape[0]
        if "encoder.layers.0.ffn.up.weight" in specs else 4 * hidden,
        "num_channels": channels,
        "patch_size": patch_h if patch_h == patch_w else [patch_h, patch_w],
        # A square grid of patches is an assumption (16 patches are also 2 x 8): a stated
        # default, taken only with --accept-defaults.
        "image_size": side * patch_h if side * side == patches and patch_h == patch_w else None,
        "num_attention_heads": max(1, hidden // 64),
    }
    if "pooler.dense.weight" in specs:
        config["pooler_output_size"] = specs["pooler.dense.weight"].shape[0]
    if "heads.classifier.dense.weight" in specs:
        config["num_labels"] = specs["heads.classifier.dense.weight"].shape[0]
    if "heads.mim.conv.weight" in specs:
        stride = math.isqrt(specs["heads.mim.conv.weight"].shape[0] // channels)
        config["encoder_stride"] = stride
    if config["image_size"] is None:
        del config["image_size"]
    notes = ["no config given: inferred from tensor shapes; num_attention_heads is a guess (64 per head) "
             "and image_size assumes square images, pass --config to set them"]
    return config, notes


VIT = Family(
    name="vit", model_types=("vit",), declared_views=("pt", "tf2", "flax"),
    blocks=(EMBEDDINGS, MASK_TOKEN, flava.encoder_layer(), FINAL_NORM, POOLER, CLASSIFIER_HEAD, MIM_HEAD),
    base_prefix={"pt": "vit.", "tf2": "vit/"},
    # PyTorch's bare ViTModel keys have no prefix; TF's keeps its main layer 'vit'.
    arch_prefixes={"pt": {"ViTModel": ""}},
    architectures={
        "ViTModel": frozenset({"pooler"}),
        "ViTForImageClassification": frozenset({"classifier"}),
        "ViTForMaskedImageModeling": frozenset({"mim"}),
    },
    infer_config=infer_vit_config,
    # Heads leave no trace in the fused projections.
    required=("num_attention_heads",),
    defaults={"image_size": INFERRED, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "pooler_act": "tanh"},
    description="ViT (google-research/vision_transformer, HF ViT*)",
)
FAMILIES = [VIT]
