"""The original Meta Llama release as a view of the llama family ("meta"): what
convert_llama_weights_to_hf.py reads (consolidated.NN.pth + params.json + tokenizer.model),
read by importers/meta.py and written (one shard) by exporters/meta.py.

Its names are Meta's llama/model.py modules (`layers.{i}.attention.wq`, `feed_forward.w1` ...).
Two things differ beyond names, both declared here and undone by inverting them:

- Model parallelism: each consolidated.NN.pth holds one shard of every parallel layer. A
  column-parallel one (wq, wk, wv, w1, w3, output) is split by its output rows, a
  row-parallel one (wo, w2) by its input columns, the embedding (ParallelEmbedding) by its
  hidden width; the norms are whole in every shard (Spelling.shard; importers/meta.py merges).
- Rotary layout: Meta's q and k rows pair each head's rotated components interleaved, HF's
  split them in halves (ir.layout.RotaryHalves, with q's and k's own head counts).

params.json maps to the HF config as the script maps it: dim, n_layers, n_heads, n_kv_heads
(absent: n_heads, as Meta's ModelArgs), norm_eps, rope_theta (absent: Llama 1/2's fixed
10000), vocab_size (-1: the embedding's rows); intermediate_size is read off w1, and checked
against multiple_of and ffn_dim_multiplier where they are given.
"""
from __future__ import annotations

from dataclasses import replace

from ..ir.layout import RotaryHalves
from .engine import Family, Spelling, ViewConfig, with_view

VIEW = "meta"


def rotary(heads_key: str):
    """config -> Meta's interleaved rotary rows to HF's halves, for `heads_key` heads."""
    def make(config: dict) -> RotaryHalves:
        return RotaryHalves(config.get(heads_key) or config["num_attention_heads"])
    return make


# (canonical block, its role) -> (Meta's prefix, canonical param -> Meta's spelling)
SPELLINGS = {
    ("embeddings", None): ("", {"word.weight": Spelling("tok_embeddings.weight", shard="hidden")}),
    ("decoder.layers.{i}", None): ("layers.{i}", {
        "attn.q.weight": Spelling("attention.wq.weight", shard="out", transform=rotary("num_attention_heads")),
        "attn.k.weight": Spelling("attention.wk.weight", shard="out", transform=rotary("num_key_value_heads")),
        "attn.v.weight": Spelling("attention.wv.weight", shard="out"),
        "attn.out.weight": Spelling("attention.wo.weight", shard="in"),
        "ffn.gate.weight": Spelling("feed_forward.w1.weight", shard="out"),
        "ffn.down.weight": Spelling("feed_forward.w2.weight", shard="in"),
        "ffn.up.weight": Spelling("feed_forward.w3.weight", shard="out"),
        "attn.norm.weight": Spelling("attention_norm.weight"),
        "ffn.norm.weight": Spelling("ffn_norm.weight"),
    }),
    ("decoder", None): ("", {"norm.weight": Spelling("norm.weight")}),
    ("heads.lm", "lm"): ("", {"weight": Spelling("output.weight", shard="rows")}),
}


def ffn_width(dim: int, multiple_of: int, multiplier: float | None) -> int:
    """Meta's FeedForward hidden width for model width `dim` (llama/model.py)."""
    hidden = int(2 * (4 * dim) / 3)
    if multiplier is not None:
        hidden = int(multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def _count(params: dict, key: str) -> int:
    value = params.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"params.json {key}={value!r} is not a positive integer")
    return value


def params_to_config(params: dict) -> dict:
    """params.json (with the merged tensors' shapes under '__shapes__') -> HF LlamaConfig
    fields; ValueError where params.json and the tensors disagree."""
    shapes = params["__shapes__"]
    if params.get("use_scaled_rope"):
        raise ValueError("params.json use_scaled_rope (Llama 3.1's rotary scaling) is not supported yet")
    dim, layers, heads = _count(params, "dim"), _count(params, "n_layers"), _count(params, "n_heads")
    kv_heads = _count(params, "n_kv_heads") if params.get("n_kv_heads") is not None else heads
    if not isinstance(params.get("norm_eps"), (int, float)) or isinstance(params.get("norm_eps"), bool):
        raise ValueError(f"params.json norm_eps={params.get('norm_eps')!r} is not a number")
    vocab = params.get("vocab_size", -1)
    rows = shapes["tok_embeddings.weight"][0]
    if vocab == -1:
        vocab = rows                      # Meta's -1: the tokenizer's size, which the table has
    head_dim = dim // heads
    q, k, w1 = (shapes.get(f"layers.0.{name}.weight") for name in ("attention.wq", "attention.wk", "feed_forward.w1"))
    for what, shape, want in (("attention.wq", q, heads * head_dim), ("attention.wk", k, kv_heads * head_dim)):
        if dim % heads or shape is None or shape[0] != want:
            raise ValueError(f"params.json dim={dim}, n_heads={heads}, n_kv_heads={kv_heads} give layers.0.{what} "
                             f"{want} rows, the shards hold {shape[0] if shape else 'none'}")
    inner = w1[0] if w1 is not None else 0
    if params.get("multiple_of") is not None:
        want = ffn_width(dim, _count(params, "multiple_of"), params.get("ffn_dim_multiplier"))
        if want != inner:
            raise ValueError(f"params.json multiple_of={params['multiple_of']}, ffn_dim_multiplier="
                             f"{params.get('ffn_dim_multiplier')} give a feed-forward width of {want}, "
                             f"the shards' feed_forward.w1 has {inner} rows")
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": vocab,
              "hidden_size": dim, "intermediate_size": inner, "num_hidden_layers": layers,
              "num_attention_heads": heads, "num_key_value_heads": kv_heads, "rms_norm_eps": params["norm_eps"],
              "rope_theta": params.get("rope_theta", 10000.0), "hidden_act": "silu",
              "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False}
    if isinstance(params.get("max_seq_len"), int):
        config["max_position_embeddings"] = params["max_seq_len"]
    return config


def config_to_params(config: dict) -> dict:
    """HF LlamaConfig -> params.json. Meta's code builds the feed-forward width from
    multiple_of and ffn_dim_multiplier: chosen so that they give intermediate_size."""
    dim, inner = config["hidden_size"], config["intermediate_size"]
    base = int(2 * (4 * dim) / 3)
    multiplier = None if base <= inner else inner / base
    if ffn_width(dim, inner, multiplier) != inner:
        raise ValueError(f"no multiple_of and ffn_dim_multiplier give intermediate_size={inner} for dim={dim}")
    return {"dim": dim, "n_layers": config["num_hidden_layers"], "n_heads": config["num_attention_heads"],
            "n_kv_heads": config.get("num_key_value_heads") or config["num_attention_heads"],
            "vocab_size": config["vocab_size"], "multiple_of": inner, "ffn_dim_multiplier": multiplier,
            "norm_eps": config["rms_norm_eps"], "rope_theta": config.get("rope_theta", 10000.0)}


def meta_limits(config: dict) -> str | None:
    """Why Meta's code would compute another model from this config: its heads are always
    dim // n_heads wide and its rotary positions plain (params.json has no setting for either)."""
    heads, dim, head_dim = (config.get(k) for k in ("num_attention_heads", "hidden_size", "head_dim"))
    if isinstance(heads, int) and heads > 0 and isinstance(dim, int) and head_dim not in (None, dim // heads):
        return f"head_dim={head_dim}, but Meta's heads are dim / n_heads = {dim} / {heads} wide"
    if config.get("rope_scaling") is not None:
        return f"rope_scaling={config['rope_scaling']!r}, which params.json cannot state"
    return None


def with_meta_view(family: Family) -> Family:
    """`family` (llama's blocks) with the meta view declared too."""
    blocks = []
    for block in family.blocks:
        spelled = SPELLINGS.get((block.name, block.role))
        blocks.append(with_view(block, VIEW, *spelled) if spelled else block)
    return replace(family, blocks=tuple(blocks), declared_views=(*family.declared_views, VIEW),
                   view_limits={**family.view_limits, VIEW: meta_limits},
                   view_configs={**family.view_configs,
                                 VIEW: ViewConfig("params.json", params_to_config, config_to_params)},
                   # Llama 1's files carry the rotary frequencies, which HF computes.
                   ignore={**family.ignore, VIEW: (r"^rope\.freqs$",)})
