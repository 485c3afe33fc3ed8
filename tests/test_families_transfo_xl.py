"""Transformer-XL both ways between pt and tf2, and why it is not in zoo.TF2_CASES.

transformers 4.57.6's TFTransfoXLLMHeadModel.from_pretrained loads no h5 at all, its own
included: from_pretrained builds the model with `build_in_name_scope()`, which for this
deprecated class creates no variables (its layers only make them when first called), so the
loader compares the file with an empty model and reports every stored weight unexpected (and
nothing missing); the model then gets random weights on its first call. No spelling of the
names can help: the set of names that loader accepts is empty. The h5 layout itself is well
defined: a model built by a call loads transformers' file with transformers' own
`load_tf_weights` with nothing missing, unexpected or mismatched. So the TF side is checked
through that loader, against the file transformers' save_pretrained writes.

The PyTorch class's forward does not run in transformers 4.57.6 either (TransfoXLModel calls
`Tensor.type_as(dtype=...)`, a TypeError), so PyTorch weights are judged by the outputs of the
TF class that transformers' own PT->TF loader (`from_pt=True`) builds from them.
"""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402
from transformers.modeling_tf_utils import load_tf_weights  # noqa: E402

import test_tf2  # noqa: E402
import zoo  # noqa: E402
from conftest import run_irconv  # noqa: E402

FAMILY, CLS = "transfo-xl", "TransfoXLLMHeadModel"
ATOL = 1e-5


def stored_names(h5_path) -> set[str]:
    """Stored weight names without the Keras model name, as HF's loader compares them."""
    with h5py.File(h5_path, "r") as f:
        return {"/".join(n.split("/")[1:]) for layer in f.attrs["layer_names"]
                for n in f[layer].attrs["weight_names"]}


def tf_built_and_loaded(directory):
    """The TF class built by a call, then transformers' own h5 loader: nothing may be left."""
    config = transformers.TransfoXLConfig.from_pretrained(directory)
    model = getattr(transformers, "TF" + CLS)(config)
    model(model.dummy_inputs)
    missing, unexpected, mismatched = load_tf_weights(model, str(directory / "tf_model.h5"))
    assert not missing and not unexpected and not mismatched, (missing, unexpected, mismatched)
    return model


@pytest.fixture(params=["default", "untied-softmax"])
def variant(request, monkeypatch):
    """The released layout, and an adaptive softmax tied to nothing (all its own tensors). For
    the latter transformers' from_pt loader fails itself (its tf_to_pt_weight_rename returns
    None), so only loading and the bit-exact round trips are checked there."""
    if request.param != "default":
        config_cls, kwargs = zoo.CONFIGS[FAMILY]
        monkeypatch.setitem(zoo.CONFIGS, FAMILY, (config_cls, dict(kwargs, tie_word_embeddings=False,
                                                                   tie_projs=[False, False, False])))
        monkeypatch.setitem(zoo.TF_EQUAL_VARIABLES, FAMILY, ())
    return request.param


def tf_from_pt(directory):
    """transformers' own PyTorch->TF conversion: the oracle for what PyTorch weights compute."""
    model, info = getattr(transformers, "TF" + CLS).from_pretrained(directory, from_pt=True,
                                                                    output_loading_info=True)
    # pos_emb.inv_freq is a PyTorch buffer that TF recomputes.
    assert not info["missing_keys"] and info["unexpected_keys"] == ["transformer.pos_emb.inv_freq"], info
    return model


def test_pt_forward_is_broken_upstream():
    pt = zoo.make_pt(FAMILY, CLS, seed=0)
    with pytest.raises(TypeError, match="type_as"):
        zoo.run_pt(pt, zoo.inputs_for(FAMILY, pt.config))


def test_from_pretrained_loads_no_h5_not_even_its_own(tmp):
    tfm = zoo.make_tf(FAMILY, CLS, seed=1)
    tfm.save_pretrained(tmp / "tf2")
    saved = stored_names(tmp / "tf2" / "tf_model.h5")
    # The build from_pretrained uses makes no variable, so the loader has nothing to match.
    empty = getattr(transformers, "TF" + CLS)(tfm.config)
    empty.build_in_name_scope()
    assert empty.weights == []
    model, info = getattr(transformers, "TF" + CLS).from_pretrained(tmp / "tf2", output_loading_info=True)
    assert set(info["unexpected_keys"]) == saved and not info["missing_keys"]
    # The weights of the first call are fresh ones, not the file's.
    inputs = zoo.inputs_for(FAMILY, tfm.config)
    assert not np.allclose(zoo.run_tf(tfm, inputs)["prediction_scores"],
                           zoo.run_tf(model, inputs)["prediction_scores"], atol=1e-3)
    # Built by a call, the same class makes exactly the stored names and loads the file.
    built = tf_built_and_loaded(tmp / "tf2")
    assert {v.name.split("/", 1)[1] for v in built.weights} == saved
    zoo.assert_close(zoo.run_tf(tfm, inputs), zoo.run_tf(built, inputs), 0.0)


def test_pt_to_tf2(variant, tmp):
    pt = zoo.make_pt(FAMILY, CLS, seed=1)
    pt.save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2", check=True)
    model = tf_built_and_loaded(tmp / "tf2")
    inputs = zoo.inputs_for(FAMILY, pt.config)
    if variant == "default":
        zoo.assert_close(zoo.run_tf(tf_from_pt(tmp / "pt"), inputs), zoo.run_tf(model, inputs), ATOL)
    # ... and back: every tensor bit-identical, pos_emb.inv_freq (which TF does not store)
    # recomputed from d_model.
    run_irconv("convert", tmp / "tf2", tmp / "pt2", "--to", "pt", check=True)
    ref, got = load_file(tmp / "pt" / "model.safetensors"), load_file(tmp / "pt2" / "model.safetensors")
    assert sorted(ref) == sorted(got)
    for k in ref:
        assert torch.equal(ref[k].view(torch.uint8), got[k].view(torch.uint8)), k


def test_tf2_to_pt(variant, tmp):
    tfm = zoo.make_tf(FAMILY, CLS, seed=2)
    tfm.save_pretrained(tmp / "tf2")
    run_irconv("convert", tmp / "tf2", tmp / "pt", "--to", "pt", check=True)
    test_tf2.pt_loads_cleanly(CLS, tmp / "pt")
    inputs = zoo.inputs_for(FAMILY, tfm.config)
    if variant == "default":
        zoo.assert_close(zoo.run_tf(tfm, inputs), zoo.run_tf(tf_from_pt(tmp / "pt"), inputs), ATOL)
    # ... and back: every h5 dataset, the softmax's tied copies included, bit-identical.
    run_irconv("convert", tmp / "pt", tmp / "tf2b", "--to", "tf2", check=True)
    ref, got = test_tf2.h5_datasets(tmp / "tf2" / "tf_model.h5"), test_tf2.h5_datasets(tmp / "tf2b" / "tf_model.h5")
    assert sorted(ref) == sorted(got)
    for k in ref:
        assert test_tf2.same_bytes(ref[k], got[k]), k


def test_projection_layouts_and_tied_copies(tmp):
    """emb_projs/out_projs are stored transposed in TF; the softmax tables and tied projections
    are written again under crit/ with the embedding's values."""
    pt = zoo.make_pt(FAMILY, CLS, seed=3)
    pt.save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2", check=True)
    h5 = test_tf2.h5_datasets(tmp / "tf2" / "tf_model.h5")
    sd = {k: v.numpy() for k, v in pt.state_dict().items()}
    for i in range(3):
        proj = sd[f"transformer.word_emb.emb_projs.{i}"]
        assert (h5[f"transformer/transformer/word_emb/emb_projs_._{i}:0"] == proj.T).all()
        assert (h5[f"crit/crit/out_projs_._{i}:0"] == sd[f"crit.out_projs.{i}"].T).all()
        assert (h5[f"crit/crit/out_layers_._{i}_._weight:0"]
                == sd[f"transformer.word_emb.emb_layers.{i}.weight"]).all()
    assert not (sd["crit.out_projs.0"] == sd["transformer.word_emb.emb_projs.0"]).all()   # tie_projs[0] off


def test_bare_weights_file(tmp):
    """No config.json: parts, widths, cutoffs and the ties come from the names and shapes; the
    memory and attention settings leave no trace in them: stated defaults, taken only when
    accepted, and this model's memory length (not the default 1600) given."""
    pt = zoo.make_pt(FAMILY, CLS, seed=4)
    pt.save_pretrained(tmp / "pt")
    (tmp / "pt" / "config.json").unlink()
    zoo.convert_bare(tmp / "pt" / "model.safetensors", tmp / "out", pt.config, (), "--to", "pt", also=("mem_len",))
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["cutoffs"] == [10, 50] and config["div_val"] == 2 and config["vocab_size"] == 99
    assert config["tie_projs"] == [False, True, True] and config["architectures"] == [CLS]
    for key in ("mem_len", "clamp_len", "same_length", "pre_lnorm", "layer_norm_epsilon", "n_head", "d_head"):
        assert config[key] == getattr(pt.config, key), key
    model = test_tf2.pt_loads_cleanly(CLS, tmp / "out")
    ref, got = pt.state_dict(), model.state_dict()
    assert sorted(ref) == sorted(got) and all(torch.equal(ref[k], got[k]) for k in ref)
