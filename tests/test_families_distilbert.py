"""DistilBERT beyond the generic tf2/registry tests: every class pt -> pt, the bare
DistilBertModel (no prefix in PyTorch, 'distilbert/' in TF2) through tf2 (bare
weights files, the untied vocab_projector and old checkpoints' extra tensors:
test_families_registry.py)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import test_tf2  # noqa: E402  (its round-trip checks, called for cases TF2_CASES leaves out)
from irconv import FAMILIES  # noqa: E402

CLASSES = list(FAMILIES.get("distilbert").architectures)
# Shapes of a real release: 64 dims per head (distilbert-base: dim 768, 12 heads).
REAL_SHAPES = dict(dim=128, n_heads=2)


def test_bare_model_through_tf2_both_ways(tmp):
    """DistilBertModel's PyTorch keys have no prefix, TF2's sit under 'distilbert/'."""
    test_tf2.test_pt_to_tf2("distilbert", "DistilBertModel", tmp / "a")
    test_tf2.test_tf2_to_pt("distilbert", "DistilBertModel", tmp / "b")
    assert all(k.startswith("distilbert/") for k in test_tf2.h5_datasets(tmp / "a" / "tf2" / "tf_model.h5"))


