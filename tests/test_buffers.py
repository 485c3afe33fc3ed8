"""ir/buffers.py: large arrays reused while a pipeline runs. A buffer goes back to the pool only
once nothing refers to it (no view, no slice, no reshaped copy of the handle), the pool never
makes more than its cap, and outside a pipeline nothing is pooled."""
from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from irconv.ir import buffers
from irconv.ir.dtypes import DTYPES
from irconv.ir.pipeline import loaded
from irconv.ir.tensor import Tensor, TensorSpec

from conftest import run_irconv

MIB = 1 << 20


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_outside_a_pipeline_an_array_is_numpys_own():
    a = buffers.empty((MIB,), np.float32)
    assert a.flags.owndata and a.shape == (MIB,) and a.dtype == np.float32


def test_small_arrays_are_never_pooled():
    with buffers.pooled(64 * MIB):
        a = buffers.empty(1000, np.uint8)
        assert a.flags.owndata


def test_a_buffer_is_reused_once_every_view_of_it_is_gone():
    with buffers.pooled(64 * MIB):
        a = buffers.empty((256, 1024), np.float32)
        assert a.shape == (256, 1024) and a.dtype == np.float32 and a.flags.writeable
        first = _address(a)
        del a
        gc.collect()
        b = buffers.empty(MIB, np.uint8)
        assert _address(b) == first


@pytest.mark.parametrize("keep", ["slice", "view", "reshape", "memoryview"])
def test_a_buffer_with_a_live_view_is_not_handed_out_again(keep):
    with buffers.pooled(64 * MIB):
        a = buffers.empty(2 * MIB, np.uint8)
        a[:] = 7
        held = {"slice": lambda: a[10:20], "view": lambda: a.view(np.uint16),
                "reshape": lambda: a.reshape(2, MIB), "memoryview": lambda: memoryview(a)}[keep]()
        del a
        gc.collect()
        b = buffers.empty(2 * MIB, np.uint8)
        b[:] = 9
        assert not np.shares_memory(np.asarray(held), b)
        assert (np.asarray(held).view(np.uint8) == 7).all()


def test_the_pool_makes_at_most_its_cap_and_then_leaves_it_to_numpy():
    with buffers.pooled(4 * MIB):
        a = buffers.empty(2 * MIB, np.uint8)
        b = buffers.empty(2 * MIB, np.uint8)
        c = buffers.empty(2 * MIB, np.uint8)      # over the cap while a and b are in use
        assert not a.flags.owndata and not b.flags.owndata and c.flags.owndata
        assert buffers._state["made"] == 4 * MIB


def test_a_free_buffer_of_another_size_is_dropped_to_make_room():
    with buffers.pooled(4 * MIB):
        a = buffers.empty(3 * MIB, np.uint8)
        del a
        gc.collect()
        b = buffers.empty(MIB + 1, np.uint8)      # the free 3 MiB is over twice its size
        assert not b.flags.owndata and buffers._state["made"] == MIB + 1
        assert not buffers._free
        d = buffers.empty(2 * MIB, np.uint8)      # room for it beside b: a new one
        assert not d.flags.owndata and buffers._state["made"] == 3 * MIB + 1


def test_when_the_last_pipeline_ends_the_free_buffers_are_released():
    with buffers.pooled(16 * MIB):
        with buffers.pooled(8 * MIB):
            a = buffers.empty(2 * MIB, np.uint8)
        assert buffers._state["users"] == 1
        del a
        gc.collect()
        assert buffers._free
    assert not buffers._free and buffers._state == {"users": 0, "cap": 0, "made": 0}


def test_a_buffer_still_in_use_when_the_pipeline_ends_is_not_kept():
    with buffers.pooled(16 * MIB):
        a = buffers.empty(2 * MIB, np.uint8)
    del a
    gc.collect()
    assert not buffers._free and buffers._state["made"] == 0


def test_threads_taking_and_dropping_buffers_never_share_one_in_use():
    failures = []

    def work(n: int):
        for i in range(40):
            a = buffers.empty(MIB + 4096 * (i % 3), np.uint8)
            a[:] = n
            if not (a == n).all():
                failures.append((n, i))
            del a

    with buffers.pooled(32 * MIB):
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not failures


def test_arrays_loaded_ahead_keep_their_own_bytes_while_held():
    """The consumer holds every array it was given: none of them is reused under it."""
    def tensor(n):
        def load():
            a = buffers.empty(2 * MIB, np.uint8)
            a[:] = n
            return a
        return Tensor(TensorSpec(f"t{n}", DTYPES["U8"], (2 * MIB,)), load)
    kept = [a for _, a in loaded([tensor(n) for n in range(12)], jobs=2)]
    assert [int(a[0]) for a in kept] == list(range(12))
    assert all((a == n).all() for n, a in enumerate(kept))


def test_a_convert_and_a_pipe_of_many_large_tensors_keep_every_byte(tmp_path):
    """Many layer matrices of the same size (each relayout's result and each stream read from
    a reused buffer) go to TF and back bit for bit, read by safetensors."""
    rng = np.random.default_rng(3)
    d = 512
    tensors = {"embeddings.word_embeddings.weight": rng.standard_normal((64, d), np.float32),
               "embeddings.position_embeddings.weight": rng.standard_normal((16, d), np.float32),
               "embeddings.token_type_embeddings.weight": rng.standard_normal((2, d), np.float32),
               "embeddings.LayerNorm.weight": rng.standard_normal(d, np.float32),
               "embeddings.LayerNorm.bias": rng.standard_normal(d, np.float32)}
    for layer in range(3):
        p = f"encoder.layer.{layer}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            tensors[p + name + ".weight"] = rng.standard_normal((d, d), np.float32)
            tensors[p + name + ".bias"] = rng.standard_normal(d, np.float32)
        tensors[p + "intermediate.dense.weight"] = rng.standard_normal((2 * d, d), np.float32)
        tensors[p + "intermediate.dense.bias"] = rng.standard_normal(2 * d, np.float32)
        tensors[p + "output.dense.weight"] = rng.standard_normal((d, 2 * d), np.float32)
        tensors[p + "output.dense.bias"] = rng.standard_normal(d, np.float32)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[p + ln + ".weight"] = rng.standard_normal(d, np.float32)
            tensors[p + ln + ".bias"] = rng.standard_normal(d, np.float32)
    src = tmp_path / "src"
    src.mkdir()
    save_file(tensors, str(src / "model.safetensors"))
    (src / "config.json").write_text(
        '{"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 64, "hidden_size": %d, '
        '"num_hidden_layers": 3, "num_attention_heads": 8, "intermediate_size": %d, '
        '"max_position_embeddings": 16, "type_vocab_size": 2}' % (d, 2 * d))
    run_irconv("convert", src, tmp_path / "tf2", "--to", "tf2", "--jobs", "2", check=True)
    run_irconv("convert", tmp_path / "tf2", tmp_path / "back", "--to", "pt", "--jobs", "2", check=True)
    stream = tmp_path / "s.irs"
    run_irconv("import", "pt", src, "-o", stream, check=True)
    run_irconv("export", "tf1", tmp_path / "tf1", "-i", stream, "--jobs", "2", check=True)
    run_irconv("convert", tmp_path / "tf1", tmp_path / "back1", "--to", "pt", "--jobs", "2", check=True)
    # TensorFlow's own reader of the checkpoint written from the stream: each kernel is its
    # source's transpose (every one relaid out into a reused buffer).
    tf = pytest.importorskip("tensorflow")
    reader = tf.train.load_checkpoint(str(tmp_path / "tf1" / "bert_model.ckpt"))
    for layer in range(3):
        p = f"encoder.layer.{layer}."
        for pt_name, tf_name in (("attention.self.query", "attention/self/query"),
                                 ("intermediate.dense", "intermediate/dense"),
                                 ("output.dense", "output/dense")):
            got = reader.get_tensor(f"bert/encoder/layer_{layer}/{tf_name}/kernel")
            assert got.tobytes() == np.ascontiguousarray(tensors[p + pt_name + ".weight"].T).tobytes()
    for back in ("back", "back1"):
        got = {k.removeprefix("bert."): v for k, v in
               load_file(str(tmp_path / back / "model.safetensors")).items()}
        for k, v in tensors.items():
            assert got[k].tobytes() == v.tobytes(), (back, k)
