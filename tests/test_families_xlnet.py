"""XLNet beyond the generic tf2/registry tests: every class pt -> pt, the raw (d_model, n_head,
d_head) attention tensors stored alike in PT and TF, weights files without a config (the head
count read from those shapes), an untied lm_loss, and old checkpoints' tied copies."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import test_tf2  # noqa: E402  (its round-trip checks and loaders)
import zoo  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from zoo import assert_same_safetensors, assert_close, inputs_for, make_pt, run_pt  # noqa: E402

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


@pytest.mark.parametrize("cls_name", CLASSES)
def test_bare_weights_file(cls_name, tmp):
    """No config.json: family and class from the names, and n_head/d_head exactly from the
    attention tensors' shapes (here 2 heads of 16): nothing required, only the stated defaults
    (activation, attention settings) to accept."""
    model = make_pt("xlnet", cls_name, seed=63, n_head=2)
    model.save_pretrained(tmp / "src")
    (tmp / "src" / "config.json").unlink()
    zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "out", model.config, (), "--to", "pt")
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == "xlnet" and config["architectures"] == [cls_name]
    for key in ("vocab_size", "d_model", "n_layer", "n_head", "d_head", "d_inner", "ff_activation", "layer_norm_eps",
                "attn_type", "bi_data", "clamp_len", "same_length"):
        assert config[key] == getattr(model.config, key), key
    assert_same_safetensors(tmp / "src", tmp / "out")
    loaded = test_tf2.pt_loads_cleanly(cls_name, tmp / "out")
    inputs = inputs_for("xlnet", model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), 0.0)


def test_untied_lm_loss(tmp):
    """tie_word_embeddings false: lm_loss.weight is its own tensor, kept through pt (and a bare
    file says so in its inferred config); TF's head always ties, so tf2 refuses it."""
    model = make_pt("xlnet", "XLNetLMHeadModel", seed=64, tie_word_embeddings=False)
    assert not torch.equal(model.lm_loss.weight, model.transformer.word_embedding.weight)
    model.save_pretrained(tmp / "src")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    assert_same_safetensors(tmp / "src", tmp / "out")
    proc = run_irconv("convert", tmp / "src", tmp / "tf2", "--to", "tf2")
    assert_one_line_error(proc, "heads.lm.decoder.weight")
    assert not (tmp / "tf2").exists()
    (tmp / "src" / "config.json").unlink()                          # the weights file is bare now
    zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "bare", model.config, (), "--to", "pt")
    assert json.loads((tmp / "bare" / "config.json").read_text())["tie_word_embeddings"] is False
    assert_same_safetensors(tmp / "src", tmp / "bare")


def test_old_checkpoint_tied_copy_is_dropped(tmp):
    """torch.save of a whole state dict (older pytorch_model.bin) stores lm_loss.weight too."""
    model = make_pt("xlnet", "XLNetLMHeadModel", seed=65)
    state = dict(model.state_dict())
    assert "lm_loss.weight" in state
    (tmp / "src").mkdir()
    torch.save(state, tmp / "src" / "pytorch_model.bin")
    model.config.to_json_file(tmp / "src" / "config.json")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "tf2", check=True)
    tfm = test_tf2.tf_loads_cleanly("XLNetLMHeadModel", tmp / "out")
    inputs = inputs_for("xlnet", model.config)
    from zoo import run_tf
    assert_close(run_pt(model, inputs), run_tf(tfm, inputs), 1e-5)
    assert np.array_equal(test_tf2.h5_datasets(tmp / "out" / "tf_model.h5")["lm_loss/lm_loss/bias:0"],
                          model.lm_loss.bias.detach().numpy())
