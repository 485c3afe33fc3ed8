"""CTRL beyond the generic tf2/registry tests: every class pt -> pt, the lm_head bias TF keeps
in its own 'lm_head' layer as (1, vocab), the ffn/0 and ffn/2 scopes, weights files without a
config, and an untied lm_head."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

import irconv  # noqa: E402
import test_tf2  # noqa: E402
import zoo  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from irconv.formats import kerash5  # noqa: E402
from zoo import assert_close, assert_same_safetensors, inputs_for, make_pt, run_pt  # noqa: E402

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


@pytest.mark.parametrize("cls_name", CLASSES)
def test_bare_weights_file(cls_name, tmp):
    model = make_pt("ctrl", cls_name, seed=73, n_embd=160, n_head=2)
    model.save_pretrained(tmp / "src")
    (tmp / "src" / "config.json").unlink()
    # The head count is not in the tensors, nor n_positions (the sinusoidal table is computed,
    # not stored; zoo's 64 is not the stated default 256): given, never guessed.
    zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "out", model.config, ("n_head",), "--to", "pt",
                     also=("n_positions",))
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == "ctrl" and config["architectures"] == [cls_name]
    for key in ("vocab_size", "n_embd", "n_layer", "n_head", "dff", "n_positions", "layer_norm_epsilon"):
        assert config[key] == getattr(model.config, key), key
    assert_same_safetensors(tmp / "src", tmp / "out")
    loaded = test_tf2.pt_loads_cleanly(cls_name, tmp / "out")
    inputs = inputs_for("ctrl", model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), 1e-7)   # float32 rounding of a reload


def test_untied_lm_head(tmp):
    model = make_pt("ctrl", "CTRLLMHeadModel", seed=74, tie_word_embeddings=False)
    model.save_pretrained(tmp / "src")
    assert "lm_head.weight" in load_file(tmp / "src" / "model.safetensors")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    assert_same_safetensors(tmp / "src", tmp / "out")
    proc = run_irconv("convert", tmp / "src", tmp / "tf2", "--to", "tf2")
    assert_one_line_error(proc, "heads.lm.weight")
    assert not (tmp / "tf2").exists()
