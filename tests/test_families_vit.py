"""ViT beyond the generic tests (test_pt_families: f32 pt -> pt of every class; test_tf2 via
zoo.TF2_CASES: ViTModel and ViTForImageClassification f32 pt -> tf2 -> pt and tf2 -> pt -> tf2):
every class saved in bf16 and sharded, through the CLI and the pipe, bit for bit; bf16 into
TF2 only with --cast F32; the patch conv's layout in the h5; the masked-image head, which has
no TF class; and a weights file without its config."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")

import test_tf2  # noqa: E402
import zoo  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from zoo import assert_close, inputs_for, make_pt, run_pt, run_tf  # noqa: E402

FAMILY = "vit"
CLASSES = list(FAMILIES.get(FAMILY).architectures)
TF_CLASSES = ["ViTModel", "ViTForImageClassification"]
# Identical weights loaded twice may differ in the last float bit of the outputs (torch picks
# kernels by memory alignment); TF against PyTorch in f32 within 1e-5.
RELOAD_ATOL, TF_ATOL = 1e-6, 1e-5


@pytest.fixture(scope="module")
def bf16_sources(tmp_path_factory):
    """cls -> an HF directory of that class saved in bf16 in 20KB shards (built once)."""
    return {cls_name: zoo.save_bf16_sharded(make_pt(FAMILY, cls_name, seed=50 + n),
                                            tmp_path_factory.mktemp("vit") / cls_name)
            for n, cls_name in enumerate(CLASSES)}


@pytest.mark.parametrize("cls_name", CLASSES)
def test_bf16_sharded_through_convert_and_pipe(cls_name, bf16_sources, tmp):
    zoo.assert_pt_convert_and_pipe(FAMILY, cls_name, bf16_sources[cls_name], tmp)


@pytest.mark.parametrize("cls_name", TF_CLASSES)
def test_bf16_to_tf2_only_with_cast(cls_name, bf16_sources, tmp):
    """TF2 h5 cannot hold bf16 for transformers: refused, nothing written; --cast F32 gives
    the f32 model PyTorch computes from the same bf16 weights."""
    src = bf16_sources[cls_name]
    assert_one_line_error(run_irconv("convert", src, tmp / "tf2", "--to", "tf2"), f"{tmp / 'tf2'}: ", "BF16",
                          "--cast F32")
    assert not (tmp / "tf2").exists()
    run_irconv("convert", src, tmp / "tf2", "--to", "tf2", "--cast", "F32", check=True)
    model = test_tf2.tf_loads_cleanly(cls_name, tmp / "tf2")
    ref = getattr(transformers, cls_name).from_pretrained(src).eval()
    inputs = inputs_for(FAMILY, ref.config)
    assert_close(run_pt(ref, inputs), run_tf(model, inputs), TF_ATOL)


def test_patch_conv_layout_in_h5(tmp):
    """The patch embedding goes (out, in, h, w) -> Keras (h, w, in, out), value by value; the
    cls token and position embeddings keep their (1, ., hidden) shapes."""
    pt = make_pt(FAMILY, "ViTModel", seed=60)
    pt.save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2", check=True)
    h5 = test_tf2.h5_datasets(tmp / "tf2" / "tf_model.h5")
    state = pt.state_dict()
    kernel = h5["vit/vit/embeddings/patch_embeddings/projection/kernel:0"]
    assert np.array_equal(kernel, state["embeddings.patch_embeddings.projection.weight"].numpy().transpose(2, 3, 1, 0))
    for tf_name, pt_name in [("cls_token", "cls_token"), ("position_embeddings", "position_embeddings")]:
        assert np.array_equal(h5[f"vit/vit/embeddings/{tf_name}:0"], state[f"embeddings.{pt_name}"].numpy())


def test_masked_image_modeling_has_no_tf2(bf16_sources, tmp):
    """HF has no TF ViTForMaskedImageModeling: its mask token and decoder have no TF names."""
    proc = run_irconv("convert", bf16_sources["ViTForMaskedImageModeling"], tmp / "tf2", "--to", "tf2",
                      "--cast", "F32")
    line = assert_one_line_error(proc, f"{tmp / 'tf2'}: ", "tf2")
    assert "mask_token" in line or "heads.mim" in line, line
    assert not (tmp / "tf2").exists()


@pytest.mark.parametrize("cls_name", CLASSES)
def test_bare_weights_file(cls_name, tmp):
    """No config.json: the heads must be given; widths, depth, patch size, channels, labels, the
    pooler's width and the decoder's stride come from the shapes, the square image size and the
    activations with --accept-defaults."""
    model = make_pt(FAMILY, cls_name, seed=61)
    model.save_pretrained(tmp / "src")
    (tmp / "src" / "config.json").unlink()
    zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "out", model.config, ("num_attention_heads",),
                     "--to", "pt")
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["architectures"] == [cls_name]
    keys = ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "image_size",
            "patch_size", "num_channels", "hidden_act", "layer_norm_eps"]
    keys += {"ViTModel": ["pooler_output_size", "pooler_act"], "ViTForImageClassification": ["num_labels"],
             "ViTForMaskedImageModeling": ["encoder_stride"]}[cls_name]
    for key in keys:
        assert config.get(key, getattr(transformers.ViTConfig(), key)) == getattr(model.config, key), key
    loaded = test_tf2.pt_loads_cleanly(cls_name, tmp / "out")
    inputs = inputs_for(FAMILY, model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), RELOAD_ATOL)
