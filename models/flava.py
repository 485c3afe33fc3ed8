"""FLAVA (HF FlavaForPreTraining; the original release's checkpoint) and its image codebook
(HF FlavaImageCodebook; DALL-E's discrete VAE encoder, which FLAVA uses as the codebook).

Two families:

flava, views "pt" (HF FlavaForPreTraining) and "orig" (the original FLAVA checkpoint, as
convert_flava_original_pytorch_to_hf.py reads it). Below each tower's or head's prefix the
original names are HF's, so every block declares its HF names once and `_placed` puts it at
both prefixes:

    orig prefix                                  HF prefix (canonical)
    text_encoder.module.                         flava.text_model.            (text.)
    image_encoder.module.                        flava.image_model.           (image.)
    mm_encoder.module.  (cls_token: encoder.cls_token)  flava.multimodal_model.  (multimodal.)
    text_projection / image_projection           flava.text_projection / ...
    mm_text_projection / mm_image_projection     flava.text_to_mm_projection / flava.image_to_mm_projection
    heads.cmd.clip_head.logit_scale              flava.logit_scale
    heads.imagenet.mim_head.cls.predictions.     mim_head.                    (heads.mim.)
    heads.fairseq_mlm.cls.predictions.           mlm_head.                    (heads.mlm.)
    heads.cmd.itm_head.pooler. / .cls.           itm_head.pooler. / itm_head. (heads.itm.)
    heads.cmd.mim_head.cls.predictions.          mmm_image_head.              (heads.mmm_image.)
    heads.cmd.mlm_head.cls.predictions.          mmm_text_head.               (heads.mmm_text.)

The original checkpoint also stores each tower's embeddings a second time
(text_encoder.embeddings.* beside text_encoder.module.embeddings.*): declared copies, dropped
and listed as such. It holds no codebook: HF's image_codebook.* come from DALL-E's encoder,
a second file (the family's Part "codebook", `--with codebook=encoder.pkl`).

flava-image-codebook, views "pt" (HF FlavaImageCodebook) and "dalle" (DALL-E's
dall_e.Encoder, whose whole pickled module is read as its module tree: 'blocks.input.w',
'blocks.group_2.block_1.id_path.b'). Both hard-code four groups (group_1..group_4), so the
groups are listed; blocks within a group repeat over num_blocks_per_group, counting from 1.
A block has an id_path conv only where its width changes: the first block of groups 2-4.
"""
from __future__ import annotations

import math

from ..ir.layout import CONV2D_PT, UNIT
from . import bert
from .engine import Block, Family, Part, linear, nested, norm, param

# --------------------------------------------------------------------------- the codebook

GROUPS = 4              # dall_e.Encoder.group_count; HF's FlavaImageCodebook builds group_1..group_4
BLOCKS = "num_blocks_per_group"


def conv(name: str = "", pt: str = "", dalle: str = "") -> list:
    """A Conv2d (weight, bias): PyTorch's nn.Conv2d weight/bias, DALL-E's dall_e.utils.Conv2d
    w/b, in the same (out, in, h, w) layout. Names are relative to the block's prefixes."""
    def join(path: str, leaf: str) -> str:
        return f"{path}.{leaf}" if path else leaf
    return (param(join(name, "weight"), CONV2D_PT, pt=join(pt, "weight"), dalle=join(dalle, "w"))
            + param(join(name, "bias"), ("out",), pt=join(pt, "bias"), dalle=join(dalle, "b")))


def _res_path(group: int) -> Block:
    """The residual path of every block of one group (HF nests its convs one level deeper)."""
    convs = [conv(f"res_path.conv_{k}", pt=f"res_path.path.conv_{k}", dalle=f"res_path.conv_{k}") for k in range(1, 5)]
    return Block.of(f"group_{group}.block_{{b}}", convs, repeat=(("b", BLOCKS),), first={"b": 1},
                    pt=f"blocks.group_{group}.group.block_{{b}}", dalle=f"blocks.group_{group}.block_{{b}}")


def _id_path(group: int) -> Block:
    """The 1x1 conv on the skip path of a group's first block, where the width doubles."""
    return Block.of(f"group_{group}.block_1.id_path", [conv()],
                    pt=f"blocks.group_{group}.group.block_1.id_path", dalle=f"blocks.group_{group}.block_1.id_path")


CODEBOOK_BLOCKS = (
    Block.of("input", [conv()], pt="blocks.input", dalle="blocks.input"),
    *[b for g in range(1, GROUPS + 1) for b in ([_id_path(g)] if g > 1 else []) + [_res_path(g)]],
    Block.of("output", [conv()], pt="blocks.output.conv", dalle="blocks.output.conv"),
)

# The codebook config fields its tensors decide.
CODEBOOK_SHAPE_KEYS = ("hidden_size", "input_channels", "num_blocks_per_group", "num_groups", "vocab_size")


def infer_codebook_config(specs, counts) -> tuple[dict, list[str]]:
    """FlavaImageCodebookConfig from the shapes: every field that matters is in them."""
    first = specs["input.weight"].shape
    config = {"model_type": "flava_image_codebook", "hidden_size": first[0], "input_channels": first[1],
              "num_groups": GROUPS, BLOCKS: counts.get(BLOCKS, 0), "vocab_size": specs["output.weight"].shape[0]}
    return config, []


CODEBOOK = Family(
    name="flava-image-codebook", model_types=("flava_image_codebook",), declared_views=("pt", "dalle"),
    blocks=CODEBOOK_BLOCKS, base_prefix={}, architectures={"FlavaImageCodebook": frozenset()},
    infer_config=infer_codebook_config,
    description="FLAVA's image codebook (HF FlavaImageCodebook; DALL-E's pickled dall_e.Encoder)")

# --------------------------------------------------------------------------- FLAVA


def _placed(block: Block, name: str, *, pt: str, orig: str | None, repeat_keys=None, role=None) -> Block:
    """`block` under canonical `name.`, at raw prefix `pt` in HF and `orig` in the original
    checkpoint (None: that view has no such block), original names = HF's unless the block
    spells "orig" itself."""
    return nested(block, name, {"pt": pt, "orig": orig}, spell_as={"orig": "pt"}, repeat_keys=repeat_keys, role=role)


def encoder_layer() -> Block:
    """A pre-LN (ViT-style) layer, HF's state-dict order. As in xlm_roberta_xl, attn.norm is
    the norm in front of the attention (layernorm_before), ffn.norm the one in front of the
    FFN (layernorm_after)."""
    return Block.of("encoder.layers.{i}", [
        linear("attn.q", pt="attention.attention.query"),
        linear("attn.k", pt="attention.attention.key"),
        linear("attn.v", pt="attention.attention.value"),
        linear("attn.out", pt="attention.output.dense"),
        linear("ffn.up", pt="intermediate.dense"),
        linear("ffn.down", pt="output.dense"),
        norm("attn.norm", pt="layernorm_before"),
        norm("ffn.norm", pt="layernorm_after"),
    ], repeat="num_hidden_layers", pt="encoder.layer.{i}")


TOWER_END = Block.of("", [norm("norm", pt="layernorm"), linear("pooler.dense", pt="pooler.dense")], pt="")

IMAGE_EMBEDDINGS = Block.of("embeddings", [
    param("cls_token", (UNIT, UNIT, "hidden"), pt="cls_token"),
    param("mask_token", (UNIT, UNIT, "hidden"), pt="mask_token"),
    param("position", (UNIT, "rows", "hidden"), pt="position_embeddings"),
    param("patch.weight", CONV2D_PT, pt="patch_embeddings.projection.weight"),
    param("patch.bias", ("out",), pt="patch_embeddings.projection.bias"),
], pt="embeddings")

# The multimodal tower's own token: the one name the original spells differently.
MM_CLS = Block.of("", [param("cls_token", (UNIT, UNIT, "hidden"), pt="cls_token", orig="encoder.cls_token")], pt="")


def tower(name: str, config: str, pt: str, orig: str, first: list[Block]) -> list[Block]:
    keys = {"num_hidden_layers": f"{config}.num_hidden_layers"}
    return [_placed(b, name, pt=pt, orig=orig, repeat_keys=keys) for b in [*first, encoder_layer(), TOWER_END]]


TOP = Block.of("", [
    param("logit_scale", (), pt="logit_scale", orig="heads.cmd.clip_head.logit_scale"),
    linear("image_projection", pt="image_projection", orig="image_projection"),
    linear("text_projection", pt="text_projection", orig="text_projection"),
    linear("image_to_mm_projection", pt="image_to_mm_projection", orig="mm_image_projection"),
    linear("text_to_mm_projection", pt="text_to_mm_projection", orig="mm_text_projection"),
], pt="flava", orig="")


def masked_head(name: str, pt: str, orig: str) -> Block:
    """FlavaMaskedPredictionHead (BERT's MLM head shape). Its decoder has its own weight; the
    decoder bias is always the head's bias (HF re-ties it, so safetensors stores it once)."""
    return Block.of(f"heads.{name}", [
        param("bias", ("rows",), pt="bias", orig="bias"),
        linear("transform.dense", pt="transform.dense", orig="transform.dense"),
        norm("transform.norm", pt="transform.LayerNorm", orig="transform.LayerNorm"),
        param("decoder.weight", ("rows", "hidden"), pt="decoder.weight", orig="decoder.weight"),
        param("decoder.bias", ("rows",), tied_to=f"heads.{name}.bias", tie_key=None, pt="decoder.bias",
              orig="decoder.bias"),
    ], pt=pt, orig=orig)


ITM_HEAD = Block.of("heads.itm", [
    linear("pooler.dense", pt="pooler.dense", orig="pooler.dense"),
    linear("seq_relationship", pt="seq_relationship", orig="cls.seq_relationship"),
], pt="itm_head", orig="heads.cmd.itm_head")

CODEBOOK_KEYS = {BLOCKS: f"image_codebook_config.{BLOCKS}"}
FLAVA_BLOCKS = (
    *tower("text", "text_config", "flava.text_model", "text_encoder.module", [bert.EMBEDDINGS]),
    *tower("image", "image_config", "flava.image_model", "image_encoder.module", [IMAGE_EMBEDDINGS]),
    *tower("multimodal", "multimodal_config", "flava.multimodal_model", "mm_encoder.module", [MM_CLS]),
    TOP,
    # HF keeps the codebook in FlavaForPreTraining; the original checkpoint does not (see Part).
    *[_placed(b, "image_codebook", pt="image_codebook", orig=None, repeat_keys=CODEBOOK_KEYS, role="codebook")
      for b in CODEBOOK_BLOCKS],
    masked_head("mim", "mim_head", "heads.imagenet.mim_head.cls.predictions"),
    masked_head("mlm", "mlm_head", "heads.fairseq_mlm.cls.predictions"),
    ITM_HEAD,
    masked_head("mmm_image", "mmm_image_head", "heads.cmd.mim_head.cls.predictions"),
    masked_head("mmm_text", "mmm_text_head", "heads.cmd.mlm_head.cls.predictions"),
)

CODEBOOK_PART = Part("codebook", CODEBOOK.name, "image_codebook", "image_codebook_config", CODEBOOK_SHAPE_KEYS,
                     flag="init_codebook", what="DALL-E's encoder.pkl, or an HF FlavaImageCodebook directory")


def _layers(specs, counts, tower_name: str, config_key: str) -> dict:
    """A tower's depth, width and FFN size from its tensors; heads are a guess (64 each)."""
    hidden = specs[f"{tower_name}.norm.weight"].shape[0]
    up = specs.get(f"{tower_name}.encoder.layers.0.ffn.up.weight")
    return {"hidden_size": hidden, "num_hidden_layers": counts.get(f"{config_key}.num_hidden_layers", 0),
            "intermediate_size": up.shape[0] if up is not None else 4 * hidden,
            "num_attention_heads": max(1, hidden // 64)}


def infer_flava_config(specs, counts) -> tuple[dict, list[str]]:
    """FlavaConfig from tensor shapes, for a checkpoint that came without one."""
    word, token_type = specs["text.embeddings.word.weight"].shape, specs["text.embeddings.token_type.weight"].shape
    text = dict(_layers(specs, counts, "text", "text_config"), vocab_size=word[0],
                max_position_embeddings=specs["text.embeddings.position.weight"].shape[0],
                type_vocab_size=token_type[0])
    patch = specs["image.embeddings.patch.weight"].shape
    patches = specs["image.embeddings.position"].shape[1] - 1          # less the cls token
    image = dict(_layers(specs, counts, "image", "image_config"), patch_size=patch[2], num_channels=patch[1],
                 image_size=math.isqrt(patches) * patch[2], vocab_size=specs["heads.mim.bias"].shape[0])
    multimodal = _layers(specs, counts, "multimodal", "multimodal_config")
    config = {"model_type": "flava", "text_config": text, "image_config": image, "multimodal_config": multimodal,
              "hidden_size": specs["heads.itm.pooler.dense.weight"].shape[0],
              "projection_dim": specs["image_projection.weight"].shape[0]}
    notes = ["no config given: FlavaConfig inferred from tensor shapes; num_attention_heads (64 per head) is a "
             "guess and everything else not in the shapes (layer_norm_eps, hidden_act, ...) is FlavaConfig's "
             "default; pass --config to set them"]
    return config, notes


# Buffers some transformers versions saved beside the weights; not learned.
BUFFERS = (r"(^|\.)embeddings\.position_ids$", r"(^|\.)embeddings\.token_type_ids$")

FLAVA = Family(
    name="flava", model_types=("flava",), declared_views=("pt", "orig"), blocks=FLAVA_BLOCKS, base_prefix={},
    architectures={"FlavaForPreTraining": frozenset()}, infer_config=infer_flava_config,
    head_widths={f"{tower}_config.num_attention_heads": f"{tower}_config.hidden_size" for tower in ("text", "image", "multimodal")},
    required=tuple(f"{tower}_config.num_attention_heads" for tower in ("text", "image", "multimodal")),
    defaults={f"{tower}_config.{key}": value for tower in ("text", "image", "multimodal")
              for key, value in (("hidden_act", "gelu"), ("layer_norm_eps", 1e-12))},
    ignore={"pt": BUFFERS, "orig": BUFFERS},
    duplicates={"orig": ((r"(text|image)_encoder\.embeddings\.(.+)", r"\1_encoder.module.embeddings.\2"),)},
    parts=(CODEBOOK_PART,),
    description="FLAVA (HF FlavaForPreTraining; the original checkpoint + DALL-E codebook)")

FAMILIES = [FLAVA, CODEBOOK]
