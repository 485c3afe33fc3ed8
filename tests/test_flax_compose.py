"""Flax composes with the other frameworks through the IR, with no code for any pair: a BERT
goes pt -> flax -> tf2 -> tf1 -> flax -> tf2 and every file on the way is the same model, bit
for bit (each format's own reader: flax.serialization, h5py, tf.train.load_checkpoint, in
test_format_graph's walks). Here the end products are loaded by their frameworks' classes."""
from __future__ import annotations

import irconv
import zoo
from flax_oracle import flax_loads_cleanly, run_flax


def test_flax_tf2_tf1_round_trip(tmp_path):
    pt = zoo.make_pt("bert", "BertForPreTraining")
    pt.save_pretrained(tmp_path / "pt")
    path = ["flax", "tf2", "tf1", "flax", "tf2"]
    src = tmp_path / "pt"
    for n, fmt in enumerate(path):
        out = tmp_path / f"{n}-{fmt}"
        irconv.convert(src, out, to=fmt)
        src = out
    first, again = tmp_path / "0-flax" / "flax_model.msgpack", tmp_path / "3-flax" / "flax_model.msgpack"
    assert first.read_bytes() == again.read_bytes()
    inputs = zoo.inputs_for("bert", pt.config)
    ref = zoo.run_pt(pt, inputs)
    zoo.assert_close(ref, run_flax(flax_loads_cleanly("BertForPreTraining", tmp_path / "3-flax"), inputs), 1e-5)
    import test_tf2
    zoo.assert_close(ref, zoo.run_tf(test_tf2.tf_loads_cleanly("BertForPreTraining", tmp_path / "4-tf2"), inputs), 1e-5)


def test_flax_kerashub_round_trip(tmp_path):
    """flax -> kerashub -> flax -> tf2 -> kerashub: the Flax file and the preset's weights come
    back byte for byte, and the Flax end computes the source's outputs. (zoo's BERT computes
    the erf GELU, which keras-hub's BertBackbone cannot: this BertModel uses the tanh GELU.)"""
    pt = zoo.make_pt("bert", "BertModel", hidden_act="gelu_pytorch_tanh")
    pt.save_pretrained(tmp_path / "pt")
    src = tmp_path / "pt"
    for n, fmt in enumerate(["flax", "kerashub", "flax", "tf2", "kerashub"]):
        out = tmp_path / f"{n}-{fmt}"
        irconv.convert(src, out, to=fmt)
        src = out
    assert (tmp_path / "0-flax" / "flax_model.msgpack").read_bytes() == (tmp_path / "2-flax" / "flax_model.msgpack").read_bytes()
    assert (tmp_path / "1-kerashub" / "model.weights.h5").read_bytes() == (tmp_path / "4-kerashub" / "model.weights.h5").read_bytes()
    inputs = zoo.inputs_for("bert", pt.config)
    zoo.assert_close(zoo.run_pt(pt, inputs), run_flax(flax_loads_cleanly("BertModel", tmp_path / "2-flax"), inputs), 1e-5)
