"""ALIGN: a Keras model like the original release (convert_align_tf_to_hf.py's input) -> HF AlignModel.

The Keras model is assembled here as the seed describes the original: a keras.applications
EfficientNet image tower (B0 here, cut after its last block as HF's AlignVisionModel is, then
average-pooled), transformers' TFBertModel as the text tower, a `dense` projection of the
text [CLS] state and a `temperature` variable of the model itself. tf_keras saves it; HF
AlignModel loads irconv's output strictly and must give the same image and text embeddings."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")
transformers = pytest.importorskip("transformers")

from conftest import assert_one_line_error, run_irconv  # noqa: E402
from test_keras_efficientnet import randomize  # noqa: E402

EMBED_ATOL = 1e-4
SIZE = 64
# 4 heads of 16: no tensor shape shows the count, so a bare Keras file needs it given (--set or
# --config), and outputs of any other count would differ.
TEXT = dict(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64)


class KerasAlign(tf_keras.Model):
    """The original ALIGN's shape: two encoders, a projection layer named `dense` and a model
    variable `temperature` (stored in the h5's top_level_model_weights)."""

    def __init__(self, image_encoder, text_encoder, projection_dim: int):
        super().__init__(name="align")
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.dense = tf_keras.layers.Dense(projection_dim, name="dense")
        self.dense(tf.zeros((1, text_encoder.config.hidden_size)))     # built outside the model's scope
        self.temperature = self.add_weight(name="temperature", shape=(),
                                           initializer=tf_keras.initializers.Constant(0.07))

    def call(self, inputs):
        image, ids = inputs
        return self.image_encoder(image), self.dense(self.text_encoder(ids).last_hidden_state[:, 0])


def keras_align(text: dict, seed: int = 0) -> KerasAlign:
    tf_keras.backend.clear_session()
    base = tf_keras.applications.EfficientNetB0(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    pooled = tf_keras.layers.GlobalAveragePooling2D()(base.get_layer("block7a_project_bn").output)
    image_encoder = tf_keras.Model(base.input, pooled, name="image_encoder")
    bert = transformers.TFBertModel(transformers.BertConfig(**text))
    bert(bert.dummy_inputs)
    model = KerasAlign(image_encoder, bert, projection_dim=320)    # = the image tower's width
    model((np.zeros((1, SIZE, SIZE, 3), np.float32), np.zeros((1, 5), np.int32)))
    randomize(model, seed)
    model.temperature.assign(0.07)
    return model


def embeddings_match(model: KerasAlign, out_dir) -> "transformers.AlignModel":
    loaded, info = transformers.AlignModel.from_pretrained(out_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    loaded.eval()
    rng = np.random.default_rng(5)
    image = rng.uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    ids = rng.integers(0, TEXT["vocab_size"], (2, 9)).astype(np.int32)
    want_image, want_text = (t.numpy() for t in model((image, ids), training=False))
    with torch.no_grad():
        # Keras rescales by 1/255 in the graph (its Normalization is identity here); HF leaves
        # that to the image processor.
        got_image = loaded.get_image_features(pixel_values=torch.from_numpy(image / 255.0).permute(0, 3, 1, 2))
        got_text = loaded.get_text_features(input_ids=torch.from_numpy(ids.astype(np.int64)))
    diff = float(np.max(np.abs(got_image.numpy() - want_image)))
    spread = float(np.max(np.abs(want_image[0] - want_image[1])))
    assert diff <= EMBED_ATOL and diff <= 0.1 * spread, (diff, spread)
    np.testing.assert_allclose(got_text.numpy(), want_text, atol=EMBED_ATOL, rtol=0)
    assert float(loaded.temperature.detach()) == pytest.approx(0.07)
    return loaded


def test_keras_align_h5_to_pt_infers_the_config(tmp):
    """No config: B0 from the tower's block table, hidden_dim from its last block, the text
    config from the BERT shapes, projection_dim from `dense`, as get_align_config sets them.
    The text head count no shape shows: without it (and without --accept-defaults for the
    rest) the conversion stops with one line saying what to give."""
    model = keras_align(TEXT)
    model.save_weights(str(tmp / "align.h5"))
    sets = ["--set", f"text_config.num_attention_heads={TEXT['num_attention_heads']}",
            "--set", f"vision_config.image_size={SIZE}"]
    assert_one_line_error(run_irconv("convert", tmp / "align.h5", tmp / "out", "--to", "pt"), "no config.json",
                          "--set text_config.num_attention_heads=", "vision_config.image_size=224",
                          "text_config.hidden_act=gelu", "--accept-defaults")
    assert_one_line_error(run_irconv("convert", tmp / "align.h5", tmp / "out", "--to", "pt", *sets),
                          "vision_config.hidden_act=swish", "text_config.layer_norm_eps=1e-12", "--accept-defaults")
    assert not (tmp / "out").exists()
    # The defaults left are the values tf_keras and TFBertModel use.
    run_irconv("convert", tmp / "align.h5", tmp / "out", "--to", "pt", *sets, "--accept-defaults", check=True)
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["architectures"] == ["AlignModel"] and config["projection_dim"] == 320
    assert config["vision_config"]["hidden_dim"] == 320 and config["vision_config"]["depth_coefficient"] == 1.0
    assert config["vision_config"]["image_size"] == SIZE and config["vision_config"]["depthwise_padding"] == []
    assert config["text_config"]["num_hidden_layers"] == 2 and config["text_config"]["vocab_size"] == 99
    assert config["text_config"]["num_attention_heads"] == TEXT["num_attention_heads"]
    embeddings_match(model, tmp / "out")


def test_keras_align_tf_checkpoint_to_pt_with_config(tmp):
    """save_weights(prefix): a TF-format checkpoint, names from its object graph; the AlignConfig
    (here with 4 heads, which no tensor shape shows) comes with --config."""
    model = keras_align(TEXT, seed=1)
    model.save_weights(str(tmp / "ckpt" / "align"))
    config = transformers.AlignConfig(text_config=TEXT, projection_dim=320, vision_config=dict(
        width_coefficient=1.0, depth_coefficient=1.0, image_size=SIZE, hidden_dim=320, depthwise_padding=[]))
    (tmp / "config.json").write_text(json.dumps(config.to_dict()))
    run_irconv("convert", tmp / "ckpt" / "align", tmp / "out", "--to", "pt", "--config", tmp / "config.json",
               check=True)
    assert json.loads((tmp / "out" / "config.json").read_text())["text_config"]["num_attention_heads"] == 4
    embeddings_match(model, tmp / "out")
