"""DistilBERT beyond the generic tf2/registry tests: every class pt -> pt, the bare
DistilBertModel (no prefix in PyTorch, 'distilbert/' in TF2) through tf2, weights files
without a config, an untied vocab_projector, and old checkpoints' extra tensors."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

import test_tf2  # noqa: E402  (its round-trip checks, called for cases TF2_CASES leaves out)
import zoo  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from zoo import assert_same_safetensors, assert_close, inputs_for, make_pt, run_pt  # noqa: E402

CLASSES = list(FAMILIES.get("distilbert").architectures)
# Shapes of a real release: 64 dims per head (distilbert-base: dim 768, 12 heads).
REAL_SHAPES = dict(dim=128, n_heads=2)


def test_bare_model_through_tf2_both_ways(tmp):
    """DistilBertModel's PyTorch keys have no prefix, TF2's sit under 'distilbert/'."""
    test_tf2.test_pt_to_tf2("distilbert", "DistilBertModel", tmp / "a")
    test_tf2.test_tf2_to_pt("distilbert", "DistilBertModel", tmp / "b")
    assert all(k.startswith("distilbert/") for k in test_tf2.h5_datasets(tmp / "a" / "tf2" / "tf_model.h5"))


@pytest.mark.parametrize("cls_name", CLASSES)
def test_bare_weights_file(cls_name, tmp):
    """No config.json: the family and class come from the names, the config from shapes
    (n_layers counted, hidden_dim from lin1); no --model needed, even for the unprefixed
    DistilBertModel, whose transformer.layer names BERT does not have."""
    model = make_pt("distilbert", cls_name, seed=52, **REAL_SHAPES)
    model.save_pretrained(tmp / "src")
    (tmp / "src" / "config.json").unlink()
    zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "out", model.config, ("n_heads",), "--to", "pt")
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == "distilbert" and config["architectures"] == [cls_name]
    for key in ("vocab_size", "dim", "n_layers", "n_heads", "hidden_dim", "max_position_embeddings", "activation",
                "sinusoidal_pos_embds"):
        assert config[key] == getattr(model.config, key), key
    loaded = test_tf2.pt_loads_cleanly(cls_name, tmp / "out")
    inputs = inputs_for("distilbert", model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), 0.0)


def test_untied_vocab_projector(tmp):
    """tie_word_embeddings false: vocab_projector.weight is a tensor of its own, kept (and,
    in a bare file, its presence says the model is untied); TF2 always ties, so it is refused."""
    model = make_pt("distilbert", "DistilBertForMaskedLM", seed=53, tie_word_embeddings=False)
    assert not torch.equal(model.vocab_projector.weight, model.distilbert.embeddings.word_embeddings.weight)
    model.save_pretrained(tmp / "src")
    assert "vocab_projector.weight" in load_file(tmp / "src" / "model.safetensors")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    assert_same_safetensors(tmp / "src", tmp / "out")
    inputs = inputs_for("distilbert", model.config)
    assert_close(run_pt(model, inputs),
                 run_pt(test_tf2.pt_loads_cleanly("DistilBertForMaskedLM", tmp / "out"), inputs), 0.0)

    proc = run_irconv("convert", tmp / "src", tmp / "tf2", "--to", "tf2")
    assert_one_line_error(proc, "heads.mlm.decoder.weight")
    assert not (tmp / "tf2").exists()

    (tmp / "src" / "config.json").unlink()                          # the weights file is bare now
    zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "bare", model.config, ("n_heads",), "--to", "pt")
    assert json.loads((tmp / "bare" / "config.json").read_text())["tie_word_embeddings"] is False
    assert_same_safetensors(tmp / "src", tmp / "bare")
    assert_close(run_pt(model, inputs),
                 run_pt(test_tf2.pt_loads_cleanly("DistilBertForMaskedLM", tmp / "bare"), inputs), 0.0)


def test_old_checkpoint_extra_tensors_are_dropped(tmp):
    """torch.save of a whole state dict, as older transformers wrote pytorch_model.bin: the
    position_ids buffer and the tied vocab_projector.weight copy come along."""
    model = make_pt("distilbert", "DistilBertForMaskedLM", seed=54)
    state = dict(model.state_dict())
    assert "vocab_projector.weight" in state
    state["distilbert.embeddings.position_ids"] = torch.arange(64)[None]
    (tmp / "src").mkdir()
    torch.save(state, tmp / "src" / "pytorch_model.bin")
    model.config.to_json_file(tmp / "src" / "config.json")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    got = load_file(tmp / "out" / "model.safetensors")
    assert "distilbert.embeddings.position_ids" not in got and "vocab_projector.weight" not in got
    loaded = test_tf2.pt_loads_cleanly("DistilBertForMaskedLM", tmp / "out")
    inputs = inputs_for("distilbert", model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), 0.0)
