"""Mixtral (mistralai; HF MixtralModel, MixtralForCausalLM and its classifier/QA heads).

Mistral's layer with its MLP replaced by a sparse mixture of experts: a router
(`block_sparse_moe.gate`, one row per expert) picks num_experts_per_tok of num_local_experts
gated MLPs (`experts.{j}`: w1 = gate, w2 = down, w3 = up) per token. The experts are a nested
repeat, layer by expert, counted by num_local_experts; the top-k is in no tensor, so it is
given, never guessed.
"""
from __future__ import annotations

from . import kerashub as kh
from .engine import Block, linear
from .llama import (CORE_PAIRS, HUB_LM_HEAD, SP_TOKENS, _back, _hub_blocks, _hub_checks, decoder_family, decoder_layer,
                    infer_decoder_config)

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


# --------------------------------------------------------------------------- keras-hub view
# keras-hub's MixtralBackbone: Mistral's tree (its attention's sublayers without the leading
# underscore), the router a Dense (in, experts), and each layer's experts one bank of three
# stacked variables, (experts, in, out): w1 (gate), w3 (up), w2 (down), each expert's slice the
# transposed HF matrix (kerashub.stacked). Its softmax top-k routing renormalizes the chosen
# weights as HF's Mixtral does; its head_dim is hidden / heads (no setting); its LM head is
# always its own (no tie setting).

def _mixtral_hub(hf: dict) -> dict:
    return _hub_checks(head_dim=False)(hf)


def _mixtral_back(args: dict, names: set) -> dict:
    if args.get("rope_scaling_factor", 1.0) != 1.0:
        raise ValueError(f"rope_scaling_factor={args['rope_scaling_factor']}: HF's Mixtral has no linear "
                         "position scaling of that kind irconv maps")
    # The class computes hidden / heads, which HF's Mixtral does for head_dim null (its default,
    # and the releases' config).
    return {**_back()(args, names), "head_dim": None, "rope_scaling": None}


_ATT = "_self_attention_layer"
MIXTRAL_HUB_LAYER = {
    "attn.q.weight": kh.head_kernel(f"{_ATT}/query_dense/vars/0", "q"),
    "attn.k.weight": kh.head_kernel(f"{_ATT}/key_dense/vars/0", "kv"),
    "attn.v.weight": kh.head_kernel(f"{_ATT}/value_dense/vars/0", "kv"),
    "attn.out.weight": kh.out_kernel(f"{_ATT}/output_dense/vars/0"),
    "moe.router.weight": kh.kernel("_sparse_moe_block/_sparse_feedforward_gate_dense/vars/0"),
    "attn.norm.weight": kh.plain("_self_attention_layernorm/vars/0"),
    "ffn.norm.weight": kh.plain("_feedforward_layernorm/vars/0"),
}
_BANK = "mixtral_transformer_decoder_{i}/_sparse_moe_block/expert_bank"
MIXTRAL = kh.with_kerashub(MIXTRAL, kh.HubConfig(
    "MixtralBackbone", "keras_hub.src.models.mixtral.mixtral_backbone", "mixtral",
    pairs=(*CORE_PAIRS, ("num_local_experts", "num_experts"), ("num_experts_per_tok", "top_k"),
           ("sliding_window", "sliding_window"), ("router_jitter_noise", "router_jitter_noise"),
           ("router_aux_loss_coef", "router_aux_loss_coef")),
    fixed={"hidden_act": "silu"}, to_hub=_mixtral_hub, to_hf=_mixtral_back, architecture="MixtralForCausalLM",
    tasks=("CausalLM",), lm_head=HUB_LM_HEAD, always_untied=True), {
    **_hub_blocks("mixtral_transformer_decoder", "mixtral_layer_normalization", MIXTRAL_HUB_LAYER, head_copy=True),
    "decoder.layers.{i}.moe.experts.{j}": (_BANK, {"gate.weight": kh.stacked("vars/0", ("in", "out")),
                                                   "up.weight": kh.stacked("vars/1", ("in", "out")),
                                                   "down.weight": kh.stacked("vars/2", ("in", "out"))}),
}, roles=frozenset({"lm"}))
# Mixtral's tokenizer is Mistral's SentencePiece model (HF's LlamaTokenizer, tokenizer.model).
kh.with_tokenizer("mixtral", kh.HubTokenizer("MixtralTokenizer", "keras_hub.src.models.mixtral.mixtral_tokenizer",
                                             "sentencepiece", "LlamaTokenizer", SP_TOKENS))
FAMILIES = [MIXTRAL]
