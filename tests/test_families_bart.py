"""BART beyond the generic tf2/registry tests: the h5 weight names transformers writes (the
shared matrix under its own 'model.shared' scope in the 'model' layer, final_logits_bias as a
bare variable in its own layer), sharded TF2 files (whose shard names keep 'model.shared/...'
unstripped), an untied LM head refused by tf2, and a weights file without a config."""
from __future__ import annotations

import json

import h5py
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")

import irconv  # noqa: E402
import test_tf2  # noqa: E402
import zoo  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from zoo import assert_close, inputs_for, make_pt, make_tf, run_pt, run_tf  # noqa: E402

CLASSES = ["BartForConditionalGeneration", "BartForSequenceClassification", "BartModel"]
RELOAD_ATOL = 1e-6


def weight_names(path) -> dict[str, set[str]]:
    """Per layer, the stored weight names with the Keras model name (numbered per process:
    tf_bart_model_1, ...) replaced by '*'; other first components (name scopes) are kept."""
    def norm(n):
        n = n.decode() if isinstance(n, bytes) else n
        first, _, rest = n.partition("/")
        return f"*/{rest}" if rest and first.startswith("tf_bart") else n
    with h5py.File(path, "r") as f:
        return {layer: {norm(n) for n in f[layer].attrs["weight_names"]} for layer in f.attrs["layer_names"]}


@pytest.mark.parametrize("cls_name", CLASSES)
def test_h5_names_are_transformers_own(cls_name, tmp):
    make_tf("bart", cls_name, seed=71).save_pretrained(tmp / "ref")
    make_pt("bart", cls_name, seed=71).save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2", check=True)
    ref, got = weight_names(tmp / "ref" / "tf_model.h5"), weight_names(tmp / "tf2" / "tf_model.h5")
    assert ref == got
    assert "model.shared/model.shared/embeddings:0" in got["model"]
    if cls_name == "BartForConditionalGeneration":
        assert got["final_logits_bias"] == {"final_logits_bias:0"}


# BartModel (slow: test-long) is the same layers as the LM model, without its head.
@pytest.mark.parametrize("cls_name", ["BartForConditionalGeneration", pytest.param("BartModel", marks=pytest.mark.slow)])
def test_sharded_h5_both_ways(cls_name, tmp):
    tfm = make_tf("bart", cls_name, seed=72)
    tfm.save_pretrained(tmp / "tf2", max_shard_size="20KB")
    irconv.convert(tmp / "tf2", tmp / "pt", to="pt")
    inputs = inputs_for("bart", tfm.config)
    assert_close(run_tf(tfm, inputs), run_pt(test_tf2.pt_loads_cleanly(cls_name, tmp / "pt"), inputs), 1e-5)
    irconv.convert(tmp / "pt", tmp / "tf2b", to="tf2", max_shard_size=20_000)
    assert len(list((tmp / "tf2b").glob("tf_model-*.h5"))) > 1
    index = json.loads((tmp / "tf2b" / "tf_model.h5.index.json").read_text())
    assert "model.shared/model.shared/embeddings:0" in index["weight_map"]
    assert_close(run_tf(tfm, inputs), run_tf(test_tf2.tf_loads_cleanly(cls_name, tmp / "tf2b"), inputs), 0.0)


def test_untied_lm_head_cannot_go_to_tf2(tmp):
    """TF BART always computes logits with the shared matrix: an untied model is refused."""
    make_pt("bart", "BartForConditionalGeneration", seed=73, tie_word_embeddings=False).save_pretrained(tmp / "pt")
    proc = run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2")
    assert_one_line_error(proc, "heads.lm.decoder.weight")
    assert not (tmp / "tf2").exists()


@pytest.mark.parametrize("flags", [(), ("--bin",)])
def test_an_untied_model_reloads_in_transformers_with_its_own_matrices(tmp, flags):
    """Untied, transformers' save_pretrained drops the stacks' embed_tokens (shared with
    model.shared) and its from_pretrained then re-initialises them, and with them the shared
    matrix: it cannot reload its own file. irconv's file names them, so transformers loads
    every weight and computes what the model computed; and the file converts back to itself."""
    model = make_pt("bart", "BartForConditionalGeneration", seed=73, tie_word_embeddings=False)
    model.save_pretrained(tmp / "hf")
    inputs = inputs_for("bart", model.config)
    run_irconv("convert", tmp / "hf", tmp / "out", "--to", "pt", *flags, check=True)
    got, info = transformers.BartForConditionalGeneration.from_pretrained(tmp / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert_close(run_pt(model, inputs), run_pt(got.eval(), inputs), 0.0)
    run_irconv("convert", tmp / "out", tmp / "back", "--to", "pt", *flags, check=True)
    assert run_irconv("diff", tmp / "out", tmp / "back").returncode == 0
    # through the IR stream, which gives the shared matrix once for its three names
    stream = run_irconv("import", "pt", tmp / "hf", check=True).stdout
    run_irconv("export", "pt", tmp / "piped", *flags, input=stream, check=True)
    piped = transformers.BartForConditionalGeneration.from_pretrained(tmp / "piped", output_loading_info=True)
    assert not piped[1]["missing_keys"], piped[1]
    assert_close(run_pt(model, inputs), run_pt(piped[0].eval(), inputs), 0.0)


@pytest.mark.parametrize("cls_name", CLASSES)
def test_bare_weights_file_infers_the_config(cls_name, tmp):
    model = make_pt("bart", cls_name, seed=74)
    model.save_pretrained(tmp / "src")
    run_irconv("convert", tmp / "src" / "model.safetensors", tmp / "out", "--to", "pt", "--model", "bart",
               "--config", tmp / "src" / "config.json", check=True)
    (tmp / "src" / "config.json").rename(tmp / "config.json")      # the weights file is bare now
    # The two head counts are not in the tensors: refused without them, never guessed.
    zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "bare", model.config,
                     ("encoder_attention_heads", "decoder_attention_heads"), "--to", "pt", "--model", "bart")
    config = json.loads((tmp / "bare" / "config.json").read_text())
    assert config["architectures"] == [cls_name]
    for key in ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_ffn_dim",
                "decoder_ffn_dim", "max_position_embeddings", "encoder_attention_heads", "decoder_attention_heads",
                "activation_function", "scale_embedding"):
        assert config[key] == getattr(model.config, key), key
    # Given its heads, the inferred config computes what the model's own does.
    proc = run_irconv("diff", tmp / "out", tmp / "bare")
    assert proc.returncode == 0 and b"identical" in proc.stdout, proc.stdout
    inputs = inputs_for("bart", model.config)
    for out in ("out", "bare"):
        loaded = test_tf2.pt_loads_cleanly(cls_name, tmp / out)
        assert_close(run_pt(model, inputs), run_pt(loaded, inputs), RELOAD_ATOL)
