"""keras-hub presets of the encoder-decoders (BartBackbone, T5Backbone), both ways, with
keras_hub itself as the oracle (the helpers and the one-subprocess pattern of test_kerashub).

A seq2seq Backbone takes encoder_token_ids / encoder_padding_mask / decoder_token_ids /
decoder_padding_mask and returns encoder_sequence_output and decoder_sequence_output, which
are HF's encoder_last_hidden_state and the decoder's last hidden state (given the same
decoder_input_ids); logits are the token embedding run in reverse, as keras-hub's
Seq2SeqLM computes them (T5 scales the decoder output by hidden_dim**-0.5 first while tied).
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

# BART's and T5's preset checks (their own keras_hub run) are in make test-long, to keep make test within its
# time; test_kerashub.py and test_kerashub_tasks.py exercise the same machinery in the fast set.
pytestmark = pytest.mark.slow

from test_kerashub import (ORACLE_JOBS, assert_stream_export, build_world, h5_datasets, loads_strictly, make_hf, outputs,
                           refused_with)  # noqa: E402  (skips without keras_hub)
import irconv  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402

ENC_IDS = [[1, 5, 7, 9, 3, 2, 11, 40]]
DEC_IDS = [[2, 8, 30, 4, 17]]
BART = dict(vocab_size=64, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=24, decoder_ffn_dim=24, max_position_embeddings=16)
T5_1_0 = dict(vocab_size=64, d_model=16, d_kv=8, d_ff=24, num_layers=2, num_decoder_layers=2, num_heads=2,
              feed_forward_proj="relu", tie_word_embeddings=True)
T5_1_1 = dict(T5_1_0, feed_forward_proj="gated-gelu", tie_word_embeddings=False)
# case -> (HF config class, HF model class, config kwargs)
HF_CASES = {
    "bart": ("BartConfig", "BartModel", BART),
    "bart-lm": ("BartConfig", "BartForConditionalGeneration", BART),
    "t5": ("T5Config", "T5Model", T5_1_0),
    "t5-lm": ("T5Config", "T5ForConditionalGeneration", T5_1_0),
    "t5-v1_1": ("T5Config", "T5ForConditionalGeneration", T5_1_1),
}
SEQ2SEQ = dict(vocabulary_size=64, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=24)
# keras-hub Backbones built and saved by keras_hub itself: case -> (class, arguments, the HF class back).
HUB_CASES = {
    "bart": ("BartBackbone", dict(SEQ2SEQ, max_sequence_length=16), "BartModel"),
    "t5": ("T5Backbone", dict(SEQ2SEQ, key_value_dim=8, activation="relu", use_gated_activation=False),
           "T5ForConditionalGeneration"),
    "t5-v1_1": ("T5Backbone", dict(SEQ2SEQ, key_value_dim=8, activation="keras_hub>gelu_approximate",
                                   tie_embedding_weights=False), "T5ForConditionalGeneration"),
}
# keras-hub 0.32 has no HF loader for T5 (only T5Gemma): its own Backbone of the same
# arguments, saved by itself, is the reference for the variables.
SAME_AS = {"t5": "t5", "t5-lm": "t5", "t5-v1_1": "t5-v1_1"}

ORACLE = r"""
import json, os, sys
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np, keras, keras_hub
from keras_hub.src.utils.keras_utils import gelu_approximate
enc, dec = (np.array(x) for x in json.loads(sys.argv[2]))

def run(backbone):
    out = backbone({"encoder_token_ids": enc, "encoder_padding_mask": np.ones_like(enc),
                    "decoder_token_ids": dec, "decoder_padding_mask": np.ones_like(dec)})
    hidden = out["decoder_sequence_output"]
    if getattr(backbone, "tie_embedding_weights", False):      # T5Seq2SeqLM's _logits
        hidden = hidden * backbone.hidden_dim ** -0.5
    return {"encoder": np.asarray(out["encoder_sequence_output"], "float32"),
            "decoder": np.asarray(out["decoder_sequence_output"], "float32"),
            "logits": np.asarray(backbone.token_embedding(hidden, reverse=True), "float32")}

def build_args(args):     # an activation that is a registered function, not a name
    return dict(args, activation=gelu_approximate) if args.get("activation") == "keras_hub>gelu_approximate" else args

""" + ORACLE_JOBS


def hf_outputs(model) -> dict:
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ENC_IDS), decoder_input_ids=torch.tensor(DEC_IDS),
                    output_hidden_states=True)
    got = {"encoder": out.encoder_last_hidden_state.numpy(), "decoder": out.decoder_hidden_states[-1].numpy()}
    if getattr(out, "logits", None) is not None:
        got["logits"] = out.logits.numpy()
    return got


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("kerashub-seq2seq"), HF_CASES,
                       lambda case, directory: make_hf(case, directory, cases=HF_CASES), hf_outputs, HUB_CASES,
                       ORACLE, [ENC_IDS, DEC_IDS])


@pytest.mark.parametrize("case", list(HF_CASES))
def test_hf_to_kerashub_computes_hf(case, world):
    root, hf, report = world
    assert "error" not in report[str(root / f"to-{case}")], report[str(root / f"to-{case}")]
    got = outputs(root / f"to-{case}.npz")
    for key, ref in hf[case].items():         # both sequence outputs, and the logits of an LM
        assert np.abs(got[key] - ref).max() < 1e-4, (key, np.abs(got[key] - ref).max())


@pytest.mark.parametrize("case", list(HF_CASES))
def test_same_variables_as_keras_hubs_own(case, world):
    root, _, report = world
    theirs = report[str(root / (f"hub-{SAME_AS[case]}" if case in SAME_AS else f"hf-{case}"))]
    assert "error" not in theirs, theirs
    assert unnumbered(report[str(root / f"to-{case}")]["variables"]) == unnumbered(theirs["variables"])


def unnumbered(variables: list) -> list:
    """T5's layer norms are unnamed layers: keras numbers their names on across every
    T5LayerNorm the process built ('t5_layer_norm_30'), which says nothing about the preset."""
    return [[re.sub(r"t5_layer_norm(_\d+)?/", "t5_layer_norm/", path), shape] for path, shape in variables]


def test_keras_hubs_bart_loader_agrees(world):
    """keras-hub's own BART conversion of the same directory computes what irconv's preset does."""
    root, _, _ = world
    ours, theirs = outputs(root / "to-bart.npz"), outputs(root / "hf-bart.npz")
    for key in ours:
        assert np.array_equal(ours[key], theirs[key]), key


@pytest.mark.parametrize("case", list(HF_CASES))
def test_hf_to_kerashub_to_pt_is_bit_exact(case, world, tmp_path):
    """Every backbone tensor back byte for byte, but rows 0-1 of BART's position tables, which
    HF never reads and a preset has no place for: they come back as zeros. A BART LM comes back
    as the BartModel a preset holds (its zero final_logits_bias dropped, its head tied)."""
    root, _, _ = world
    irconv.convert(root / f"to-{case}", tmp_path / "back", to="pt")
    ref, got = load_file(root / f"hf-{case}" / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    if case == "bart-lm":
        assert not ref.pop("final_logits_bias").any()
        ref = {k.removeprefix("model."): v for k, v in ref.items()}
    assert sorted(ref) == sorted(got)
    for name, tensor in ref.items():
        back = got[name]
        if name.endswith("embed_positions.weight"):
            assert not back[:2].any()
            tensor, back = tensor[2:], back[2:]
        assert back.dtype == tensor.dtype and back.tobytes() == tensor.tobytes(), name
    config = json.loads((tmp_path / "back" / "config.json").read_text())
    source = json.loads((root / f"hf-{case}" / "config.json").read_text())
    for key in (*HF_CASES[case][2], "layer_norm_epsilon", "relative_attention_num_buckets",
                "relative_attention_max_distance", "dropout_rate", "dropout", "activation_function"):
        default = True if key == "tie_word_embeddings" else None   # a saved config leaves HF's default out
        assert config.get(key, default) == source.get(key, default), key
    # and again to kerashub: the same datasets byte for byte
    irconv.convert(tmp_path / "back", tmp_path / "hub", to="kerashub")
    assert h5_datasets(root / f"to-{case}" / "model.weights.h5") == h5_datasets(tmp_path / "hub" / "model.weights.h5")


@pytest.mark.parametrize("case", list(HUB_CASES))
def test_keras_hub_preset_to_pt(case, world, tmp_path):
    """keras_hub's own save_to_preset -> pt: transformers loads it strictly and computes keras_hub's outputs."""
    root, _, report = world
    assert "error" not in report[str(root / f"hub-{case}")], report[str(root / f"hub-{case}")]
    irconv.convert(root / f"hub-{case}", tmp_path / "pt", to="pt")
    model = loads_strictly(HUB_CASES[case][2], tmp_path / "pt")
    ref, got = outputs(root / f"hub-{case}.npz"), hf_outputs(model)
    if "logits" not in got:       # BartModel: the tied head is the shared matrix
        got["logits"] = got["decoder"] @ model.shared.weight.detach().numpy().T
    for key in ref:
        assert np.abs(ref[key] - got[key]).max() < 1e-4, (key, np.abs(ref[key] - got[key]).max())
    irconv.convert(tmp_path / "pt", tmp_path / "hub", to="kerashub")
    assert h5_datasets(root / f"hub-{case}" / "model.weights.h5") == h5_datasets(tmp_path / "hub" / "model.weights.h5")


def test_a_bart_logits_bias_the_backbone_has_no_place_for_is_refused(world, tmp_path):
    root, _, _ = world
    model = transformers.BartForConditionalGeneration.from_pretrained(root / "hf-bart-lm")
    with torch.no_grad():
        model.final_logits_bias[0, 3] = 0.5
    model.save_pretrained(tmp_path / "src")
    proc = run_irconv("convert", tmp_path / "src", tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, "'heads.lm.bias' is not zero")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("zero", [True, False], ids=["zero", "not-zero"])
def test_an_ir_stream_is_checked_in_its_turn(zero, world, tmp_path):
    """A stream is read once, in order: final_logits_bias (and the position rows the preset
    leaves out) are checked as they come: the preset a file gives, or one line, nothing written."""
    root, _, _ = world
    src = root / "hf-bart-lm"
    if not zero:
        model = transformers.BartForConditionalGeneration.from_pretrained(src)
        with torch.no_grad():
            model.final_logits_bias[0, 3] = 0.5
        src = tmp_path / "src"
        model.save_pretrained(src)
    assert_stream_export(src, tmp_path, same_as=root / "to-bart-lm", refused=None if zero else "'heads.lm.bias' is not zero")


@pytest.mark.parametrize("case,change,needle", [
    ("bart", {"decoder_layers": 3}, "decoder_layers=3"),
    ("bart", {"activation_function": "relu"}, "activation_function"),
    ("bart", {"scale_embedding": True}, "scale_embedding"),
    ("bart", {"tie_word_embeddings": False}, "tie_word_embeddings"),
    ("t5", {"relative_attention_max_distance": 64}, "relative_attention_max_distance"),
    ("t5", {"relative_attention_num_buckets": 16}, "relative_attention_num_buckets"),
    ("t5", {"num_decoder_layers": 1}, "num_decoder_layers=1"),
    ("t5", {"feed_forward_proj": "gated-relu6"}, "feed_forward_proj"),
    ("t5", {"tie_word_embeddings": False}, "untied T5Model"),
    ("t5", {"layer_norm_epsilon": None}, "layer_norm_epsilon"),
], ids=["bart-layers", "bart-act", "bart-scale", "bart-untied", "t5-distance", "t5-buckets", "t5-layers",
        "t5-act", "t5-untied-model", "t5-no-eps"])
def test_what_the_backbone_cannot_compute_is_refused(case, change, needle, world, tmp_path):
    refused_with(world, tmp_path, case, change, needle)


def test_what_a_preset_leaves_out_is_said(world, tmp_path):
    root, _, _ = world
    err = run_irconv("convert", root / "hf-bart-lm", tmp_path / "bart", "--to", "kerashub", check=True).stderr.decode()
    assert "left out heads.lm.bias: all zeros" in err
    for side in ("encoder", "decoder"):
        assert f"left out rows 0-1 of {side}.embeddings.position.weight" in err
    err = run_irconv("convert", root / "hf-t5-v1_1", tmp_path / "t5", "--to", "kerashub", check=True).stderr.decode()
    assert "left out" not in err


def test_a_t5_preset_hf_cannot_state_is_refused(world, tmp_path):
    """keras' exact GELU gated: HF's T5 'gated-gelu' is the tanh one, and no feed_forward_proj says it."""
    root, _, _ = world
    src = tmp_path / "src"
    src.mkdir()
    config = json.loads((root / "hub-t5-v1_1" / "config.json").read_text())
    config["config"]["activation"] = "gelu"
    (src / "config.json").write_text(json.dumps(config))
    for name in ("metadata.json", "model.weights.h5"):
        (src / name).write_bytes((root / "hub-t5-v1_1" / name).read_bytes())
    proc = run_irconv("convert", src, tmp_path / "out", "--to", "pt")
    assert_one_line_error(proc, "activation='gelu' gated")
    assert not (tmp_path / "out").exists()
