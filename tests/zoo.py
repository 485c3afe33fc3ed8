"""Tiny randomly initialised HF models of every family and head class irconv claims, built
locally by transformers (the oracle), with matching inputs.

A family joins the TF2 tests by adding its config here and its classes to TF2_CASES."""
from __future__ import annotations

import numpy as np

# family -> (HF config class, tiny config kwargs)
_TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
CONFIGS = {
    "bert": ("BertConfig", dict(_TINY, max_position_embeddings=64, type_vocab_size=2)),
    "roberta": ("RobertaConfig", dict(_TINY, max_position_embeddings=66)),
    "xlm-roberta": ("XLMRobertaConfig", dict(_TINY, max_position_embeddings=66)),
    "camembert": ("CamembertConfig", dict(_TINY, max_position_embeddings=66)),
    "layoutlm": ("LayoutLMConfig", dict(_TINY, max_position_embeddings=64, max_2d_position_embeddings=128)),
    "electra": ("ElectraConfig", dict(_TINY, embedding_size=16, max_position_embeddings=64)),
    # 4 passes over 2 groups of 2 shared layers. HF's PyTorch ALBERT needs inner_group_num <=
    # num_hidden_layers // num_hidden_groups (its head_mask slice), else its forward raises.
    "albert": ("AlbertConfig", dict(_TINY, embedding_size=16, num_hidden_layers=4, num_hidden_groups=2,
                                    inner_group_num=2, max_position_embeddings=64)),
    "distilbert": ("DistilBertConfig", dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                            max_position_embeddings=64)),
    # One token type: DPRReader (TF and PT) takes no token_type_ids, and inputs_for passes them
    # whenever type_vocab_size > 1.
    "dpr": ("DPRConfig", dict(_TINY, max_position_embeddings=64, type_vocab_size=1)),
}

# (family, HF class without the TF prefix) pairs that convert both ways between pt and tf2.
TF2_CASES = [
    ("bert", "BertForPreTraining"),
    ("bert", "BertForMaskedLM"),
    ("bert", "BertForSequenceClassification"),
    ("bert", "BertForQuestionAnswering"),
    ("bert", "BertModel"),
    ("roberta", "RobertaForMaskedLM"),
    ("roberta", "RobertaForCausalLM"),
    ("roberta", "RobertaForSequenceClassification"),
    ("xlm-roberta", "XLMRobertaForMaskedLM"),
    ("camembert", "CamembertForMaskedLM"),
    ("layoutlm", "LayoutLMForMaskedLM"),
    ("electra", "ElectraForPreTraining"),
    ("albert", "AlbertForPreTraining"),
    ("distilbert", "DistilBertForMaskedLM"),
    ("distilbert", "DistilBertForQuestionAnswering"),
    ("dpr", "DPRContextEncoder"),
    ("dpr", "DPRQuestionEncoder"),
    ("dpr", "DPRReader"),
]


def config_for(family: str, cls_name: str, **overrides):
    import transformers
    config_cls, kwargs = CONFIGS[family]
    kwargs = dict(kwargs, **overrides)
    kwargs.setdefault("num_labels", 2 if cls_name.endswith("QuestionAnswering") else 3)
    return getattr(transformers, config_cls)(**kwargs)


def perturb_pt(model, seed):
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.02)
    return model


def make_pt(family: str, cls_name: str, seed: int = 0, **overrides):
    """A PyTorch model whose every tensor is random (no exact 0/1 constants left)."""
    import torch
    import transformers
    torch.manual_seed(seed)
    model = getattr(transformers, cls_name)(config_for(family, cls_name, **overrides))
    return perturb_pt(model, seed).eval()


# family -> (variable, variable it always equals in real checkpoints), names after the Keras
# model name. TF ALBERT's MLM head has two vocab biases but only adds `decoder/bias`; every real
# TF ALBERT comes from PyTorch, where both load the one tied predictions.bias, so they are
# equal. Independent random values would be a file no conversion ever makes (and one irconv
# cannot round-trip, as it keeps the bias the forward uses and writes it under both names).
TF_EQUAL_VARIABLES = {
    "albert": (("predictions/bias:0", "predictions/decoder/bias:0"),),
}


def make_tf(family: str, cls_name: str, seed: int = 0, **overrides):
    """A TF model, built, with every variable random (save those TF_EQUAL_VARIABLES pairs)."""
    import tensorflow as tf
    import transformers
    tf.random.set_seed(seed)
    model = getattr(transformers, "TF" + cls_name)(config_for(family, cls_name, **overrides))
    model(model.dummy_inputs)
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(v.numpy() + rng.standard_normal(v.shape).astype(v.dtype.as_numpy_dtype) * 0.02)
    by_name = {v.name.split("/", 1)[1]: v for v in model.weights}
    for copy, source in TF_EQUAL_VARIABLES.get(family, ()):
        if copy in by_name and source in by_name:
            by_name[copy].assign(by_name[source])
    return model


def text_inputs(config, rng) -> dict[str, np.ndarray]:
    ids = rng.integers(0, config.vocab_size, (2, 7))
    mask = np.ones_like(ids)
    mask[1, -1] = 0
    out = {"input_ids": ids, "attention_mask": mask}
    if getattr(config, "type_vocab_size", 0) > 1:
        out["token_type_ids"] = rng.integers(0, config.type_vocab_size, (2, 7))
    return out


# family -> inputs maker (config, numpy Generator) -> dict of numpy arrays; default: text.
INPUTS = {}


def inputs_for(family: str, config, seed: int = 1) -> dict[str, np.ndarray]:
    return INPUTS.get(family, text_inputs)(config, np.random.default_rng(seed))


def run_pt(model, inputs) -> dict[str, np.ndarray]:
    import torch
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    return {k: v.float().numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}


def run_tf(model, inputs) -> dict[str, np.ndarray]:
    import tensorflow as tf
    out = model({k: tf.constant(v) for k, v in inputs.items()}, training=False)
    return {k: v.numpy() for k, v in out.items() if isinstance(v, tf.Tensor)}


def assert_close(ref: dict, got: dict, atol: float):
    shared = sorted(set(ref) & set(got))
    assert shared, (sorted(ref), sorted(got))
    for k in shared:
        assert ref[k].shape == got[k].shape, k
        diff = float(np.max(np.abs(ref[k].astype(np.float64) - got[k].astype(np.float64)))) if ref[k].size else 0.0
        assert diff <= atol, f"{k}: max abs diff {diff}"
