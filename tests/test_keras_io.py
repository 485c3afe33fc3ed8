"""Keras in and out: tf_keras EfficientNetB0 files in every container (h5 weights, full-model
h5, TF-format checkpoint) into irconv, and irconv's Keras h5 / tf1 / tf2 outputs back into
tf_keras, whose own loaders are the oracles (`load_weights` by topology for h5, by variable
name for a name-based TF checkpoint), never irconv's readers."""
from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")
transformers = pytest.importorskip("transformers")

import irconv  # noqa: E402
from conftest import assert_one_line_error, run_irconv, run_pipe  # noqa: E402
from test_keras_efficientnet import assert_pooled_matches, randomize  # noqa: E402

SIZE = 64


def bare(size: int = SIZE) -> list[str]:
    """What a bare B0 file's tensors do not say, as its model has it: the image size, given, and
    tf_keras' swish and BatchNormalization epsilon, which are the stated defaults."""
    return ["--set", f"image_size={size}", "--accept-defaults"]


def bare_api(size: int = SIZE) -> dict:
    """bare() for irconv.load / irconv.convert."""
    return dict(overrides={"image_size": size}, accept_defaults=True)


def b0(seed: int = 0, size: int = SIZE):
    """A randomized EfficientNetB0 feature extractor. The session is cleared first so its
    auto-named layers are 'normalization', not 'normalization_3': a TF-format checkpoint
    names variables after them, and a name-based restore matches by those names."""
    tf_keras.backend.clear_session()
    return randomize(tf_keras.applications.EfficientNetB0(weights=None, include_top=False, pooling="avg",
                                                          input_shape=(size, size, 3)), seed)


def with_statistics(model, seed: int):
    """The Normalization layer given real statistics (as in imagenet and ALIGN files), so a
    round trip that dropped or re-derived them would show."""
    rng = np.random.default_rng(seed)
    layer = model.get_layer("normalization")
    layer.set_weights([rng.uniform(0.2, 0.6, 3).astype(np.float32), rng.uniform(0.05, 0.1, 3).astype(np.float32),
                       np.int64(1281167)])
    return model


def image(seed: int = 3, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)).astype(np.float32)


def weights_by_name(model) -> dict[str, np.ndarray]:
    return {w.name[:-2]: w.numpy() for w in model.weights}


def assert_same_weights(model, want: dict[str, np.ndarray]):
    """Every weight bit-identical (bytes, so -0.0 and NaN count), none missing."""
    got = weights_by_name(model)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        assert got[name].dtype == value.dtype and got[name].tobytes() == value.tobytes(), name


def assert_pt_matches_keras(model, pt_dir):
    """HF EfficientNetModel loads pt_dir strictly and pools the same features as `model`."""
    pixels = image()
    assert_pooled_matches(pt_dir, pixels, model(pixels, training=False).numpy())


def assert_keras_loads(original, h5):
    """A fresh EfficientNetB0 takes `h5` by topology (tf_keras' default) and then equals
    `original`: every weight bit for bit, and so its outputs."""
    fresh = b0(seed=9)
    fresh.load_weights(str(h5))
    assert_same_weights(fresh, weights_by_name(original))
    pixels = image()
    np.testing.assert_array_equal(fresh(pixels, training=False).numpy(), original(pixels, training=False).numpy())


@pytest.fixture
def tf_checkpoint(tmp):
    """(model, prefix) of a TF-format save_weights (no .h5 suffix)."""
    model = b0(seed=0)
    model.save_weights(str(tmp / "ckpt" / "b0"))
    assert (tmp / "ckpt" / "b0.index").is_file() and (tmp / "ckpt" / "checkpoint").is_file()
    return model, tmp / "ckpt" / "b0"


# ---------------------------------------------------------------------------------- in


def test_tf_checkpoint_to_pt(tf_checkpoint, tmp):
    model, prefix = tf_checkpoint
    for path in (prefix, tmp / "ckpt" / "b0.index", tmp / "ckpt"):
        assert irconv.detect_format(path) == "keras", path
    run_irconv("convert", prefix, tmp / "pt", "--to", "pt", *bare(), check=True)
    assert_pt_matches_keras(model, tmp / "pt")


def test_tf_checkpoint_skips_optimizer_state(tmp):
    """Optimizer slots and iterations in a TF-format checkpoint are no model weights: skipped,
    and listed as such by `irconv ls`."""
    model = b0(seed=1, size=32)
    model.compile(tf_keras.optimizers.Adam(), "mse")
    model.optimizer.build(model.trainable_variables)
    model.save_weights(str(tmp / "b0"))
    ckpt = irconv.load(tmp / "b0", **bare_api(32))
    skipped = ckpt.source["skipped"]
    assert ckpt.source["format"] == "keras" and skipped and all(k.startswith("optimizer/") for k in skipped)
    listing = run_irconv("ls", tmp / "b0", check=True).stdout.decode()
    # Summed up in one line, not one per slot.
    lines = [line for line in listing.splitlines() if line.startswith("(skipped)")]
    assert len(lines) == 1 and f"{len(skipped)} optimizer/training-state variables" in lines[0], lines


def test_full_model_h5_to_pt(tmp):
    model = b0(seed=2)
    model.save(str(tmp / "b0.h5"))
    run_irconv("convert", tmp / "b0.h5", tmp / "pt", "--to", "pt", *bare(), check=True)
    assert_pt_matches_keras(model, tmp / "pt")


# ---------------------------------------------------------------------------------- out


def test_pt_to_keras_h5_loads_by_topology(tf_checkpoint, tmp):
    """pt has no Normalization statistics: the Keras file gets a fresh layer's (mean 0,
    variance 1, count 0), which the randomized original also has."""
    model, prefix = tf_checkpoint
    run_irconv("convert", prefix, tmp / "pt", "--to", "pt", *bare(), check=True)
    run_irconv("convert", tmp / "pt", tmp / "keras", "--to", "keras", check=True)
    assert sorted(os.listdir(tmp / "keras")) == ["config.json", "model.h5"]
    with h5py.File(tmp / "keras" / "model.h5", "r") as f:
        layers = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
    assert layers == [layer.name for layer in model.layers if layer.weights]
    assert_keras_loads(model, tmp / "keras" / "model.h5")


@pytest.mark.parametrize("container", ["h5", "full-h5", "tf-checkpoint"])
def test_keras_to_keras_is_bit_exact(container, tmp):
    """Real Normalization statistics survive: nothing of a Keras file is lost going through irconv."""
    model = with_statistics(b0(seed=3), seed=3)
    src = {"h5": tmp / "b0.h5", "full-h5": tmp / "full.h5", "tf-checkpoint": tmp / "b0"}[container]
    model.save(str(src)) if container == "full-h5" else model.save_weights(str(src))
    run_irconv("convert", src, tmp / "keras", "--to", "keras", *bare(), check=True)
    assert_keras_loads(model, tmp / "keras" / "model.h5")
    # And irconv reads its own Keras output back with the config.json beside it: no values needed.
    assert irconv.load(tmp / "keras" / "model.h5").config["image_size"] == SIZE


def test_keras_to_tf1_restores_by_name(tmp):
    """`irconv import keras | irconv export tf1`: a name-based checkpoint under the Keras
    variable names, which TF reads and tf_keras restores by name; irconv reads it back as Keras."""
    model = with_statistics(b0(seed=4), seed=4)
    model.save_weights(str(tmp / "b0.h5"))
    want = weights_by_name(model)
    rc, err, proc = run_pipe(["import", "keras", tmp / "b0.h5", *bare()], ["export", "tf1", tmp / "out"])
    assert rc == 0 and proc.returncode == 0, (err.decode(), proc.stderr.decode())
    reader = tf.train.load_checkpoint(str(tmp / "out"))
    assert sorted(reader.get_variable_to_shape_map()) == sorted(want)
    for name, value in want.items():
        got = reader.get_tensor(name)
        assert got.dtype == value.dtype and got.tobytes() == value.tobytes(), name
    fresh = b0(seed=9)
    fresh.load_weights(str(tmp / "out" / "model.ckpt"))
    assert_same_weights(fresh, want)
    pixels = image()
    np.testing.assert_array_equal(fresh(pixels, training=False).numpy(), model(pixels, training=False).numpy())
    assert irconv.detect_format(tmp / "out") == "keras"
    orig = irconv.load(tmp / "b0.h5", **bare_api())
    # read back as detected, and as what it was written as (`--from tf1`)
    for back in (irconv.load(tmp / "out"), irconv.load(tmp / "out", "tf1")):
        assert list(back.tensors) == list(orig.tensors)
        assert all(back.tensors[n].load().tobytes() == t.load().tobytes() for n, t in orig.tensors.items())


def test_keras_to_tf2_is_the_keras_h5(tmp):
    """EfficientNet has no HF TF class: `export tf2` writes the Keras h5 that tf_keras loads."""
    model = with_statistics(b0(seed=5), seed=5)
    model.save_weights(str(tmp / "b0.h5"))
    rc, err, proc = run_pipe(["import", "keras", tmp / "b0.h5", *bare()], ["export", "tf2", tmp / "out"])
    assert rc == 0 and proc.returncode == 0, (err.decode(), proc.stderr.decode())
    assert sorted(os.listdir(tmp / "out")) == ["config.json", "model.h5"]
    assert_keras_loads(model, tmp / "out" / "model.h5")


def test_keras_paths_import_no_framework(tmp):
    """Keras files in (h5, TF checkpoint) and out (keras, tf1, tf2, pt) without importing a
    framework; tf_keras only makes the input."""
    b0(seed=6, size=32).save_weights(str(tmp / "b0.h5"))
    b0(seed=6, size=32).save_weights(str(tmp / "ckpt"))
    code = f"""
import sys, irconv
t = {str(tmp)!r}
irconv.convert(t + "/b0.h5", t + "/k", to="keras", **{bare_api(32)!r})
irconv.convert(t + "/k/model.h5", t + "/t1", to="tf1")
irconv.convert(t + "/t1", t + "/t2", to="tf2")
irconv.convert(t + "/ckpt", t + "/p", to="pt", **{bare_api(32)!r})
irconv.convert(t + "/p", t + "/k2", to="keras")
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'transformers', 'keras', 'tf_keras', 'jax'))
assert not bad, bad
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()


# ---------------------------------------------------------------------------------- errors


def test_a_layer_the_family_lacks_is_named(tmp):
    """An extra layer on top of the applications model: exit 2, one line naming the layer."""
    base = b0(seed=7, size=32)
    out = tf_keras.layers.Dense(4, name="extra_head")(base.output)
    tf_keras.Model(base.input, out).save_weights(str(tmp / "x.h5"))
    proc = run_irconv("convert", tmp / "x.h5", tmp / "out", "--to", "pt")
    assert_one_line_error(proc, "Keras layer", "'extra_head' (2 weights)")
    assert not (tmp / "out").exists()


def test_family_without_a_keras_view(tmp):
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "tiny-bert")
    proc = run_irconv("convert", example, tmp / "out", "--to", "keras")
    assert_one_line_error(proc, "'keras'", "'bert'")
    assert not (tmp / "out").exists()
