"""ELECTRA beyond the generic tf2/registry tests: every class pt -> pt, the bare ElectraModel
through tf2, the optional embeddings_project (present only when embedding_size differs from
hidden_size) absent as well as present, and a bare ElectraModel without the projection (other bare files
and old checkpoints' buffers: test_families_registry.py)."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

import test_tf2  # noqa: E402  (its round-trip checks, called for cases TF2_CASES leaves out)
import zoo  # noqa: E402
from conftest import run_irconv  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from zoo import assert_close, inputs_for, make_pt, run_pt  # noqa: E402

CLASSES = list(FAMILIES.get("electra").architectures)
# embedding_size 16 < hidden_size 32 (electra-small's shape: a projection) or 32 (none).
EMBEDDING_SIZES = {"projected": 16, "unprojected": 32}
# Weights are compared bit for bit; outputs of bit-identical weights may still differ in the
# last float bit once reloaded (transformers' own save + from_pretrained gives ~4e-9 here:
# torch picks kernels by memory alignment), so outputs get a float32-rounding tolerance.
RELOAD_ATOL = 1e-7


@pytest.fixture(params=list(EMBEDDING_SIZES), ids=list(EMBEDDING_SIZES))
def embedding_size(request, monkeypatch):
    """Runs the test with zoo's electra config at this embedding_size."""
    config_cls, kwargs = zoo.CONFIGS["electra"]
    monkeypatch.setitem(zoo.CONFIGS, "electra", (config_cls, dict(kwargs, embedding_size=EMBEDDING_SIZES[request.param])))
    return EMBEDDING_SIZES[request.param]


def has_projection(names) -> bool:
    return any("embeddings_project" in n for n in names)


@pytest.mark.parametrize("cls_name", CLASSES)
def test_pt_to_pt_every_class(cls_name, embedding_size, tmp):
    model = make_pt("electra", cls_name, seed=41)
    model.save_pretrained(tmp / "src")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    ref, got = load_file(tmp / "src" / "model.safetensors"), load_file(tmp / "out" / "model.safetensors")
    assert sorted(ref) == sorted(got)
    assert has_projection(got) == (embedding_size != 32)
    for k in ref:
        assert torch.equal(ref[k].view(torch.uint8), got[k].view(torch.uint8)), k
    loaded = test_tf2.pt_loads_cleanly(cls_name, tmp / "out")
    assert_close(run_pt(model, inputs_for("electra", model.config)),
                 run_pt(loaded, inputs_for("electra", model.config)), RELOAD_ATOL)
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == "electra" and config["architectures"] == [cls_name]


@pytest.mark.parametrize("cls_name", CLASSES)
def test_through_tf2_both_ways(cls_name, embedding_size, tmp):
    """ElectraModel's PyTorch keys are bare, TF2's sit under 'electra/'; with and without the
    projection, TF's class loads what irconv wrote with nothing missing or unexpected."""
    test_tf2.test_pt_to_tf2("electra", cls_name, tmp / "a")
    test_tf2.test_tf2_to_pt("electra", cls_name, tmp / "b")
    names = test_tf2.h5_datasets(tmp / "a" / "tf2" / "tf_model.h5")
    assert has_projection(names) == (embedding_size != 32)


# Shapes of a real release: 64 dims per head (electra-small: embedding 128, hidden 256).
REAL_SHAPES = dict(embedding_size=64, hidden_size=128, num_attention_heads=2)


# The registry-wide bare-file test (test_families_registry.py) covers zoo's projected ELECTRA;
# without the projection, a bare ElectraModel has exactly a BertModel's names minus the
# pooler, so --model says it.
@pytest.mark.parametrize("cls_name,embedding_size,flag", [("ElectraModel", 128, "electra")])
def test_bare_weights_file(cls_name, embedding_size, flag, tmp):
    model = make_pt("electra", cls_name, seed=42, **dict(REAL_SHAPES, embedding_size=embedding_size))
    model.save_pretrained(tmp / "src", safe_serialization=False)
    (tmp / "src" / "config.json").unlink()
    args = ["--model", flag] if flag else []
    zoo.convert_bare(tmp / "src" / "pytorch_model.bin", tmp / "out", model.config, ("num_attention_heads",),
                     "--to", "pt", *args)
    config = json.loads((tmp / "out" / "config.json").read_text())
    # The optional projection names no class: ElectraModel stays ElectraModel.
    assert config["model_type"] == "electra" and config["architectures"] == [cls_name]
    for key in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size", "hidden_act", "layer_norm_eps"):
        assert config[key] == getattr(model.config, key), key
    loaded = test_tf2.pt_loads_cleanly(cls_name, tmp / "out")
    inputs = inputs_for("electra", model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), RELOAD_ATOL)


