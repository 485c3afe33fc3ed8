"""formats.kerash5 against tf-keras and transformers' TF models.

tf-keras and transformers are oracles only: they write .h5 files irconv reads and load the
files irconv writes. Arrays are compared as bytes so NaN, -0.0, bf16 and fp8 survive.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from irconv.formats import kerash5 as kh5  # noqa: E402
from irconv.ir.dtypes import DTYPES, by_name, from_numpy  # noqa: E402
from irconv.ir.errors import DTypeError, FormatError, UsageError  # noqa: E402
from irconv.ir.tensor import TensorSpec  # noqa: E402

tf = pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")
transformers = pytest.importorskip("transformers")
from tf_keras.src.saving.legacy import hdf5_format  # noqa: E402


def raw(a) -> np.ndarray:
    """The bytes of an array or TF variable, as uint8."""
    if hasattr(a, "numpy"):
        a = a.numpy()
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def same_bytes(a, b) -> None:
    a, b = (np.asarray(x.numpy() if hasattr(x, "numpy") else x) for x in (a, b))
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, a.shape, b.dtype, b.shape)
    np.testing.assert_array_equal(raw(a), raw(b))


def random_array(rng, dtype_name: str, shape) -> np.ndarray:
    """Random bit patterns (NaN, inf, -0.0 included); bools are 0/1 as numpy requires."""
    dt = by_name(dtype_name)
    n = int(np.prod(shape, dtype=np.int64))
    if dtype_name == "BOOL":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.integers(0, 256, size=n * dt.itemsize, dtype=np.uint8).view(dt.numpy).reshape(shape)


def spec_of(var) -> TensorSpec:
    return TensorSpec(var.name, from_numpy(var.dtype.as_numpy_dtype), tuple(var.shape))


def one_line_naming(err, path) -> str:
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg, msg
    return msg


def h5_structure(path) -> list:
    """Everything but the byte layout: each object's kind, path, dtype, shape and attributes
    (value, string-ness, variable-length-ness, charset)."""
    out = []

    def attrs(obj):
        res = {}
        for k in obj.attrs:
            t = obj.attrs.get_id(k).get_type()
            is_str = isinstance(t, h5py.h5t.TypeStringID)
            kind = (type(t).__name__, is_str and t.is_variable_str(), is_str and t.get_cset())
            v = obj.attrs[k]
            res[k] = (kind, np.asarray(v).tolist())
        return res

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out.append(("D", name, str(obj.dtype), obj.shape, attrs(obj)))
        else:
            out.append(("G", name, attrs(obj)))

    with h5py.File(path, "r") as f:
        visit("/", f)
        f.visititems(visit)
    return out


# --------------------------------------------------------------------------- tf-keras models

def build_keras_model(seed: int):
    """A small functional model (Dense, BatchNormalization, Conv2D, Embedding); fixed layer
    names so two builds have the same variable names; every variable random (BN stats too)."""
    L = tf_keras.layers
    img = L.Input((6, 6, 3), name="img")
    tok = L.Input((4,), dtype="int32", name="tok")
    x = L.Conv2D(5, 3, name="conv")(img)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Flatten(name="flat")(x)
    e = L.Flatten(name="eflat")(L.Embedding(11, 3, name="emb")(tok))
    out = L.Dense(2, name="head")(L.Concatenate(name="cat")([x, e]))
    model = tf_keras.Model([img, tok], out, name="small")
    rng = np.random.default_rng(seed)
    for w in model.weights:
        a = rng.standard_normal(w.shape).astype(np.float32)
        a.reshape(-1)[:1] = -0.0
        w.assign(a)
    return model


class ManyVars(tf_keras.layers.Layer):
    """One layer holding hundreds of long-named variables: weight_names > 64512 bytes."""

    def __init__(self, n, **kw):
        super().__init__(**kw)
        self.n = n

    def build(self, input_shape):
        self.vs = [self.add_weight(name=f"v{i:03d}_" + "x" * 200, shape=(2,), initializer="zeros")
                   for i in range(self.n)]

    def call(self, x):
        return x + self.vs[0][0]


def build_chunky_model(seed: int):
    inp = tf_keras.layers.Input((2,), name="i")
    out = ManyVars(330, name="many")(inp)
    model = tf_keras.Model(inp, out, name="chunky")
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.standard_normal(w.shape).astype(np.float32))
    return model


def keras_layout(model) -> list[tuple[str, list[TensorSpec]]]:
    return [(layer.name, [spec_of(w) for w in layer.trainable_weights + layer.non_trainable_weights])
            for layer in model.layers]


@pytest.fixture(scope="module")
def keras_model():
    return build_keras_model(0)


@pytest.fixture(scope="module")
def chunky_model():
    return build_chunky_model(0)


def assert_keras_file_matches(path, model, prefix=""):
    contents = kh5.read(path)
    assert contents.layer_names == [layer.name for layer in model.layers]
    expected = [(layer.name, w) for layer in model.layers
                for w in layer.trainable_weights + layer.non_trainable_weights]
    assert [(w.layer, w.name) for w in contents.weights] == [(l, v.name) for l, v in expected]
    for got, (_, var) in zip(contents.weights, expected):
        assert got.tensor.spec.name == got.name
        same_bytes(got.tensor.load(), var)
    assert contents.attrs["backend"] == "tensorflow"
    assert contents.attrs["keras_version"] == tf_keras.__version__
    return contents


def test_reads_tf_keras_save_weights(tmp_path, keras_model):
    path = tmp_path / "w.h5"
    keras_model.save_weights(str(path))
    c = assert_keras_file_matches(path, keras_model)
    assert not c.shard and "model_config" not in c.attrs


def test_reads_tf_keras_full_model_save(tmp_path, keras_model):
    path = tmp_path / "m.h5"
    keras_model.save(str(path))
    c = assert_keras_file_matches(path, keras_model)
    assert json.loads(c.attrs["model_config"])["class_name"] == "Functional"


def test_read_is_lazy(tmp_path, keras_model):
    path = tmp_path / "w.h5"
    keras_model.save_weights(str(path))
    weights = {w.name: w.tensor for w in kh5.read(path).weights}
    with h5py.File(path, "r+") as f:
        f["head/head/bias:0"][...] = np.float32([7, 8])
    assert weights["head/bias:0"].load().tolist() == [7.0, 8.0]


@pytest.mark.parametrize("by_name", [False, True])
def test_keras_writer_loads_into_tf_keras(tmp_path, by_name):
    source = build_keras_model(1)
    layout = keras_layout(source)
    values = {w.name: w.numpy() for w in source.weights}
    path = tmp_path / "ours.h5"
    names = list(values)
    np.random.default_rng(2).shuffle(names)   # any write order
    with kh5.KerasH5Writer(path, layout) as w:
        for name in names:
            w.write(name, values[name])
    assert not os.path.exists(str(path) + ".partial")

    target = build_keras_model(3)
    target.load_weights(str(path), by_name=by_name)
    for var in target.weights:
        same_bytes(var, values[var.name])


def test_keras_writer_matches_tf_keras_structure(tmp_path, keras_model):
    theirs, ours = tmp_path / "theirs.h5", tmp_path / "ours.h5"
    keras_model.save_weights(str(theirs))
    with kh5.KerasH5Writer(ours, keras_layout(keras_model), keras_version=tf_keras.__version__) as w:
        for var in keras_model.weights:
            w.write(var.name, var.numpy())
    assert h5_structure(ours) == h5_structure(theirs)


# --------------------------------------------------------------------------- chunked weight_names

def test_chunked_weight_names_tf_keras_to_irconv(tmp_path, chunky_model):
    path = tmp_path / "chunky.h5"
    chunky_model.save_weights(str(path))
    with h5py.File(path, "r") as f:
        assert "weight_names" not in f["many"].attrs and "weight_names1" in f["many"].attrs
    assert_keras_file_matches(path, chunky_model)


def test_chunked_weight_names_irconv_to_tf_keras(tmp_path, chunky_model):
    theirs, ours = tmp_path / "theirs.h5", tmp_path / "ours.h5"
    chunky_model.save_weights(str(theirs))
    rng = np.random.default_rng(5)
    values = {v.name: rng.standard_normal(v.shape).astype(np.float32) for v in chunky_model.weights}
    with kh5.KerasH5Writer(ours, keras_layout(chunky_model)) as w:
        for name, a in values.items():
            w.write(name, a)
    # Same attribute chunks (fixed-length |S, as np.array_split makes them) as tf-keras wrote.
    assert h5_structure(ours) == h5_structure(theirs)
    with h5py.File(ours, "r") as f:
        assert hdf5_format.load_attributes_from_hdf5_group(f["many"], "weight_names") == \
            [v.name for v in chunky_model.weights]
    target = build_chunky_model(9)
    target.load_weights(str(ours))
    for var in target.weights:
        same_bytes(var, values[var.name])


def test_chunked_layer_names_round_trip(tmp_path):
    layers = [(f"layer_{i:04d}_" + "y" * 180, [TensorSpec(f"w{i}:0", DTYPES["F32"], (1,))])
              for i in range(400)]
    path = tmp_path / "many_layers.h5"
    with kh5.KerasH5Writer(path, layers) as w:
        for i in range(400):
            w.write(f"w{i}:0", np.float32([i]))
    with h5py.File(path, "r") as f:
        assert "layer_names" not in f.attrs and "layer_names1" in f.attrs
        assert hdf5_format.load_attributes_from_hdf5_group(f, "layer_names") == [l for l, _ in layers]
    c = kh5.read(path)
    assert c.layer_names == [l for l, _ in layers]
    assert [w.tensor.load().tolist() for w in c.weights] == [[float(i)] for i in range(400)]


# --------------------------------------------------------------------------- HF transformers TF

@pytest.fixture(scope="module")
def hf_saved(tmp_path_factory):
    """A tiny TFBertForPreTraining saved whole and sharded (20KB); variables randomised."""
    from transformers import BertConfig, TFBertForPreTraining
    cfg = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                     intermediate_size=37, max_position_embeddings=64)
    model = TFBertForPreTraining(cfg)
    model(model.dummy_inputs)
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.standard_normal(w.shape).astype(np.float32))
    base = tmp_path_factory.mktemp("hf")
    whole, sharded = base / "whole", base / "sharded"
    model.save_pretrained(str(whole))
    model.save_pretrained(str(sharded), max_shard_size="20KB")
    values = {w.name: w.numpy() for w in model.weights}
    return dict(model=model, whole=whole, sharded=sharded, values=values,
                order=[w.name for w in model.weights])


def load_hf(directory):
    from transformers import TFBertForPreTraining
    model, info = TFBertForPreTraining.from_pretrained(str(directory), output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    # Keyed without the Keras model name, which gains '_1', '_2' as models are built.
    return {kh5.strip_model_name(w.name): w for w in model.weights}


def test_reads_hf_tf_model_h5(hf_saved):
    model, values = hf_saved["model"], hf_saved["values"]
    c = kh5.read(hf_saved["whole"] / "tf_model.h5")
    assert c.layer_names == ["bert", "nsp___cls", "mlm___cls"] == [l.name for l in model.layers]
    for layer in model.layers:
        listed = [w.name for w in c.weights if w.layer == layer.name]
        assert listed == [v.name for v in layer.trainable_weights + layer.non_trainable_weights]
    # Tied: the MLM head lists the 5 embedding weights again (a second stored copy).
    tied = [w.name for w in c.weights if w.layer == "mlm___cls" and "/bert/embeddings/" in w.name]
    assert len(tied) == 5
    assert {w.name for w in c.weights} == set(values)
    for w in c.weights:
        same_bytes(w.tensor.load(), values[w.name])


def test_reads_hf_sharded(hf_saved):
    index = hf_saved["sharded"] / kh5.TF2_WEIGHTS_INDEX_NAME
    weights = kh5.read_hf_sharded(index)
    wmap = json.loads(index.read_text())["weight_map"]
    assert len(set(wmap.values())) > 2
    assert [w.name for w in weights] == list(wmap) and set(wmap) == set(hf_saved["values"])
    for w in weights:
        assert w.layer == "" and w.tensor.spec.name == w.name
        same_bytes(w.tensor.load(), hf_saved["values"][w.name])
    assert [p.name for p in kh5.shard_files(index)] == sorted(set(wmap.values()))
    shard = kh5.read(hf_saved["sharded"] / "tf_model-00001-of-00004.h5")
    assert shard.shard and shard.layer_names == [w.name for w in shard.weights]
    assert all(not n.startswith("tf_bert_for_pre_training/") for n in shard.layer_names)


def random_values(specs, seed):
    rng = np.random.default_rng(seed)
    return {s.name: random_array(rng, s.dtype.name, s.shape) for s in specs}


def test_keras_writer_output_loads_with_from_pretrained(tmp_path, hf_saved):
    c = kh5.read(hf_saved["whole"] / "tf_model.h5")
    layout = [(layer, [w.tensor.spec for w in c.weights if w.layer == layer])
              for layer in c.layer_names]
    values = random_values({w.tensor.spec for w in c.weights}, 11)
    out = tmp_path / "ours"
    out.mkdir()
    shutil.copy(hf_saved["whole"] / "config.json", out)
    with kh5.KerasH5Writer(out / kh5.TF2_WEIGHTS_NAME, layout) as w:
        for name in reversed(w.names):
            w.write(name, values[name])
    # Both stored copies of each tied weight were filled.
    for got in kh5.read(out / kh5.TF2_WEIGHTS_NAME).weights:
        same_bytes(got.tensor.load(), values[got.name])
    values = {kh5.strip_model_name(n): a for n, a in values.items()}
    loaded = load_hf(out)
    assert set(loaded) == set(values)
    for name, var in loaded.items():
        same_bytes(var, values[name])


def test_hf_sharded_writer_matches_transformers(tmp_path, hf_saved):
    theirs = hf_saved["sharded"]
    index = json.loads((theirs / kh5.TF2_WEIGHTS_INDEX_NAME).read_text())
    specs = {w.name: w.tensor.spec for w in kh5.read(hf_saved["whole"] / "tf_model.h5").weights}
    ordered = [specs[n] for n in hf_saved["order"]]   # model.weights order, like transformers
    plan = kh5.HFShardedH5Writer.plan(ordered, "20KB")
    files = sorted(set(index["weight_map"].values()))
    assert [[s.name for s in shard] for shard in plan] == \
        [[n for n in hf_saved["order"] if index["weight_map"][n] == f] for f in files]

    out = tmp_path / "ours"
    with kh5.HFShardedH5Writer(out, plan) as w:
        for name in hf_saved["order"][::-1]:
            w.write(name, hf_saved["values"][name])
    assert w.files == files
    assert sorted(os.listdir(out)) == sorted(files + [kh5.TF2_WEIGHTS_INDEX_NAME])
    index_bytes = (theirs / kh5.TF2_WEIGHTS_INDEX_NAME).read_bytes()
    assert (out / kh5.TF2_WEIGHTS_INDEX_NAME).read_bytes() == index_bytes
    for f in files:
        assert h5_structure(out / f) == h5_structure(theirs / f), f
        for a, b in zip(kh5.read(out / f).weights, kh5.read(theirs / f).weights):
            assert a.name == b.name
            same_bytes(a.tensor.load(), b.tensor.load())


def test_hf_sharded_writer_output_loads_with_from_pretrained(tmp_path, hf_saved):
    specs = {w.name: w.tensor.spec for w in kh5.read(hf_saved["whole"] / "tf_model.h5").weights}
    ordered = [specs[n] for n in hf_saved["order"]]
    values = random_values(ordered, 12)
    out = tmp_path / "ours"
    out.mkdir()
    shutil.copy(hf_saved["whole"] / "config.json", out)
    with kh5.HFShardedH5Writer(out, kh5.HFShardedH5Writer.plan(ordered, "30KB")) as w:
        for s in ordered:
            w.write(s.name, values[s.name])
    assert len(w.files) > 1
    for got in kh5.read_hf_sharded(out / kh5.TF2_WEIGHTS_INDEX_NAME):
        same_bytes(got.tensor.load(), values[got.name])
    values = {kh5.strip_model_name(n): a for n, a in values.items()}
    loaded = load_hf(out)
    assert set(loaded) == set(values)
    for name, var in loaded.items():
        same_bytes(var, values[name])


def test_strip_model_name():
    assert kh5.strip_model_name("tf_bert_model/bert/x/kernel:0") == "bert/x/kernel:0"
    assert kh5.strip_model_name("tf_bart/model.shared/weight:0") == "tf_bart/model.shared/weight:0"
    assert kh5.strip_model_name("bias:0") == "bias:0"


# --------------------------------------------------------------------------- property round trip

_COMP = st.text(alphabet="ab_1-é", min_size=1, max_size=4)
_WEIGHT = st.lists(_COMP, min_size=1, max_size=3).map(lambda cs: "/".join(cs) + ":0")
_SHAPE = st.lists(st.integers(0, 3), max_size=3).map(tuple)


@st.composite
def layer_structures(draw):
    """Layers of weights whose names end ':0' (so no name is another's group); some names
    are listed by two layers, as HF's tied embeddings are."""
    layer_names = draw(st.lists(st.text(alphabet="abcxy_0", min_size=1, max_size=5),
                                max_size=4, unique=True))
    pool: dict[str, TensorSpec] = {}
    layers = []
    for layer in layer_names:
        specs = []
        for _ in range(draw(st.integers(0, 4))):
            tie = pool and draw(st.integers(0, 3)) == 0
            name = draw(st.sampled_from(sorted(pool))) if tie else draw(_WEIGHT)
            if any(s.name == name for s in specs):
                continue
            if name not in pool:
                dtype = DTYPES[draw(st.sampled_from(sorted(DTYPES)))]
                pool[name] = TensorSpec(name, dtype, draw(_SHAPE))
            specs.append(pool[name])
        layers.append((layer, specs))
    return layers, pool


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(structure=layer_structures(), seed=st.integers(0, 2**32 - 1))
def test_round_trip_random_structures(structure, seed):
    layers, pool = structure
    values = random_values(pool.values(), seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "r.h5")
        with kh5.KerasH5Writer(path, layers) as w:
            for name in sorted(values):
                w.write(name, values[name])
        c = kh5.read(path)
        assert c.layer_names == [l for l, _ in layers]
        assert [(w.layer, w.tensor.spec) for w in c.weights] == \
            [(layer, s) for layer, specs in layers for s in specs]
        for w in c.weights:
            a = w.tensor.load()
            assert a.dtype == w.tensor.dtype.numpy and a.shape == w.tensor.shape
            np.testing.assert_array_equal(raw(a), raw(values[w.name]))


# --------------------------------------------------------------------------- dtypes, encodings

def test_every_dtype_round_trips(tmp_path):
    specs = [TensorSpec(f"{d}/{i}:0", DTYPES[d], shape)
             for d in DTYPES for i, shape in enumerate([(2, 3), (), (0, 4)])]
    values = random_values(specs, 8)
    path = tmp_path / "all.h5"
    with kh5.KerasH5Writer(path, [("all", specs)]) as w:
        for name, a in values.items():
            w.write(name, a)
    got = kh5.read(path).weights
    assert [w.tensor.spec for w in got] == specs
    for w in got:
        a = w.tensor.load()
        assert a.dtype == w.tensor.dtype.numpy and a.shape == w.tensor.shape
        np.testing.assert_array_equal(raw(a), raw(values[w.name]))


def test_bf16_and_fp8_are_stored_opaque_with_a_dtype_attribute(tmp_path):
    specs = [TensorSpec(f"{d}:0", DTYPES[d], (3, 2)) for d in ("BF16", "F8_E4M3", "F8_E5M2")]
    values = random_values(specs, 4)
    path = tmp_path / "low.h5"
    with kh5.KerasH5Writer(path, [("low", specs)]) as w:
        for name, a in values.items():
            w.write(name, a)
    with h5py.File(path, "r") as f:
        ds = f["low/BF16:0"]
        assert ds.dtype == np.dtype("V2") and ds.attrs["dtype"] == "bfloat16"
        assert f["low/F8_E4M3:0"].attrs["dtype"] == "float8_e4m3fn"
    # Other writers keep bf16 bits as uint16 with the same attribute (here as bytes).
    with h5py.File(path, "r+") as f:
        del f["low/BF16:0"]
        ds = f["low"].create_dataset("BF16:0", data=values["BF16:0"].view(np.uint16))
        ds.attrs["dtype"] = b"bfloat16"
    for w in kh5.read(path).weights:
        assert w.tensor.dtype.name == w.name[:-2]
        np.testing.assert_array_equal(raw(w.tensor.load()), raw(values[w.name]))


def test_reads_legacy_encodings(tmp_path):
    """h5py 2.x style: fixed-length |S name arrays, str (utf-8) attributes, a big-endian dataset."""
    path = tmp_path / "legacy.h5"
    k = np.arange(6, dtype=">f4").reshape(2, 3)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"d", b"empty"], dtype="S5")
        f.attrs["keras_version"] = np.bytes_(b"2.1.6")
        f.attrs["backend"] = "tensorflow"
        g = f.create_group("d")
        g.attrs["weight_names"] = np.array(["d/kernel:0", "d/bias:0"], dtype=h5py.string_dtype())
        g.create_dataset("d/kernel:0", data=k)
        g.create_dataset("d/bias:0", data=np.int64(7))
        f.create_group("empty").attrs["weight_names"] = np.asarray([])
    c = kh5.read(path)
    assert c.layer_names == ["d", "empty"]
    assert c.attrs == {"keras_version": "2.1.6", "backend": "tensorflow"}
    kernel, bias = (w.tensor.load() for w in c.weights)
    assert kernel.dtype == np.dtype("<f4") and kernel.tolist() == k.tolist()
    assert bias.shape == () and bias.dtype == np.int64 and int(bias) == 7


def test_unknown_opaque_dataset(tmp_path):
    path = tmp_path / "opaque.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"d"]
        f.create_group("d").attrs["weight_names"] = [b"x:0"]
        f["d"].create_dataset("x:0", (2,), dtype="V2")
    with pytest.raises(DTypeError) as e:
        kh5.read(path)
    assert "opaque" in one_line_naming(e, path)


# --------------------------------------------------------------------------- writer contract

def test_writer_refuses_missing_and_leaves_no_file(tmp_path):
    specs = [TensorSpec("a:0", DTYPES["F32"], (2,)), TensorSpec("b:0", DTYPES["I32"], ())]
    path = tmp_path / "x.h5"
    w = kh5.KerasH5Writer(path, [("l", specs)])
    w.write("a:0", np.zeros(2, np.float32))
    with pytest.raises(UsageError, match="written twice"):
        w.write("a:0", np.zeros(2, np.float32))
    with pytest.raises(UsageError, match="not among"):
        w.write("c:0", np.zeros(2, np.float32))
    with pytest.raises(DTypeError):
        w.write("b:0", np.int64(1))
    with pytest.raises(FormatError, match="never written") as e:
        w.close()
    one_line_naming(e, path)
    assert os.listdir(tmp_path) == []

    with pytest.raises(RuntimeError):
        with kh5.KerasH5Writer(path, [("l", specs)]) as w:
            w.write("b:0", np.int32(1))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_writer_refuses_bad_layouts(tmp_path):
    f32 = DTYPES["F32"]
    path = tmp_path / "x.h5"
    with pytest.raises(UsageError, match="agree"):
        kh5.KerasH5Writer(path, [("a", [TensorSpec("w:0", f32, (2,))]),
                                 ("b", [TensorSpec("w:0", f32, (3,))])])
    with pytest.raises(UsageError, match="as a group"):
        kh5.KerasH5Writer(path, [("a", [TensorSpec("w", f32, ()), TensorSpec("w/x", f32, ())])])
    with pytest.raises(UsageError, match="duplicate layer"):
        kh5.KerasH5Writer(path, [("a", []), ("a", [])])
    with pytest.raises(UsageError, match="relative HDF5 paths"):
        kh5.KerasH5Writer(path, [("a", [TensorSpec("/w", f32, ())])])
    with pytest.raises(UsageError, match="duplicate tensor"):
        kh5.HFShardedH5Writer(tmp_path / "d", [[TensorSpec("m/w:0", f32, ())],
                                               [TensorSpec("m/w:0", f32, ())]])
    assert os.listdir(tmp_path) == []


def test_hf_sharded_writer_single_shard_keeps_index(tmp_path):
    specs = [TensorSpec("tf_m/bert/w:0", DTYPES["F32"], (2,))]
    with kh5.HFShardedH5Writer(tmp_path, [specs]) as w:
        w.write("tf_m/bert/w:0", np.float32([1, 2]))
    assert w.files == ["tf_model-00001-of-00001.h5"]
    (got,) = kh5.read_hf_sharded(tmp_path / kh5.TF2_WEIGHTS_INDEX_NAME)
    assert got.name == "tf_m/bert/w:0" and got.tensor.load().tolist() == [1.0, 2.0]


# --------------------------------------------------------------------------- hostile files

def test_error_text_file(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("hello, not HDF5\n")
    with pytest.raises(FormatError) as e:
        kh5.read(path)
    assert "not an HDF5 file" in one_line_naming(e, path)


def test_error_truncated_file(tmp_path, keras_model):
    path = tmp_path / "cut.h5"
    keras_model.save_weights(str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError) as e:
        kh5.read(path)
    assert "truncated" in one_line_naming(e, path)


def test_error_hdf5_without_layer_names(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(FormatError) as e:
        kh5.read(path)
    assert "not a Keras weights file" in one_line_naming(e, path)


def test_error_dangling_weight_name(tmp_path, keras_model):
    path = tmp_path / "dangling.h5"
    keras_model.save_weights(str(path))
    with h5py.File(path, "r+") as f:
        del f["head/head/bias:0"]
    with pytest.raises(FormatError) as e:
        kh5.read(path)
    assert "head/head/bias:0" in one_line_naming(e, path)


def test_error_missing_shard(tmp_path, hf_saved):
    d = tmp_path / "sharded"
    shutil.copytree(hf_saved["sharded"], d)
    os.remove(d / "tf_model-00002-of-00004.h5")
    with pytest.raises(FormatError) as e:
        kh5.read_hf_sharded(d / kh5.TF2_WEIGHTS_INDEX_NAME)
    assert "tf_model-00002-of-00004.h5" in one_line_naming(e, d / kh5.TF2_WEIGHTS_INDEX_NAME)


def test_error_index_key_without_dataset(tmp_path, hf_saved):
    d = tmp_path / "sharded"
    shutil.copytree(hf_saved["sharded"], d)
    index = d / kh5.TF2_WEIGHTS_INDEX_NAME
    data = json.loads(index.read_text())
    data["weight_map"]["tf_bert_for_pre_training/bert/ghost:0"] = "tf_model-00001-of-00004.h5"
    index.write_text(json.dumps(data))
    with pytest.raises(FormatError) as e:
        kh5.read_hf_sharded(index)
    assert "bert/ghost:0" in one_line_naming(e, index)


def _one_weight_file(path, n_links: int = 1, shape=(64, 64)) -> None:
    """A Keras weights file whose layer 'd' lists `n_links` weights, all hard links to one dataset."""
    with h5py.File(path, "w") as f:
        kh5.save_name_list(f, "layer_names", [b"d"])
        g = f.create_group("d")
        names = [f"d/w{i}:0" for i in range(n_links)]
        kh5.save_name_list(g, "weight_names", [n.encode() for n in names])
        g["d/w0:0"] = np.ones(shape, np.float32)
        for n in names[1:]:
            g[n] = g["d/w0:0"]          # a hard link: the same storage under another name


def test_error_one_dataset_linked_under_many_names(tmp_path):
    """Hard links would make one dataset's bytes count many times over in the output."""
    path = tmp_path / "links.h5"
    _one_weight_file(path, n_links=40)
    with pytest.raises(FormatError) as e:
        kh5.read(path)
    assert "adds up to more than the file" in one_line_naming(e, path)
    _one_weight_file(path, n_links=1)
    assert [w.tensor.load().sum() for w in kh5.read(path).weights] == [64 * 64]


def test_error_weight_name_through_soft_link(tmp_path):
    path = tmp_path / "soft.h5"
    _one_weight_file(path)
    with h5py.File(path, "r+") as f:
        f["real"] = f["d/d/w0:0"]
        del f["d/d/w0:0"]
        f["d/d/w0:0"] = h5py.SoftLink("/real")
    with pytest.raises(FormatError) as e:
        kh5.read(path)
    assert "soft link to /real" in one_line_naming(e, path)


class _SmallDisk:
    """A file on a disk that fills up after `room` bytes."""

    def __init__(self, f, room: int):
        self._real, self._room = f, room

    def write(self, view):
        if self._real.tell() + len(view) > self._room:
            raise OSError(28, "No space left on device")
        return self._real.write(view)

    def __getattr__(self, name):
        return getattr(self._real, name)


class _FullDisk(kh5.writing._GuardedFile):
    def __init__(self, path, mode):
        super().__init__(path, mode)
        self._f = _SmallDisk(self._f, 20_000)


@pytest.mark.parametrize("sharded", [False, True])
def test_writer_full_disk_raises_once_and_leaves_nothing(tmp_path, monkeypatch, sharded):
    monkeypatch.setattr(kh5.writing, "_GuardedFile", _FullDisk)
    specs = [TensorSpec(f"m/w{i}:0", by_name("F32"), (64, 64)) for i in range(4)]
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OSError) as e:
        if sharded:
            with kh5.HFShardedH5Writer(out, [specs[:2], specs[2:]]) as w:
                for s in specs:
                    w.write(s.name, np.ones(s.shape, np.float32))
        else:
            with kh5.KerasH5Writer(out / "x.h5", [("m", specs)]) as w:
                for s in specs:
                    w.write(s.name, np.ones(s.shape, np.float32))
    assert e.value.errno == 28 and str(out) in str(e.value.filename)
    assert os.listdir(out) == []
