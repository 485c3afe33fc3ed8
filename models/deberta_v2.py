"""DeBERTa-v2 and v3 (microsoft/DeBERTa; HF DebertaV2Model and its heads).

BERT's post-LN encoder with disentangled attention: each layer's query_proj/key_proj/value_proj
(and, with share_att_key false, its own pos_key_proj/pos_query_proj, which HF's TF class calls
pos_proj/pos_q_proj) attend over the encoder's relative position embeddings
(encoder.rel_embeddings, layer-normed by encoder.LayerNorm when norm_rel_ebd has layer_norm).
Which tensors exist follows the config, so each optional one is its own block: position
embeddings (position_biased_input), token types (type_vocab_size > 0), the projection from a
narrower embedding (embedding_size), the relative tables, and the conv layer beside the first
layer (conv_kernel_size > 0). TF2 names follow the PyTorch ones, except rel_embeddings.weight,
one Keras weight with a dot in its name.

The MLM head comes in two spellings: `legacy` (transformers' default, BERT's cls.predictions
with a decoder tied to the word embeddings; the only one HF's TF class has) and the original
release's lm_predictions.lm_head, which always multiplies by the word embeddings and stores
no decoder at all (pt view only).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir.layout import CONV1D_PT, CONV1D_TF
from . import bert
from . import kerashub as kh
from .engine import INFERRED, Block, Family, embedding, linear, norm, param

EMBEDDINGS = Block.of("embeddings", [
    embedding("word", pt="word_embeddings", tf_leaf="weight"),
    norm("norm", pt="LayerNorm"),
], pt="embeddings")
POSITION = Block.of("embeddings", [embedding("position", pt="position_embeddings")], role="position",
                    pt="embeddings")
TOKEN_TYPE = Block.of("embeddings", [embedding("token_type", pt="token_type_embeddings")], role="token_type",
                      pt="embeddings")
# embedding_size < hidden_size. HF's TF class builds its position table hidden_size wide, so only
# a model without position embeddings (v3's layout) loads there with a projection.
EMBED_PROJ = Block.of("embeddings", [linear("project", bias=False, pt="embed_proj")], role="embed_proj",
                      pt="embeddings")

LAYER = Block.of("encoder.layers.{i}", [
    linear("attn.q", pt="attention.self.query_proj"),
    linear("attn.k", pt="attention.self.key_proj"),
    linear("attn.v", pt="attention.self.value_proj"),
    linear("attn.out", pt="attention.output.dense"),
    norm("attn.norm", pt="attention.output.LayerNorm"),
    linear("ffn.up", pt="intermediate.dense"),
    linear("ffn.down", pt="output.dense"),
    norm("ffn.norm", pt="output.LayerNorm"),
], repeat="num_hidden_layers", pt="encoder.layer.{i}")

# share_att_key false: the relative embeddings get projections of their own, c2p's for keys and
# p2c's for queries.
POS_KEY_PROJ = Block.of("encoder.layers.{i}", [linear("attn.pos_k", pt="pos_key_proj", tf2="pos_proj")],
                        repeat="num_hidden_layers", role="pos_key_proj", pt="encoder.layer.{i}.attention.self")
POS_QUERY_PROJ = Block.of("encoder.layers.{i}", [linear("attn.pos_q", pt="pos_query_proj", tf2="pos_q_proj")],
                          repeat="num_hidden_layers", role="pos_query_proj", pt="encoder.layer.{i}.attention.self")

RELATIVE = Block.of("encoder", [
    param("rel_embeddings.weight", ("rows", "hidden"), pt="rel_embeddings.weight", tf2="rel_embeddings.weight"),
], role="relative", pt="encoder")
REL_NORM = Block.of("encoder", [norm("rel_norm", pt="LayerNorm")], role="rel_norm", pt="encoder")

# A Conv1d over the sequence (PyTorch (out, in / groups, kernel), TF (kernel, in, out)), its own
# LayerNorm. HF's TF class builds no groups.
CONV = Block.of("encoder.conv", [
    param("conv.weight", CONV1D_PT, pt="conv.weight", tf2=("conv/kernel", CONV1D_TF)),
    param("conv.bias", ("out",), pt="conv.bias", tf2="conv/bias"),
    norm("norm", pt="LayerNorm"),
], role="conv", pt="encoder.conv")

# transformers' default (legacy=True): BERT's MLM head; TF names it cls/predictions.
MLM_HEAD = replace(bert.MLM_HEAD, prefixes={**bert.MLM_HEAD.prefixes, "tf2": "cls/predictions"})
# legacy=False: the original release's head, logits = transform(x) @ word_embeddings.T + bias.
LM_HEAD = Block.of("heads.lm", [
    linear("dense", pt="dense"),
    norm("norm", pt="LayerNorm"),
    param("bias", ("rows",), pt="bias"),
], role="lm", base=False, pt="lm_predictions.lm_head", tf2=None)

# ContextPooler: the first token through a dense layer, outside the base model.
POOLER = Block.of("pooler", [linear("dense", pt="dense")], role="pooler", base=False, pt="pooler")
CLASSIFIER_HEAD = Block.of("heads.classifier", [linear("dense", pt="")], role="classifier", base=False,
                           pt="classifier")
QA_HEAD = Block.of("heads.qa", [linear("dense", pt="")], role="qa", base=False, pt="qa_outputs")


def infer_deberta_v2_config(specs, counts) -> tuple[dict, list[str]]:
    """HF DebertaV2Config fields from tensor shapes, for a weights file that came without one."""
    word = specs["embeddings.word.weight"].shape
    hidden = specs["embeddings.norm.weight"].shape[0]
    has = specs.__contains__
    config = {
        "model_type": "deberta-v2",
        "vocab_size": word[0],
        "embedding_size": word[1],
        "hidden_size": hidden,
        "num_hidden_layers": counts.get("num_hidden_layers", 0),
        "intermediate_size": specs["encoder.layers.0.ffn.up.weight"].shape[0],
        "position_biased_input": has("embeddings.position.weight"),
        "type_vocab_size": specs["embeddings.token_type.weight"].shape[0] if has("embeddings.token_type.weight") else 0,
        "relative_attention": has("encoder.rel_embeddings.weight"),
        "norm_rel_ebd": "layer_norm" if has("encoder.rel_norm.weight") else "none",
        # Heads leave no trace in the shapes: DeBERTa's releases all use 64 per head.
        "num_attention_heads": max(1, hidden // 64),
        # The span the relative buckets are scaled to: max_position_embeddings (the position
        # table's length) when max_relative_positions < 1, as in every release; without a table,
        # the releases' 512 itself.
        "max_relative_positions": -1 if has("embeddings.position.weight") else 512,
        # With share_att_key false each layer has the projections of the kinds it uses.
        "share_att_key": not (has("encoder.layers.0.attn.pos_k.weight") or has("encoder.layers.0.attn.pos_q.weight")),
        "pos_att_type": ["p2c", "c2p"],
    }
    if not config["share_att_key"]:
        config["pos_att_type"] = [kind for kind, name in (("p2c", "pos_q"), ("c2p", "pos_k"))
                                  if has(f"encoder.layers.0.attn.{name}.weight")]
    if has("embeddings.position.weight"):
        config["max_position_embeddings"] = specs["embeddings.position.weight"].shape[0]
    # Releases bucket the relative positions (256 buckets, a table of 512 rows); without
    # buckets the table is 2 * max_relative_positions rows.
    config["position_buckets"] = specs["encoder.rel_embeddings.weight"].shape[0] // 2 \
        if config["relative_attention"] else -1
    if has("encoder.conv.conv.weight"):
        _, per_group, kernel = specs["encoder.conv.conv.weight"].shape
        config.update(conv_kernel_size=kernel, conv_groups=hidden // per_group)
    else:
        config["conv_kernel_size"] = 0
    if has("pooler.dense.weight"):
        config["pooler_hidden_size"] = specs["pooler.dense.weight"].shape[0]
    for head in ("classifier", "qa"):
        if has(f"heads.{head}.dense.weight"):
            config["num_labels"] = specs[f"heads.{head}.dense.weight"].shape[0]
    if has("heads.lm.bias"):
        # The original head says legacy=False. It multiplies by the word embeddings whatever
        # tie_word_embeddings says; transformers 4.57.6 mis-ties it when the flag is true (its
        # save drops the word embeddings, its load leaves them unset), so the flag that loads
        # is written.
        config.update(legacy=False, tie_word_embeddings=False)
    notes = [f"no config given: inferred from tensor shapes; num_attention_heads={config['num_attention_heads']} "
             "is a guess (64 per head), pass --config to set it"]
    return config, notes


DEBERTA_V2 = Family(
    name="deberta-v2", model_types=("deberta-v2",), declared_views=("pt", "tf2"),
    blocks=(EMBEDDINGS, POSITION, TOKEN_TYPE, EMBED_PROJ, LAYER, POS_KEY_PROJ, POS_QUERY_PROJ, RELATIVE, REL_NORM,
            CONV, MLM_HEAD, LM_HEAD, POOLER, CLASSIFIER_HEAD, QA_HEAD),
    base_prefix={"pt": "deberta.", "tf2": "deberta/"},
    # PyTorch's bare DebertaV2Model keys have no prefix; TF's keeps its main layer 'deberta'.
    arch_prefixes={"pt": {"DebertaV2Model": ""}},
    architectures={
        "DebertaV2Model": frozenset(),
        "DebertaV2ForMaskedLM": frozenset({"mlm"}),
        "DebertaV2ForSequenceClassification": frozenset({"pooler", "classifier"}),
        "DebertaV2ForTokenClassification": frozenset({"classifier"}),
        "DebertaV2ForQuestionAnswering": frozenset({"qa"}),
        # The same tensors as sequence classification with one label: only a config tells them
        # apart, so without one the class is a stated default (below).
        "DebertaV2ForMultipleChoice": frozenset({"pooler", "classifier"}),
    },
    role_aliases={"lm": "mlm"},
    infer_config=infer_deberta_v2_config,
    head_widths={"num_attention_heads": "hidden_size"},
    required=("num_attention_heads",),
    # What no tensor decides: the releases' values (or, INFERRED, the one infer_config read off
    # the shapes under an assumption: buckets = half the relative table, share_att_key without
    # position projections, a relative span of 512 where no position table holds one, the class).
    defaults={"architectures": INFERRED, "hidden_act": "gelu", "pooler_hidden_act": "gelu", "layer_norm_eps": 1e-7,
              "conv_act": "tanh", "pos_att_type": INFERRED, "share_att_key": INFERRED,
              "position_buckets": INFERRED, "max_relative_positions": INFERRED},
    # An old buffer; and the original MLM checkpoints' replaced-token-detection head, which
    # transformers' DebertaV2ForMaskedLM drops on load too.
    ignore={"pt": (r"(^|\.)embeddings\.position_ids$", r"^mask_predictions\.")},
    description="DeBERTa-v2/v3 (microsoft/DeBERTa, HF DebertaV2*)",
)


# --------------------------------------------------------------------------- kerashub
# keras-hub's DebertaV3Backbone (FORMATS.md §12) is DeBERTa-v3's layout and nothing else: shared
# attention keys (the relative embeddings go through each layer's own query/key projections),
# c2p and p2c, layer-normed relative embeddings, log buckets, no absolute positions, no token
# types, no embedding projection, no conv layer, exact GELU, epsilons 1e-7. Each must hold in
# the HF config as HF computes it (its getattr defaults included), else the export is refused.
# The Backbone has one span, max_sequence_length, for what HF calls max_relative_positions
# (max_position_embeddings where that is < 1): it scales the buckets and limits nothing else
# (the Backbone has no position table).

def _log_candidates(x: np.ndarray, ulps: int = 2) -> np.ndarray:
    """float32 log(x) as any implementation within `ulps` of the true value may give it: (..., 2 ulps + 1)."""
    near = np.log(x.astype(np.float64)).astype(np.float32)
    out, up, down = [near], near, near
    for _ in range(ulps):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(-np.inf))
        out += [up, down]
    return np.stack(out, axis=-1)


# Beyond this many distances the check below is not made (the export is refused instead): it
# bounds its time and memory (a few MB) whatever a config says.
_BUCKET_CHECK_LIMIT = 1 << 17


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def bucket_disagreement(buckets: int, span: int) -> str | None:
    """Why keras-hub's log buckets may differ from HF's for some relative distance, or None.

    Both compute bucket = ceil(log(a/mid) / log((span-1)/mid) * (mid-1)) + mid for a distance a
    above mid = buckets // 2, in float32: HF divides the logs first, keras-hub multiplies by
    mid - 1 first. Where the exact value is near an integer the two orders can round to either
    side of it (at a = span - 1 HF's is exactly mid - 1, keras-hub's may be one more): such a
    distance attends to another relative embedding in keras-hub. Every distance up to where
    both clamp to the table's last row is checked, with each log anywhere within 2 ulps of the
    true value (the same argument giving the same log), so a config passes only where no
    float32 log of that accuracy can make them differ."""
    if not (_count(buckets) and _count(span)):
        return f"position_buckets={buckets!r} with a span of {span!r}: both must be integers"
    mid = buckets // 2
    if mid < 2 or span - 1 <= mid:
        return (f"position_buckets={buckets} with a span of {span}: the log buckets need "
                "position_buckets >= 4 and a span above position_buckets / 2 + 1")
    scale = np.log((span - 1) / mid)
    # Past a distance whose bucket reaches `buckets`, both c2p and p2c clamp to the last row.
    top = mid * np.exp(min((buckets - mid + 1) / (mid - 1) * scale, 700.0))
    if top > _BUCKET_CHECK_LIMIT:
        return (f"position_buckets={buckets} with a span of {span}: distances up to {top:.3g} "
                "would have to be checked, which irconv does not")
    a = np.arange(mid + 1, int(top) + 2)
    x = a.astype(np.float32) / np.float32(mid)
    logs = _log_candidates(x)
    m1 = np.float32(mid - 1)
    low = high = None          # each distance's lowest and highest (c2p, p2c) rows over all candidates
    # HF rounds (span-1)/mid from float64, keras-hub divides in float32: both quotients.
    for q in {np.float32(span - 1) / np.float32(mid), np.float32((span - 1) / mid)}:
        for denominator in _log_candidates(np.array([q], np.float32))[0]:
            numerators = np.where((x == q)[:, None], denominator, logs)
            for value in (np.ceil((numerators / denominator) * m1), np.ceil((numerators * m1) / denominator)):
                bucket = value.astype(np.int64) + mid
                rows = np.stack([np.clip(bucket + buckets, 0, 2 * buckets - 1),
                                 np.clip(buckets - bucket, 0, 2 * buckets - 1)])
                lo, hi = rows.min(axis=2), rows.max(axis=2)
                low = lo if low is None else np.minimum(low, lo)
                high = hi if high is None else np.maximum(high, hi)
    differ = (low != high).any(axis=0)
    if differ.any():
        return (f"position_buckets={buckets} with a span of {span}: keras-hub rounds its log buckets in "
                f"another order than HF, which can attend a distance of {int(a[differ][0])} to another "
                "relative embedding")
    return None


def _hf_effective(hf: dict) -> dict:
    """What HF's DeBERTa-v2 classes compute with, its getattr defaults filled in."""
    kinds = hf.get("pos_att_type") or []
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.lower().split("|")]
    span = hf.get("max_relative_positions", -1)
    if not _count(span) or span < 1:
        span = hf.get("max_position_embeddings")       # (required once nothing else is wrong)
    return {
        "relative_attention": hf.get("relative_attention", False),
        "pos_att_type": sorted(kinds),
        "share_att_key": hf.get("share_att_key", False),
        "norm_rel_ebd": [k.strip() for k in str(hf.get("norm_rel_ebd", "none")).lower().split("|")],
        "position_biased_input": hf.get("position_biased_input", True),
        "type_vocab_size": hf.get("type_vocab_size", 0),
        "conv_kernel_size": hf.get("conv_kernel_size", 0),
        "embedding_size": hf.get("embedding_size", hf.get("hidden_size")),
        "attention_head_size": hf.get("attention_head_size"),
        "position_buckets": hf.get("position_buckets", -1),
        "span": span,
    }


def _deberta_hub_args(hf: dict) -> dict:
    eff = _hf_effective(hf)
    backbone = "keras-hub's DebertaV3Backbone"
    wrong = [f"{key}={hf[key]!r}" if key in hf else f"{key} not given (HF's classes then compute {eff[key]!r})"
             for key, ok in (
        ("relative_attention", eff["relative_attention"] is True),
        ("pos_att_type", eff["pos_att_type"] == ["c2p", "p2c"]),
        ("share_att_key", eff["share_att_key"] is True),
        ("norm_rel_ebd", "layer_norm" in eff["norm_rel_ebd"]),
        ("position_biased_input", eff["position_biased_input"] is False),
        ("type_vocab_size", eff["type_vocab_size"] == 0),
        ("conv_kernel_size", eff["conv_kernel_size"] == 0),
        ("embedding_size", eff["embedding_size"] == hf.get("hidden_size")),
    ) if not ok]
    if wrong:
        raise ValueError(f"{', '.join(wrong)}; {backbone} computes DeBERTa-v3's layout only (relative "
                         "attention c2p|p2c with shared keys, layer-normed relative embeddings, no absolute "
                         "positions, token types, embedding projection or conv layer)")
    hidden, n_heads = kh.require(hf, "hidden_size"), kh.require(hf, "num_attention_heads")
    if eff["attention_head_size"] not in (None, hidden // n_heads):
        raise ValueError(f"attention_head_size={eff['attention_head_size']!r}; {backbone} uses "
                         f"hidden_size / num_attention_heads = {hidden // n_heads}")
    if eff["span"] is None:
        kh.require(hf, "max_position_embeddings")
    if _count(eff["position_buckets"]) and eff["position_buckets"] <= 0:
        raise ValueError(f"position_buckets={eff['position_buckets']!r}; {backbone} always buckets its "
                         "relative positions")
    problem = bucket_disagreement(eff["position_buckets"], eff["span"])
    if problem:
        raise ValueError(problem)
    return {"max_sequence_length": eff["span"], "dropout": hf.get("hidden_dropout_prob", 0.1)}


def _deberta_hf_config(hub: dict, names: set) -> dict:
    dropout = hub.get("dropout", 0.1)
    return {"max_position_embeddings": hub["max_sequence_length"], "max_relative_positions": -1,
            "relative_attention": True, "pos_att_type": ["p2c", "c2p"], "share_att_key": True,
            "norm_rel_ebd": "layer_norm", "position_biased_input": False, "type_vocab_size": 0,
            "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}


DEBERTA_HUB = kh.HubConfig(
    "DebertaV3Backbone", "keras_hub.src.models.deberta_v3.deberta_v3_backbone", "deberta-v2",
    pairs=(("vocab_size", "vocabulary_size"), ("num_hidden_layers", "num_layers"),
           ("num_attention_heads", "num_heads"), ("hidden_size", "hidden_dim"),
           ("intermediate_size", "intermediate_dim"), ("position_buckets", "bucket_size")),
    fixed={"layer_norm_eps": 1e-7, "hidden_act": "gelu"},
    to_hub=_deberta_hub_args, to_hf=_deberta_hf_config, architecture="DebertaV2Model",
    tasks=("MaskedLM", "TextClassifier"))


def _classifier_back(args: dict, backbone: dict) -> dict:
    kh.logits_out(args)
    return {"num_labels": args["num_classes"], "pooler_hidden_size": args.get("hidden_dim") or backbone["hidden_dim"],
            "pooler_dropout": args.get("dropout", 0.0), "pooler_hidden_act": "gelu"}


def _classifier_limit(hf: dict) -> str | None:
    act = hf.get("pooler_hidden_act", "gelu")
    if act != "gelu":
        return f"pooler_hidden_act={act!r}; its pooled_dense computes exact GELU"
    # HF's ContextPooler is a (pooler_hidden_size, pooler_hidden_size) Linear on the first token's
    # hidden_size features: HF computes only pooled widths equal to hidden_size.
    width, hidden = hf.get("pooler_hidden_size"), hf.get("hidden_size")
    if width is not None and hidden is not None and width != hidden:
        return (f"pooler_hidden_size={width} but hidden_size={hidden}; HF's ContextPooler computes only "
                "a pooler as wide as the model")
    return None


def _mlm_limit(hf: dict) -> str:
    return (f"keras-hub's DebertaV3MaskedLM computes its head's norm with epsilon 1e-5; an HF DebertaV2ForMaskedLM "
            f"with layer_norm_eps={hf.get('layer_norm_eps', 1e-7)}")


# keras-hub's DeBERTa tasks. DebertaV3TextClassifier is HF's DebertaV2ForSequenceClassification:
# the first token, a dropout, HF's ContextPooler dense with exact GELU (pooled_dense, its width
# the task's hidden_dim, which HF's class holds only as hidden_size), a dropout, the logits Dense; the task's dropout is HF's pooler_dropout.
# The MaskedLM head has HF's weights but its own epsilon: refused (its limit).
DEBERTA_TASKS = (
    kh.HubTask("DebertaV2ForSequenceClassification", "DebertaV3TextClassifier",
               "keras_hub.src.models.deberta_v3.deberta_v3_text_classifier",
               blocks={"pooler": ("", kh.dense("dense_0", "dense")),
                       "heads.classifier": ("", kh.dense("dense_1", "dense"))},
               to_task=lambda hf: {"num_classes": kh.num_labels(hf), "activation": "linear",
                                   "hidden_dim": hf.get("pooler_hidden_size") or kh.require(hf, "hidden_size"),
                                   "dropout": hf.get("pooler_dropout", 0.0)},
               to_hf=_classifier_back, limit=_classifier_limit,
               sizes={"heads.classifier.dense.weight": (0, "num_classes"), "heads.classifier.dense.bias": (0, "num_classes"),
                      "pooler.dense.weight": (0, "hidden_dim"), "pooler.dense.bias": (0, "hidden_dim")}),
    kh.HubTask("DebertaV2ForMaskedLM", "DebertaV3MaskedLM", "keras_hub.src.models.deberta_v3.deberta_v3_masked_lm",
               blocks={"heads.mlm": ("masked_lm_head_0", {
                   **kh.dense("_intermediate_dense", "transform.dense"),
                   **kh.layer_norm("_intermediate_layer_norm", "transform.norm"),
                   "bias": kh.plain("vars/0")})},
               limit=_mlm_limit),
)
_ATTN = "_self_attention_layer"
DEBERTA_V2 = kh.with_kerashub(DEBERTA_V2, DEBERTA_HUB, {
    "embeddings": ("", {"word.weight": kh.plain("reversible_embedding_0/vars/0"),
                        **kh.layer_norm("layer_normalization_0", "norm")}),
    "encoder.layers.{i}": ("disentangled_attention_encoder_{i}", {
        **{f"attn.{leaf}.weight": kh.head_kernel(f"{_ATTN}/_{name}_dense/vars/0")
           for leaf, name in (("q", "query"), ("k", "key"), ("v", "value"))},
        **{f"attn.{leaf}.bias": kh.head_bias(f"{_ATTN}/_{name}_dense/vars/1")
           for leaf, name in (("q", "query"), ("k", "key"), ("v", "value"))},
        # The output EinsumDense takes the heads already joined: a plain (in, out) kernel.
        **kh.dense(f"{_ATTN}/_output_dense", "attn.out"),
        **kh.layer_norm("_self_attention_layer_norm", "attn.norm"),
        **kh.dense("_feedforward_intermediate_dense", "ffn.up"),
        **kh.dense("_feedforward_output_dense", "ffn.down"),
        **kh.layer_norm("_feedforward_layer_norm", "ffn.norm"),
    }),
    ("encoder", "relative"): ("relative_embedding_0", {"rel_embeddings.weight": kh.plain("vars/0")}),
    ("encoder", "rel_norm"): ("relative_embedding_0", kh.layer_norm("layer_norm", "rel_norm")),
}, roles=frozenset({"relative", "rel_norm"}), tasks=DEBERTA_TASKS)
# keras-hub's DebertaV3Tokenizer (SentencePiece, HF's spm.model) fixes BERT's special tokens;
# [MASK], which DeBERTa-v3's model has no piece for, goes after the pieces, where HF's
# DebertaV2Tokenizer adds it too. HF's class lowercases or splits at punctuation only when
# told to: neither may be.
kh.with_tokenizer("deberta-v2", kh.HubTokenizer(
    "DebertaV3Tokenizer", "keras_hub.src.models.deberta_v3.deberta_v3_tokenizer", "sentencepiece", "DebertaV2Tokenizer",
    tuple((role, token, token) for role, token in (
        ("cls_token", "[CLS]"), ("bos_token", "[CLS]"), ("sep_token", "[SEP]"), ("eos_token", "[SEP]"),
        ("pad_token", "[PAD]"), ("mask_token", "[MASK]"))),
    settings=(("do_lower_case", False, False), ("split_by_punct", False, False)),
    model_file="spm.model", appended="[MASK]"))
FAMILIES = [DEBERTA_V2]
