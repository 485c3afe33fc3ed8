"""GPT-2 (HF GPT2Model, GPT2LMHeadModel) and OpenAI GPT (HF OpenAIGPTModel, OpenAIGPTLMHeadModel).

Both are decoder-only transformers built from HF's Conv1D, a dense layer whose PyTorch weight
is already stored (in, out) like a TF kernel: its canonical axes are (in, out), so neither
view transposes it (engine.conv1d). TF keeps Conv1D's bias as a (1, out) matrix, declared as
a 'unit' axis that ir.layout squeezes and restores.

The two layers have the same modules under the same names (attn.c_attn, attn.c_proj, ln_1,
mlp.c_fc, mlp.c_proj, ln_2): GPT-2 normalises before each sub-block (pre-LN, plus a final
ln_f), GPT after it (post-LN, no final norm). One layer declaration serves both; only the
order its tensors are listed in follows each model. The LM head is the word embeddings (HF
ties lm_head to them, TF has no head variable at all).

The fused q/k/v projection `c_attn` is the canonical attn.q, attn.k and attn.v (n_embd columns
each) stacked: HF PyTorch, TF and Flax store it fused, keras-hub's GPT2Backbone per head.
"""
from __future__ import annotations

from . import kerashub as kh
from .bert import BERT_HUB_LAYER
from .engine import Block, Family, Fused, Spelling, conv1d, embedding, fused, norm, param

_QKV = ("attn.q", "attn.k", "attn.v")


def qkv_sizes(config: dict, columns: int) -> tuple[int, int, int]:
    """c_attn's q, k and v columns: n_embd each (a c_attn of another width does not split so,
    and is refused by the split)."""
    width = config["n_embd"]
    return width, width, width


def _c_attn() -> dict[str, tuple[Fused, ...]]:
    """view -> c_attn's weight and bias, each the q, k and v params stacked along 'out' (the
    stored names and axes are those of one Conv1D named attn.c_attn in that view)."""
    fused_conv = conv1d("attn.c_attn", pt="attn.c_attn")
    return {view: tuple(fused(p.spellings[view].template, [f"{part}.{p.name.rsplit('.', 1)[1]}" for part in _QKV],
                              "out", qkv_sizes, p.spellings[view].axes) for p in fused_conv)
            for view in fused_conv[0].spellings}


# Canonical name -> params, in GPT-2's order (pre-LN: ln_1, attn, ln_2, mlp). The q, k and v
# projections are canonical params of their own (as every family names them), which HF's
# fused Conv1D c_attn stores side by side: a declared split (engine.Fused) in the views that
# fuse them, so a view that keeps them apart (keras-hub's per-head kernels) names each.
_LAYER_PARTS = {
    "attn.norm": norm("attn.norm", pt="ln_1"),
    # (weights, then biases: the order the fused weight and bias are stored in)
    "attn": [*sorted((p for part in _QKV for p in conv1d(part)), key=lambda p: p.name.endswith(".bias")),
             *conv1d("attn.out", pt="attn.c_proj")],
    "ffn.norm": norm("ffn.norm", pt="ln_2"),
    "ffn": [*conv1d("ffn.up", pt="mlp.c_fc"), *conv1d("ffn.down", pt="mlp.c_proj")],
}


def decoder_layer(order: tuple[str, ...]) -> Block:
    """One Conv1D transformer layer, its parts listed in `order` (how the model lists them)."""
    return Block.of("decoder.layers.{i}", [_LAYER_PARTS[part] for part in order],
                    repeat="n_layer", pt="h.{i}", fused=_c_attn())


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
        head_widths={"n_head": "n_embd"},
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


# keras-hub's GPT2Backbone (FORMATS.md §12.3): BERT's per-head attention kernels and dense
# layers in a pre-LN TransformerDecoder, the LM head always the token embeddings (reversed);
# its epsilons (1e-5) and tanh GELU (HF's gelu_new) fixed by the class, one dropout for all.
# n_inner maps to intermediate_dim (keras-hub's own converter assumes 4 * n_embd).
def _gpt2_hub_args(hf: dict) -> dict:
    for flag, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                       ("reorder_and_upcast_attn", False), ("add_cross_attention", False),
                       ("tie_word_embeddings", True)):
        if hf.get(flag, want) != want:
            raise ValueError(f"{flag}={hf[flag]!r}; keras-hub's GPT2Backbone computes with {flag}={want!r}")
    drops = {key: hf.get(key, 0.1) for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop")}
    if len(set(drops.values())) > 1:
        raise ValueError(", ".join(f"{k}={v}" for k, v in drops.items())
                         + "; keras-hub's GPT2Backbone has one dropout for all three")
    inner = hf.get("n_inner")
    return {"intermediate_dim": inner if inner is not None else 4 * kh.require(hf, "n_embd"),
            "dropout": drops["resid_pdrop"]}


def _gpt2_hf_args(args: dict, names: set) -> dict:
    inner = args.get("intermediate_dim")
    if inner is None:
        raise ValueError("config.json's GPT2Backbone config has no intermediate_dim")
    dropout = args.get("dropout", 0.1)
    # HF's null n_inner is 4 * n_embd; an explicit n_inner of that width comes back null (the same model).
    return {"n_inner": None if inner == 4 * args["hidden_dim"] else inner, "tie_word_embeddings": True,
            "resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": dropout}


GPT2 = kh.with_kerashub(GPT2, kh.HubConfig(
    "GPT2Backbone", "keras_hub.src.models.gpt2.gpt2_backbone", "gpt2",
    pairs=(("vocab_size", "vocabulary_size"), ("n_layer", "num_layers"), ("n_head", "num_heads"),
           ("n_embd", "hidden_dim"), ("n_positions", "max_sequence_length")),
    fixed={"layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"},
    to_hub=_gpt2_hub_args, to_hf=_gpt2_hf_args, architecture="GPT2LMHeadModel", tasks=("CausalLM",)), {
    "embeddings": ("", {"word.weight": kh.plain("reversible_embedding_0/vars/0"),
                        "position.weight": kh.plain("position_embedding_0/vars/0")}),
    "decoder.layers.{i}": ("transformer_decoder_{i}", BERT_HUB_LAYER),
    "decoder": ("", kh.layer_norm("layer_normalization_0", "norm")),
    "heads.lm": ("", {}),            # the token embeddings, run in reverse; never stored again
}, roles=frozenset({"lm"}))
FAMILIES = [GPT2, OPENAI_GPT]


# keras-hub's GPT2Tokenizer (byte-pair: vocab.json + merges.txt) starts and ends with
# <|endoftext|>, as HF's GPT2Tokenizer defaults bos and eos (models/kerashub.py HubTokenizer).
from . import kerashub as _kh  # noqa: E402
_kh.with_tokenizer("gpt2", _kh.HubTokenizer("GPT2Tokenizer", "keras_hub.src.models.gpt2.gpt2_tokenizer", "bpe",
                                            "GPT2Tokenizer", (("bos_token", "<|endoftext|>", "<|endoftext|>"),
                                                              ("eos_token", "<|endoftext|>", "<|endoftext|>"))))
