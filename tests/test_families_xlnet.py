"""XLNet beyond the generic tf2/registry tests: every class pt -> pt, the raw (d_model, n_head,
d_head) attention tensors stored alike in PT and TF (bare weights files, the untied lm_loss and old
checkpoints' tied copies: test_families_registry.py)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import test_tf2  # noqa: E402  (its round-trip checks and loaders)
from conftest import run_irconv  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from zoo import make_pt  # noqa: E402

CLASSES = list(FAMILIES.get("xlnet").architectures)


def test_attention_tensors_keep_their_layout_in_tf2(tmp):
    """q/k/v/o/r are (d_model, n_head, d_head) in both frameworks: the h5 holds PyTorch's bytes."""
    model = make_pt("xlnet", "XLNetLMHeadModel", seed=62)
    model.save_pretrained(tmp / "src")
    run_irconv("convert", tmp / "src", tmp / "tf2", "--to", "tf2", check=True)
    h5 = test_tf2.h5_datasets(tmp / "tf2" / "tf_model.h5")
    state = model.state_dict()
    for name in ("q", "k", "v", "o", "r", "r_w_bias", "r_r_bias", "r_s_bias", "seg_embed"):
        ref = state[f"transformer.layer.1.rel_attn.{name}"].numpy()
        got = h5[f"transformer/transformer/layer_._1/rel_attn/{name}:0"]
        assert got.shape == ref.shape and got.tobytes() == ref.tobytes(), name
    # The LM head's layer lists the word embedding again; only its bias is its own.
    assert sorted(k for k in h5 if k.startswith("lm_loss/")) == [
        "lm_loss/lm_loss/bias:0", "lm_loss/transformer/word_embedding/weight:0"]


