"""LXMERT beyond the generic tf2/registry tests: the pretraining heads that config flags turn
off (no QA head, no attribute decoder) through tf2 both ways, the visual feature encoder's
names on both sides, and a weights file without a config."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")

import test_tf2  # noqa: E402
import zoo  # noqa: E402
from conftest import run_irconv  # noqa: E402

FEWER_HEADS = dict(task_qa=False, visual_attr_loss=False)


@pytest.fixture
def fewer_heads(monkeypatch):
    config_cls, kwargs = zoo.CONFIGS["lxmert"]
    monkeypatch.setitem(zoo.CONFIGS, "lxmert", (config_cls, dict(kwargs, **FEWER_HEADS)))


def test_fewer_heads_pt_to_tf2(fewer_heads, tmp):
    test_tf2.test_pt_to_tf2("lxmert", "LxmertForPreTraining", tmp)
    names = set(test_tf2.h5_datasets(tmp / "tf2" / "tf_model.h5"))
    assert not any(n.startswith("answer_head/") or "decoder_dict.attr" in n for n in names)
    assert "obj_predict_head/obj_predict_head/decoder_dict.obj/kernel:0" in names


def test_fewer_heads_tf2_to_pt(fewer_heads, tmp):
    test_tf2.test_tf2_to_pt("lxmert", "LxmertForPreTraining", tmp)


def test_visual_feature_encoder_names(tmp):
    """The visual feature encoder (a sub-layer of the encoder) keeps its nesting both ways."""
    pt = zoo.make_pt("lxmert", "LxmertModel", seed=3)
    pt.save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2", check=True)
    h5 = test_tf2.h5_datasets(tmp / "tf2" / "tf_model.h5")
    sd = pt.state_dict()
    for fc in ("visn_fc", "box_fc"):
        kernel = h5[f"lxmert/lxmert/encoder/visn_fc/{fc}/kernel:0"]
        assert (kernel == sd[f"encoder.visn_fc.{fc}.weight"].numpy().T).all()


def test_bare_weights_file(tmp):
    """No config.json: layer counts per stream and the heads present become the config; the
    attention heads are in no tensor, so they are refused until given."""
    pt = zoo.make_pt("lxmert", "LxmertForPreTraining", seed=4, **FEWER_HEADS)
    pt.save_pretrained(tmp / "pt")
    (tmp / "pt" / "config.json").unlink()
    zoo.convert_bare(tmp / "pt" / "model.safetensors", tmp / "out", pt.config, ("num_attention_heads",), "--to", "pt")
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["architectures"] == ["LxmertForPreTraining"]
    assert (config["l_layers"], config["x_layers"], config["r_layers"]) == (2, 1, 1)
    assert config["task_qa"] is False and config["visual_attr_loss"] is False
    assert config["num_object_labels"] == 7
    assert (config["num_attention_heads"], config["hidden_act"]) == (4, "gelu")
    loaded = test_tf2.pt_loads_cleanly("LxmertForPreTraining", tmp / "out")
    inputs = zoo.inputs_for("lxmert", pt.config)
    zoo.assert_close(zoo.run_pt(pt, inputs), zoo.run_pt(loaded, inputs), 0.0)
