"""LayoutLM beyond the generic tf2/registry tests: real bounding boxes (with all-zero boxes,
as the generic inputs give, a swapped x/y or h/w table would not change any output), the
bare LayoutLMModel, and a weights file without a config."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

import test_tf2  # noqa: E402  (its round-trip checks, called for classes TF2_CASES leaves out)
import zoo  # noqa: E402
from conftest import run_irconv  # noqa: E402
from zoo import assert_close, inputs_for, make_pt, run_pt, run_tf  # noqa: E402


def with_boxes(inputs, max_2d, seed=3):
    """Valid boxes (x0 <= x1, y0 <= y1) spread over the 2-D tables."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, max_2d, (2,) + inputs["input_ids"].shape + (2,))
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    bbox = np.stack([lo[..., 0], lo[..., 1], hi[..., 0], hi[..., 1]], axis=-1)
    return dict(inputs, bbox=bbox)


@pytest.mark.parametrize("cls_name", ["LayoutLMForMaskedLM", "LayoutLMModel"])
def test_pt_to_tf2_and_pt_with_boxes(cls_name, tmp):
    model = make_pt("layoutlm", cls_name, seed=31)
    model.save_pretrained(tmp / "src")
    run_irconv("convert", tmp / "src", tmp / "tf2", "--to", "tf2", check=True)
    run_irconv("convert", tmp / "src", tmp / "pt", "--to", "pt", check=True)
    inputs = with_boxes(inputs_for("layoutlm", model.config), model.config.max_2d_position_embeddings)
    ref = run_pt(model, inputs)
    assert_close(ref, run_tf(test_tf2.tf_loads_cleanly(cls_name, tmp / "tf2"), inputs), test_tf2.ATOL)
    assert_close(ref, run_pt(test_tf2.pt_loads_cleanly(cls_name, tmp / "pt"), inputs), 0.0)
    src, got = load_file(tmp / "src" / "model.safetensors"), load_file(tmp / "pt" / "model.safetensors")
    assert sorted(src) == sorted(got) and all(torch.equal(src[k], got[k]) for k in src)


def test_base_class_tf2_to_pt(tmp):
    test_tf2.test_tf2_to_pt("layoutlm", "LayoutLMModel", tmp)


def test_bare_weights_file(tmp):
    model = make_pt("layoutlm", "LayoutLMForMaskedLM", seed=32, hidden_size=128, num_attention_heads=2)
    model.save_pretrained(tmp / "src", safe_serialization=False)
    (tmp / "src" / "config.json").unlink()
    # LayoutLM's 2-D tables set it apart from BERT by names alone: no --model needed.
    zoo.convert_bare(tmp / "src" / "pytorch_model.bin", tmp / "out", model.config, ("num_attention_heads",),
                     "--to", "pt")
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == "layoutlm" and config["architectures"] == ["LayoutLMForMaskedLM"]
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "max_2d_position_embeddings", "type_vocab_size", "hidden_act",
                "layer_norm_eps"):
        assert config[key] == getattr(model.config, key), key
    loaded = test_tf2.pt_loads_cleanly("LayoutLMForMaskedLM", tmp / "out")
    inputs = with_boxes(inputs_for("layoutlm", model.config), model.config.max_2d_position_embeddings)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), 0.0)
