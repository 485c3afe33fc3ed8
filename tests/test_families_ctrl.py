"""CTRL beyond the generic tf2/registry tests: every class pt -> pt, the lm_head bias TF keeps
in its own 'lm_head' layer as (1, vocab), the ffn/0 and ffn/2 scopes (bare weights files and the
untied lm_head: test_families_registry.py)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import irconv  # noqa: E402
import test_tf2  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from irconv.formats import kerash5  # noqa: E402
from zoo import make_pt  # noqa: E402

CLASSES = list(FAMILIES.get("ctrl").architectures)


def test_lm_head_bias_lives_in_its_own_layer_as_a_row(tmp):
    model = make_pt("ctrl", "CTRLLMHeadModel", seed=72)
    model.save_pretrained(tmp / "src")
    irconv.convert(tmp / "src", tmp / "tf2", to="tf2")
    weights = {w.name: w for w in kerash5.read(tmp / "tf2" / "tf_model.h5").weights}
    bias = weights["tfctrllm_head_model/lm_head/bias:0"]
    assert bias.layer == "lm_head" and bias.tensor.shape == (1, 99)
    assert test_tf2.same_bytes(bias.tensor.load(), model.lm_head.bias.detach().numpy()[None])
    # Sequential's children are plain 'ffn/0' scopes in TF, not the 'ffn_._0' list spelling.
    kernel = weights["tfctrllm_head_model/transformer/h_._1/ffn/0/kernel:0"].tensor.load()
    assert test_tf2.same_bytes(kernel, model.transformer.h[1].ffn[0].weight.detach().numpy().T.copy())
    ckpt = irconv.load(tmp / "tf2")
    assert ckpt.aliases == {"heads.lm.weight": "embeddings.word.weight"}


