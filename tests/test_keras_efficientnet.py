"""Keras applications EfficientNet h5 (save_weights) -> HF PyTorch EfficientNetModel.

tf_keras builds the oracle file and HF transformers loads irconv's output; the two models must
give the same pooled features on the same image (NHWC for Keras, NCHW for PyTorch)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
torch = pytest.importorskip("torch")
tf_keras = pytest.importorskip("tf_keras")
transformers = pytest.importorskip("transformers")

import irconv  # noqa: E402
from irconv.models.efficientnet import block_table, variant_config  # noqa: E402
from irconv.ir.errors import UsageError  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402

POOLED_ATOL = 1e-4
# What no tensor of a bare Keras EfficientNet says, and the defaults irconv states for them
# (image_size: the variant's own; tf_keras' swish and BatchNormalization epsilon).
B0_DEFAULTS = dict(image_size=224, hidden_act="swish", batch_norm_eps=0.001)


def assert_defaults_refused(path, out, defaults=B0_DEFAULTS):
    """A bare EfficientNet file converts only with --accept-defaults (or the values): one line,
    exit 2, naming every default it would take, and nothing written to `out`."""
    assert_one_line_error(run_irconv("convert", path, out, "--to", "pt"), path.name, "no config.json",
                          *(f"{k}={v}" for k, v in defaults.items()), "--accept-defaults", "set them")
    assert not out.exists()
    with pytest.raises(UsageError, match="--accept-defaults"):
        irconv.load(path)


def randomize(model, seed: int):
    """Every weight moved off its initial value by 10% of its spread (BN statistics too, so no
    exact 0/1 is left; variances stay positive). Fully random weights make the features collapse
    to a constant, which would hide padding mistakes. The in-graph Normalization keeps mean 0 /
    variance 1 (HF leaves it to the image processor), so Keras only rescales the input by 1/255."""
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        v = w.numpy()
        if not w.name.startswith("normalization"):
            v = v + rng.standard_normal(v.shape).astype(np.float32) * 0.1 * (float(v.std()) or 1.0)
            v = np.abs(v) if "moving_variance" in w.name else v
        values.append(v)
    model.set_weights(values)
    return model


def assert_pooled_matches(pt_dir, image, want):
    """HF EfficientNetModel loads `pt_dir` strictly and pools `want`, the Keras model's output
    on the NHWC 0..255 `image` (HF gets it NCHW and rescaled, as its image processor would).
    Random weights leave little input dependence (spread ~1e-5); the error must stay well
    under it, so a wrong input layout or padding cannot hide under the 1e-4 tolerance."""
    loaded, info = transformers.EfficientNetModel.from_pretrained(pt_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    with torch.no_grad():
        got = loaded.eval()(pixel_values=torch.from_numpy(image / 255.0).permute(0, 3, 1, 2)).pooler_output
    got = got.numpy().reshape(want.shape)
    diff, spread = float(np.max(np.abs(got - want))), float(np.max(np.abs(want[0] - want[1])))
    assert diff <= POOLED_ATOL and diff <= 0.1 * spread, (diff, spread)


def keras_b0(size: int, path, seed: int = 0):
    model = randomize(tf_keras.applications.EfficientNetB0(weights=None, include_top=False, pooling="avg",
                                                           input_shape=(size, size, 3)), seed)
    model.save_weights(str(path))
    return model


# Each a full B0 in tf_keras: `make test` runs the inferred size, `make test-long` all three.
@pytest.mark.parametrize("size,with_config", [(64, False), pytest.param(72, True, marks=pytest.mark.slow),
                                              pytest.param(72, "set", marks=pytest.mark.slow)],
                         ids=["64-inferred", "72-config", "72-set"])
def test_keras_b0_to_pt_matches(size, with_config, tmp):
    """64: every stride-2 depthwise conv sees an even size, the variant comes from the names.
    72: 72 -> 36 -> 18 -> 9 -> 5, so blocks 5 (block4a, sees 9) and 11 (block6a, sees 5) pad
    symmetrically: depthwise_padding from the config's image_size, given with --config, or
    with --set image_size=72 (the padding then follows the size set)."""
    model = keras_b0(size, tmp / "b0.h5")
    if with_config == "set":
        run_irconv("convert", tmp / "b0.h5", tmp / "out", "--to", "pt", "--set", f"image_size={size}",
                   "--accept-defaults", check=True)
        config = json.loads((tmp / "out" / "config.json").read_text())
        assert config["image_size"] == size and config["depthwise_padding"] == [5, 11]
        image = np.random.default_rng(3).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
        assert_pooled_matches(tmp / "out", image, model(image, training=False).numpy())
        return
    if with_config:
        config = variant_config("b0", image_size=size)
        assert config["depthwise_padding"] == [5, 11]
        (tmp / "config.json").write_text(json.dumps(config))
        args = ["--config", tmp / "config.json"]
    else:
        # No config: the defaults are taken only when asked for, and then written out.
        assert_defaults_refused(tmp / "b0.h5", tmp / "refused")
        args = ["--accept-defaults"]
    run_irconv("convert", tmp / "b0.h5", tmp / "out", "--to", "pt", *args, check=True)
    if not with_config:
        config = json.loads((tmp / "out" / "config.json").read_text())
        assert {k: config[k] for k in B0_DEFAULTS} == B0_DEFAULTS and config["depthwise_padding"] == []
    image = np.random.default_rng(3).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    assert_pooled_matches(tmp / "out", image, model(image, training=False).numpy())


def test_keras_file_is_detected_and_variant_inferred(tmp):
    keras_b0(32, tmp / "b0.h5")
    assert irconv.detect_format(tmp / "b0.h5") == "keras"
    assert_defaults_refused(tmp / "b0.h5", tmp / "refused")
    ckpt = irconv.load(tmp / "b0.h5", accept_defaults=True)
    assert ckpt.family == "efficientnet" and ckpt.config["depth_coefficient"] == 1.0
    assert ckpt.config["hidden_dim"] == 1280 and "encoder.blocks.15.project.weight" in ckpt.tensors


@pytest.mark.parametrize("variant,counts", [("b0", [1, 2, 2, 3, 3, 4, 1]), ("b7", [4, 7, 7, 10, 10, 13, 4])])
def test_block_table_follows_depth(variant, counts):
    table = block_table(variant_config(variant))
    assert len(table) == sum(counts)
    first = np.cumsum([0] + counts[:-1])
    assert [table[n][1] for n in first] == [f"block{s + 1}a" for s in range(7)]
    assert [expands for _, _, expands in table] == [False] * counts[0] + [True] * (sum(counts) - counts[0])


def test_keras_b1_with_top_to_pt_classifier(tmp):
    """include_top adds `predictions`: the variant (B1: depth 1.1, so 23 blocks), the label count
    and the class (EfficientNetForImageClassification) come from the file. At 32x32, B1's
    block 16 (block6a) sees an even 2x2 input, where at B1's default 240 it would see 15: the
    stated default (accept_defaults) says [16], which is wrong here, so the run gives image_size
    with --config."""
    model = randomize(tf_keras.applications.EfficientNetB1(weights=None, include_top=True, classes=5,
                                                           input_shape=(32, 32, 3), classifier_activation=None), 1)
    rng = np.random.default_rng(1)
    model.save_weights(str(tmp / "b1.h5"))
    assert irconv.load(tmp / "b1.h5", accept_defaults=True).config["depthwise_padding"] == [16]
    config = dict(variant_config("b1", image_size=32), id2label={str(i): f"LABEL_{i}" for i in range(5)})
    assert config["depthwise_padding"] == []
    (tmp / "config.json").write_text(json.dumps(config))
    run_irconv("convert", tmp / "b1.h5", tmp / "out", "--to", "pt", "--config", tmp / "config.json", check=True)
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["architectures"] == ["EfficientNetForImageClassification"] and config["depth_coefficient"] == 1.1
    loaded, info = transformers.EfficientNetForImageClassification.from_pretrained(tmp / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    image = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        got = loaded.eval()(pixel_values=torch.from_numpy(image / 255.0).permute(0, 3, 1, 2)).logits.numpy()
    assert float(np.max(np.abs(got - model(image, training=False).numpy()))) <= POOLED_ATOL
