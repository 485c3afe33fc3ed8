"""Mixtral (mistralai; HF MixtralModel, MixtralForCausalLM and its classifier/QA heads).

Mistral's layer with its MLP replaced by a sparse mixture of experts: a router
(`block_sparse_moe.gate`, one row per expert) picks num_experts_per_tok of num_local_experts
gated MLPs (`experts.{j}`: w1 = gate, w2 = down, w3 = up) per token. The experts are a nested
repeat, layer by expert, counted by num_local_experts; the top-k is in no tensor, so it is
given, never guessed.
"""
from __future__ import annotations

from .engine import Block, linear
from .llama import decoder_family, decoder_layer, infer_decoder_config

EXPERTS = Block.of("decoder.layers.{i}.moe.experts.{j}", [
    linear("gate", bias=False, pt="w1"),
    linear("down", bias=False, pt="w2"),
    linear("up", bias=False, pt="w3"),
], repeat=(("i", "num_hidden_layers"), ("j", "num_local_experts")),
   pt="layers.{i}.block_sparse_moe.experts.{j}")

LAYER = decoder_layer(mlp=linear("moe.router", bias=False, pt="block_sparse_moe.gate"))

MIXTRAL = decoder_family(
    "mixtral", "Mixtral", (LAYER, EXPERTS),
    infer=infer_decoder_config("mixtral", intermediate="decoder.layers.0.moe.experts.0.gate.weight",
                               counted=("num_local_experts",)),
    # How many experts each token uses; Mixtral 8x7B's window is none (null), Mistral's 4096.
    required=("num_experts_per_tok", "sliding_window"), defaults={"max_position_embeddings": 131072},
    description="Mixtral (mistralai; HF MixtralModel/MixtralForCausalLM/MixtralFor{Sequence,Token}Classification/"
                "MixtralForQuestionAnswering)")
FAMILIES = [MIXTRAL]
