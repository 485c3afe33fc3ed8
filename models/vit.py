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
from . import kerashub as kh
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
    head_widths={"num_attention_heads": "hidden_size"},
    required=("num_attention_heads",),
    defaults={"image_size": INFERRED, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "pooler_act": "tanh"},
    description="ViT (google-research/vision_transformer, HF ViT*)",
)


# --------------------------------------------------------------------------- keras-hub view
# keras-hub's ViTBackbone: the patch embedding, class token and positions in one layer, the
# encoder blocks a list attribute of the encoder layer (formats/kerashub.py: its items are
# `vi_t_encoder_block_<i>`), and the final norm. It has no pooler: HF's ViTModel pooler and the
# classifier of ViTForImageClassification (a task's weights, not the Backbone's) are refused.

def _pair(value, field_name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise ValueError(f"{field_name}={value!r} is not a size or a (height, width) pair")


def _one(pair):
    return pair[0] if pair[0] == pair[1] else list(pair)


def _positions(config: dict) -> int:
    """Patches and the class token: the position table's rows."""
    (h, w), (ph, pw) = _pair(config["image_size"], "image_size"), _pair(config["patch_size"], "patch_size")
    return (h // ph) * (w // pw) + 1


def _position_table(config: dict) -> kh.Reshape:
    rows, hidden = _positions(config), config["hidden_size"]
    return kh.Reshape((rows, hidden), (1, rows, hidden))


def _vit_hub_args(hf: dict) -> dict:
    (h, w) = _pair(kh.require(hf, "image_size"), "image_size")
    patch = _pair(kh.require(hf, "patch_size"), "patch_size")
    if h % patch[0] or w % patch[1]:
        raise ValueError(f"image_size={hf['image_size']!r} is not a whole number of {hf['patch_size']!r} patches")
    # The class is always built with a class token and patch/MLP biases, as HF's ViT is.
    return {"image_shape": [h, w, kh.require(hf, "num_channels")], "patch_size": list(patch),
            "use_mha_bias": True, "use_mlp_bias": True, "use_class_token": True, "use_patch_bias": True}


def _vit_hf_config(args: dict, names: set) -> dict:
    for flag in ("use_class_token", "use_patch_bias", "use_mlp_bias", "use_mha_bias"):
        if not args.get(flag, True):
            raise ValueError(f"{flag}=false: HF's ViT always has it")
    if args.get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"data_format={args['data_format']!r}: irconv reads channels-last ViT presets only")
    h, w, channels = args["image_shape"]
    return {"image_size": _one((h, w)), "num_channels": channels, "patch_size": _one(_pair(args["patch_size"], "patch_size"))}


# keras-hub's ViTBackbone (keras_hub/src/models/vit): exact GELU, its epsilon an argument; its
# MultiHeadAttention's use_mha_bias drops the output bias too, which HF's ViT always has.
VIT_HUB = kh.HubConfig(
    "ViTBackbone", "keras_hub.src.models.vit.vit_backbone", "vit",
    pairs=(("num_hidden_layers", "num_layers"), ("num_attention_heads", "num_heads"), ("hidden_size", "hidden_dim"),
           ("intermediate_size", "mlp_dim"), ("hidden_dropout_prob", "dropout_rate"),
           ("attention_probs_dropout_prob", "attention_dropout"), ("layer_norm_eps", "layer_norm_epsilon")),
    fixed={"hidden_act": "gelu", "qkv_bias": True},
    to_hub=_vit_hub_args, to_hf=_vit_hf_config, architecture="ViTModel", tasks=("ImageClassifier",))
_MHA = "mha"
VIT_HUB_LAYER = {
    **{f"attn.{x}.{leaf}": make(f"{_MHA}/{dense}_dense/vars/{n}")
       for x, dense in (("q", "query"), ("k", "key"), ("v", "value"))
       for leaf, make, n in (("weight", kh.head_kernel, 0), ("bias", kh.head_bias, 1))},
    "attn.out.weight": kh.out_kernel(f"{_MHA}/output_dense/vars/0"), "attn.out.bias": kh.plain(f"{_MHA}/output_dense/vars/1"),
    **kh.dense("mlp/dense_1", "ffn.up"),
    **kh.dense("mlp/dense_2", "ffn.down"),
    **kh.layer_norm("layer_norm_1", "attn.norm"),
    **kh.layer_norm("layer_norm_2", "ffn.norm"),
}
_EMBED = "vi_t_patching_and_embedding_0"
VIT = kh.with_kerashub(VIT, VIT_HUB, {
    "embeddings": ("", {"cls_token": kh.plain(f"{_EMBED}/vars/0"),
                        "position": kh.HubSpelling(f"{_EMBED}/position_embedding/vars/0", None, stored=_position_table),
                        "patch.weight": kh.plain(f"{_EMBED}/patch_embedding/vars/0", CONV2D_TF),
                        "patch.bias": kh.plain(f"{_EMBED}/patch_embedding/vars/1")}),
    "encoder.layers.{i}": ("vi_t_encoder_0/encoder_layers/vi_t_encoder_block_{i}", VIT_HUB_LAYER),
    "": ("", kh.layer_norm("vi_t_encoder_0/layer_norm", "norm")),
})
FAMILIES = [VIT]
