"""T5 beyond the generic tf2/registry tests: the LM head untied (TF then makes an lm_head
layer, absent while tied), the gated feed-forward of T5 1.1, the h5 layout of the shared
embeddings (its own layer and name scope, listed again by encoder and decoder), a weights
file without a config, and old checkpoints' unused cross-attention position bias."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

import test_tf2  # noqa: E402  (its round-trip checks, for configs TF2_CASES leaves out)
import zoo  # noqa: E402
from conftest import run_irconv  # noqa: E402
from zoo import assert_close, inputs_for, make_pt, run_pt  # noqa: E402

RELOAD_ATOL = 1e-6


def with_config(monkeypatch, **overrides):
    config_cls, kwargs = zoo.CONFIGS["t5"]
    monkeypatch.setitem(zoo.CONFIGS, "t5", (config_cls, dict(kwargs, **overrides)))


def weight_names(path) -> dict[str, list[str]]:
    with h5py.File(path, "r") as f:
        return {layer: [n.decode() if isinstance(n, bytes) else n for n in f[layer].attrs["weight_names"]]
                for layer in f.attrs["layer_names"]}


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_lm_head_layer_exists_only_when_untied(tied, monkeypatch, tmp):
    with_config(monkeypatch, tie_word_embeddings=tied)
    if not tied:
        # An untied T5 skips the d_model**-0.5 rescale before its lm_head, so its logits are
        # ~sqrt(d_model) larger and PyTorch and TF float32 differ in more absolute last bits
        # (1.1e-5 seen under load; the weights themselves are still compared bit for bit).
        monkeypatch.setattr(test_tf2, "ATOL", 1e-5 * 32 ** 0.5)
    test_tf2.test_pt_to_tf2("t5", "T5ForConditionalGeneration", tmp / "a")
    test_tf2.test_tf2_to_pt("t5", "T5ForConditionalGeneration", tmp / "b")
    names = weight_names(tmp / "a" / "tf2" / "tf_model.h5")
    assert ("lm_head" in names) is not tied
    if not tied:
        assert names["lm_head"] == ["tft5_for_conditional_generation/lm_head/kernel:0"]
    assert ("lm_head.weight" in load_file(tmp / "a" / "pt2" / "model.safetensors")) is not tied


# T5Model (slow: test-long) is the same layers as the LM model, without its head.
@pytest.mark.parametrize("cls_name", ["T5ForConditionalGeneration", pytest.param("T5Model", marks=pytest.mark.slow)])
def test_gated_feed_forward_both_ways(cls_name, monkeypatch, tmp):
    with_config(monkeypatch, feed_forward_proj="gated-gelu")
    test_tf2.test_pt_to_tf2("t5", cls_name, tmp / "a")
    test_tf2.test_tf2_to_pt("t5", cls_name, tmp / "b")
    got = load_file(tmp / "a" / "pt2" / "model.safetensors")
    assert "encoder.block.1.layer.1.DenseReluDense.wi_1.weight" in got
    assert not any(k.endswith(".wi.weight") for k in got)


def test_shared_embeddings_h5_layout(tmp):
    """The shared matrix is TF's own top-level layer, named under its own scope, and the
    encoder and decoder layers list it again, as transformers writes it."""
    make_pt("t5", "T5ForConditionalGeneration", seed=61).save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2", check=True)
    names = weight_names(tmp / "tf2" / "tf_model.h5")
    assert list(names) == ["shared", "encoder", "decoder"]
    for layer in names:
        assert "shared/shared/embeddings:0" in names[layer], layer
    # Position biases only in block 0 of each stack.
    bias = [n for ns in names.values() for n in ns if "relative_attention_bias" in n]
    assert sorted(bias) == [f"tft5_for_conditional_generation/{s}/block_._0/layer_._0/SelfAttention/"
                            "relative_attention_bias/embeddings:0" for s in ("decoder", "encoder")]


def test_bare_weights_file_infers_the_config(tmp):
    model = make_pt("t5", "T5ForConditionalGeneration", seed=62, tie_word_embeddings=False)
    model.save_pretrained(tmp / "src")
    (tmp / "src" / "config.json").unlink()
    # The heads are in the shapes (the position bias is buckets x heads); the activation of an
    # ungated feed-forward is not, so it is a stated default, taken only when accepted.
    proc = zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "out", model.config, (),
                            "--to", "pt", "--model", "t5")
    assert b"feed_forward_proj=relu" in proc.stderr
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["architectures"] == ["T5ForConditionalGeneration"]
    for key in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                "relative_attention_num_buckets", "tie_word_embeddings", "feed_forward_proj", "layer_norm_epsilon",
                "relative_attention_max_distance"):
        assert config[key] == getattr(model.config, key), key
    loaded = test_tf2.pt_loads_cleanly("T5ForConditionalGeneration", tmp / "out")
    inputs = inputs_for("t5", model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), RELOAD_ATOL)


def test_old_cross_attention_position_bias_is_skipped(tmp):
    """Old T5 checkpoints carry a position bias on decoder block 0's cross-attention that HF's
    T5 never uses: it is listed as skipped and dropped, everything else is kept bit for bit."""
    model = make_pt("t5", "T5Model", seed=63)
    model.save_pretrained(tmp / "src")
    weights = load_file(tmp / "src" / "model.safetensors")
    extra = "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"
    save_file({**weights, extra: torch.zeros(8, 4)}, tmp / "src" / "model.safetensors", metadata={"format": "pt"})
    ls = run_irconv("ls", tmp / "src", check=True)
    assert extra.encode() in ls.stdout + ls.stderr
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    got = load_file(tmp / "out" / "model.safetensors")
    assert sorted(got) == sorted(weights)
    for k in weights:
        assert np.array_equal(weights[k].numpy(), got[k].numpy()), k
