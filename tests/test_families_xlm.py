"""XLM and FlauBERT beyond the generic tf2/registry tests: every class pt -> pt, the layouts
TF2_CASES leaves out (one language, so no lang_embeddings; FlauBERT post-norm and with
languages) through tf2 both ways, weights files without a config (same names in both
families, so --model decides), an untied pred_layer, and old checkpoints' extra tensors."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

import test_tf2  # noqa: E402  (its round-trip checks, called for cases TF2_CASES leaves out)
import zoo  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from zoo import assert_same_safetensors, assert_close, inputs_for, make_pt, run_pt  # noqa: E402

CASES = [(fam, cls) for fam in ("xlm", "flaubert") for cls in FAMILIES.get(fam).architectures]
LM = {"xlm": "XLMWithLMHeadModel", "flaubert": "FlaubertWithLMHeadModel"}


# Layouts zoo's configs do not cover: xlm has two languages there, flaubert is pre-norm.
LAYOUTS = {
    "xlm-one-language": ("xlm", dict(n_langs=1)),
    "xlm-langs-without-lang-emb": ("xlm", dict(n_langs=2, use_lang_emb=False)),
    "flaubert-post-norm": ("flaubert", dict(pre_norm=False)),
    "flaubert-two-languages": ("flaubert", dict(n_langs=2)),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_other_layouts_through_tf2_both_ways(layout, monkeypatch, tmp):
    family, overrides = LAYOUTS[layout]
    config_cls, kwargs = zoo.CONFIGS[family]
    monkeypatch.setitem(zoo.CONFIGS, family, (config_cls, dict(kwargs, **overrides)))
    test_tf2.test_pt_to_tf2(family, LM[family], tmp / "a")
    test_tf2.test_tf2_to_pt(family, LM[family], tmp / "b")
    has_lang = any("lang_embeddings" in k for k in test_tf2.h5_datasets(tmp / "b" / "tf2" / "tf_model.h5"))
    assert has_lang == (zoo.config_for(family, LM[family]).n_langs > 1
                        and zoo.config_for(family, LM[family]).use_lang_emb)


@pytest.mark.parametrize("family,cls_name", CASES)
def test_bare_weights_file(family, cls_name, tmp):
    """No config.json: XLM and FlauBERT spell every tensor alike, so the names alone are refused
    (never guessed) and --model picks; the config comes from shapes (n_langs from the table),
    save the heads (never guessed either: refused until given)."""
    model = make_pt(family, cls_name, seed=72, emb_dim=128, n_heads=2)
    model.save_pretrained(tmp / "src")
    (tmp / "src" / "config.json").unlink()
    proc = run_irconv("convert", tmp / "src" / "model.safetensors", tmp / "out", "--to", "pt")
    assert_one_line_error(proc, "xlm", "flaubert", "--model")
    # FlauBERT's pre_norm leaves no trace in the weights: its default (post-norm) is not this
    # model's, so the real value is given like the heads.
    zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "out", model.config, ("n_heads",),
                     "--to", "pt", "--model", family, also=("pre_norm",) if family == "flaubert" else ())
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == family and config["architectures"] == [cls_name]
    for key in ("vocab_size", "emb_dim", "n_layers", "n_heads", "n_langs", "max_position_embeddings",
                "gelu_activation", "sinusoidal_embeddings", "causal", "layer_norm_eps"):
        assert config[key] == getattr(model.config, key), key
    if family == "flaubert":
        assert config["pre_norm"] is model.config.pre_norm is True
    assert_same_safetensors(tmp / "src", tmp / "out")
    loaded = test_tf2.pt_loads_cleanly(cls_name, tmp / "out")
    inputs = inputs_for(family, model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), 0.0)


@pytest.mark.parametrize("family", list(LM))
def test_untied_pred_layer(family, tmp):
    """tie_word_embeddings false: pred_layer.proj.weight is its own tensor, kept through pt;
    TF's prediction layer always ties, so tf2 refuses it."""
    model = make_pt(family, LM[family], seed=73, tie_word_embeddings=False)
    assert not torch.equal(model.pred_layer.proj.weight, model.transformer.embeddings.weight)
    model.save_pretrained(tmp / "src")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    assert_same_safetensors(tmp / "src", tmp / "out")
    proc = run_irconv("convert", tmp / "src", tmp / "tf2", "--to", "tf2")
    assert_one_line_error(proc, "heads.lm.decoder.weight")
    assert not (tmp / "tf2").exists()


@pytest.mark.parametrize("family", list(LM))
def test_old_checkpoint_extra_tensors_are_dropped(family, tmp):
    """torch.save of a whole state dict, as older transformers wrote pytorch_model.bin: the
    position_ids buffer and the tied pred_layer.proj.weight copy come along."""
    model = make_pt(family, LM[family], seed=74)
    state = dict(model.state_dict())
    assert "pred_layer.proj.weight" in state
    state["transformer.position_ids"] = torch.arange(64)[None]
    (tmp / "src").mkdir()
    torch.save(state, tmp / "src" / "pytorch_model.bin")
    model.config.to_json_file(tmp / "src" / "config.json")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    got = load_file(tmp / "out" / "model.safetensors")
    assert "transformer.position_ids" not in got and "pred_layer.proj.weight" not in got
    loaded = test_tf2.pt_loads_cleanly(LM[family], tmp / "out")
    inputs = inputs_for(family, model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), 0.0)
