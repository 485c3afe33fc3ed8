"""RoBERTa, XLM-RoBERTa and CamemBERT beyond the generic tf2/registry tests: every class
pt -> pt, the bare base classes through tf2, weights files without a config, and the layout
of older hub checkpoints (position_ids buffer, stored decoder, a pooler under ForMaskedLM)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

import test_tf2  # noqa: E402  (its round-trip checks, called for classes TF2_CASES leaves out)
import zoo  # noqa: E402
from conftest import run_irconv  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from zoo import assert_same_safetensors, assert_close, inputs_for, make_pt, run_pt  # noqa: E402

NAMES = ("roberta", "xlm-roberta", "camembert")
CLASSES = [(name, cls) for name in NAMES for cls in FAMILIES.get(name).architectures]


BASE_CLASSES = [("roberta", "RobertaModel"), ("xlm-roberta", "XLMRobertaModel"), ("camembert", "CamembertModel")]


# XLM-R's and CamemBERT's (slow: test-long) are RoBERTa's classes under other names.
@pytest.mark.parametrize("family,cls_name", [pytest.param(*c, marks=[pytest.mark.slow] if n else [])
                                             for n, c in enumerate(BASE_CLASSES)], ids=[c for _, c in BASE_CLASSES])
def test_base_class_through_tf2(family, cls_name, tmp):
    """PyTorch RobertaModel keys are bare, TF2's sit under 'roberta/': both ways."""
    test_tf2.test_pt_to_tf2(family, cls_name, tmp / "a")
    test_tf2.test_tf2_to_pt(family, cls_name, tmp / "b")


def test_causal_lm_keeps_its_class_and_is_decoder(tmp):
    """ForCausalLM has ForMaskedLM's tensors: the config's architectures decide, and stay."""
    model = make_pt("roberta", "RobertaForCausalLM", seed=22, is_decoder=True)
    model.save_pretrained(tmp / "src")
    run_irconv("convert", tmp / "src", tmp / "tf2", "--to", "tf2", check=True)
    run_irconv("convert", tmp / "tf2", tmp / "out", "--to", "pt", check=True)
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["architectures"] == ["RobertaForCausalLM"] and config["is_decoder"] is True
    assert_same_safetensors(tmp / "src", tmp / "out")


# Shapes of a real release: 64 dims per head, one token type, fairseq's LayerNorm epsilon.
REAL_SHAPES = dict(hidden_size=128, num_attention_heads=2, type_vocab_size=1, layer_norm_eps=1e-5)


@pytest.mark.parametrize("cls_name,family", [
    # The three families spell every tensor alike, so a bare file needs --model to say which.
    ("RobertaForMaskedLM", "roberta"),
    ("RobertaForSequenceClassification", "roberta"),
    ("XLMRobertaModel", "xlm-roberta"),
])
def test_bare_weights_file(cls_name, family, tmp):
    model = make_pt(family, cls_name, seed=23, num_labels=5, **REAL_SHAPES)
    model.save_pretrained(tmp / "src", safe_serialization=False)
    (tmp / "src" / "config.json").unlink()
    # The heads are not in the fused projections: never guessed; fairseq's epsilon and padding
    # index are stated defaults, taken when accepted.
    zoo.convert_bare(tmp / "src" / "pytorch_model.bin", tmp / "out", model.config, ("num_attention_heads",),
                     "--to", "pt", "--model", family)
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == family and config["architectures"] == [cls_name]
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "type_vocab_size", "max_position_embeddings", "layer_norm_eps", "pad_token_id", "hidden_act",
                "position_embedding_type"):
        assert config[key] == getattr(model.config, key), key
    if cls_name.endswith("SequenceClassification"):
        assert config["num_labels"] == 5
    loaded = test_tf2.pt_loads_cleanly(cls_name, tmp / "out")
    inputs = inputs_for(family, model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), 0.0)


def test_old_hub_checkpoint_layout(tmp):
    """roberta-base's pytorch_model.bin: a position_ids buffer, the tied decoder and its bias
    stored, and a pooler RobertaForMaskedLM no longer has. The buffer goes, the ties are kept
    as ties, the pooler is kept (lossless), the head's tensors are those HF writes today."""
    model = make_pt("roberta", "RobertaForMaskedLM", seed=24)
    state = dict(model.state_dict())
    assert "lm_head.decoder.weight" in state and "lm_head.decoder.bias" in state
    state["roberta.embeddings.position_ids"] = torch.arange(66)[None]
    g = torch.Generator().manual_seed(0)
    state["roberta.pooler.dense.weight"] = torch.randn(32, 32, generator=g)
    state["roberta.pooler.dense.bias"] = torch.randn(32, generator=g)
    (tmp / "src").mkdir()
    torch.save(state, tmp / "src" / "pytorch_model.bin")
    model.config.to_json_file(tmp / "src" / "config.json")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    got = load_file(tmp / "out" / "model.safetensors")
    model.save_pretrained(tmp / "ref")
    ref = load_file(tmp / "ref" / "model.safetensors")
    assert sorted(got) == sorted([*ref, "roberta.pooler.dense.weight", "roberta.pooler.dense.bias"])
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    loaded, info = transformers.RobertaForMaskedLM.from_pretrained(tmp / "out", output_loading_info=True)
    assert not info["missing_keys"] and sorted(info["unexpected_keys"]) == ["roberta.pooler.dense.bias",
                                                                             "roberta.pooler.dense.weight"]
    inputs = inputs_for("roberta", model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded.eval(), inputs), 0.0)


def test_family_tables():
    for name in NAMES:
        fam = FAMILIES.get(name)
        assert fam.model_types == (name,)
        assert fam.view("pt").raw_name("embeddings.word.weight", "roberta.") == \
            "roberta.embeddings.word_embeddings.weight"
        assert fam.view("tf2").raw_name("heads.classifier.out_proj.weight", "roberta/") == \
            "classifier/out_proj/kernel"
        # Roles alone pick ForMaskedLM, the first class with the lm head.
        assert fam.architecture_for({"lm"}).endswith("ForMaskedLM")
    assert np.all([FAMILIES.get(n).view("pt").is_ignored("roberta.embeddings.position_ids") for n in NAMES])
