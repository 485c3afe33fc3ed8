"""DeBERTa-v2 beyond the generic tests (test_pt_families: f32 pt -> pt of every class;
test_tf2 via zoo.TF2_CASES: every class f32 pt -> tf2 -> pt and tf2 -> pt -> tf2, with
absolute positions): the relative-attention layouts of the releases (v3: no position or
token-type table, bucketed and layer-normed relative embeddings; v2-xlarge: with the conv
layer; share_att_key false: per-layer position projections; a narrower embedding), every
class saved in bf16 and sharded, through the CLI and the pipe bit for bit; in TF, against
transformers' own PyTorch-to-TF loading of the same weights, dataset by dataset; bf16 into TF2
only with --cast F32; the original MLM head (legacy=False), which HF's TF class lacks; and
weights files without their config."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
transformers = pytest.importorskip("transformers")

import test_tf2  # noqa: E402
import zoo  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from zoo import assert_close, assert_same_tensors, hf_safetensors, inputs_for, make_pt, run_pt, run_tf  # noqa: E402

FAMILY = "deberta-v2"
CLASSES = list(FAMILIES.get(FAMILY).architectures)
RELOAD_ATOL = 1e-6
# The relative parts at a tiny size: 8 buckets (a 16-row table) over a span of 64.
# (share_att_key and position_buckets are no DebertaV2Config fields: left out, HF reads False
# and -1, so the releases' configs, and these, state them.)
RELATIVE = dict(relative_attention=True, position_buckets=8, norm_rel_ebd="layer_norm", pos_att_type=["p2c", "c2p"],
                share_att_key=True)
VARIANTS = {
    "v3": dict(RELATIVE, position_biased_input=False, type_vocab_size=0, conv_kernel_size=0),
    "v2-xlarge": dict(RELATIVE, position_biased_input=False, type_vocab_size=0, conv_kernel_size=3,
                      pos_att_type="p2c|c2p"),
    # No buckets: a table of 2 * max_relative_positions rows, and no norm on it.
    "unshared-keys": dict(RELATIVE, share_att_key=False, position_buckets=-1, max_relative_positions=12,
                          norm_rel_ebd="none"),
    # HF's TF class builds a hidden-wide position table, so a projected embedding goes to TF
    # only without one (v3's layout).
    "narrow-embeddings": dict(RELATIVE, embedding_size=16, position_biased_input=False),
}


def config_kwargs(variant: str) -> dict:
    return dict(zoo.CONFIGS[FAMILY][1], **VARIANTS[variant])


def make(cls_name, variant, seed, **overrides):
    return make_pt(FAMILY, cls_name, seed=seed, **config_kwargs(variant), **overrides)


@pytest.fixture(scope="module")
def bf16_sources(tmp_path_factory):
    """cls -> an HF directory of that class, v3 layout, saved in bf16 in 20KB shards."""
    return {cls_name: zoo.save_bf16_sharded(make(cls_name, "v3", 70 + n), tmp_path_factory.mktemp("deberta") / cls_name)
            for n, cls_name in enumerate(CLASSES)}


@pytest.mark.parametrize("cls_name", CLASSES)
def test_bf16_sharded_through_convert_and_pipe(cls_name, bf16_sources, tmp):
    src = bf16_sources[cls_name]
    assert any(k.endswith("encoder.rel_embeddings.weight") for k in hf_safetensors(src))
    zoo.assert_pt_convert_and_pipe(FAMILY, cls_name, src, tmp)


def test_bf16_to_tf2_only_with_cast(bf16_sources, tmp):
    src = bf16_sources["DebertaV2ForMaskedLM"]
    assert_one_line_error(run_irconv("convert", src, tmp / "tf2", "--to", "tf2"), f"{tmp / 'tf2'}: ", "BF16",
                          "--cast F32")
    assert not (tmp / "tf2").exists()
    run_irconv("convert", src, tmp / "tf2", "--to", "tf2", "--cast", "F32", check=True)
    test_tf2.tf_loads_cleanly("DebertaV2ForMaskedLM", tmp / "tf2")


def load_position_projections(tf_model, pt_model):
    """transformers' PyTorch-to-TF loading leaves share_att_key=false's projections random: TF
    names them pos_proj/pos_q_proj, PyTorch pos_key_proj/pos_query_proj, and its name rule maps
    neither to the other (it says so: 'not used' and 'newly initialized'). Assigned here from
    the PyTorch tensors, so the reference model holds the source's weights."""
    state = pt_model.state_dict()
    for v in tf_model.weights:
        scope, _, rest = v.name.partition("/")
        if "/pos_proj/" not in rest and "/pos_q_proj/" not in rest:
            continue
        name = (rest.replace("layer_._", "layer.").replace("pos_proj", "pos_key_proj")
                .replace("pos_q_proj", "pos_query_proj").replace("/kernel:0", "/weight").replace("/bias:0", "/bias")
                .replace("/", "."))
        value = state[name].numpy()
        v.assign(value.T if name.endswith("weight") else value)


@pytest.mark.parametrize("cls_name", ["DebertaV2ForMaskedLM", "DebertaV2ForSequenceClassification"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_relative_variants_through_tf2(variant, cls_name, tmp):
    """pt -> tf2: TF's class loads it cleanly and computes what it computes from transformers'
    own PyTorch-to-TF loading of the same weights (its TF and PyTorch disentangled attention
    disagree ~5e-4 with each other); irconv's h5 holds exactly the datasets and bytes of
    transformers' own save of that model. tf2 -> pt gives back the PyTorch tensors bit for bit."""
    pt = make(cls_name, variant, seed=80)
    pt.save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2", check=True)
    got = test_tf2.tf_loads_cleanly(cls_name, tmp / "tf2")
    ref = getattr(transformers, "TF" + cls_name).from_pretrained(tmp / "pt", from_pt=True)
    load_position_projections(ref, pt)
    ref.save_pretrained(tmp / "tf2-hf")
    want, have = test_tf2.h5_datasets(tmp / "tf2-hf" / "tf_model.h5"), test_tf2.h5_datasets(tmp / "tf2" / "tf_model.h5")
    assert sorted(want) == sorted(have)
    for k in want:
        assert test_tf2.same_bytes(want[k], have[k]), k
    inputs = inputs_for(FAMILY, pt.config)
    assert_close(run_tf(ref, inputs), run_tf(got, inputs), RELOAD_ATOL)
    run_irconv("convert", tmp / "tf2", tmp / "pt2", "--to", "pt", check=True)
    assert_same_tensors(hf_safetensors(tmp / "pt"), hf_safetensors(tmp / "pt2"))
    test_tf2.pt_loads_cleanly(cls_name, tmp / "pt2")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_tf_born_relative_variants_round_trip(variant, tmp):
    """A TF-born model of each layout: tf2 -> pt loads strictly in PyTorch, and pt -> tf2 gives
    back transformers' h5, every dataset (the head's second listing of the embeddings too)
    byte for byte."""
    tfm = zoo.make_tf(FAMILY, "DebertaV2ForMaskedLM", seed=85, **VARIANTS[variant])
    tfm.save_pretrained(tmp / "tf2")
    run_irconv("convert", tmp / "tf2", tmp / "pt", "--to", "pt", check=True)
    test_tf2.pt_loads_cleanly("DebertaV2ForMaskedLM", tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf2b", "--to", "tf2", check=True)
    want, have = test_tf2.h5_datasets(tmp / "tf2" / "tf_model.h5"), test_tf2.h5_datasets(tmp / "tf2b" / "tf_model.h5")
    assert sorted(want) == sorted(have)
    assert any("/pos_proj/" in k for k in want) == (variant == "unshared-keys")
    for k in want:
        assert test_tf2.same_bytes(want[k], have[k]), k


def test_variant_tensors_present(tmp):
    """Each layout's optional tensors are there exactly when its config builds them."""
    expect = {"v3": ({"rel_embeddings", "encoder.LayerNorm"}, {"position_embeddings", "token_type", "conv", "pos_"}),
              "v2-xlarge": ({"rel_embeddings", "encoder.conv.conv"}, {"position_embeddings", "pos_key_proj"}),
              "unshared-keys": ({"pos_key_proj", "pos_query_proj", "position_embeddings"}, {"encoder.LayerNorm"}),
              "narrow-embeddings": ({"embed_proj"}, {"position_embeddings"})}
    for variant, (present, absent) in expect.items():
        make("DebertaV2Model", variant, seed=81).save_pretrained(tmp / variant)
        run_irconv("convert", tmp / variant, tmp / f"{variant}-out", "--to", "pt", check=True)
        names = " ".join(hf_safetensors(tmp / f"{variant}-out"))
        assert all(p in names for p in present) and not any(a in names for a in absent), (variant, names)


def test_original_mlm_head(tmp):
    """legacy=False: lm_predictions.lm_head, no decoder (the word embeddings are the output
    matrix). pt -> pt bit for bit, same logits; no tf2 name (HF's TF class has only the legacy
    head), so a tf2 export is refused and writes nothing. (With tie_word_embeddings true,
    transformers 4.57.6's own save drops the word embeddings and its load leaves them unset.)"""
    zoo.save_bf16_sharded(make("DebertaV2ForMaskedLM", "v3", seed=82, legacy=False, tie_word_embeddings=False),
                          tmp / "src")
    assert any(k.startswith("lm_predictions.lm_head.") for k in hf_safetensors(tmp / "src"))
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    zoo.assert_pt_copy(FAMILY, "DebertaV2ForMaskedLM", tmp / "src", tmp / "out")
    line = assert_one_line_error(run_irconv("convert", tmp / "src", tmp / "tf2", "--to", "tf2", "--cast", "F32"),
                                 f"{tmp / 'tf2'}: ", "heads.lm")
    assert "tf2" in line, line
    assert not (tmp / "tf2").exists()


def test_replaced_token_detection_head_is_skipped(tmp):
    """The original MLM checkpoints also hold the RTD head (mask_predictions.*), which
    transformers drops on load: irconv skips it too and `ls` lists it."""
    from safetensors.torch import save_file
    pt = make("DebertaV2ForMaskedLM", "v3", seed=86, legacy=False, tie_word_embeddings=False)
    state = {k: v.contiguous() for k, v in pt.state_dict().items()}
    extra = {"mask_predictions.dense.weight": torch.randn(32, 32), "mask_predictions.classifier.weight": torch.randn(1, 32)}
    (tmp / "src").mkdir()
    save_file({**state, **extra}, tmp / "src" / "model.safetensors")
    pt.config.to_json_file(tmp / "src" / "config.json")
    proc = run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    assert b"skipped 2 source tensor(s)" in proc.stderr, proc.stderr
    listing = run_irconv("ls", tmp / "src", check=True).stdout.decode()
    assert all(name in listing for name in extra), listing
    assert_same_tensors(state, hf_safetensors(tmp / "out"))
    loaded = test_tf2.pt_loads_cleanly("DebertaV2ForMaskedLM", tmp / "out")
    inputs = inputs_for(FAMILY, pt.config)
    assert_close(run_pt(pt, inputs), run_pt(loaded, inputs), RELOAD_ATOL)


def test_untied_decoder_cannot_go_to_tf2(tmp):
    pt = make("DebertaV2ForMaskedLM", "v3", seed=83, tie_word_embeddings=False)
    pt.save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "pt2", "--to", "pt", check=True)
    assert "cls.predictions.decoder.weight" in hf_safetensors(tmp / "pt2")
    assert_one_line_error(run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2"), f"{tmp / 'tf2'}: ",
                          "heads.mlm.decoder.weight")
    assert not (tmp / "tf2").exists()


# What transformers' modules read for the two fields DebertaV2Config does not define.
HF_READS = {"position_buckets": -1, "share_att_key": False}
# Config fields that change what DeBERTa-v2 computes.
COMPUTING = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "type_vocab_size", "position_biased_input", "relative_attention", "position_buckets", "norm_rel_ebd",
             "share_att_key", "conv_kernel_size", "hidden_act", "layer_norm_eps")


# Without a position table the relative span is not in the tensors (releases: 512, a stated
# default); these tiny models span 64. Without buckets the table's length is 2 * span, not
# 2 * buckets (the default assumes buckets).
SPAN = ("max_relative_positions", "max_position_embeddings")


@pytest.mark.parametrize("cls_name,variant,legacy,also", [
    ("DebertaV2ForMaskedLM", "v2-xlarge", True, SPAN),
    ("DebertaV2ForMaskedLM", "v3", False, SPAN),            # the original head names its class
    ("DebertaV2ForSequenceClassification", "unshared-keys", True, ("position_buckets", "max_relative_positions")),
    ("DebertaV2ForTokenClassification", "unshared-keys", True, ("position_buckets", "max_relative_positions")),
    # Its tensors are sequence classification's: the class is given.
    ("DebertaV2ForMultipleChoice", "narrow-embeddings", True, ("architectures", *SPAN)),
])
def test_bare_weights_file(cls_name, variant, legacy, also, tmp):
    """No config.json: the heads must be given, and what the tensors do not say (`also`) is
    given or, stated, taken with --accept-defaults. The model computes what the source does."""
    model = make(cls_name, variant, seed=84, legacy=legacy, tie_word_embeddings=legacy)
    model.save_pretrained(tmp / "src")
    (tmp / "src" / "config.json").unlink()
    zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "out", model.config, ("num_attention_heads",),
                     "--to", "pt", also=also)
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["architectures"] == [cls_name] and config.get("legacy", True) == legacy
    def value(cfg, key):          # what transformers reads for a field cfg leaves out
        return cfg.get(key, getattr(transformers.DebertaV2Config(), key, HF_READS.get(key)))
    for key in COMPUTING:
        assert value(config, key) == value(model.config.to_dict(), key), key
    loaded = test_tf2.pt_loads_cleanly(cls_name, tmp / "out")
    inputs = inputs_for(FAMILY, model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded, inputs), RELOAD_ATOL)
