"""GPT-2's keras-hub view beyond test_kerashub's oracle cases (which run keras_hub): the config
fields GPT2Backbone takes or fixes, mapped both ways or refused, with no keras_hub needed.

n_inner is the Backbone's intermediate_dim (keras-hub's own converter assumes 4 * n_embd and
fails on any other); what the class fixes (epsilon 1e-5, the tanh GELU, one dropout, the LM
head tied to the token embeddings, plain 1/sqrt(head_dim) attention scaling) must be the HF
config's, else the export is refused with one line and nothing written.
"""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.numpy import load_file  # noqa: E402

import irconv  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from test_kerashub import GPT2, make_hf  # noqa: E402


@pytest.mark.parametrize("case,inner,n_inner", [("gpt2", 128, None), ("gpt2-inner", 48, 48)])
def test_n_inner_is_the_intermediate_dim_both_ways(case, inner, n_inner, tmp_path):
    make_hf(case, tmp_path / "hf")
    irconv.convert(tmp_path / "hf", tmp_path / "hub", to="kerashub")
    args = json.loads((tmp_path / "hub" / "config.json").read_text())["config"]
    assert args["intermediate_dim"] == inner and args["hidden_dim"] == GPT2["n_embd"]
    irconv.convert(tmp_path / "hub", tmp_path / "back", to="pt")
    config = json.loads((tmp_path / "back" / "config.json").read_text())
    assert config["n_inner"] == n_inner
    assert config["layer_norm_epsilon"] == 1e-5 and config["activation_function"] == "gelu_new"
    assert config["architectures"] == ["GPT2LMHeadModel"] and config.get("tie_word_embeddings", True)
    # The fused c_attn comes back from the three per-head kernels, byte for byte.
    ref, got = load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    name = "transformer.h.1.attn.c_attn.weight"
    assert got[name].shape == (GPT2["n_embd"], 3 * GPT2["n_embd"]) and got[name].tobytes() == ref[name].tobytes()


def _source(tmp_path, **change):
    make_hf("gpt2", tmp_path / "src")
    path = tmp_path / "src" / "config.json"
    config = json.loads(path.read_text())
    for key, value in change.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    path.write_text(json.dumps(config))
    return tmp_path / "src"


@pytest.mark.parametrize("change,needle", [
    ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon=1e-06"),
    ({"activation_function": "gelu"}, "activation_function='gelu'"),
    ({"layer_norm_epsilon": None}, "--set layer_norm_epsilon="),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
    ({"scale_attn_weights": False}, "scale_attn_weights"),
    ({"attn_pdrop": 0.0}, "one dropout"),
], ids=["eps", "act", "no-eps", "layer-idx-scaling", "no-scaling", "dropouts"])
def test_what_gpt2_backbone_cannot_compute_is_refused(change, needle, tmp_path):
    proc = run_irconv("convert", _source(tmp_path, **change), tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "out").exists()


def test_an_untied_lm_head_is_refused(tmp_path):
    """GPT2Backbone's logits are its token embeddings reversed: it has no head of its own."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(**GPT2, tie_word_embeddings=False)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path / "src")
    assert "lm_head.weight" in load_file(tmp_path / "src" / "model.safetensors")
    proc = run_irconv("convert", tmp_path / "src", tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, "GPT2Backbone", "tie_word_embeddings")
    assert not (tmp_path / "out").exists()
