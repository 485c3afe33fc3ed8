"""Tiny randomly initialised HF BERT models for tests (built locally, no hub)."""
from __future__ import annotations

BERT_CLASSES = ["BertModel", "BertForPreTraining", "BertForMaskedLM",
                "BertForSequenceClassification", "BertForQuestionAnswering"]


def tiny_bert_config(**overrides):
    from transformers import BertConfig
    kw = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=37, max_position_embeddings=64, type_vocab_size=2, num_labels=3)
    kw.update(overrides)
    return BertConfig(**kw)


def make_model(cls_name: str, dtype=None, seed: int = 0, **overrides):
    import torch
    import transformers
    torch.manual_seed(seed)
    if cls_name.endswith("QuestionAnswering"):
        overrides.setdefault("num_labels", 2)     # start and end logits
    model = getattr(transformers, cls_name)(tiny_bert_config(**overrides))
    # Random init leaves some tensors at exact constants (LayerNorm 1/0, zero biases);
    # perturb everything so a swapped or dropped tensor cannot go unnoticed.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


def model_inputs(seed: int = 1):
    import torch
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 99, (2, 7), generator=g)
    return dict(input_ids=ids, token_type_ids=torch.randint(0, 2, (2, 7), generator=g),
                attention_mask=torch.ones_like(ids))


def outputs_of(model, inputs):
    import torch
    with torch.no_grad():
        out = model(**inputs)
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
