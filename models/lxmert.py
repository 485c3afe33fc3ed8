"""LXMERT (HF LxmertModel, LxmertForPreTraining).

Two streams: BERT's embeddings and post-LN layers over the text (l_layers), a visual
feature encoder (`visn_fc`: RoI features and boxes, each a Linear + LayerNorm, summed) and
BERT layers over the objects (r_layers), then cross-modality layers (x_layers) in which both
streams attend to each other through one shared cross-attention. The visual feature
encoder is a sub-layer of the encoder with no class of its own, so it is a block here.
Pretraining heads: BERT's MLM and matching heads under `cls`, the object-prediction head
(one decoder per visual loss the config turns on) and the QA head.
"""
from __future__ import annotations

from dataclasses import replace

from .bert import EMBEDDINGS, POOLER, encoder_layer, logits_layer
from .engine import Block, Family, linear, norm, param


def bert_layers(name: str, count_key: str, pt: str) -> Block:
    """BERT's encoder layer, under another canonical name and layer count."""
    return replace(encoder_layer(pt=pt), name=name, repeats=(("i", count_key),))


def attention(name: str, pt_self: str, pt_out: str) -> list:
    """q/k/v, output dense and its post-LN, BERT naming."""
    return [
        linear(f"{name}.q", pt=f"{pt_self}.query"),
        linear(f"{name}.k", pt=f"{pt_self}.key"),
        linear(f"{name}.v", pt=f"{pt_self}.value"),
        linear(f"{name}.out", pt=f"{pt_out}.dense"),
        norm(f"{name}.norm", pt=f"{pt_out}.LayerNorm"),
    ]


def ffn(name: str, pt_up: str, pt_down: str) -> list:
    return [linear(f"{name}.up", pt=f"{pt_up}.dense"), linear(f"{name}.down", pt=f"{pt_down}.dense"),
            norm(f"{name}.norm", pt=f"{pt_down}.LayerNorm")]


LANGUAGE_LAYERS = bert_layers("encoder.language.{i}", "l_layers", "encoder.layer.{i}")
VISION_LAYERS = bert_layers("encoder.vision.{i}", "r_layers", "encoder.r_layers.{i}")

VISUAL_FEATURES = Block.of("encoder.visual_features", [
    linear("feat", pt="visn_fc"),
    norm("feat_norm", pt="visn_layer_norm"),
    linear("box", pt="box_fc"),
    norm("box_norm", pt="box_layer_norm"),
], pt="encoder.visn_fc")

# One cross-attention module serves both directions (language->vision and back).
CROSS_LAYERS = Block.of("encoder.cross.{i}", [
    *attention("cross_attn", "visual_attention.att", "visual_attention.output"),
    *attention("language.attn", "lang_self_att.self", "lang_self_att.output"),
    *attention("vision.attn", "visn_self_att.self", "visn_self_att.output"),
    *ffn("language.ffn", "lang_inter", "lang_output"),
    *ffn("vision.ffn", "visn_inter", "visn_output"),
], repeat="x_layers", pt="encoder.x_layers.{i}")

# BERT's MLM head, except that its decoder has no bias of its own and PyTorch builds it from
# the word embeddings whatever tie_word_embeddings says (TF stores no decoder at all).
MLM_HEAD = Block.of("heads.mlm", [
    linear("transform.dense", pt="transform.dense"),
    norm("transform.norm", pt="transform.LayerNorm"),
    param("bias", ("rows",), pt="bias", tf2="bias"),
    param("decoder.weight", ("rows", "hidden"), tied_to="embeddings.word.weight", tie_key=None,
          pt="decoder.weight"),
], role="mlm", base=False, pt="cls.predictions", lists_also={"tf2": ("embeddings",)})

MATCH_HEAD = Block.of("heads.nsp", [logits_layer()], role="nsp", base=False, pt="cls.seq_relationship")

# Built when task_obj_predict; each decoder when its visual_*_loss flag is on.
OBJ_TRANSFORM = Block.of("heads.obj", [
    linear("transform.dense", pt="transform.dense"),
    norm("transform.norm", pt="transform.LayerNorm"),
], role="obj_predict", base=False, pt="obj_predict_head")


def obj_decoder(kind: str) -> Block:
    # TF names the dict entries `decoder_dict.obj` inside one Keras scope (no `_._`).
    return Block.of(f"heads.obj.{kind}", [linear("decoder", pt="", tf2="")], role=f"visual_{kind}",
                    base=False, pt=f"obj_predict_head.decoder_dict.{kind}",
                    tf2=f"obj_predict_head/decoder_dict.{kind}")


# Built when task_qa: Linear, GeLU, LayerNorm, Linear (a Sequential, hence the indices).
QA_HEAD = Block.of("heads.qa", [
    linear("dense", pt="logit_fc.0"),
    norm("norm", pt="logit_fc.2"),
    linear("out", pt="logit_fc.3"),
], role="qa", base=False, pt="answer_head")


def infer_lxmert_config(specs, counts) -> tuple[dict, list[str]]:
    """HF LxmertConfig fields from tensor shapes, for a weights file that came without one."""
    word = specs["embeddings.word.weight"].shape
    hidden = word[1]
    config = {
        "model_type": "lxmert",
        "vocab_size": word[0],
        "hidden_size": hidden,
        "l_layers": counts.get("l_layers", 0),
        "x_layers": counts.get("x_layers", 0),
        "r_layers": counts.get("r_layers", 0),
        "intermediate_size": specs["encoder.language.0.ffn.up.weight"].shape[0]
        if "encoder.language.0.ffn.up.weight" in specs else 4 * hidden,
        "max_position_embeddings": specs["embeddings.position.weight"].shape[0],
        "type_vocab_size": specs["embeddings.token_type.weight"].shape[0],
        "visual_feat_dim": specs["encoder.visual_features.feat.weight"].shape[1],
        "visual_pos_dim": specs["encoder.visual_features.box.weight"].shape[1],
        # Heads leave no trace in the shapes: LXMERT's release uses 64 per head.
        "num_attention_heads": max(1, hidden // 64),
        "task_obj_predict": "heads.obj.transform.dense.weight" in specs,
        "task_qa": "heads.qa.out.weight" in specs,
        "visual_obj_loss": "heads.obj.obj.decoder.weight" in specs,
        "visual_attr_loss": "heads.obj.attr.decoder.weight" in specs,
        "visual_feat_loss": "heads.obj.feat.decoder.weight" in specs,
    }
    for key, name in (("num_qa_labels", "heads.qa.out.weight"), ("num_object_labels", "heads.obj.obj.decoder.weight"),
                      ("num_attr_labels", "heads.obj.attr.decoder.weight")):
        if name in specs:
            config[key] = specs[name].shape[0]
    notes = [f"no config given: inferred from tensor shapes; num_attention_heads={config['num_attention_heads']} "
             "is a guess (64 per head), pass --config to set it"]
    return config, notes


LXMERT = Family(
    name="lxmert", model_types=("lxmert",), declared_views=("pt", "tf2"),
    blocks=(EMBEDDINGS, VISUAL_FEATURES, LANGUAGE_LAYERS, CROSS_LAYERS, VISION_LAYERS, POOLER,
            MLM_HEAD, MATCH_HEAD, OBJ_TRANSFORM, *map(obj_decoder, ("obj", "attr", "feat")), QA_HEAD),
    base_prefix={"pt": "lxmert.", "tf2": "lxmert/"},
    arch_prefixes={"pt": {"LxmertModel": ""}},
    # The object and QA heads follow config flags (task_obj_predict, task_qa, visual_*_loss),
    # so only the heads every LxmertForPreTraining has tell the classes apart.
    architectures={
        "LxmertModel": frozenset({"pooler"}),
        "LxmertForPreTraining": frozenset({"pooler", "mlm", "nsp"}),
    },
    infer_config=infer_lxmert_config,
    head_widths={"num_attention_heads": "hidden_size"},
    required=("num_attention_heads",), defaults={"hidden_act": "gelu"},
    ignore={"pt": (r"(^|\.)embeddings\.position_ids$",)},
    description="LXMERT (HF LxmertModel, LxmertForPreTraining)",
)
FAMILIES = [LXMERT]
