"""HF TF2 h5 both ways for every (family, head) irconv claims; the TF and PT classes of
transformers load what irconv wrote and reproduce the source model's outputs."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

import irconv  # noqa: E402
from conftest import assert_one_line_error, run_irconv, run_pipe  # noqa: E402
from zoo import TF2_CASES, assert_close, inputs_for, make_pt, make_tf, run_pt, run_tf  # noqa: E402

ATOL = 1e-5
ids = [f"{f}-{c}" for f, c in TF2_CASES]


def tf_loads_cleanly(cls_name, directory):
    model, info = getattr(transformers, "TF" + cls_name).from_pretrained(directory, output_loading_info=True)
    # HF's h5 loader names weightless layers (dropout) as missing even for its own files.
    missing = [k for k in info["missing_keys"] if "dropout" not in k]
    assert not missing and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model


def pt_loads_cleanly(cls_name, directory):
    model, info = getattr(transformers, cls_name).from_pretrained(directory, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def h5_datasets(path) -> dict[str, np.ndarray]:
    """Every dataset of a Keras h5 file, read by h5py, keyed 'layer/weight' without the Keras
    model name (which Keras numbers per process: tf_bert_model_1, ...; HF's loader drops it)."""
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            parts = name.split("/", 2)
            # A variable made outside every scope ('final_logits_bias:0') has no model name.
            out[f"{parts[0]}/{parts[-1]}"] = obj[()]
    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("family,cls_name", TF2_CASES, ids=ids)
def test_pt_to_tf2(family, cls_name, tmp):
    pt = make_pt(family, cls_name, seed=1)
    pt.save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2", check=True)
    model = tf_loads_cleanly(cls_name, tmp / "tf2")
    inputs = inputs_for(family, pt.config)
    assert_close(run_pt(pt, inputs), run_tf(model, inputs), ATOL)
    # ... and back: every tensor bit-identical to what transformers saved.
    run_irconv("convert", tmp / "tf2", tmp / "pt2", "--to", "pt", check=True)
    ref, got = load_file(tmp / "pt" / "model.safetensors"), load_file(tmp / "pt2" / "model.safetensors")
    assert sorted(ref) == sorted(got)
    for k in ref:
        assert torch.equal(ref[k].view(torch.uint8), got[k].view(torch.uint8)), k


@pytest.mark.parametrize("family,cls_name", TF2_CASES, ids=ids)
def test_tf2_to_pt(family, cls_name, tmp):
    tfm = make_tf(family, cls_name, seed=2)
    tfm.save_pretrained(tmp / "tf2")
    run_irconv("convert", tmp / "tf2", tmp / "pt", "--to", "pt", check=True)
    model = pt_loads_cleanly(cls_name, tmp / "pt")
    inputs = inputs_for(family, tfm.config)
    assert_close(run_tf(tfm, inputs), run_pt(model, inputs), ATOL)
    # ... and back: every h5 dataset (tied copies included) bit-identical to transformers' file.
    run_irconv("convert", tmp / "pt", tmp / "tf2b", "--to", "tf2", check=True)
    ref, got = h5_datasets(tmp / "tf2" / "tf_model.h5"), h5_datasets(tmp / "tf2b" / "tf_model.h5")
    assert sorted(ref) == sorted(got)
    for k in ref:
        assert same_bytes(ref[k], got[k]), k


def test_sharded_h5_in_and_out(tmp):
    family, cls_name = "bert", "BertForPreTraining"
    tfm = make_tf(family, cls_name, seed=3)
    tfm.save_pretrained(tmp / "tf2", max_shard_size="20KB")
    assert (tmp / "tf2" / "tf_model.h5.index.json").is_file()
    irconv.convert(tmp / "tf2", tmp / "pt", to="pt")
    inputs = inputs_for(family, tfm.config)
    assert_close(run_tf(tfm, inputs), run_pt(pt_loads_cleanly(cls_name, tmp / "pt"), inputs), ATOL)
    irconv.convert(tmp / "pt", tmp / "tf2b", to="tf2", max_shard_size=20_000)
    assert (tmp / "tf2b" / "tf_model.h5.index.json").is_file()
    assert len(list((tmp / "tf2b").glob("tf_model-*.h5"))) > 1
    assert_close(run_tf(tfm, inputs), run_tf(tf_loads_cleanly(cls_name, tmp / "tf2b"), inputs), 0.0)


def test_shell_pipe_pt_to_tf2(tmp):
    pt = make_pt("bert", "BertForMaskedLM", seed=4)
    pt.save_pretrained(tmp / "pt")
    rc, err, proc = run_pipe(["import", "pt", tmp / "pt"], ["export", "tf2", tmp / "tf2"])
    assert rc == 0 and proc.returncode == 0, (err, proc.stderr)
    inputs = inputs_for("bert", pt.config)
    assert_close(run_pt(pt, inputs), run_tf(tf_loads_cleanly("BertForMaskedLM", tmp / "tf2"), inputs), ATOL)


def test_unknown_head_is_one_line_error(tmp):
    tfm = make_tf("bert", "BertModel", seed=5)
    tfm.save_pretrained(tmp / "tf2")
    # Add a head layer the bert descriptor does not know, the way Keras would store it.
    name = "tf_bert_model/mystery_head/kernel:0"
    with h5py.File(tmp / "tf2" / "tf_model.h5", "r+") as f:
        group = f.create_group("mystery_head")
        group.attrs["weight_names"] = [name]
        group.create_dataset(name, data=np.zeros((32, 2), np.float32))
        f.attrs["layer_names"] = list(f.attrs["layer_names"]) + ["mystery_head"]
    proc = run_irconv("convert", tmp / "tf2", tmp / "out", "--to", "pt")
    assert_one_line_error(proc, "mystery_head/kernel")
    assert not (tmp / "out").exists()


def test_corrupt_h5_is_one_line_error(tmp):
    pt = make_pt("bert", "BertModel", seed=6)
    pt.save_pretrained(tmp / "pt")
    irconv.convert(tmp / "pt", tmp / "tf2", to="tf2")
    data = (tmp / "tf2" / "tf_model.h5").read_bytes()
    (tmp / "tf2" / "tf_model.h5").write_bytes(data[: len(data) // 2])
    proc = run_irconv("convert", tmp / "tf2", tmp / "out", "--to", "pt")
    assert_one_line_error(proc, "tf_model.h5")
    assert not (tmp / "out").exists()


def test_untied_decoder_cannot_go_to_tf2(tmp):
    """TF BERT always ties its decoder: an untied PyTorch model is refused, not silently tied."""
    pt = make_pt("bert", "BertForMaskedLM", seed=7, tie_word_embeddings=False)
    pt.save_pretrained(tmp / "pt")
    proc = run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2")
    assert_one_line_error(proc, "heads.mlm.decoder.weight")
    assert not (tmp / "tf2").exists()


def test_keras_layer_naming_matches_keras():
    from tf_keras.src.utils.generic_utils import to_snake_case
    from irconv.exporters.tf2 import keras_name
    for cls in ["TFBertForPreTraining", "TFDPRContextEncoder", "TFXLMRobertaForMaskedLM", "TFGPT2LMHeadModel",
                "TFT5ForConditionalGeneration", "TFWav2Vec2Model", "TFCTRLLMHeadModel", "TFLayoutLMForMaskedLM",
                "TFDistilBertForQuestionAnswering", "TFXLMWithLMHeadModel", "TFTransfoXLLMHeadModel",
                "TFViTModel", "TFDebertaV2ForMaskedLM"]:
        assert keras_name(cls) == to_snake_case(cls), cls
