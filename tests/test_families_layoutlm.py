"""LayoutLM beyond the generic tf2/registry tests: real bounding boxes (with all-zero boxes,
as the generic inputs give, a swapped x/y or h/w table would not change any output), and the
bare LayoutLMModel (a weights file without a config: test_families_registry.py)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

import test_tf2  # noqa: E402  (its round-trip checks, called for classes TF2_CASES leaves out)
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


