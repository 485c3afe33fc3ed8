"""DPR (facebookresearch/DPR; HF DPRContextEncoder, DPRQuestionEncoder, DPRReader).

Each class wraps one DPREncoder: a BertModel named `bert_model` (BERT's embeddings and
encoder layer, no pooler in HF's class) plus, when projection_dim > 0, a linear
`encode_proj`. Where that encoder sits is what tells the classes apart, so the family's base
prefix is the DPREncoder's and depends on the class (Family.arch_prefixes); the BERT blocks
sit under `bert_model.` inside it, `encode_proj` beside it. The reader's two span heads are
outside the encoder.
"""
from __future__ import annotations

from .bert import BERT, BERT_DEFAULTS, BERT_REQUIRED, EMBEDDINGS, POOLER, encoder_layer, infer_bert_config
from .engine import Block, Family, linear


def in_bert_model(block: Block) -> Block:
    """A BertModel block as DPREncoder holds it: the same params, under `bert_model.`."""
    return Block.of(block.name, [block.params], repeat=block.repeats, role=block.role, base=block.base,
                    pt=f"bert_model.{block.prefixes['pt']}")


# HF's DPR BertModel has no pooler, but facebook's released checkpoints (dpr-*-single-nq-base)
# still carry `bert_model.pooler.*`, which transformers drops on load (huggingface/transformers
# #19111). Optional, so those files convert without loss; its role names no class.
ENCODER = (in_bert_model(EMBEDDINGS), in_bert_model(encoder_layer(pt="encoder.layer.{i}")),
           in_bert_model(POOLER))

# Present exactly when config.projection_dim > 0; its role names no class either.
ENCODE_PROJ = Block.of("encode_proj", [linear("dense", pt="")], role="projection", pt="encode_proj")

# DPRReader's span predictor: start/end logits per token and one relevance logit per passage.
# Both exist in every reader, so they share one role.
QA_OUTPUTS = Block.of("heads.qa", [linear("dense", pt="")], role="reader", base=False,
                      pt="span_predictor.qa_outputs")
QA_CLASSIFIER = Block.of("heads.qa_classifier", [linear("dense", pt="")], role="reader", base=False,
                         pt="span_predictor.qa_classifier")

ENCODER_PREFIXES = {
    "DPRContextEncoder": "ctx_encoder",
    "DPRQuestionEncoder": "question_encoder",
    "DPRReader": "span_predictor.encoder",
}


def infer_dpr_config(specs, counts) -> tuple[dict, list[str]]:
    """HF DPRConfig fields from tensor shapes: BERT's, plus the projection's width."""
    config, notes = infer_bert_config(specs, counts)
    proj = specs.get("encode_proj.dense.weight")
    config.update(model_type="dpr", projection_dim=proj.shape[0] if proj is not None else 0)
    return config, notes


DPR = Family(
    name="dpr", model_types=("dpr",), declared_views=("pt", "tf2"),
    blocks=(*ENCODER, ENCODE_PROJ, QA_OUTPUTS, QA_CLASSIFIER),
    base_prefix={"pt": "ctx_encoder.", "tf2": "ctx_encoder/"},
    arch_prefixes={
        "pt": {arch: f"{p}." for arch, p in ENCODER_PREFIXES.items()},
        "tf2": {arch: p.replace(".", "/") + "/" for arch, p in ENCODER_PREFIXES.items()},
    },
    # The two encoders have the same parts; the importer tells them apart by their prefix.
    architectures={
        "DPRContextEncoder": frozenset(),
        "DPRQuestionEncoder": frozenset(),
        "DPRReader": frozenset({"reader"}),
    },
    infer_config=infer_dpr_config,
    head_widths={"num_attention_heads": "hidden_size"},
    required=BERT_REQUIRED, defaults=BERT_DEFAULTS,
    # BertModel's non-learned embeddings buffers, under the encoder prefix.
    ignore=BERT.ignore,
    description="DPR (facebookresearch/DPR, HF DPRContextEncoder/DPRQuestionEncoder/DPRReader)",
)
FAMILIES = [DPR]
