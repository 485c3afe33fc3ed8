"""GPT-2 (HF GPT2Model, GPT2LMHeadModel) and OpenAI GPT (HF OpenAIGPTModel, OpenAIGPTLMHeadModel).

Both are decoder-only transformers built from HF's Conv1D, a dense layer whose PyTorch weight
is already stored (in, out) like a TF kernel: its canonical axes are (in, out), so neither
view transposes it (engine.conv1d). TF keeps Conv1D's bias as a (1, out) matrix, declared as
a 'unit' axis that ir.layout squeezes and restores. Attention keeps its fused q/k/v
projection `c_attn` fused: both frameworks store it that way.

The two layers have the same modules under the same names (attn.c_attn, attn.c_proj, ln_1,
mlp.c_fc, mlp.c_proj, ln_2): GPT-2 normalises before each sub-block (pre-LN, plus a final
ln_f), GPT after it (post-LN, no final norm). One layer declaration serves both; only the
order its tensors are listed in follows each model. The LM head is the word embeddings (HF
ties lm_head to them, TF has no head variable at all).
"""
from __future__ import annotations

from .engine import Block, Family, Spelling, conv1d, embedding, norm, param

# Canonical name -> params, in GPT-2's order (pre-LN: ln_1, attn, ln_2, mlp).
_LAYER_PARTS = {
    "attn.norm": norm("attn.norm", pt="ln_1"),
    "attn": [*conv1d("attn.qkv", pt="attn.c_attn"), *conv1d("attn.out", pt="attn.c_proj")],
    "ffn.norm": norm("ffn.norm", pt="ln_2"),
    "ffn": [*conv1d("ffn.up", pt="mlp.c_fc"), *conv1d("ffn.down", pt="mlp.c_proj")],
}


def decoder_layer(order: tuple[str, ...]) -> Block:
    """One Conv1D transformer layer, its parts listed in `order` (how the model lists them)."""
    return Block.of("decoder.layers.{i}", [_LAYER_PARTS[part] for part in order],
                    repeat="n_layer", pt="h.{i}")


PRE_LN_LAYER = decoder_layer(("attn.norm", "attn", "ffn.norm", "ffn"))      # GPT-2
POST_LN_LAYER = decoder_layer(("attn", "attn.norm", "ffn", "ffn.norm"))     # OpenAI GPT

FINAL_NORM = Block.of("decoder", [norm("norm", pt="ln_f")], pt="")

# lm_head is the word embeddings (unless tie_word_embeddings is false). TF's LM head class
# reuses the embedding matrix and stores nothing, so tf2 spells no name for it; the config's
# class then tells whether the model has the head (engine: heads made only of ties).
LM_HEAD = Block.of("heads.lm", [
    param("weight", ("rows", "hidden"), tied_to="embeddings.word.weight", pt="weight",
          flax=Spelling("kernel", ("hidden", "rows"), tied_copy=False)),
], role="lm", base=False, pt="lm_head")

GPT2_EMBEDDINGS = Block.of("embeddings", [
    embedding("word", pt="wte"),
    embedding("position", pt="wpe"),
], pt="")

# TF GPT's token table is a raw variable named 'weight' (its own shared-embedding layer);
# the position table is a plain one ('embeddings').
GPT_EMBEDDINGS = Block.of("embeddings", [
    embedding("word", pt="tokens_embed", tf_leaf="weight"),
    embedding("position", pt="positions_embed"),
], pt="")


def gpt_config(model_type: str, inner_key: str | None):
    """infer_config for a GPT-style model_type. `inner_key` is the config field of the MLP
    width (GPT-2's n_inner), None when the model fixes it at 4 * n_embd."""
    def infer(specs, counts) -> tuple[dict, list[str]]:
        vocab_size, n_embd = specs["embeddings.word.weight"].shape
        config = {
            "model_type": model_type,
            "vocab_size": vocab_size,
            "n_embd": n_embd,
            "n_layer": counts.get("n_layer", 0),
            "n_positions": specs["embeddings.position.weight"].shape[0],
            # Heads leave no trace in the shapes: every GPT and GPT-2 release uses 64 per head.
            "n_head": max(1, n_embd // 64),
        }
        up = specs.get("decoder.layers.0.ffn.up.weight")
        if inner_key and up is not None and up.shape[1] != 4 * n_embd:
            config[inner_key] = up.shape[1]
        # A head that came as its own tensor was not tied (tied ones become aliases).
        if "heads.lm.weight" in specs:
            config["tie_word_embeddings"] = False
        notes = [f"no config given: inferred from tensor shapes; n_head={config['n_head']} is a guess "
                 "(64 per head), pass --config to set it"]
        return config, notes
    return infer


def gpt_family(name: str, classes: str, embeddings: Block, layer: Block, final: tuple[Block, ...],
               inner_key: str | None, ignore: tuple[str, ...], description: str,
               defaults: dict | None = None, views: tuple[str, ...] = ("pt", "tf2")) -> Family:
    return Family(
        name=name, model_types=(name,), declared_views=views,
        blocks=(embeddings, layer, *final, LM_HEAD),
        base_prefix={"pt": "transformer.", "tf2": "transformer/"},
        # The bare PyTorch model saves its keys unprefixed; TF always nests its main layer.
        arch_prefixes={"pt": {f"{classes}Model": ""}},
        architectures={f"{classes}LMHeadModel": frozenset({"lm"}), f"{classes}Model": frozenset()},
        infer_config=gpt_config(name, inner_key),
        required=("n_head",), defaults=defaults or {},
        ignore={"pt": ignore},
        description=description,
    )


GPT2 = gpt_family(
    "gpt2", "GPT2", GPT2_EMBEDDINGS, PRE_LN_LAYER, (FINAL_NORM,), "n_inner",
    # The causal mask (attn.bias) and its fill value (masked_bias): buffers, not weights,
    # that checkpoints saved before transformers made them non-persistent still carry.
    (r"(^|\.)h\.\d+\.(attn|crossattention)\.(bias|masked_bias)$",),
    "GPT-2 (openai/gpt-2; HF GPT2Model/GPT2LMHeadModel)",
    defaults={"activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}, views=("pt", "tf2", "flax"))
OPENAI_GPT = gpt_family(
    "openai-gpt", "OpenAIGPT", GPT_EMBEDDINGS, POST_LN_LAYER, (), None,
    # The causal mask buffer, and position_ids, as older checkpoints saved them.
    (r"(^|\.)h\.\d+\.attn\.bias$", r"(^|\.)position_ids$"),
    "OpenAI GPT (openai/finetune-transformer-lm; HF OpenAIGPTModel/OpenAIGPTLMHeadModel)",
    defaults={"afn": "gelu", "layer_norm_epsilon": 1e-5})
FAMILIES = [GPT2, OPENAI_GPT]


# keras-hub's GPT2Tokenizer (byte-pair: vocab.json + merges.txt) starts and ends with
# <|endoftext|>, as HF's GPT2Tokenizer defaults bos and eos (models/kerashub.py HubTokenizer).
from . import kerashub as _kh  # noqa: E402
_kh.with_tokenizer("gpt2", _kh.HubTokenizer("GPT2Tokenizer", "keras_hub.src.models.gpt2.gpt2_tokenizer", "bpe",
                                            "GPT2Tokenizer", (("bos_token", "<|endoftext|>", "<|endoftext|>"),
                                                              ("eos_token", "<|endoftext|>", "<|endoftext|>"))))
