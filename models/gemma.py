"""Gemma and Gemma 2 (google; HF GemmaModel/Gemma2Model, ForCausalLM and the classifiers).

Llama's layout (llama.decoder_layer) with two differences that leave the bytes alone: the
model scales the embeddings by sqrt(hidden_size) in its forward (the stored table is not
scaled), and its RMS norms store w and compute with (1 + w). So the tensors are carried as
they are. Gemma 2 adds a norm after attention and one after the feed-forward
(`post_attention_layernorm` is there the post-attention norm, `pre_feedforward_layernorm`
the one before the MLP). Both tie lm_head to the embeddings by default and have no
ForQuestionAnswering.

Gemma's head_dim is never hidden_size // heads by default (GemmaConfig says 256), so the
written config always names it; Gemma 2's query_pre_attn_scalar (head_dim in the 2B and 9B,
hidden_size / heads in the 27B) and sliding_window are given, never guessed.
"""
from __future__ import annotations

from .llama import LM_HEAD_UNLESS_TIED, class_limits, decoder_family, decoder_layer

GEMMA = decoder_family(
    "gemma", "Gemma", (decoder_layer(),), qa_prefix=None, tie_default=True,
    views=("pt", "flax"), lm_head=LM_HEAD_UNLESS_TIED,
    view_limits={"flax": class_limits("Flax", ("GemmaModel", "GemmaForCausalLM"), fixed_head_dim=False, fixed_rope=True)},
    defaults={"max_position_embeddings": 8192, "hidden_act": "gelu_pytorch_tanh"},
    description="Gemma (google; HF GemmaModel/GemmaForCausalLM/GemmaFor{Sequence,Token}Classification)")
GEMMA2 = decoder_family(
    "gemma2", "Gemma2", (decoder_layer(norms=(("attn.norm", "input_layernorm"),
                                              ("attn.post_norm", "post_attention_layernorm"),
                                              ("ffn.norm", "pre_feedforward_layernorm"),
                                              ("ffn.post_norm", "post_feedforward_layernorm"))),),
    qa_prefix=None, tie_default=True, required=("query_pre_attn_scalar", "sliding_window"),
    defaults={"max_position_embeddings": 8192, "hidden_act": "gelu_pytorch_tanh",
              "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
    description="Gemma 2 (google; HF Gemma2Model/Gemma2ForCausalLM/Gemma2For{Sequence,Token}Classification)")
FAMILIES = [GEMMA, GEMMA2]
