"""ELECTRA (google-research/electra; HF ElectraModel and the discriminator ElectraForPreTraining).

BERT's embeddings and encoder layer, but the embeddings are `embedding_size` wide and, when
that differs from `hidden_size`, a linear `embeddings_project` lifts them to the encoder's
width. There is no pooler. The generator (ElectraForMaskedLM) is not declared here.
"""
from __future__ import annotations

from . import kerashub as kh
from .bert import BERT, BERT_DEFAULTS, BERT_HUB, BERT_HUB_LAYER, BERT_REQUIRED, BERT_TOKENS, EMBEDDINGS, encoder_layer
from .engine import Block, Family, linear

# Optional, present exactly when the checkpoint has it: HF creates it only when
# embedding_size != hidden_size (electra-small: 128 -> 256; electra-base/large have none).
# Its role names no class, so it does not change which architecture the tensors point to.
EMBEDDINGS_PROJECT = Block.of("embeddings_project", [linear("dense", pt="")], role="embeddings_project",
                              pt="embeddings_project")

# The replaced-token-detection head: one logit per token.
DISCRIMINATOR_HEAD = Block.of("heads.discriminator", [
    linear("dense", pt="dense"),
    linear("out", pt="dense_prediction"),
], role="discriminator", base=False, pt="discriminator_predictions")


def infer_electra_config(specs, counts) -> tuple[dict, list[str]]:
    """HF ElectraConfig fields from tensor shapes, for a weights file that came without one."""
    word = specs["embeddings.word.weight"].shape
    embedding_size = word[1]
    # The encoder's width: the projection's output, else (no projection) the embeddings'.
    project = specs.get("embeddings_project.dense.weight")
    hidden = project.shape[0] if project is not None else embedding_size
    up = specs.get("encoder.layers.0.ffn.up.weight")
    config = {
        "model_type": "electra",
        "vocab_size": word[0],
        "embedding_size": embedding_size,
        "hidden_size": hidden,
        "num_hidden_layers": counts.get("num_hidden_layers", 0),
        "intermediate_size": up.shape[0] if up is not None else 4 * hidden,
        "max_position_embeddings": specs["embeddings.position.weight"].shape[0],
        "type_vocab_size": specs["embeddings.token_type.weight"].shape[0],
        # Heads leave no trace in the shapes: every ELECTRA release uses 64 per head.
        "num_attention_heads": max(1, hidden // 64),
    }
    notes = [f"no config given: inferred from tensor shapes; num_attention_heads={config['num_attention_heads']} "
             "is a guess (64 per head), pass --config to set it"]
    return config, notes


ELECTRA = Family(
    name="electra", model_types=("electra",), declared_views=("pt", "tf2", "flax"),
    blocks=(EMBEDDINGS, EMBEDDINGS_PROJECT, encoder_layer(pt="encoder.layer.{i}"), DISCRIMINATOR_HEAD),
    base_prefix={"pt": "electra.", "tf2": "electra/"},
    arch_prefixes={"pt": {"ElectraModel": ""}},
    architectures={
        "ElectraModel": frozenset(),
        "ElectraForPreTraining": frozenset({"discriminator"}),
    },
    infer_config=infer_electra_config,
    head_widths={"num_attention_heads": "hidden_size"},
    required=BERT_REQUIRED, defaults=BERT_DEFAULTS,
    # The same non-learned embeddings buffers as BERT's (position_ids, token_type_ids).
    ignore=BERT.ignore,
    description="ELECTRA discriminator (google-research/electra, HF ElectraModel/ElectraForPreTraining)",
)


# keras-hub's ElectraBackbone (keras-hub has no HF loader for it): BERT's embeddings (width
# embedding_dim) and TransformerEncoder layers, the projection a Dense `embeddings_projection`
# exactly when hidden_dim != embedding_dim, as HF's. The class fixes BERT's tanh GELU and
# epsilons 1e-12. It also has a tanh `pooled_dense` on the first token, which HF's ElectraModel
# lacks: its pooled_output is no HF output, and keras-hub's tasks do not read it (there are
# none for ELECTRA). It is the view's one unmapped pair of variables, the Dense after the
# projection: zeros when written (pooled_output = tanh(0) = 0), skipped and listed when read.
# The discriminator head has no place in the Backbone (no keras-hub task holds it): refused.
def _pooled_dense(args: dict) -> dict[str, tuple[int, ...]]:
    hidden = args["hidden_dim"]
    key = f"dense_{int(args['embedding_dim'] != hidden)}"
    return {f"{key}/vars/0": (hidden, hidden), f"{key}/vars/1": (hidden,)}


ELECTRA = kh.with_kerashub(ELECTRA, kh.HubConfig(
    "ElectraBackbone", "keras_hub.src.models.electra.electra_backbone", "electra",
    pairs=(("vocab_size", "vocab_size"), ("num_hidden_layers", "num_layers"),
           ("num_attention_heads", "num_heads"), ("hidden_size", "hidden_dim"), ("embedding_size", "embedding_dim"),
           ("intermediate_size", "intermediate_dim"), ("max_position_embeddings", "max_sequence_length"),
           ("type_vocab_size", "num_segments")),
    fixed=BERT_HUB.fixed, to_hub=BERT_HUB.to_hub, to_hf=BERT_HUB.to_hf, architecture="ElectraModel",
    unmapped=_pooled_dense), {
    "embeddings": ("", {"word.weight": kh.plain("reversible_embedding_0/vars/0"),
                        "position.weight": kh.plain("position_embedding_0/vars/0"),
                        "token_type.weight": kh.plain("embedding_0/vars/0"),
                        **kh.layer_norm("layer_normalization_0", "norm")}),
    "embeddings_project": ("", kh.dense("dense_0", "dense")),
    "encoder.layers.{i}": ("transformer_encoder_{i}", BERT_HUB_LAYER),
}, roles=frozenset({"embeddings_project"}))
# keras-hub's ElectraTokenizer is BERT's WordPiece with BERT's special tokens (HF's ElectraTokenizer).
kh.with_tokenizer("electra", kh.HubTokenizer("ElectraTokenizer", "keras_hub.src.models.electra.electra_tokenizer",
                                             "wordpiece", "ElectraTokenizer", BERT_TOKENS))
FAMILIES = [ELECTRA]
