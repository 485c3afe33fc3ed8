"""TF1 checkpoints of BERT (the original google-research/bert naming), written and read with
no TensorFlow in irconv; TensorFlow and transformers' own TF1 loader are the oracles."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

import irconv  # noqa: E402
from conftest import assert_one_line_error, run_irconv, run_pipe  # noqa: E402
from zoo import assert_close, inputs_for, make_pt, make_tf, run_pt, run_tf  # noqa: E402

BERT_HEADS = ["BertForPreTraining", "BertForMaskedLM", "BertForSequenceClassification",
              "BertForQuestionAnswering", "BertModel"]


def tf_variables(prefix) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def pt_outputs_equal(a, b, inputs):
    ra, rb = run_pt(a, inputs), run_pt(b, inputs)
    assert sorted(ra) == sorted(rb)
    for k in ra:
        assert np.array_equal(ra[k], rb[k]), k


def test_pt_to_tf1_loads_in_transformers_tf1_loader(tmp):
    pt = make_pt("bert", "BertForPreTraining", seed=1)
    pt.save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf1", "--to", "tf1", check=True)
    # TensorFlow reads every variable, under the original release's names and layouts.
    variables = tf_variables(tmp / "tf1" / "bert_model.ckpt")
    state = pt.state_dict()
    assert np.array_equal(variables["bert/encoder/layer_1/attention/self/query/kernel"],
                          state["bert.encoder.layer.1.attention.self.query.weight"].numpy().T)
    assert np.array_equal(variables["cls/seq_relationship/output_weights"],
                          state["cls.seq_relationship.weight"].numpy())     # (2, hidden), not transposed
    assert np.array_equal(variables["cls/predictions/output_bias"], state["cls.predictions.bias"].numpy())
    assert np.array_equal(variables["bert/embeddings/word_embeddings"],
                          state["bert.embeddings.word_embeddings.weight"].numpy())
    # transformers' own TF1 loader builds the same model from it.
    config = transformers.BertConfig.from_json_file(str(tmp / "tf1" / "bert_config.json"))
    assert config.to_diff_dict().items() >= {"hidden_size": 32, "num_hidden_layers": 2}.items()
    model = transformers.BertForPreTraining(config)
    transformers.load_tf_weights_in_bert(model, config, str(tmp / "tf1" / "bert_model.ckpt"))
    model.eval()
    inputs = inputs_for("bert", pt.config)
    assert_close(run_pt(pt, inputs), run_pt(model, inputs), 1e-5)
    # tf1 -> pt -> tf1 is bit-exact, variable by variable.
    run_irconv("convert", tmp / "tf1", tmp / "pt2", "--to", "pt", check=True)
    run_irconv("convert", tmp / "pt2", tmp / "tf1b", "--to", "tf1", check=True)
    again = tf_variables(tmp / "tf1b" / "bert_model.ckpt")
    assert sorted(again) == sorted(variables)
    for name, value in variables.items():
        assert value.dtype == again[name].dtype and value.tobytes() == again[name].tobytes(), name


@pytest.mark.parametrize("cls_name", BERT_HEADS)
def test_every_bert_head_round_trips_through_tf1(cls_name, tmp):
    pt = make_pt("bert", cls_name, seed=2)
    pt.save_pretrained(tmp / "pt")
    rc, err, proc = run_pipe(["import", "pt", tmp / "pt"], ["export", "tf1", tmp / "tf1"])
    assert rc == 0 and proc.returncode == 0, (err, proc.stderr)
    names = set(tf_variables(tmp / "tf1" / "bert_model.ckpt"))
    expected = {"BertForSequenceClassification": "output_weights",          # run_classifier.py
                "BertForQuestionAnswering": "cls/squad/output_weights",      # run_squad.py
                "BertForMaskedLM": "cls/predictions/output_bias",
                "BertForPreTraining": "cls/seq_relationship/output_weights",
                "BertModel": "bert/pooler/dense/kernel"}[cls_name]
    assert expected in names
    irconv.convert(tmp / "tf1", tmp / "pt2", to="pt")
    loaded, info = getattr(transformers, cls_name).from_pretrained(tmp / "pt2", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    ref, got = load_file(tmp / "pt" / "model.safetensors"), load_file(tmp / "pt2" / "model.safetensors")
    assert sorted(ref) == sorted(got)
    for k in ref:
        assert torch.equal(ref[k].view(torch.uint8), got[k].view(torch.uint8)), k
    pt_outputs_equal(pt, loaded.eval(), inputs_for("bert", pt.config))


def google_name(hf_name: str) -> str:
    """The original release's variable name of an HF BertModel key, as the seed script
    computes it (written here independently from its description)."""
    name = hf_name.replace("layer.", "layer_")
    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        name = name.replace(f"{table}.weight", table)
    name = name.replace(".", "/").replace("LayerNorm/weight", "LayerNorm/gamma")
    name = name.replace("LayerNorm/bias", "LayerNorm/beta").replace("weight", "kernel")
    return "bert/" + name


def test_seed_path_tf1_session_saver_checkpoint_converts_back(tmp):
    """The seed's own route: a TF1 Session Saver writing an HF BertModel under the original
    names (plus training state, as real checkpoints carry) -> irconv -> the same PyTorch model."""
    pt = make_pt("bert", "BertModel", seed=3)
    state = {k: v.numpy() for k, v in pt.state_dict().items()}
    transpose = ("dense.weight", "attention.self.query", "attention.self.key", "attention.self.value")
    out = tmp / "tf1"
    out.mkdir()
    graph = tf.Graph()
    with graph.as_default():
        variables = []
        for name, value in state.items():
            value = value.T if any(t in name for t in transpose) else value
            variables.append(tf.compat.v1.get_variable(google_name(name), initializer=tf.constant(value)))
        step = tf.compat.v1.train.get_or_create_global_step()
        loss = tf.add_n([tf.reduce_sum(v) for v in variables]) * 0.0
        train = tf.compat.v1.train.AdamOptimizer(1e-9).minimize(loss, global_step=step)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            del train     # the slots exist; their values are irrelevant
            saver.save(session, str(out / "bert_model.ckpt"))
    google_config = {k: getattr(pt.config, k) for k in
                     ("attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
                      "initializer_range", "intermediate_size", "max_position_embeddings",
                      "num_attention_heads", "num_hidden_layers", "type_vocab_size", "vocab_size")}
    (out / "bert_config.json").write_text(json.dumps(google_config))
    assert any(n.endswith("/Adam") for n in tf_variables(out / "bert_model.ckpt"))

    listing = run_irconv("ls", out, check=True).stdout.decode()
    # Training state is summed up in one line, not one per slot.
    slots = [n for n in tf_variables(out / "bert_model.ckpt")
             if n.endswith(("/Adam", "/Adam_1")) or n in ("global_step", "beta1_power", "beta2_power")]
    skipped = [line for line in listing.splitlines() if line.startswith("(skipped)")]
    assert len(skipped) == 1, skipped
    assert f"{len(slots)} optimizer/training-state variables" in skipped[0]
    assert "Adam_1" in skipped[0] and "global_step" in skipped[0]
    run_irconv("convert", out, tmp / "pt", "--to", "pt", check=True)
    loaded, info = transformers.BertModel.from_pretrained(tmp / "pt", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    got = load_file(tmp / "pt" / "model.safetensors")
    assert sorted(got) == sorted(state)
    for k, v in state.items():
        assert got[k].numpy().tobytes() == v.tobytes(), k
    pt_outputs_equal(pt, loaded.eval(), inputs_for("bert", pt.config))


def test_tf2_object_based_checkpoint_of_an_hf_tf_model(tmp):
    """Keras save_weights(prefix) writes object-based keys; the object graph names them."""
    tfm = make_tf("bert", "BertForPreTraining", seed=4)
    (tmp / "ckpt").mkdir()
    tfm.save_weights(str(tmp / "ckpt" / "weights"))
    tfm.config.to_json_file(str(tmp / "config.json"))
    assert any("/.ATTRIBUTES/" in n for n in tf_variables(tmp / "ckpt" / "weights"))
    run_irconv("convert", tmp / "ckpt", tmp / "pt", "--to", "pt", "--config", tmp / "config.json", check=True)
    loaded, info = transformers.BertForPreTraining.from_pretrained(tmp / "pt", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    inputs = inputs_for("bert", tfm.config)
    assert_close(run_tf(tfm, inputs), run_pt(loaded.eval(), inputs), 1e-5)


@pytest.fixture
def tf1_dir(tmp):
    make_pt("bert", "BertForMaskedLM", seed=5).save_pretrained(tmp / "pt")
    irconv.convert(tmp / "pt", tmp / "tf1", to="tf1", max_shard_size=20_000)
    assert len(list((tmp / "tf1").glob("bert_model.ckpt.data-*"))) > 1
    return tmp / "tf1"


def test_truncated_index(tf1_dir, tmp):
    index = tf1_dir / "bert_model.ckpt.index"
    index.write_bytes(index.read_bytes()[:-10])
    assert_one_line_error(run_irconv("convert", tf1_dir, tmp / "out", "--to", "pt"), "bert_model.ckpt.index")
    assert not (tmp / "out").exists()


def test_flipped_bit_in_a_data_shard(tf1_dir, tmp):
    shard = sorted(tf1_dir.glob("bert_model.ckpt.data-*"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x10
    shard.write_bytes(bytes(data))
    assert_one_line_error(run_irconv("convert", tf1_dir, tmp / "out", "--to", "pt"), shard.name, "checksum")
    assert not (tmp / "out").exists()


def test_missing_shard(tf1_dir, tmp):
    shard = sorted(tf1_dir.glob("bert_model.ckpt.data-*"))[-1]
    os.remove(shard)
    assert_one_line_error(run_irconv("convert", tf1_dir, tmp / "out", "--to", "pt"), shard.name, "missing")
    assert not (tmp / "out").exists()


def test_key_out_of_order(tmp):
    from test_tensorbundle import craft_index, entry
    from irconv.formats import tensorbundle as tb
    prefix = tmp / "bad"
    open(tb.data_path(str(prefix), 0, 1), "wb").write(bytes(8))
    craft_index(prefix, [(b"b", entry()), (b"a", entry())])
    proc = run_irconv("convert", str(prefix) + ".index", tmp / "out", "--to", "pt", "--model", "bert")
    assert_one_line_error(proc, "bad.index", "out of order")
    assert not (tmp / "out").exists()


def test_verify_pt_against_tf1(tmp):
    """`irconv verify` runs the TF1 side through transformers' own load_tf_weights_in_bert."""
    make_pt("bert", "BertForPreTraining", seed=6).save_pretrained(tmp / "pt")
    irconv.convert(tmp / "pt", tmp / "tf1", to="tf1")
    proc = run_irconv("verify", tmp / "pt", tmp / "tf1")
    out = proc.stdout.decode()
    assert proc.returncode == 0, (out, proc.stderr.decode()[-2000:])
    assert "load_tf_weights_in_bert" in out and "prediction_logits" in out and "verified" in out
