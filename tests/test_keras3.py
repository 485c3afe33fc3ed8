"""Keras 3 weights (`save_weights("x.weights.h5")`, `save("x.keras")`) -> HF PyTorch.

Keras 3 builds the oracle files and HF transformers loads irconv's output; the two models must
give the same outputs on the same image (NHWC for Keras, NCHW for PyTorch), as in
test_keras_efficientnet.py. The per-class leaf table is checked against Keras 3 itself (which
variable holds which values) and against tf_keras (what Keras 2 calls it)."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import assert_one_line_error, run_irconv

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
keras = pytest.importorskip("keras")
tf_keras = pytest.importorskip("tf_keras")

import irconv  # noqa: E402
from irconv.formats import keras3  # noqa: E402
from irconv.models.efficientnet import variant_config  # noqa: E402
from test_keras_efficientnet import (POOLED_ATOL, assert_defaults_refused, assert_pooled_matches,  # noqa: E402
                                     randomize as randomize_tf_keras)

# conftest sets TF_USE_LEGACY_KERAS=1, which only makes tf.keras tf_keras: `keras` stays Keras 3.
assert keras.__version__.split(".")[0] == "3", keras.__version__


def randomize(model, seed: int):
    """test_keras_efficientnet.randomize for Keras 3, whose `Variable.name` is only the leaf
    ('mean'): the layer is in `.path` ('normalization/mean'). Every weight moves by 10% of its
    spread, BN variances stay positive, the in-graph Normalization keeps mean 0 / variance 1."""
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        v = np.asarray(w.numpy())
        if not w.path.startswith("normalization"):
            v = v + rng.standard_normal(v.shape).astype(np.float32) * 0.1 * (float(v.std()) or 1.0)
            v = np.abs(v) if w.name == "moving_variance" else v
        values.append(v)
    model.set_weights(values)
    return model


@pytest.fixture(scope="module")
def b0(tmp_path_factory):
    """A randomized Keras 3 EfficientNetB0 saved both ways, an image and Keras' own features."""
    d = tmp_path_factory.mktemp("keras3-b0")
    model = randomize(keras.applications.EfficientNetB0(weights=None, include_top=False, pooling="avg",
                                                        input_shape=(64, 64, 3)), 0)
    model.save_weights(str(d / "b0.weights.h5"))
    model.save(str(d / "b0.keras"))
    image = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    return d, image, np.asarray(model(image, training=False))


@pytest.mark.parametrize("name", ["b0.weights.h5", "b0.keras"])
def test_keras3_b0_to_pt_matches(name, b0, tmp):
    d, image, want = b0
    assert_defaults_refused(d / name, tmp / "refused")
    run_irconv("convert", d / name, tmp / "out", "--to", "pt", "--accept-defaults", check=True)
    assert_pooled_matches(tmp / "out", image, want)


def test_keras3_files_are_detected(b0):
    d, _, _ = b0
    for name, container in [("b0.weights.h5", "keras3-weights-h5"), ("b0.keras", "keras3-archive")]:
        assert irconv.detect_format(d / name) == "keras"
        ckpt = irconv.load(d / name, accept_defaults=True)
        assert ckpt.source["container"] == container and ckpt.family == "efficientnet"
        assert ckpt.config["hidden_dim"] == 1280 and "encoder.blocks.15.project.weight" in ckpt.tensors


def test_keras3_archive_stored_and_deflated_read_the_same(b0, tmp):
    """Keras stores model.weights.h5 uncompressed, read in place; a re-zipped, deflated
    archive is decompressed to a temporary file. Both give the same tensors."""
    d, _, _ = b0
    with zipfile.ZipFile(d / "b0.keras") as src:
        assert src.getinfo(keras3.WEIGHTS_MEMBER).compress_type == zipfile.ZIP_STORED
        with zipfile.ZipFile(tmp / "deflated.keras", "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info))
    stored, deflated = keras3.read_archive(d / "b0.keras"), keras3.read_archive(tmp / "deflated.keras")
    assert [w.name for w in stored.weights] == [w.name for w in deflated.weights]
    for a, b in zip(stored.weights, deflated.weights):
        np.testing.assert_array_equal(a.tensor.load(), b.tensor.load())


def test_keras3_b1_with_top_from_archive(tmp):
    """As test_keras_b1_with_top_to_pt_classifier: B1 at 32x32 needs image_size from --config,
    since the inferred B1 default (240) would pad block 16 symmetrically."""
    model = randomize(keras.applications.EfficientNetB1(weights=None, include_top=True, classes=5,
                                                        input_shape=(32, 32, 3), classifier_activation=None), 1)
    model.save(str(tmp / "b1.keras"))
    assert irconv.load(tmp / "b1.keras", accept_defaults=True).config["depthwise_padding"] == [16]
    config = dict(variant_config("b1", image_size=32), id2label={str(i): f"LABEL_{i}" for i in range(5)})
    assert config["depthwise_padding"] == []
    (tmp / "config.json").write_text(json.dumps(config))
    run_irconv("convert", tmp / "b1.keras", tmp / "out", "--to", "pt", "--config", tmp / "config.json", check=True)
    out_config = json.loads((tmp / "out" / "config.json").read_text())
    assert out_config["architectures"] == ["EfficientNetForImageClassification"]
    loaded, info = transformers.EfficientNetForImageClassification.from_pretrained(tmp / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    image = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        got = loaded.eval()(pixel_values=torch.from_numpy(image / 255.0).permute(0, 3, 1, 2)).logits.numpy()
    assert float(np.max(np.abs(got - np.asarray(model(image, training=False))))) <= POOLED_ATOL


def test_tf_keras_archive_without_layer_names(tmp):
    """tf_keras writes the same .keras layout but names no layer in model.weights.h5: the
    archive is read by matching each class's Nth group to config.json's Nth layer of that
    class, and gives exactly what its Keras 2 h5 gives; its bare .weights.h5 cannot be named."""
    model = randomize_tf_keras(tf_keras.applications.EfficientNetB0(weights=None, include_top=False,
                                                                    input_shape=(32, 32, 3)), 2)
    model.save(str(tmp / "b0.keras"))
    model.save_weights(str(tmp / "b0.h5"))
    model.save_weights(str(tmp / "b0.weights.h5"))
    archive, h5 = (irconv.load(tmp / name, accept_defaults=True) for name in ("b0.keras", "b0.h5"))
    assert archive.source["container"] == "keras3-archive" and list(archive.tensors) == list(h5.tensors)
    for name, t in archive.tensors.items():
        np.testing.assert_array_equal(t.load(), h5.tensors[name].load(), err_msg=name)
    assert_one_line_error(run_irconv("ls", tmp / "b0.weights.h5"), "b0.weights.h5", "does not name the layer",
                          ".keras")


def test_keras3_conversion_imports_no_framework(b0, tmp):
    """test_cli's no-framework check, on the Keras 3 paths (both containers)."""
    d, _, _ = b0
    code = f"""
import sys, irconv
irconv.convert({str(d / 'b0.weights.h5')!r}, {str(tmp / 'a')!r}, to="pt", accept_defaults=True)
irconv.convert({str(d / 'b0.keras')!r}, {str(tmp / 'b')!r}, to="pt", accept_defaults=True)
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'transformers', 'keras', 'tf_keras', 'jax'))
assert not bad, bad
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp / "b" / "model.safetensors").is_file()


# --------------------------------------------------------------------------- the leaf table

L = keras.layers
LAYER_CASES = [  # (class, kwargs, input shape without batch)
    ("Conv2D", dict(filters=4, kernel_size=3), (6, 6, 2)),
    ("Conv2D", dict(filters=4, kernel_size=3, use_bias=False), (6, 6, 2)),
    ("Conv1D", dict(filters=4, kernel_size=3), (6, 2)),
    ("Conv2DTranspose", dict(filters=4, kernel_size=3), (6, 6, 2)),
    ("DepthwiseConv2D", dict(kernel_size=3), (6, 6, 2)),
    ("DepthwiseConv2D", dict(kernel_size=3, use_bias=False), (6, 6, 2)),
    ("SeparableConv2D", dict(filters=4, kernel_size=3), (6, 6, 2)),
    ("Dense", dict(units=3), (5,)),
    ("Dense", dict(units=3, use_bias=False), (5,)),
    ("EinsumDense", dict(equation="ab,bc->ac", output_shape=3, bias_axes="c"), (5,)),
    ("EinsumDense", dict(equation="ab,bc->ac", output_shape=3), (5,)),
    ("Embedding", dict(input_dim=10, output_dim=4), (3,)),
    ("BatchNormalization", dict(), (5,)),
    ("BatchNormalization", dict(center=False), (5,)),
    ("BatchNormalization", dict(scale=False, center=False), (5,)),
    ("LayerNormalization", dict(), (5,)),
    ("LayerNormalization", dict(rms_scaling=True), (5,)),
    ("GroupNormalization", dict(groups=2), (4,)),
    ("Normalization", dict(), (5,)),
]


def _case_id(case):
    cls, kwargs, _ = case
    return cls + "".join(f"-{k}={v}" for k, v in kwargs.items() if k in ("use_bias", "bias_axes", "center",
                                                                             "scale", "rms_scaling"))


def _keras2_name(layer, variable, cls: str) -> str:
    """What Keras 2 calls a Keras 3 variable: layer/leaf, except a depthwise conv's kernel.
    (Keras 3's `variable.path` also holds the enclosing model's name: 'sequential/probe/kernel'.)"""
    leaf = "depthwise_kernel" if cls.startswith("Depthwise") and variable.name == "kernel" else variable.name
    return f"{layer.name}/{leaf}"


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.parametrize("case", LAYER_CASES, ids=map(_case_id, LAYER_CASES))
def test_leaf_table_matches_keras(case, tmp):
    """Each variable gets a distinct value in Keras 3; irconv must find that value under the
    variable's Keras 2 name, from the .keras archive and (when the count is unambiguous) from
    the bare .weights.h5; tf_keras' own layer must list the same leaves in the same order."""
    cls, kwargs, shape = case
    layer = getattr(L, cls)(name="probe", **kwargs)
    model = keras.Sequential([keras.Input(shape), layer])
    want = {}
    for i, v in enumerate(layer.weights):
        value = np.full(v.shape, i + 1, dtype=v.dtype)
        v.assign(value)
        want[_keras2_name(layer, v, cls)] = value
    assert want, cls
    model.save(str(tmp / "m.keras"))
    model.save_weights(str(tmp / "m.weights.h5"))
    readers = [keras3.read_archive(tmp / "m.keras")]
    if len(keras3.LEAVES[cls].for_count(len(want))) == 1:
        readers.append(keras3.read_weights_h5(tmp / "m.weights.h5"))
    for contents in readers:
        got = {w.name: w.tensor.load() for w in contents.weights}
        assert list(got) == list(want)
        for name, value in want.items():
            np.testing.assert_array_equal(got[name], value, err_msg=name)
    if "rms_scaling" not in kwargs:     # a Keras 3 option tf_keras does not have
        ref = getattr(tf_keras.layers, cls)(name="probe", **kwargs)
        ref.build((None, *shape))
        # A layer built outside a model names its variables without the layer: compare leaves.
        assert [w.name.split(":")[0].split("/")[-1] for w in ref.weights] == [n.split("/")[1] for n in want]


def test_snake_case_is_keras_naming():
    from keras.src.utils.naming import to_snake_case
    for cls in keras3.LEAVES:
        assert keras3.snake_case(cls) == to_snake_case(cls), cls


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("content", [b"not a zip at all\n" * 64, "truncated"], ids=["garbage", "truncated"])
def test_bad_archive_is_one_line_error(content, b0, tmp):
    d, _, _ = b0
    if content == "truncated":
        content = (d / "b0.keras").read_bytes()[: 1 << 20]
    (tmp / "bad.keras").write_bytes(content)
    proc = run_irconv("convert", tmp / "bad.keras", tmp / "out", "--to", "pt")
    assert_one_line_error(proc, "bad.keras", "not a .keras archive")
    assert not (tmp / "out").exists()


def _rezip(src, dst, **replace):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if replace.get(info.filename, b"") is not None:
                zout.writestr(info.filename, replace.get(info.filename) or zin.read(info))


@pytest.mark.parametrize("member,content,needle", [
    ("config.json", b"{not json", "cannot read config.json"),
    ("model.weights.h5", None, "holds no model.weights.h5"),
    ("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 100, "unreadable or truncated HDF5 file"),
], ids=["config-not-json", "no-weights", "weights-not-hdf5"])
def test_broken_archive_members(member, content, needle, b0, tmp):
    d, _, _ = b0
    _rezip(d / "b0.keras", tmp / "broken.keras", **{member: content})
    proc = run_irconv("convert", tmp / "broken.keras", tmp / "out", "--to", "pt")
    assert_one_line_error(proc, "broken.keras", needle)


def test_config_that_does_not_fit_the_weights(b0, tmp):
    """A config whose layer has no bias while the file holds one: the count is checked."""
    d, _, _ = b0
    with zipfile.ZipFile(d / "b0.keras") as zf:
        config = json.loads(zf.read("config.json"))
    for entry in config["config"]["layers"]:
        if entry["config"]["name"] == "block1a_se_reduce":
            entry["config"]["use_bias"] = False
    _rezip(d / "b0.keras", tmp / "misfit.keras", **{"config.json": json.dumps(config).encode()})
    proc = run_irconv("ls", tmp / "misfit.keras")
    assert_one_line_error(proc, "misfit.keras", "'block1a_se_reduce'", "holds 2 variables but its config gives 1")


def test_ambiguous_batchnorm_needs_the_archive(tmp):
    """BatchNormalization(center=False) and (scale=False) both save 3 variables: a bare
    .weights.h5 cannot say which, so irconv names the layer and asks for the .keras file."""
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, name="d"), L.BatchNormalization(center=False, name="bn")])
    model.save_weights(str(tmp / "m.weights.h5"))
    model.save(str(tmp / "m.keras"))
    proc = run_irconv("ls", tmp / "m.weights.h5")
    assert_one_line_error(proc, "m.weights.h5", "'bn'", "BatchNormalization", ".keras")
    names = [w.name for w in keras3.read_archive(tmp / "m.keras").weights]
    assert sorted(names) == ["bn/gamma", "bn/moving_mean", "bn/moving_variance", "d/bias", "d/kernel"]


@pytest.mark.parametrize("name", ["m.weights.h5", "m.keras"])
def test_unknown_layer_class_is_named(name, tmp):
    model = keras.Sequential([keras.Input((4,)), L.PReLU(name="act")])
    model.save_weights(str(tmp / "m.weights.h5"))
    model.save(str(tmp / "m.keras"))
    proc = run_irconv("ls", tmp / name)
    assert_one_line_error(proc, name, "'act'", "PReLU" if name.endswith(".keras") else "p_re_lu",
                          "cannot name")
