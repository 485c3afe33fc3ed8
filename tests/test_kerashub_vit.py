"""ViT as a keras-hub ViTBackbone preset, both ways, with keras_hub as the oracle (the helpers
and the one-subprocess pattern of test_kerashub; here the inputs are images: HF takes them
channels-first, the Backbone channels-last).

HF ViTModel (the base model of a ViTForImageClassification, without a pooler) -> `--to
kerashub` -> keras_hub's ViTBackbone.from_preset computes HF's last hidden state; its variables
are those keras-hub's own loader makes from the ViTForImageClassification directory (it cannot
read a bare ViTModel's unprefixed keys); back to pt is byte for byte. keras_hub's own
save_to_preset -> pt: transformers' ViTModel loads it with only its pooler missing (the
Backbone has none) and computes keras_hub's outputs. The pooler and the classifier have no place
in a Backbone: refused.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

# ViT's preset checks (their own keras_hub run) are in make test-long, to keep make test within its
# time; the other families' modules exercise the same view machinery in the fast set.
pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("keras_hub")
from safetensors.numpy import load_file  # noqa: E402

import irconv  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from test_kerashub import ORACLE, h5_datasets, hub_oracle, outputs, refused_with  # noqa: E402

CONFIG = dict(image_size=8, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=2,
              num_attention_heads=2, intermediate_size=24)
HUB_ARGS = dict(image_shape=[8, 8, 3], patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=24,
                layer_norm_epsilon=1e-12)
# Channels-last images, as the Backbone takes them.
IMAGES = np.random.default_rng(5).normal(0, 1, (2, 8, 8, 3)).astype("float32")

IMAGE_RUN = r'''
def run(backbone):
    return {"hidden": np.asarray(backbone(images), "float32")}
'''
_LOOP = "\nreport = {}\n"
assert _LOOP in ORACLE
IMAGE_ORACLE = ORACLE.replace(_LOOP, IMAGE_RUN + _LOOP).replace(
    "ids = np.array(json.loads(sys.argv[2]))", "images = np.load(sys.argv[2])")


def hf_hidden(model) -> np.ndarray:
    with torch.no_grad():
        return model(pixel_values=torch.from_numpy(IMAGES.transpose(0, 3, 1, 2))).last_hidden_state.numpy()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("kerashub-vit")
    torch.manual_seed(3)
    classifier = transformers.ViTForImageClassification(transformers.ViTConfig(**CONFIG, num_labels=5))
    with torch.no_grad():
        for p in classifier.parameters():          # norms and biases off their initial ones and zeros
            p.add_(torch.randn_like(p) * 0.05)
    classifier.save_pretrained(root / "hf-cls")
    model = classifier.vit.eval()                  # a ViTModel without a pooler
    model.save_pretrained(root / "hf-vit")
    irconv.convert(root / "hf-vit", root / "to-vit", to="kerashub")
    np.save(root / "images.npy", IMAGES)
    jobs = [{"dir": str(root / "to-vit"), "out": str(root / "to-vit.npz")},
            # keras-hub's own loader on the classifier's directory (its keys are 'vit.'-prefixed).
            {"dir": str(root / "hf-cls"), "out": str(root / "hf-cls.npz")},
            {"build": "ViTBackbone", "args": HUB_ARGS, "dir": str(root / "hub-vit"), "out": str(root / "hub-vit.npz")}]
    report = hub_oracle(jobs, root, IMAGE_ORACLE, inputs=str(root / "images.npy"))
    return root, hf_hidden(model), report


def test_hf_vit_to_kerashub_computes_hf(world):
    root, hidden, report = world
    assert "error" not in report[str(root / "to-vit")], report[str(root / "to-vit")]
    got = outputs(root / "to-vit.npz")["hidden"]
    assert got.shape == hidden.shape == (2, 5, 16)
    assert np.abs(got - hidden).max() < 1e-4, np.abs(got - hidden).max()


def test_same_variables_as_keras_hubs_own_loader(world):
    root, _, report = world
    theirs = report[str(root / "hf-cls")]
    assert "error" not in theirs, theirs
    assert report[str(root / "to-vit")]["variables"] == theirs["variables"]
    # And as its own Backbone of the same arguments.
    assert report[str(root / "hub-vit")]["variables"] == theirs["variables"]


def test_keras_hubs_vit_loader_drops_the_epsilon(world):
    """keras-hub's own converter leaves layer_norm_epsilon at 1e-6 where HF's ViT has 1e-12:
    the comparison above is sensitive enough to see that."""
    root, hidden, _ = world
    theirs = outputs(root / "hf-cls.npz")["hidden"]
    ours = outputs(root / "to-vit.npz")["hidden"]
    assert np.abs(theirs - hidden).max() > 10 * max(np.abs(ours - hidden).max(), 1e-7)


def test_hf_vit_to_kerashub_to_pt_is_bit_exact(world, tmp_path):
    root, _, _ = world
    irconv.convert(root / "to-vit", tmp_path / "back", to="pt")
    ref, got = load_file(root / "hf-vit" / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    assert sorted(ref) == sorted(got)
    for name, tensor in ref.items():
        assert got[name].dtype == tensor.dtype and got[name].tobytes() == tensor.tobytes(), name
    config = json.loads((tmp_path / "back" / "config.json").read_text())
    source = json.loads((root / "hf-vit" / "config.json").read_text())
    for key in (*CONFIG, "layer_norm_eps", "hidden_act", "qkv_bias", "hidden_dropout_prob"):
        assert config[key] == source[key], key


def test_keras_hub_vit_preset_to_pt(world, tmp_path):
    root, _, report = world
    assert "error" not in report[str(root / "hub-vit")], report[str(root / "hub-vit")]
    irconv.convert(root / "hub-vit", tmp_path / "pt", to="pt")
    model, info = transformers.ViTModel.from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"], info
    assert not info["unexpected_keys"] and not info["mismatched_keys"], info
    ref = outputs(root / "hub-vit.npz")["hidden"]
    got = hf_hidden(model.eval())
    assert np.abs(ref - got).max() < 1e-4, np.abs(ref - got).max()
    irconv.convert(tmp_path / "pt", tmp_path / "hub", to="kerashub")
    assert h5_datasets(root / "hub-vit" / "model.weights.h5") == h5_datasets(tmp_path / "hub" / "model.weights.h5")


def test_a_pooler_and_a_classifier_are_refused(tmp_path):
    torch.manual_seed(0)
    transformers.ViTModel(transformers.ViTConfig(**CONFIG)).save_pretrained(tmp_path / "pooled")
    proc = run_irconv("convert", tmp_path / "pooled", tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, "ViTBackbone holds the backbone only", "'pooler.dense.weight'")
    assert not (tmp_path / "out").exists()
    transformers.ViTForImageClassification(transformers.ViTConfig(**CONFIG)).save_pretrained(tmp_path / "cls")
    proc = run_irconv("convert", tmp_path / "cls", tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, "ViTBackbone holds the backbone only", "'heads.classifier.dense.weight'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change,needle", [
    ({"hidden_act": "gelu_new"}, "hidden_act"),
    ({"qkv_bias": False}, "qkv_bias"),
    ({"layer_norm_eps": None}, "--set layer_norm_eps="),
    ({"image_size": 10}, "image_size=10"),
], ids=["act", "no-qkv-bias", "no-eps", "partial-patches"])
def test_what_vit_backbone_cannot_compute_is_refused(change, needle, world, tmp_path):
    refused_with(world, tmp_path, "vit", change, needle)
