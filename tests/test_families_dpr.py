"""DPR beyond the generic tf2/registry tests: every class pt -> pt, weights files without a
config (the class told by where the encoder sits), the optional encode_proj (projection_dim
> 0) absent and present, and the pooler that facebook's released checkpoints still carry."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

import test_tf2  # noqa: E402  (its round-trip checks, called for cases TF2_CASES leaves out)
import zoo  # noqa: E402
import irconv  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from zoo import assert_close, inputs_for, make_pt, run_pt, run_tf  # noqa: E402

CLASSES = list(FAMILIES.get("dpr").architectures)
ENCODERS = ["DPRContextEncoder", "DPRQuestionEncoder"]
PREFIX = {"DPRContextEncoder": "ctx_encoder.", "DPRQuestionEncoder": "question_encoder.",
          "DPRReader": "span_predictor.encoder."}
# Shapes of a real release: 64 dims per head (dpr-*-base: BERT-base).
REAL_SHAPES = dict(hidden_size=128, num_attention_heads=2)


@pytest.fixture(params=[0, 8], ids=["no-projection", "projection"])
def projection_dim(request, monkeypatch):
    """Runs the test with zoo's dpr config at this projection_dim."""
    config_cls, kwargs = zoo.CONFIGS["dpr"]
    monkeypatch.setitem(zoo.CONFIGS, "dpr", (config_cls, dict(kwargs, projection_dim=request.param)))
    if request.param:
        monkeypatch.setattr(transformers.models.dpr.modeling_tf_dpr.TFDPREncoderLayer, "build", _build_with_shape)
    return request.param


def _build_with_shape(self, input_shape=None):
    """TFDPREncoderLayer.build as transformers 4.57 has it, but giving encode_proj its input
    width: it calls encode_proj.build(None), so no TF DPR class with projection_dim > 0 can
    be built at all. The weight names are unchanged (same name scopes)."""
    import tensorflow as tf
    if self.built:
        return
    self.built = True
    with tf.name_scope(self.bert_model.name):
        self.bert_model.build(None)
    if getattr(self, "encode_proj", None) is not None:
        with tf.name_scope(self.encode_proj.name):
            self.encode_proj.build([None, None, self.bert_model.config.hidden_size])


def same_tensors(ref: dict, got: dict):
    assert sorted(ref) == sorted(got)
    for k in ref:
        assert torch.equal(ref[k].view(torch.uint8), got[k].view(torch.uint8)), k


def assert_same_outputs(cls_name, model, src, out):
    """What irconv wrote loads strictly and computes what the source model does. The bytes
    are compared exactly elsewhere; here the tolerance is float noise, because DPRReader's
    one-wide relevance head gives results ~1e-8 apart between loads of identical bytes
    (transformers' own file included), so 0.0 would test torch, not irconv."""
    loaded = test_tf2.pt_loads_cleanly(cls_name, out)
    inputs = inputs_for("dpr", model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), test_tf2.ATOL)


@pytest.mark.parametrize("cls_name", CLASSES)
def test_bare_weights_file(cls_name, projection_dim, tmp):
    """No config.json: the encoder's prefix names the class (the two encoders have the same
    parts), the shapes give the config, projection_dim included."""
    if cls_name == "DPRReader" and projection_dim:
        pytest.skip("HF's DPRReader cannot run with projection_dim > 0 (its heads take the projected width)")
    model = make_pt("dpr", cls_name, seed=62, **REAL_SHAPES)
    model.save_pretrained(tmp / "src")
    names = load_file(tmp / "src" / "model.safetensors")
    assert all(n.startswith(PREFIX[cls_name]) or n.startswith("span_predictor.qa_") for n in names)
    (tmp / "src" / "config.json").unlink()
    zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "out", model.config, ("num_attention_heads",),
                     "--to", "pt")
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == "dpr" and config["architectures"] == [cls_name]
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size", "projection_dim", "hidden_act", "layer_norm_eps"):
        assert config[key] == getattr(model.config, key), key
    assert_same_outputs(cls_name, model, tmp / "src", tmp / "out")


@pytest.mark.parametrize("cls_name", ENCODERS)
def test_projection_through_tf2_both_ways(cls_name, projection_dim, tmp):
    """encode_proj sits beside bert_model inside the class's encoder, in PyTorch and TF2."""
    test_tf2.test_pt_to_tf2("dpr", cls_name, tmp / "a")
    test_tf2.test_tf2_to_pt("dpr", cls_name, tmp / "b")
    names = test_tf2.h5_datasets(tmp / "a" / "tf2" / "tf_model.h5")
    proj = [n for n in names if "encode_proj" in n]
    head = PREFIX[cls_name].rstrip(".")
    assert proj == ([f"{head}/{head}/encode_proj/bias:0", f"{head}/{head}/encode_proj/kernel:0"]
                    if projection_dim else [])


def released_style_checkpoint(cls_name, directory):
    """A pytorch_model.bin as facebook's dpr-*-single-nq-base files are: BertModel's pooler
    (which HF's DPR never uses) and the position_ids buffer saved with the weights."""
    model = make_pt("dpr", cls_name, seed=63)
    state = dict(model.state_dict())
    prefix = PREFIX[cls_name] + "bert_model."
    g = torch.Generator().manual_seed(63)
    state[prefix + "pooler.dense.weight"] = torch.randn(32, 32, generator=g)
    state[prefix + "pooler.dense.bias"] = torch.randn(32, generator=g)
    state[prefix + "embeddings.position_ids"] = torch.arange(64)[None]
    directory.mkdir()
    torch.save(state, directory / "pytorch_model.bin")
    model.config.architectures = [cls_name]
    model.config.to_json_file(directory / "config.json")
    return model, state


@pytest.mark.parametrize("cls_name", ENCODERS)
def test_released_checkpoint_keeps_its_pooler(cls_name, tmp):
    """The pooler is learned data: kept (bit-exact) through pt and tf2, though transformers'
    DPR classes leave it unused; the position_ids buffer is dropped."""
    model, state = released_style_checkpoint(cls_name, tmp / "src")
    pooler = {k: v for k, v in state.items() if ".pooler." in k}
    irconv.convert(tmp / "src", tmp / "pt", to="pt")
    got = load_file(tmp / "pt" / "model.safetensors")
    assert not any(k.endswith("position_ids") for k in got)
    same_tensors({k: v for k, v in state.items() if not k.endswith("position_ids")}, got)

    irconv.convert(tmp / "pt", tmp / "tf2", to="tf2")
    tfm = getattr(transformers, "TF" + cls_name).from_pretrained(tmp / "tf2")   # pooler: unexpected, unused
    inputs = inputs_for("dpr", model.config)
    assert_close(run_pt(model, inputs), run_tf(tfm, inputs), test_tf2.ATOL)
    irconv.convert(tmp / "tf2", tmp / "back", to="pt")
    back = load_file(tmp / "back" / "model.safetensors")
    same_tensors(pooler, {k: v for k, v in back.items() if ".pooler." in k})
    same_tensors(got, back)


@pytest.mark.parametrize("cls_name", CLASSES)
def test_bare_h5_names_its_class(cls_name, tmp):
    """A tf_model.h5 without config.json: the TF2 encoder scope (ctx_encoder/, question_encoder/,
    span_predictor/encoder/) names the class, as the PyTorch prefix does."""
    tfm = zoo.make_tf("dpr", cls_name, seed=64, **REAL_SHAPES)
    tfm.save_pretrained(tmp / "tf2")
    (tmp / "tf2" / "config.json").unlink()
    zoo.convert_bare(tmp / "tf2" / "tf_model.h5", tmp / "pt", tfm.config, ("num_attention_heads",), "--to", "pt")
    config = json.loads((tmp / "pt" / "config.json").read_text())
    assert config["model_type"] == "dpr" and config["architectures"] == [cls_name]
    loaded = test_tf2.pt_loads_cleanly(cls_name, tmp / "pt")
    inputs = inputs_for("dpr", tfm.config)
    assert_close(run_tf(tfm, inputs), run_pt(loaded, inputs), test_tf2.ATOL)
