"""wav2vec2 beyond the generic tf2/registry tests: the config variants that change which
tensors exist (layer-normed conv stack with conv biases and the pre-LN encoder of the large
releases; no masked_spec_embed), through tf2 both ways, and the layouts of the conv and
weight-norm tensors in the h5 against what transformers' TF class holds."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")

import test_tf2  # noqa: E402
import zoo  # noqa: E402
from conftest import run_irconv  # noqa: E402

VARIANTS = {
    # wav2vec2-large-lv60: LayerNorm after every conv, conv biases, pre-LN encoder layers.
    "layer-norm-stack": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
    # Fine-tuned without SpecAugment: neither framework builds masked_spec_embed.
    "no-masking": dict(mask_time_prob=0.0, mask_feature_prob=0.0),
}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request, monkeypatch):
    config_cls, kwargs = zoo.CONFIGS["wav2vec2"]
    monkeypatch.setitem(zoo.CONFIGS, "wav2vec2", (config_cls, dict(kwargs, **VARIANTS[request.param])))
    return request.param


def test_variant_pt_to_tf2(variant, tmp):
    test_tf2.test_pt_to_tf2("wav2vec2", "Wav2Vec2Model", tmp)


def test_variant_tf2_to_pt(variant, tmp):
    test_tf2.test_tf2_to_pt("wav2vec2", "Wav2Vec2Model", tmp)


def test_variant_tensors_present(monkeypatch, tmp):
    """The layer-norm stack has a norm and a bias on every conv; masking off drops the embed."""
    config_cls, kwargs = zoo.CONFIGS["wav2vec2"]
    monkeypatch.setitem(zoo.CONFIGS, "wav2vec2", (config_cls, dict(kwargs, **VARIANTS["layer-norm-stack"],
                                                                   mask_time_prob=0.0)))
    pt = zoo.make_pt("wav2vec2", "Wav2Vec2Model", seed=3)
    pt.save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2", check=True)
    names = set(test_tf2.h5_datasets(tmp / "tf2" / "tf_model.h5"))
    for i in range(2):
        assert f"wav2vec2/wav2vec2/feature_extractor/conv_layers.{i}/layer_norm/gamma:0" in names
        assert f"wav2vec2/wav2vec2/feature_extractor/conv_layers.{i}/conv/bias:0" in names
    assert not any("masked_spec_embed" in n for n in names)


def test_conv_and_weight_norm_layouts(tmp):
    """Conv kernels go (out, in, k) -> (k, in, out); the weight-norm g (1, 1, k) -> (k, 1, 1),
    v unchanged: checked against the PyTorch tensors, value by value."""
    pt = zoo.make_pt("wav2vec2", "Wav2Vec2Model", seed=4)
    pt.save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2", check=True)
    h5 = test_tf2.h5_datasets(tmp / "tf2" / "tf_model.h5")
    sd = {k: v.numpy() for k, v in pt.state_dict().items()}
    root = "wav2vec2/wav2vec2/"
    conv = sd["feature_extractor.conv_layers.1.conv.weight"]
    assert (h5[root + "feature_extractor/conv_layers.1/conv/kernel:0"] == conv.transpose(2, 1, 0)).all()
    g = sd["encoder.pos_conv_embed.conv.parametrizations.weight.original0"]
    assert g.shape == (1, 1, 16)
    assert (h5[root + "encoder/pos_conv_embed/conv/weight_g:0"] == g.transpose(2, 1, 0)).all()
    v = sd["encoder.pos_conv_embed.conv.parametrizations.weight.original1"]
    assert (h5[root + "encoder/pos_conv_embed/conv/weight_v:0"] == v).all()


def test_bare_weights_file(tmp):
    """No config.json: the family comes from the names, the conv stack from the kernel shapes,
    and transformers loads the result strictly. The heads and the conv strides are in no
    tensor: refused until given, then the outputs are the model's."""
    pt = zoo.make_pt("wav2vec2", "Wav2Vec2Model", seed=5)
    pt.save_pretrained(tmp / "pt")
    (tmp / "pt" / "config.json").unlink()
    zoo.convert_bare(tmp / "pt" / "model.safetensors", tmp / "out", pt.config, ("num_attention_heads", "conv_stride"),
                     "--to", "pt")
    loaded = test_tf2.pt_loads_cleanly("Wav2Vec2Model", tmp / "out")
    assert list(loaded.config.conv_dim) == [8, 8] and list(loaded.config.conv_kernel) == [8, 8]
    assert list(loaded.config.conv_stride) == [4, 4] and loaded.config.num_attention_heads == 2
    inputs = zoo.inputs_for("wav2vec2", pt.config)
    zoo.assert_close(zoo.run_pt(pt, inputs), zoo.run_pt(loaded, inputs), 0.0)


def test_old_weight_norm_names_are_read(tmp):
    """Most wav2vec2 files on the hub predate torch's parametrized weight_norm and store the
    positional conv as `weight_g`/`weight_v`, which transformers renames on load: irconv reads
    them too and writes today's names, values untouched."""
    from safetensors.numpy import load_file, save_file
    pt = zoo.make_pt("wav2vec2", "Wav2Vec2Model", seed=6)
    pt.save_pretrained(tmp / "pt")
    tensors = load_file(tmp / "pt" / "model.safetensors")
    old = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                            "weight_v"): v for k, v in tensors.items()}
    assert any(k.endswith("weight_g") for k in old)
    save_file(old, tmp / "pt" / "model.safetensors", metadata={"format": "pt"})
    run_irconv("convert", tmp / "pt", tmp / "out", "--to", "pt", check=True)
    test_tf2.pt_loads_cleanly("Wav2Vec2Model", tmp / "out")
    written = load_file(tmp / "out" / "model.safetensors")
    assert written.keys() == tensors.keys()
    for name, value in tensors.items():
        assert written[name].tobytes() == value.tobytes(), name
