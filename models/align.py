"""ALIGN (HF AlignModel; the original release is a Keras model).

The original model is a Keras model of two towers and two extra weights, as
convert_align_tf_to_hf.py reads it: an EfficientNet image tower under keras.applications
names ('stem_conv/kernel', 'block1a_dwconv/depthwise_kernel'), a transformers TFBertModel
text tower ('tf_bert_model/bert/encoder/layer_._0/...'), a `dense` text projection and a
`temperature` scalar. Both towers are other families' blocks, nested here rather than
re-declared: the image tower is efficientnet's (without its top conv, which HF's
AlignVisionEncoder does not have), the text tower BERT's, spelled in the "keras" view the way
BERT's "tf2" view spells it. The image tower's block names follow the vision config, so the
family is config-built like efficientnet (engine.ConfigFamily).
"""
from __future__ import annotations

from . import bert, efficientnet
from .engine import INFERRED, Block, ConfigFamily, Family, nested, param

TEXT_LAYERS = "text_config.num_hidden_layers"

HEAD = [
    Block.of("text_projection", [
        param("weight", ("out", "in"), pt="weight", keras=("dense/kernel", ("in", "out"))),
        param("bias", ("out",), pt="bias", keras="dense/bias"),
    ], base=False, pt="text_projection", keras=""),
    Block.of("logit_scale", [param("temperature", (), pt="temperature", keras="temperature")],
             base=False, pt="", keras=""),
]

# Blocks of efficientnet's table that HF's AlignVisionModel does not have.
NOT_IN_TOWER = {efficientnet.TOP.name, efficientnet.CLASSIFIER.name}


def vision_blocks(vision_config: dict) -> list[Block]:
    tower = efficientnet.FAMILIES[0].concrete(vision_config)
    return [nested(b, "vision", {"pt": "vision_model.", "keras": ""})
            for b in tower.blocks if b.name not in NOT_IN_TOWER]


def text_blocks() -> list[Block]:
    blocks = (bert.EMBEDDINGS, bert.encoder_layer(pt="encoder.layer.{i}"), bert.POOLER)
    return [nested(b, "text", {"pt": "text_model.", "keras": "tf_bert_model/bert/"}, spell_as={"keras": "tf2"},
                   repeat_keys={"num_hidden_layers": TEXT_LAYERS}) for b in blocks]


def vision_config_of(variant: str, image_size: int | None = None) -> dict:
    """AlignVisionConfig fields of a keras.applications EfficientNet tower, with hidden_dim as
    get_align_config sets it: the last block's width (640 for B7), since there is no top conv."""
    config = efficientnet.variant_config(variant, image_size)
    config["hidden_dim"] = efficientnet.round_filters(config["out_channels"][-1], config["width_coefficient"])
    config["model_type"] = "align_vision_model"
    return config


def infer_config(vision_config: dict):
    def infer(specs, counts) -> tuple[dict, list[str]]:
        text_specs = {c[len("text."):]: s for c, s in specs.items() if c.startswith("text.")}
        text, notes = bert.infer_bert_config(text_specs, {"num_hidden_layers": counts.get(TEXT_LAYERS, 0)})
        text["model_type"] = "align_text_model"
        last = max(int(c.split(".")[3]) for c in specs if c.startswith("vision.encoder.blocks."))
        vision = dict(vision_config, hidden_dim=specs[f"vision.encoder.blocks.{last}.project.weight"].shape[0])
        config = {"model_type": "align", "text_config": text, "vision_config": vision,
                  "projection_dim": specs["text_projection.weight"].shape[0]}
        return config, notes
    return infer


class AlignFamily(ConfigFamily):
    def build(self, config: dict) -> Family:
        vision = dict(efficientnet.BASE, **(config.get("vision_config") or {}))
        return _concrete(vision)

    def candidates(self):
        return [(f"an EfficientNet-{v.upper()} image tower", {"vision_config": vision_config_of(v)})
                for v in efficientnet.VARIANTS]

    def inferred_note(self, label, config):
        vision = config["vision_config"]
        return (f"no config: {label} from block counts and widths, image_size {vision['image_size']} "
                "(pass --config with an AlignConfig to set it; it decides depthwise_padding)")


# The text tower is BERT's: its heads split its width evenly.
TEXT_HEADS = {"text_config.num_attention_heads": "text_config.hidden_size"}


def _concrete(vision_config: dict) -> Family:
    blocks = (*vision_blocks(vision_config), *text_blocks(), *HEAD)
    ignore = {"keras": efficientnet.IGNORE["keras"],
              "pt": (r"^text_model\.embeddings\.(position_ids|token_type_ids)$",)}
    return Family("align", ("align",), ("pt", "keras"), blocks, base_prefix={},
                  architectures={"AlignModel": frozenset()}, infer_config=infer_config(vision_config),
                  ignore=ignore, head_widths=TEXT_HEADS, description="ALIGN (HF AlignModel; the original Keras EfficientNet + BERT model)")


_B0 = _concrete(vision_config_of("b0"))
FAMILIES = [AlignFamily(_B0.name, _B0.model_types, _B0.declared_views, _B0.blocks, _B0.base_prefix,
                        _B0.architectures, _B0.infer_config, _B0.ignore, description=_B0.description,
                        head_widths=TEXT_HEADS,
                        required=("text_config.num_attention_heads",),
                        # The image size decides the depthwise padding; no tensor holds it.
                        defaults={"vision_config.image_size": INFERRED, "vision_config.hidden_act": "swish",
                                  "vision_config.batch_norm_eps": 1e-3, "text_config.hidden_act": "gelu",
                                  "text_config.layer_norm_eps": 1e-12},
                        complete=lambda c: dict(c, vision_config=efficientnet.with_padding(c["vision_config"]))
                        if isinstance(c.get("vision_config"), dict) else c)]
