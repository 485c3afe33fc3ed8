"""formats.tensorbundle against TensorFlow 2.21 / tf-keras 2.21.

TensorFlow is the oracle only: it reads the checkpoints irconv writes (tf.train.load_checkpoint,
Checkpoint.restore, Model.load_weights) and writes the ones irconv reads (TF1 Saver,
tf.train.Checkpoint, Keras save_weights, raw SaveV2). Arrays are compared as bytes so NaN,
-0.0, bf16 and fp8 survive.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from irconv.formats import tensorbundle as tb
from irconv.formats.tensorbundle import bundle, protowire, snappy, sstable
from irconv.ir.dtypes import DTYPES, by_name, from_numpy
from irconv.ir.errors import DTypeError, FormatError, UsageError
from irconv.ir.tensor import TensorSpec

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("tf_keras")

ALL_DTYPES = sorted(DTYPES)      # TF 2.21 stores every dtype irconv knows, fp8 included


def raw(a) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def random_array(rng, dtype_name: str, shape) -> np.ndarray:
    """Random bit patterns (NaN, inf, -0.0 included); bools are 0/1 as numpy requires."""
    dt = by_name(dtype_name)
    n = int(np.prod(shape, dtype=np.int64))
    if dtype_name == "BOOL":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.integers(0, 256, size=n * dt.itemsize, dtype=np.uint8).view(dt.numpy).reshape(shape)


def spec_of(name: str, a: np.ndarray) -> TensorSpec:
    return TensorSpec(name, from_numpy(a.dtype), tuple(a.shape))


def write_bundle(prefix, arrays: dict, order=None, **kwargs) -> tb.BundleWriter:
    with tb.BundleWriter(prefix, [spec_of(n, a) for n, a in arrays.items()], **kwargs) as w:
        for name in order or arrays:
            w.write(name, arrays[name])
    return w


def table_blocks(index_path) -> int:
    """Number of data blocks of a table, from its index block."""
    data = open(index_path, "rb").read()
    footer = data[-tb.FOOTER_SIZE:]
    _, _, pos = sstable._handle(footer, 0)
    offset, size, _ = sstable._handle(footer, pos)
    return len(list(sstable._block_entries(sstable._block(data, offset, size, "index"), "index")))


def assert_tf_reads(prefix, arrays: dict, strings: dict | None = None) -> None:
    reader = tf.train.load_checkpoint(str(prefix))
    dtypes = reader.get_variable_to_dtype_map()
    shapes = reader.get_variable_to_shape_map()
    strings = strings or {}
    assert set(dtypes) == set(arrays) | set(strings)
    assert dict(tf.train.list_variables(str(prefix))) == shapes
    for name, a in arrays.items():
        assert dtypes[name].as_datatype_enum == from_numpy(a.dtype).tf, name
        assert tuple(shapes[name]) == a.shape, name
        got = np.asarray(reader.get_tensor(name))
        assert got.shape == a.shape and np.array_equal(raw(got), raw(a)), name
    for name, items in strings.items():
        got = np.asarray(reader.get_tensor(name), dtype=object).reshape(-1)
        assert [bytes(x) for x in got] == items, name


def assert_reads_back(prefix, arrays: dict) -> tb.Bundle:
    bundle = tb.read(prefix)
    assert [t.name for t in bundle.tensors] == sorted(arrays, key=lambda k: k.encode())
    for t in bundle.tensors:
        a = t.load()
        assert t.dtype == from_numpy(arrays[t.name].dtype) and a.shape == arrays[t.name].shape
        assert np.array_equal(raw(a), raw(arrays[t.name])), t.name
    return bundle


def one_line_naming(err, *needles) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert str(needle) in msg, (needle, msg)
    return msg


def long_name(i: int) -> str:
    # Distinct leading bytes defeat prefix compression, so 3000 keys fill several blocks.
    h = hashlib.sha1(str(i).encode()).hexdigest()
    return f"{h}/encoder/layer_{i}/attention/self/query/{h}/{h[::-1]}/kernel"


# --------------------------------------------------------------------------- irconv -> TF

def test_bytes_identical_to_tf_savev2(tmp_path):
    """Given TF's write order, the index and data file equal TF's own BundleWriter's bytes."""
    rng = np.random.default_rng(1)
    arrays = {long_name(i): random_array(rng, ALL_DTYPES[i % len(ALL_DTYPES)], (i % 3, 2))
              for i in range(3000)}
    arrays["scalar"] = np.array(-0.0, np.float32)
    names = list(arrays)
    tf.raw_ops.SaveV2(prefix=str(tmp_path / "tf"), tensor_names=names,
                      shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(arrays[n]) for n in names])
    write_bundle(tmp_path / "ir", arrays)
    assert table_blocks(tmp_path / "ir.index") >= 3
    for suffix in (".index", ".data-00000-of-00001"):
        assert (tmp_path / ("ir" + suffix)).read_bytes() == (tmp_path / ("tf" + suffix)).read_bytes()


def test_tf_reads_sharded_writer_output(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {f"{d}/{i}": random_array(rng, d, s) for d in ALL_DTYPES
              for i, s in enumerate([(2, 3), (), (0, 4), (5,), (3, 0, 2)])}
    arrays.update({long_name(i): random_array(rng, "F32", (i % 4,)) for i in range(3000)})
    strings = {"str/vec": [b"ab", b"", b"\xff" * 300], "str/scalar": [b"hello"],
               "str/empty": []}
    string_values = {"str/vec": strings["str/vec"], "str/scalar": b"hello", "str/empty": []}
    order = list(arrays)[::-1]                 # data order differs from key order
    w = write_bundle(tmp_path / "m.ckpt", arrays, order=order, num_shards=3,
                     strings=string_values)
    assert w.num_shards == 3 and all(os.path.getsize(p) > 0 for p in w.shard_paths)
    assert table_blocks(tmp_path / "m.ckpt.index") >= 3
    assert sorted(os.listdir(tmp_path)) == ["m.ckpt.data-00000-of-00003",
                                            "m.ckpt.data-00001-of-00003",
                                            "m.ckpt.data-00002-of-00003", "m.ckpt.index"]
    assert_tf_reads(tmp_path / "m.ckpt", arrays, strings)
    bundle = assert_reads_back(tmp_path / "m.ckpt", arrays)
    assert bundle.strings == strings and bundle.header.num_shards == 3
    assert bundle.string_shapes == {"str/vec": (3,), "str/scalar": (), "str/empty": (0,)}
    assert bundle.object_graph is None


def test_max_shard_size_and_state_file(tmp_path):
    arrays = {f"w{i}": np.full((256,), i, np.float32) for i in range(5)}   # 1 KiB each
    prefix = tmp_path / "out" / "modèl.ckpt-7"      # non-ASCII survives the text format
    w = write_bundle(prefix, arrays, max_shard_size="2KiB", write_state=True)
    assert w.num_shards == 3
    assert tf.train.latest_checkpoint(str(tmp_path / "out")) == str(prefix)
    assert_tf_reads(prefix, arrays)
    assert tb.read(tmp_path / "out").prefix == str(prefix)
    assert (tmp_path / "out" / "checkpoint").read_text().startswith(
        'model_checkpoint_path: "mod\\303\\250l.ckpt-7"\n')


def test_written_object_graph_restores_in_tf(tmp_path):
    """A TF2 checkpoint read by irconv and rewritten (3 shards) loads into a fresh model."""
    model = small_keras_model()
    model.save_weights(str(tmp_path / "orig" / "ckpt"))
    bundle = tb.read(tmp_path / "orig")
    arrays = {t.name: t.load() for t in bundle.tensors}
    write_bundle(tmp_path / "new" / "w", arrays, num_shards=3, write_state=True,
                 strings={k: (v[0] if bundle.string_shapes[k] == () else v)
                          for k, v in bundle.strings.items()})
    fresh = small_keras_model(seed=5)
    fresh.load_weights(str(tmp_path / "new" / "w")).assert_existing_objects_matched()
    for a, b in zip(model.weights, fresh.weights):
        assert np.array_equal(raw(a.numpy()), raw(b.numpy())), a.name


def test_encoded_object_graph_restores_checkpoint(tmp_path):
    """An object graph built from scratch with encode_object_graph, restored by tf.train.Checkpoint."""
    key = "model/v/.ATTRIBUTES/VARIABLE_VALUE"
    counter = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"
    nodes = [tb.TrackableObject(children=[tb.ObjectReference(1, "model"),
                                          tb.ObjectReference(3, "save_counter")]),
             tb.TrackableObject(children=[tb.ObjectReference(2, "v")]),
             tb.TrackableObject(attributes=[tb.SerializedTensor("VARIABLE_VALUE", "v", key)]),
             tb.TrackableObject(attributes=[tb.SerializedTensor("VARIABLE_VALUE", "save_counter",
                                                                counter)])]
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_bundle(tmp_path / "ck", {key: value, counter: np.int64(4)},
                 strings={tb.OBJECT_GRAPH_KEY: tb.encode_object_graph(nodes)})
    module = tf.Module()
    module.v = tf.Variable(np.zeros((2, 3), np.float32))
    checkpoint = tf.train.Checkpoint(model=module)
    checkpoint.restore(str(tmp_path / "ck")).assert_consumed()
    assert np.array_equal(module.v.numpy(), value) and checkpoint.save_counter.numpy() == 4
    bundle = tb.read(tmp_path / "ck")
    assert bundle.object_graph == {key: "v", counter: "save_counter"}
    assert tb.variable_names(bundle) == {key: "v", counter: None}


# --------------------------------------------------------------------------- TF -> irconv

def test_reads_tf1_saver_checkpoint_with_adam(tmp_path):
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3])
        with tf.compat.v1.variable_scope("bert/dense"):
            kernel = tf.compat.v1.get_variable("kernel", [3, 2])
            bias = tf.compat.v1.get_variable("bias", [2], dtype=tf.float32)
        emb = tf.compat.v1.get_variable("emb", [4, 3], dtype=tf.float16)
        loss = tf.reduce_sum(tf.matmul(x, kernel) + bias) + tf.cast(tf.reduce_sum(emb), tf.float32)
        step = tf.compat.v1.train.get_or_create_global_step()
        train = tf.compat.v1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(train, {x: np.ones((2, 3), np.float32)})
            prefix = saver.save(sess, str(tmp_path / "tf1" / "model.ckpt"), global_step=step)
            values = {v.op.name: sess.run(v) for v in tf.compat.v1.global_variables()}
    assert prefix.endswith("model.ckpt-1")
    assert {"bert/dense/kernel/Adam", "bert/dense/kernel/Adam_1", "global_step",
            "beta1_power"} <= set(values)

    bundle = assert_reads_back(tmp_path / "tf1", {k: np.asarray(v) for k, v in values.items()})
    assert bundle.prefix == prefix and bundle.objects is None   # absolute path in the state file
    assert bundle.header == tb.BundleHeader(num_shards=1, version=1)
    names = tb.variable_names(bundle)
    assert {k: n for k, n in names.items() if n} == {
        "bert/dense/kernel": "bert/dense/kernel", "bert/dense/bias": "bert/dense/bias",
        "emb": "emb"}
    assert names["bert/dense/kernel/Adam_1"] is None and names["global_step"] is None
    assert names["beta2_power"] is None

    # The state file holds absolute paths: a moved directory still resolves.
    shutil.move(tmp_path / "tf1", tmp_path / "moved")
    assert tb.read(tmp_path / "moved").prefix == str(tmp_path / "moved" / "model.ckpt-1")
    assert tb.read(tmp_path / "moved" / "model.ckpt-1.index").prefix.endswith("model.ckpt-1")


def test_reads_tf2_checkpoint_with_slots(tmp_path):
    class Net(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.linspace(-1, 1, 6).reshape(2, 3).astype(np.float32), name="net/w")
            self.b = tf.Variable(np.zeros(3, np.float64), name="net/b")
            self.steps = tf.Variable(np.int64(3), name="steps")

    net = Net()
    opt = keras.optimizers.legacy.Adam(0.01)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(net.w) + tf.cast(tf.reduce_sum(net.b), tf.float32)
    opt.apply_gradients(zip(tape.gradient(loss, [net.w, net.b]), [net.w, net.b]))
    prefix = tf.train.Checkpoint(net=net, opt=opt).save(str(tmp_path / "ckpt"))

    reader = tf.train.load_checkpoint(prefix)
    numeric = {k for k, d in reader.get_variable_to_dtype_map().items() if d != tf.string}
    bundle = assert_reads_back(tmp_path, {k: reader.get_tensor(k) for k in numeric})
    assert bundle.prefix == prefix
    graph_bytes = bundle.strings[tb.OBJECT_GRAPH_KEY][0]
    assert graph_bytes == reader.get_tensor(tb.OBJECT_GRAPH_KEY)
    assert tb.encode_object_graph(tb.decode_object_graph(graph_bytes)) == graph_bytes
    names = tb.variable_names(bundle)
    assert {k: n for k, n in names.items() if n} == {
        "net/w/.ATTRIBUTES/VARIABLE_VALUE": "net/w", "net/b/.ATTRIBUTES/VARIABLE_VALUE": "net/b",
        "net/steps/.ATTRIBUTES/VARIABLE_VALUE": "steps"}
    assert names["net/w/.OPTIMIZER_SLOT/opt/m/.ATTRIBUTES/VARIABLE_VALUE"] is None
    assert names["opt/iter/.ATTRIBUTES/VARIABLE_VALUE"] is None
    assert names["save_counter/.ATTRIBUTES/VARIABLE_VALUE"] is None


def small_keras_model(seed: int = 0):
    keras.backend.clear_session()      # layer names restart at "dense", not "dense_2"
    keras.utils.set_random_seed(seed)
    inp = keras.Input((4,))
    h = keras.layers.Dense(3)(inp)
    h = keras.layers.LayerNormalization()(h)
    h = keras.layers.Dropout(0.1)(h)
    out = keras.layers.Dense(2, name="head")(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(), "mse")
    model.fit(np.ones((4, 4)), np.ones((4, 2)), verbose=0)
    return model


def test_reads_keras_save_weights_via_state_file(tmp_path):
    model = small_keras_model()
    model.save_weights(str(tmp_path / "ckpt"))
    assert 'model_checkpoint_path: "ckpt"' in (tmp_path / "checkpoint").read_text()

    bundle = tb.read(tmp_path)        # the directory: follows the relative state-file path
    assert bundle.prefix == str(tmp_path / "ckpt")
    names = tb.variable_names(bundle)
    assert names["layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"] == "dense/kernel"
    model_names = {k: n for k, n in names.items() if n is not None}
    assert sorted(model_names.values()) == sorted(v.name[:-2] for v in model.weights)
    assert any(k.startswith("optimizer/") for k in names)
    assert all(n is None for k, n in names.items() if k.startswith("optimizer/"))
    tensors = {t.name: t for t in bundle.tensors}
    by_name = {v.name[:-2]: v.numpy() for v in model.weights}
    for key, name in model_names.items():
        assert np.array_equal(raw(tensors[key].load()), raw(by_name[name])), key
    assert bundle.object_graph["layer_with_weights-2/bias/.ATTRIBUTES/VARIABLE_VALUE"] == "head/bias"


def test_variable_names_rebuilds_paths_without_full_name(tmp_path):
    key = "enc/layer/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    slot = "enc/layer/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE"
    nodes = [tb.TrackableObject(children=[tb.ObjectReference(1, "enc"), tb.ObjectReference(4, "optimizer")]),
             tb.TrackableObject(children=[tb.ObjectReference(2, "layer")]),
             tb.TrackableObject(children=[tb.ObjectReference(3, "kernel")]),
             tb.TrackableObject(attributes=[tb.SerializedTensor("VARIABLE_VALUE", "", key)]),
             tb.TrackableObject(slot_variables=[tb.SlotVariableReference(3, "m", 5)]),
             tb.TrackableObject(attributes=[tb.SerializedTensor("VARIABLE_VALUE", "", slot)])]
    a = np.ones((2, 2), np.float32)
    write_bundle(tmp_path / "p", {key: a, slot: a},
                 strings={tb.OBJECT_GRAPH_KEY: tb.encode_object_graph(nodes)})
    assert tb.variable_names(tb.read(tmp_path / "p")) == {key: "enc/layer/kernel", slot: None}


# --------------------------------------------------------------------------- property tests

# Few distinct pieces, so keys share prefixes (the index's prefix compression) and collide.
names = st.lists(st.sampled_from(["a", "ab", "layer", "/", "_0", "é", "日本", "\U0001F600", "."]),
                 min_size=1, max_size=8).map("".join)
entries = st.lists(
    st.tuples(names, st.sampled_from(ALL_DTYPES), st.lists(st.integers(0, 4), max_size=3).map(tuple)),
    min_size=1, max_size=40, unique_by=lambda e: e[0])


def random_set(entries, seed):
    rng = np.random.default_rng(seed)
    arrays = {name: random_array(rng, d, shape) for name, d, shape in entries}
    order = list(arrays)
    rng.shuffle(order)
    return arrays, order


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=entries, seed=st.integers(0, 2**32 - 1), num_shards=st.integers(1, 4),
       block_size=st.sampled_from([64, 300, tb.BLOCK_SIZE]))
def test_round_trip_random_sets(tmp_path_factory, entries, seed, num_shards, block_size):
    tmp = tmp_path_factory.mktemp("rt")
    arrays, order = random_set(entries, seed)
    write_bundle(tmp / "x", arrays, order=order, num_shards=num_shards, block_size=block_size)
    assert_reads_back(tmp / "x", arrays)


@settings(max_examples=8, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=entries, seed=st.integers(0, 2**32 - 1), num_shards=st.integers(1, 3),
       block_size=st.sampled_from([64, tb.BLOCK_SIZE]))
def test_random_sets_load_in_tensorflow(tmp_path_factory, entries, seed, num_shards, block_size):
    tmp = tmp_path_factory.mktemp("tf")
    arrays, order = random_set(entries, seed)
    write_bundle(tmp / "x", arrays, order=order, num_shards=num_shards, block_size=block_size)
    assert_tf_reads(tmp / "x", arrays)


# --------------------------------------------------------------------------- corruption

@pytest.fixture
def small(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(5, dtype=np.int64),
              "c": np.ones((4,), np.float16)}
    write_bundle(tmp_path / "m", arrays, num_shards=2, strings={"s": [b"xy", b"z"]})
    return tmp_path / "m", arrays


def craft_index(prefix, pairs, num_shards=1) -> None:
    """A table of (key, entry bytes) exactly as given, with a valid header."""
    with open(f"{prefix}.index", "wb") as f:
        table = sstable._TableBuilder(f)
        table.add(b"", bundle._encode_header(num_shards))
        for key, value in pairs:
            table.add(key, value)
        table.finish()


def entry(dtype=1, shape=(2,), offset=0, size=8, crc=0, shard=0) -> bytes:
    return bundle._encode_entry(bundle._Entry(dtype, shape, shard, offset, size, crc, False))


@pytest.mark.parametrize("keep", [20, -10])
def test_truncated_index(small, keep):
    prefix, _ = small
    index = f"{prefix}.index"
    data = open(index, "rb").read()
    open(index, "wb").write(data[:keep])
    with pytest.raises(FormatError) as e:
        tb.read(prefix)
    one_line_naming(e, index, "truncated")


def test_flipped_bit_in_data_shard(small):
    prefix, arrays = small
    bundle = tb.read(prefix)
    c = next(t for t in bundle.tensors if t.name == "c")
    shard = tb.data_path(str(prefix), 1, 2)
    data = bytearray(open(shard, "rb").read())
    data[-3] ^= 0x10                      # inside "c", the last tensor of shard 1
    open(shard, "wb").write(data)
    with pytest.raises(FormatError) as e:
        c.load()
    one_line_naming(e, shard, "'c'", "checksum mismatch", "corrupted file")
    assert np.array_equal(next(t for t in bundle.tensors if t.name == "a").load(), arrays["a"])


def test_flipped_bit_in_string_tensor(small):
    prefix, _ = small
    shard = tb.data_path(str(prefix), 0, 2)
    data = bytearray(open(shard, "rb").read())
    data[5] ^= 1                          # the string bytes, written first in shard 0
    open(shard, "wb").write(data)
    with pytest.raises(FormatError) as e:
        tb.read(prefix)
    one_line_naming(e, shard, "'s'", "checksum mismatch")


@pytest.mark.parametrize("where", ["data", "index"])
def test_flipped_bit_in_index_block(small, where):
    prefix, _ = small
    index = f"{prefix}.index"
    data = bytearray(open(index, "rb").read())
    footer = data[-tb.FOOTER_SIZE:]
    _, _, pos = sstable._handle(footer, 0)
    index_offset, _, _ = sstable._handle(footer, pos)
    data[10 if where == "data" else index_offset + 1] ^= 0x04
    open(index, "wb").write(data)
    with pytest.raises(FormatError) as e:
        tb.read(prefix)
    one_line_naming(e, index, "block checksum mismatch")


def test_missing_data_shard(small):
    prefix, _ = small
    os.remove(tb.data_path(str(prefix), 1, 2))
    with pytest.raises(FormatError) as e:
        tb.read(prefix)
    one_line_naming(e, f"{prefix}.index", "missing data shard",
                    tb.data_path(str(prefix), 1, 2))


def test_truncated_data_shard(small):
    prefix, _ = small
    shard = tb.data_path(str(prefix), 1, 2)
    os.truncate(shard, os.path.getsize(shard) - 1)
    with pytest.raises(FormatError) as e:
        tb.read(prefix)
    one_line_naming(e, shard, "truncated")


def test_key_out_of_order(tmp_path):
    prefix = tmp_path / "bad"
    open(tb.data_path(str(prefix), 0, 1), "wb").write(bytes(8))
    craft_index(prefix, [(b"b", entry()), (b"a", entry())])
    with pytest.raises(FormatError) as e:
        tb.read(prefix)
    one_line_naming(e, f"{prefix}.index", "key out of order", "b'a'")


@pytest.mark.parametrize("value, exc, needles", [
    (entry(dtype=21), DTypeError, ["'w'", "DT_VARIANT"]),
    (entry(dtype=99), DTypeError, ["'w'", "DataType 99"]),
    (entry(size=7), FormatError, ["'w'", "size 7", "needs 8"]),
    (entry(offset=4), FormatError, ["'w'", "run past the end"]),
    (entry(shard=1), FormatError, ["'w'", "shard 1"]),
    (entry() + b"\x3a\x04\x0a\x02\x08\x00", FormatError, ["'w'", "partitioned", "not supported yet"]),
    (b"\x08", FormatError, ["entry b'w'", "truncated varint"]),
])
def test_bad_entries(tmp_path, value, exc, needles):
    prefix = tmp_path / "bad"
    open(tb.data_path(str(prefix), 0, 1), "wb").write(bytes(8))
    craft_index(prefix, [(b"w", value)])
    with pytest.raises(exc) as e:
        tb.read(prefix)
    one_line_naming(e, *needles)


def test_not_a_table_and_no_header(tmp_path):
    (tmp_path / "x.index").write_bytes(b"\0" * 100)
    with pytest.raises(FormatError, match="magic") as e:
        tb.read(tmp_path / "x")
    one_line_naming(e, tmp_path / "x.index")
    with open(tmp_path / "y.index", "wb") as f:
        table = sstable._TableBuilder(f)
        table.add(b"k", entry())
        table.finish()
    with pytest.raises(FormatError, match="no bundle header"):
        tb.read(tmp_path / "y.index")
    with pytest.raises(FormatError, match="no checkpoint index") as e:
        tb.read(tmp_path / "nothing")
    one_line_naming(e, tmp_path / "nothing")
    assert not tb.looks_like(tmp_path / "x") and tb.looks_like(tmp_path / "y")


def test_snappy_blocks(tmp_path):
    # "abcabcabcabc": literal "abc" then a 1-byte-offset copy of length 9 at distance 3.
    assert snappy._snappy_decompress(b"\x0c\x08abc\x15\x03") == b"abcabcabcabc"
    with pytest.raises(ValueError, match="offset"):
        snappy._snappy_decompress(b"\x0c\x08abc\x15\x09")

    def literal_snappy(data: bytes) -> bytes:   # valid snappy: one literal per <=60 bytes
        out = bytearray()
        protowire._put_varint(out, len(data))
        for i in range(0, len(data), 60):
            chunk = data[i:i + 60]
            out += bytes([(len(chunk) - 1) << 2]) + chunk
        return bytes(out)

    prefix = tmp_path / "sn"
    a = np.arange(2, dtype=np.float32)
    open(tb.data_path(str(prefix), 0, 1), "wb").write(a.tobytes())
    with open(f"{prefix}.index", "wb") as f:
        table = sstable._TableBuilder(f, compress=literal_snappy)
        table.add(b"", bundle._encode_header(1))
        table.add(b"w", entry(crc=tb.mask(sstable._crc(a.tobytes()))))
        table.finish()
    assert np.array_equal(tb.read(prefix).tensors[0].load(), a)


def test_directory_resolution(tmp_path):
    write_bundle(tmp_path / "one" / "m", {"a": np.zeros(2, np.int8)})
    assert tb.read(tmp_path / "one").prefix == str(tmp_path / "one" / "m")   # lone .index
    write_bundle(tmp_path / "one" / "n", {"a": np.zeros(2, np.int8)})
    with pytest.raises(FormatError, match="2 '\\*.index' files") as e:
        tb.read(tmp_path / "one")
    one_line_naming(e, tmp_path / "one")
    assert tb.read(tmp_path / "one" / "n.data-00000-of-00001").prefix == str(tmp_path / "one" / "n")


# --------------------------------------------------------------------------- writer misuse

def test_writer_refuses_misuse_and_leaves_nothing(tmp_path):
    specs = [TensorSpec("a", by_name("F32"), (2,)), TensorSpec("b", by_name("I8"), ())]
    w = tb.BundleWriter(tmp_path / "m", specs, num_shards=2)
    with pytest.raises(DTypeError, match="float64"):
        w.write("a", np.zeros(2))
    with pytest.raises(UsageError, match="shape"):
        w.write("a", np.zeros(3, np.float32))
    with pytest.raises(UsageError, match="not among"):
        w.write("z", np.zeros(2, np.float32))
    w.write("a", np.zeros(2, np.float32))
    with pytest.raises(UsageError, match="twice"):
        w.write("a", np.zeros(2, np.float32))
    with pytest.raises(FormatError, match=r"never written: \['b'\]") as e:
        w.close()
    one_line_naming(e, tmp_path / "m")
    assert os.listdir(tmp_path) == []

    w = tb.BundleWriter(tmp_path / "m", specs)
    w.write("a", np.zeros(2, np.float32))
    w.abort()
    assert os.listdir(tmp_path) == []
    with pytest.raises(UsageError, match="after close"):
        w.write("b", np.int8(1))

    with pytest.raises(UsageError, match="duplicate"):
        tb.BundleWriter(tmp_path / "m", specs, strings={"a": b""})
    with pytest.raises(UsageError, match="header"):
        tb.BundleWriter(tmp_path / "m", [TensorSpec("", by_name("F32"), ())])
    with pytest.raises(UsageError, match="not both"):
        tb.BundleWriter(tmp_path / "m", specs, num_shards=2, max_shard_size=10)
    with pytest.raises(UsageError, match="prefix"):
        tb.BundleWriter(tmp_path / "m.index", specs)
    with pytest.raises(UsageError, match="bytes"):
        tb.BundleWriter(tmp_path / "m", [], strings={"s": ["text"]})
    assert os.listdir(tmp_path) == []


def test_writer_big_endian_and_empty(tmp_path):
    a = np.arange(4, dtype=">i4")
    write_bundle(tmp_path / "e", {"be": a.astype("<i4")}, order=None)
    with tb.BundleWriter(tmp_path / "f", [spec_of("be", a.astype("<i4"))]) as w:
        w.write("be", a)
    assert (tmp_path / "e.data-00000-of-00001").read_bytes() == \
        (tmp_path / "f.data-00000-of-00001").read_bytes()
    write_bundle(tmp_path / "empty", {})
    assert_tf_reads(tmp_path / "empty", {})
    assert tb.read(tmp_path / "empty").tensors == []


def test_masked_crc_matches_leveldb():
    # leveldb util/crc32c_test.cc: Mask is not the identity and Unmask inverts it.
    crc = sstable._crc(b"foo")
    assert tb.mask(crc) != crc and tb.mask(tb.mask(crc)) != crc
    assert tb.unmask(tb.mask(crc)) == crc and tb.unmask(tb.unmask(tb.mask(tb.mask(crc)))) == crc
    assert sstable._crc(b"123456789") == 0xE3069283            # the CRC-32C check value
    assert struct.pack("<Q", tb.TABLE_MAGIC)[-4:] == bytes.fromhex("2475 47db")


# --------------------------------------------------------------------------- hostile input

@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.binary(max_size=40),
                                 st.builds(entry, st.sampled_from([1, 7, 10, 21]),
                                           st.lists(st.integers(0, 3), max_size=2).map(tuple),
                                           st.integers(0, 40), st.integers(0, 40),
                                           st.integers(0, 2**32 - 1))),
                       max_size=5),
       data=st.binary(max_size=64))
def test_hostile_entries_raise_irconv_errors(tmp_path_factory, values, data):
    """Checksums pass (the table is well formed) but entries are garbage: only IrconvErrors."""
    prefix = tmp_path_factory.mktemp("h") / "h"
    open(tb.data_path(str(prefix), 0, 1), "wb").write(data)
    craft_index(prefix, [(f"k{i}".encode(), v) for i, v in enumerate(values)])
    try:
        for t in tb.read(prefix).tensors:
            t.load()
    except (FormatError, DTypeError):
        pass


@settings(max_examples=200, deadline=None, database=None)
@given(blob=st.binary(max_size=80))
def test_decode_object_graph_rejects_garbage_cleanly(blob):
    try:
        nodes = tb.decode_object_graph(blob)
    except ValueError:
        return
    assert tb.decode_object_graph(tb.encode_object_graph(nodes)) == nodes


# --------------------------------------------------------------------------- hostile inputs (issue 12)

def _moved(tmp_path, state: str):
    """d/ holds a `checkpoint` naming `state`; the checkpoint itself lives in evil/ beside d/."""
    write_bundle(tmp_path / "evil" / "m", {"a": np.arange(3, dtype=np.int8)})
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "checkpoint").write_text(f'model_checkpoint_path: "{state}"\n')
    return tmp_path / "d"


@pytest.mark.parametrize("state", ["../evil/m", "{tmp}/evil/m", "sub/m"])
def test_state_file_never_leads_outside_the_directory(tmp_path, state):
    d = _moved(tmp_path, state.format(tmp=tmp_path))
    os.symlink(tmp_path / "evil", d / "sub")
    with pytest.raises(FormatError, match="outside the directory") as e:
        tb.read(d)
    one_line_naming(e, d / "checkpoint")


def test_state_file_absolute_paths_resolve_inside(tmp_path):
    """An absolute path (TF1 Saver) is read as the same name inside the directory, whether
    the directory moved since or not; a relative one may name a subdirectory."""
    write_bundle(tmp_path / "d" / "sub" / "m", {"a": np.arange(3, dtype=np.int8)})
    state = tmp_path / "d" / "checkpoint"
    state.write_text(f'model_checkpoint_path: "{tmp_path}/d/sub/m"\n')
    assert tb.read(tmp_path / "d").prefix == str(tmp_path / "d" / "sub" / "m")
    state.write_text('model_checkpoint_path: "sub/m"\n')
    assert tb.read(tmp_path / "d").prefix == str(tmp_path / "d" / "sub" / "m")
    write_bundle(tmp_path / "d" / "n", {"a": np.arange(3, dtype=np.int8)})
    state.write_text('model_checkpoint_path: "/gone/elsewhere/n"\n')      # moved since
    assert tb.read(tmp_path / "d").prefix == str(tmp_path / "d" / "n")


@pytest.mark.parametrize("which", ["index", "data", "checkpoint"])
def test_fifos_are_refused_without_blocking(small, which):
    prefix, _ = small
    path = {"index": f"{prefix}.index", "data": tb.data_path(str(prefix), 0, 2),
            "checkpoint": prefix.parent / "checkpoint"}[which]
    if os.path.exists(path):
        os.unlink(path)
    os.mkfifo(path)
    with pytest.raises(FormatError, match="FIFO") as e:
        tb.read(prefix.parent if which == "checkpoint" else prefix)
    one_line_naming(e, path)


def test_varints_past_64_bits_are_refused():
    with pytest.raises(ValueError, match="64 bits"):
        protowire._get_varint(b"\xff" * 9 + b"\x7f", 0)
    assert protowire._get_varint(b"\xff" * 9 + b"\x01", 0) == ((1 << 64) - 1, 10)


@pytest.mark.parametrize("restarts, needle", [
    ([0, 1 << 30], "restart array"), ([4], "restart array"), ([0, 0], "restart array"),
    ([0, 3], "not the start of an entry"),
])
def test_restart_arrays_are_checked(restarts, needle):
    entries = b"".join(bytes([0, 1, 1]) + k + b"v" for k in (b"a", b"b"))
    block = entries + struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))
    with pytest.raises(ValueError, match=needle):
        list(sstable._block_entries(block, "block"))
    good = entries + struct.pack("<2I", 0, 5) + struct.pack("<I", 2)      # 5 bytes an entry
    assert list(sstable._block_entries(good, "block")) == [(b"a", b"v"), (b"b", b"v")]


def test_snappy_declared_size_is_bounded():
    with pytest.raises(ValueError, match="more than its"):
        snappy._snappy_decompress(b"\x80\x80\x80\x80\x80\x01" + b"\x00a")


def test_entries_sharing_bytes_are_refused(tmp_path):
    prefix = tmp_path / "o"
    data = np.arange(4, dtype=np.float32).tobytes()
    open(tb.data_path(str(prefix), 0, 1), "wb").write(data)
    crc = tb.mask(sstable._crc(data))
    craft_index(prefix, [(b"a", entry(shape=(4,), size=16, crc=crc)),
                         (b"b", entry(shape=(4,), size=16, crc=crc))])
    with pytest.raises(FormatError, match="'a' and 'b' share bytes") as e:
        tb.read(prefix)
    one_line_naming(e, tb.data_path(str(prefix), 0, 1))


def test_string_length_past_64_bits_is_a_clean_error(tmp_path):
    prefix = tmp_path / "s"
    payload = b"\xff" * 9 + b"\x03" + bytes(8)          # a varint of 65 bits
    open(tb.data_path(str(prefix), 0, 1), "wb").write(payload)
    craft_index(prefix, [(b"s", entry(dtype=7, shape=(1,), size=len(payload)))])
    with pytest.raises(FormatError) as e:
        tb.read(prefix)
    one_line_naming(e, "string tensor 's'", "64 bits", tb.data_path(str(prefix), 0, 1))


def test_object_graph_depth_is_bounded_and_cycles_are_fine():
    chain = [tb.TrackableObject(children=[tb.ObjectReference(i + 1, "x")]) for i in range(300)]
    with pytest.raises(ValueError, match="nests 300 objects deep"):
        tb.decode_object_graph(tb.encode_object_graph(chain + [tb.TrackableObject()]))
    cycle = [tb.TrackableObject(children=[tb.ObjectReference(1, "a")]),
             tb.TrackableObject(children=[tb.ObjectReference(0, "back")])]
    assert len(tb.decode_object_graph(tb.encode_object_graph(cycle))) == 2


def test_writer_on_a_full_disk_names_the_file_and_leaves_nothing(tmp_path):
    import resource
    import signal
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(FormatError) as e:
            write_bundle(tmp_path / "m", {"a": np.zeros(4096, np.float32)})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    one_line_naming(e, tb.data_path(str(tmp_path / "m"), 0, 1), "cannot write: File too large")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("num_shards", [1, 2])
def test_tensors_copied_in_from_a_file_make_the_same_bundle_as_written_ones(tmp_path, num_shards):
    """copy() (a kernel copy from a safetensors file, the crc32c read back from the shard)
    and write() give the same files, and TensorFlow reads them (it checks each crc32c)."""
    from conftest import written_both_ways
    rng = np.random.default_rng(1)
    arrays = {"w": rng.standard_normal((300, 7)).astype(np.float32), "i": np.arange(9, dtype=np.int64),
              "e": np.zeros((0, 2), np.float32), "h": rng.standard_normal(5000).astype(np.float16)}
    written_both_ways(tmp_path, arrays, lambda p, specs: tb.BundleWriter(p, specs, num_shards=num_shards), "m")
    assert snapshot_files(tmp_path / "copy") == snapshot_files(tmp_path / "write")
    reader = tf.train.load_checkpoint(str(tmp_path / "copy" / "m"))
    for name, a in arrays.items():
        assert np.array_equal(reader.get_tensor(name), a)


def snapshot_files(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}
