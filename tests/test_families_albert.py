"""ALBERT beyond the generic tf2/registry tests: every class pt -> pt, the bare AlbertModel
through tf2, shared-layer layouts (groups x inner layers, never num_hidden_layers), the MLM
head's two TF bias variables and the inferred sizes of the releases (bare weights files and old
checkpoints' buffers: test_families_registry.py)."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

import irconv  # noqa: E402
import test_tf2  # noqa: E402  (its round-trip checks, called for cases TF2_CASES leaves out)
import zoo  # noqa: E402
from conftest import run_irconv  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from irconv.ir.dtypes import DTYPES  # noqa: E402
from irconv.ir.tensor import TensorSpec  # noqa: E402
from zoo import assert_close, inputs_for, make_pt, make_tf, run_pt, run_tf  # noqa: E402

CLASSES = list(FAMILIES.get("albert").architectures)
# Weights are compared bit for bit; outputs of bit-identical weights may still differ in the
# last float bit once reloaded (torch picks kernels by memory alignment; transformers' own
# save + from_pretrained does it too), so outputs get a float32-rounding tolerance.
RELOAD_ATOL = 1e-7
# (num_hidden_layers, num_hidden_groups, inner_group_num): zoo's 4 passes over 2 groups of 2
# layers, and the released models' 1 group of 1 layer run 3 times.
LAYOUTS = {"2x2": (4, 2, 2), "1x1": (3, 1, 1)}


@pytest.fixture(params=list(LAYOUTS), ids=list(LAYOUTS))
def layout(request, monkeypatch):
    """Runs the test with zoo's albert config at this layer layout."""
    layers, groups, inner = LAYOUTS[request.param]
    config_cls, kwargs = zoo.CONFIGS["albert"]
    monkeypatch.setitem(zoo.CONFIGS, "albert", (config_cls, dict(
        kwargs, num_hidden_layers=layers, num_hidden_groups=groups, inner_group_num=inner)))
    return groups, inner


def stored_layers(names) -> set[tuple[int, int]]:
    out = set()
    for n in names:
        parts = n.replace("/", ".").replace("_._", ".").split(".")
        if "albert_layer_groups" in parts:
            g = parts.index("albert_layer_groups")
            out.add((int(parts[g + 1]), int(parts[g + 3])))
    return out


@pytest.mark.parametrize("cls_name", CLASSES)
def test_pt_to_pt_every_class(cls_name, layout, tmp):
    model = make_pt("albert", cls_name, seed=51)
    model.save_pretrained(tmp / "src")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    ref, got = load_file(tmp / "src" / "model.safetensors"), load_file(tmp / "out" / "model.safetensors")
    assert sorted(ref) == sorted(got)
    for k in ref:
        assert torch.equal(ref[k].view(torch.uint8), got[k].view(torch.uint8)), k
    groups, inner = layout
    assert stored_layers(got) == {(g, j) for g in range(groups) for j in range(inner)}
    loaded = test_tf2.pt_loads_cleanly(cls_name, tmp / "out")
    inputs = inputs_for("albert", model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), RELOAD_ATOL)
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == "albert" and config["architectures"] == [cls_name]


@pytest.mark.parametrize("cls_name", CLASSES)
def test_through_tf2_both_ways(cls_name, layout, tmp):
    """AlbertModel's PyTorch keys are bare, TF2's sit under 'albert/'; both layer layouts."""
    test_tf2.test_pt_to_tf2("albert", cls_name, tmp / "a")
    test_tf2.test_tf2_to_pt("albert", cls_name, tmp / "b")


def test_pt_to_tf2_writes_the_bias_under_both_tf_names(tmp):
    """TF's forward adds predictions/decoder/bias; its predictions/bias is written with the
    same values, as transformers' own PT -> TF loading does (both load predictions.bias)."""
    model = make_pt("albert", "AlbertForPreTraining", seed=52)
    model.save_pretrained(tmp / "src")
    irconv.convert(tmp / "src", tmp / "tf2", to="tf2")
    h5 = test_tf2.h5_datasets(tmp / "tf2" / "tf_model.h5")
    bias = model.predictions.bias.detach().numpy()
    for name in ("predictions/predictions/bias:0", "predictions/predictions/decoder/bias:0"):
        assert h5[name].tobytes() == bias.tobytes(), name
    # ... and transformers' own PT -> TF conversion agrees, variable for variable. From a
    # pytorch_model.bin, that is: model.safetensors omits the tied predictions.decoder.bias,
    # and transformers 4.57's from_pt then leaves decoder/bias at zero (wrong logits).
    model.save_pretrained(tmp / "src-bin", safe_serialization=False)
    ref = transformers.TFAlbertForPreTraining.from_pretrained(tmp / "src-bin", from_pt=True)
    ref.save_pretrained(tmp / "hf-tf2")
    want = test_tf2.h5_datasets(tmp / "hf-tf2" / "tf_model.h5")
    assert sorted(want) == sorted(h5)
    for k in want:
        assert test_tf2.same_bytes(want[k], h5[k]), k


def test_tf2_decoder_bias_is_the_one_pytorch_gets(tmp):
    """A model trained in TF never updates predictions/bias (the forward does not read it; it
    stays at its zero init): the PyTorch bias must come from predictions/decoder/bias."""
    tfm = make_tf("albert", "AlbertForPreTraining", seed=53)
    unused = next(v for v in tfm.weights if v.name.endswith("/predictions/bias:0"))
    used = next(v for v in tfm.weights if v.name.endswith("/predictions/decoder/bias:0"))
    unused.assign(tf.zeros_like(unused))
    tfm.save_pretrained(tmp / "tf2")
    ckpt = irconv.load(tmp / "tf2")
    assert "predictions/bias" in ckpt.source["skipped"]
    irconv.convert(tmp / "tf2", tmp / "pt", to="pt")
    model = test_tf2.pt_loads_cleanly("AlbertForPreTraining", tmp / "pt")
    assert model.predictions.bias.detach().numpy().tobytes() == used.numpy().tobytes()
    inputs = inputs_for("albert", tfm.config)
    ref = run_tf(tfm, inputs)
    assert_close(ref, run_pt(model, inputs), test_tf2.ATOL)
    # Back to TF: the never-read variable now holds the bias too; the outputs are unchanged.
    irconv.convert(tmp / "pt", tmp / "tf2b", to="tf2")
    assert_close(ref, run_tf(test_tf2.tf_loads_cleanly("AlbertForPreTraining", tmp / "tf2b"), inputs), 0.0)


# Shapes of a real model: 64 dims per head, the 12 passes of every ALBERT but two.
REAL_SHAPES = dict(hidden_size=128, num_attention_heads=2, num_hidden_layers=12)


@pytest.mark.parametrize("hidden,layers,heads", [
    (768, 12, 12), (1024, 24, 16), (2048, 24, 16), (4096, 12, 64),   # base, large, xlarge, xxlarge
    (256, 12, 4),                                                    # no release: 12 passes, 64 per head
])
def test_inferred_sizes_follow_the_releases(hidden, layers, heads):
    f32 = DTYPES["F32"]
    specs = {"embeddings.word.weight": TensorSpec("w", f32, (30000, 128)),
             "embeddings.position.weight": TensorSpec("p", f32, (512, 128)),
             "embeddings.token_type.weight": TensorSpec("t", f32, (2, 128)),
             "embeddings_project.dense.weight": TensorSpec("m", f32, (hidden, 128)),
             "encoder.groups.0.layers.0.ffn.up.weight": TensorSpec("f", f32, (4 * hidden, hidden))}
    config, notes = FAMILIES.get("albert").infer_config(specs, {"num_hidden_groups": 1, "inner_group_num": 1})
    assert (config["num_hidden_layers"], config["num_attention_heads"]) == (layers, heads)
    assert config["embedding_size"] == 128 and config["intermediate_size"] == 4 * hidden
    assert notes and "guess" in notes[0]


