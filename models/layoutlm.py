"""LayoutLM (microsoft/unilm layoutlm; HF LayoutLM*): BERT plus 2-D position embeddings.

Encoder, pooler and MLM head are BERT's, imported from bert.py. The embeddings add four
tables indexed by the token's bounding box (x for x0/x1, y for y0/y1, height, width).
"""
from __future__ import annotations

from .bert import BERT, BERT_REQUIRED, EMBEDDINGS, MLM_HEAD, POOLER, encoder_layer, infer_bert_config
from .engine import Block, Family, embedding

# BERT's embedding params with the 2-D tables between position and token_type, the order HF
# registers them. One block, named "embeddings" like BERT's, because TF2's MLM head layer
# lists the whole embeddings layer again (x/y/h/w included) and lists_also names that block.
LAYOUT_EMBEDDINGS = Block.of("embeddings", [
    EMBEDDINGS.params[:2],
    *(embedding(f"{axis}_position", pt=f"{axis}_position_embeddings") for axis in "xyhw"),
    EMBEDDINGS.params[2:],
], pt="embeddings")


def infer_layoutlm_config(specs, counts) -> tuple[dict, list[str]]:
    config, notes = infer_bert_config(specs, counts)
    config["model_type"] = "layoutlm"
    config["max_2d_position_embeddings"] = specs["embeddings.x_position.weight"].shape[0]
    return config, notes


LAYOUTLM = Family(
    name="layoutlm", model_types=("layoutlm",), declared_views=("pt", "tf2"),
    blocks=(LAYOUT_EMBEDDINGS, encoder_layer(pt="encoder.layer.{i}"), POOLER, MLM_HEAD),
    base_prefix={"pt": "layoutlm.", "tf2": "layoutlm/"},
    # LayoutLMModel saves its keys bare (like BertModel); TF2 always nests them in 'layoutlm/'.
    arch_prefixes={"pt": {"LayoutLMModel": ""}},
    # Unlike BertForMaskedLM, LayoutLMForMaskedLM keeps the pooler (in PyTorch and TF2).
    architectures={
        "LayoutLMModel": frozenset({"pooler"}),
        "LayoutLMForMaskedLM": frozenset({"pooler", "mlm"}),
    },
    infer_config=infer_layoutlm_config,
    head_widths={"num_attention_heads": "hidden_size"},
    required=BERT_REQUIRED, defaults={"hidden_act": "gelu", "layer_norm_eps": 1e-12},
    # The same non-learned buffers BERT checkpoints carry (position_ids).
    ignore=BERT.ignore,
    description="LayoutLM (microsoft/unilm; HF LayoutLM*)",
)

FAMILIES = [LAYOUTLM]
