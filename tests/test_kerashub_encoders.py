"""keras-hub presets of RoBERTa, XLM-RoBERTa and ALBERT both ways, with keras_hub as the oracle
(the pattern of test_kerashub.py, with an oracle for encoders without an LM head).

HF *Model checkpoints -> `irconv convert --to kerashub` -> keras_hub's `Backbone.from_preset`
computes HF's outputs within 1e-4, with the same variables as keras-hub's own HF loader makes
from the same directory (or, where it cannot read a bare RobertaModel, as its own
save_to_preset of the same arguments); back to pt gives every tensor byte for byte except
RoBERTa's reserved position rows (models/roberta.py: row 0 comes back zero, row padding_idx
is zero in any trained model and here). keras_hub's own presets -> pt load strictly and
compute keras_hub's outputs, and back to kerashub give the same datasets byte for byte.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

# RoBERTa's, XLM-R's and ALBERT's preset checks (their own keras_hub run) are in make test-long, to keep make test within its
# time; test_kerashub.py and test_kerashub_tasks.py exercise the same machinery in the fast set.
pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("keras_hub")
pytest.importorskip("h5py")
from safetensors.numpy import load_file  # noqa: E402

import irconv  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from test_kerashub import ORACLE_JOBS, assert_preset_computes_hf, assert_stream_export, build_world, h5_datasets, outputs  # noqa: E402

# No id 1: it is RoBERTa's <pad>, whose position HF takes from the reserved row padding_idx.
IDS = [[0, 5, 7, 9, 3, 2, 11, 40]]
ENCODER = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24)
ROBERTA = dict(ENCODER, max_position_embeddings=18, layer_norm_eps=1e-5, type_vocab_size=1)
# 4 passes over 2 groups of 2 layers: keras's transformer_encoder_<k> is group k // 2's layer k % 2.
ALBERT = dict(ENCODER, embedding_size=8, num_hidden_layers=4, num_hidden_groups=2, inner_group_num=2,
              max_position_embeddings=16)
# family -> (HF config class, HF model class, config kwargs, model kwargs)
HF_CASES = {
    # RobertaBackbone has no pooler (as RobertaForMaskedLM's base has none).
    "roberta": ("RobertaConfig", "RobertaModel", ROBERTA, {"add_pooling_layer": False}),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaModel", ROBERTA, {"add_pooling_layer": False}),
    "albert": ("AlbertConfig", "AlbertModel", ALBERT, {}),
}
HUB_ENCODER = dict(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=24,
                   max_sequence_length=16)
HUB_CASES = {
    "roberta": ("RobertaBackbone", HUB_ENCODER, "RobertaModel"),
    "xlm-roberta": ("XLMRobertaBackbone", HUB_ENCODER, "XLMRobertaModel"),
    "albert": ("AlbertBackbone", dict(HUB_ENCODER, num_layers=4, num_groups=2, num_inner_repetitions=2,
                                        embedding_dim=8), "AlbertModel"),
}

# An encoder's outputs: the sequence, and the pooled output where the Backbone has a pooler.
ORACLE = r"""
import json, os, sys
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np, keras, keras_hub
ids = np.array(json.loads(sys.argv[2]))

def run(backbone):
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    if "segment_ids" in {i.name for i in backbone.inputs}:
        inputs["segment_ids"] = np.zeros_like(ids)
    out = backbone(inputs)
    if isinstance(out, dict):
        return {"hidden": np.asarray(out["sequence_output"], "float32"), "pooled": np.asarray(out["pooled_output"], "float32")}
    return {"hidden": np.asarray(out, "float32")}
""" + ORACLE_JOBS


def make_hf(family: str, directory, **changes):
    config_cls, model_cls, kwargs, model_kwargs = HF_CASES[family]
    torch.manual_seed(3)
    model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**kwargs), **model_kwargs)
    with torch.no_grad():
        for p in model.parameters():          # norms off their initial ones
            p.add_(torch.randn_like(p) * 0.02)
        if family != "albert":
            # As released: the token type row zero (HF's fairseq conversion), the padding_idx
            # position row zero (nn.Embedding never trains it). Row 0 stays random: never read.
            model.embeddings.token_type_embeddings.weight.zero_()
            model.embeddings.position_embeddings.weight[1].zero_()
        for name, value in changes.items():
            dict(model.named_parameters())[name].copy_(value)
    model.save_pretrained(directory)
    return model.eval()


def hf_outputs(model, ids=IDS, mask=None) -> dict:
    with torch.no_grad():
        out = model(torch.tensor(ids), attention_mask=None if mask is None else torch.tensor(mask),
                    output_hidden_states=True)
    got = {"hidden": out.hidden_states[-1].float().numpy()}
    if getattr(out, "pooler_output", None) is not None:
        got["pooled"] = out.pooler_output.float().numpy()
    return got


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("kerashub-encoders"), HF_CASES, make_hf, hf_outputs, HUB_CASES,
                       ORACLE, IDS)


@pytest.mark.parametrize("family", list(HF_CASES))
def test_hf_to_kerashub_computes_hf(family, world):
    assert assert_preset_computes_hf(world, family)["class"] == HUB_CASES[family][0]


@pytest.mark.parametrize("family", list(HF_CASES))
def test_same_variables_as_keras_hubs_own_loader(family, world):
    root, hf, report = world
    theirs = report[str(root / f"hf-{family}")]
    if family in ("roberta", "albert"):
        # keras-hub's RoBERTa and ALBERT loaders ask for 'roberta.'/'albert.'-prefixed keys, which a
        # bare *Model lacks: the variables of its own save_to_preset of the same arguments, then.
        assert f"{family}.embeddings.word_embeddings.weight" in theirs.get("error", ""), theirs
        theirs = report[str(root / f"hub-{family}")]
    else:
        # Its own loader computes HF's outputs too (XLM-R's folds the zero token type row in).
        for key, ref in hf[family].items():
            assert np.abs(outputs(root / f"hf-{family}.npz")[key] - ref).max() < 1e-4, key
    assert "error" not in theirs, theirs
    assert report[str(root / f"to-{family}")]["variables"] == theirs["variables"]


@pytest.mark.parametrize("family", list(HF_CASES))
def test_hf_to_kerashub_to_pt_is_bit_exact(family, world, tmp_path):
    root, _, _ = world
    irconv.convert(root / f"to-{family}", tmp_path / "back", to="pt")
    ref, got = load_file(root / f"hf-{family}" / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    assert sorted(ref) == sorted(got)
    for name, tensor in ref.items():
        assert got[name].dtype == tensor.dtype and got[name].shape == tensor.shape, name
        if family != "albert" and name == "embeddings.position_embeddings.weight":
            # The reserved rows: row 0 (random here, never read) comes back zero; row 1 was zero.
            assert np.any(tensor[0]) and not np.any(got[name][:2])
            tensor, got[name] = tensor[2:], got[name][2:]
        assert got[name].tobytes() == tensor.tobytes(), name
    config = json.loads((tmp_path / "back" / "config.json").read_text())
    source = json.loads((root / f"hf-{family}" / "config.json").read_text())
    computing = ("pad_token_id",) if family != "albert" else ()      # RoBERTa's positions count from it
    for key in (*HF_CASES[family][2], *computing, "hidden_act", "layer_norm_eps", "inner_group_num"):
        assert config.get(key) == source.get(key), key


@pytest.mark.parametrize("case", list(HUB_CASES))
def test_keras_hub_preset_to_pt(case, world, tmp_path):
    """keras_hub's own save_to_preset -> pt: transformers loads it strictly (RoBERTa's pooler,
    which the Backbone lacks, the only missing) and computes keras_hub's outputs; and back."""
    root, _, report = world
    assert "error" not in report[str(root / f"hub-{case}")], report[str(root / f"hub-{case}")]
    _, _, cls = HUB_CASES[case]
    irconv.convert(root / f"hub-{case}", tmp_path / "pt", to="pt")
    model, info = getattr(transformers, cls).from_pretrained(tmp_path / "pt", output_loading_info=True)
    pooler = [] if case == "albert" else ["pooler.dense.bias", "pooler.dense.weight"]
    assert sorted(info["missing_keys"]) == pooler and not info["unexpected_keys"] and not info["mismatched_keys"], info
    ref, got = outputs(root / f"hub-{case}.npz"), hf_outputs(model.eval())
    for key in ref:
        assert np.abs(ref[key] - got[key]).max() < 1e-4, (key, np.abs(ref[key] - got[key]).max())
    irconv.convert(tmp_path / "pt", tmp_path / "hub", to="kerashub")
    assert h5_datasets(root / f"hub-{case}" / "model.weights.h5") == h5_datasets(tmp_path / "hub" / "model.weights.h5")


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta"])
def test_the_reserved_position_rows_change_no_output(family, world, tmp_path):
    """What the way back writes for rows 0..padding_idx: HF computes the same at every token
    with the original rows and with the zeros, right-padded with <pad> (id 1) and masked."""
    root, _, _ = world
    irconv.convert(root / f"to-{family}", tmp_path / "back", to="pt")
    cls = getattr(transformers, HF_CASES[family][1])
    ids, mask = [[0, 5, 7, 9, 2, 1, 1, 1]], [[1, 1, 1, 1, 1, 0, 0, 0]]
    theirs = hf_outputs(cls.from_pretrained(root / f"hf-{family}").eval(), ids, mask)
    ours = hf_outputs(cls.from_pretrained(tmp_path / "back").eval(), ids, mask)
    assert np.array_equal(theirs["hidden"], ours["hidden"])


def test_ls_lists_the_reserved_rows_as_not_stored(world):
    root, _, _ = world
    out = run_irconv("ls", root / "hf-roberta", "--to", "kerashub", check=True).stdout.decode()
    line = next(line for line in out.splitlines() if "position_embeddings" in line)
    assert "token_and_position_embedding_0/position_embedding/vars/0" in line and "rows 0..padding_idx" in line


def refused(tmp_path, family, needles, cls=None, hf=None, config_changes=None, **params):
    """`family`'s test model (its `params` replaced), or an HF `cls` of its config with `hf`
    changed, or its config.json with `config_changes`, is refused in one line, nothing written."""
    src = tmp_path / "src"
    if cls is None:
        make_hf(family, src, **params)
    else:
        config = getattr(transformers, HF_CASES[family][0])(**{**HF_CASES[family][2], **(hf or {})})
        getattr(transformers, cls)(config).save_pretrained(src)
    if config_changes:
        config = json.loads((src / "config.json").read_text())
        config.update(config_changes)
        (src / "config.json").write_text(json.dumps(config))
    proc = run_irconv("convert", src, tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("family,cls,needle", [
    ("roberta", "RobertaForMaskedLM", "'heads.mlm.transform.dense.weight'"),
    ("xlm-roberta", "XLMRobertaForMaskedLM", "'heads.mlm.transform.dense.weight'"),
    ("albert", "AlbertForPreTraining", "'heads.sop.dense.weight'"),
    ("albert", "AlbertForMaskedLM", "'heads.mlm.transform.dense.weight'"),
    # RobertaModel's default pooler: RobertaBackbone has none.
    ("roberta", "RobertaModel", "'pooler.dense.weight'"),
])
def test_heads_a_backbone_has_no_place_for_are_refused(family, cls, needle, tmp_path):
    refused(tmp_path, family, ["holds the backbone only", needle], cls=cls)


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta"])
def test_a_token_type_row_that_is_not_zero_is_refused(family, tmp_path):
    refused(tmp_path, family, ["'embeddings.token_type.weight' is not all zeros"],
            **{"embeddings.token_type_embeddings.weight": torch.full((1, 16), 0.01)})


@pytest.mark.parametrize("family,change,needle", [
    ("roberta", {"layer_norm_eps": 1e-12}, "layer_norm_eps"),
    ("roberta", {"pad_token_id": 0}, "pad_token_id"),
    ("xlm-roberta", {"hidden_act": "gelu_new"}, "hidden_act"),
    ("roberta", {"is_decoder": True}, "is_decoder"),
    ("albert", {"hidden_act": "gelu"}, "hidden_act"),
], ids=["roberta-eps", "roberta-pad", "xlmr-act", "roberta-decoder", "albert-act"])
def test_what_the_backbone_cannot_compute_is_refused(family, change, needle, tmp_path):
    refused(tmp_path, family, [needle], config_changes=change)


def test_albert_groups_the_backbone_cannot_run_are_refused(tmp_path):
    """HF runs 4 passes over 3 groups as 1, 1, 2; AlbertBackbone runs each group equally often."""
    refused(tmp_path, "albert", ["num_hidden_groups=3"], cls="AlbertModel", hf={"num_hidden_groups": 3, "inner_group_num": 1})


def test_ls_names_albert_layers_as_keras_keys_them(world):
    root, _, _ = world
    out = run_irconv("ls", root / "hf-albert", "--to", "kerashub", check=True).stdout.decode()
    line = next(line for line in out.splitlines() if "albert_layer_groups.1.albert_layers.1.attention.query.weight" in line)
    assert line.endswith("-> transformer_encoder_3/_self_attention_layer/query_dense/vars/0"), line


@pytest.mark.parametrize("zero", [True, False], ids=["zero", "not-zero"])
def test_an_ir_stream_is_checked_in_its_turn(zero, world, tmp_path):
    """A stream is read once, in order: the token type row is checked as it comes (and the
    preset is the one a file gives), or refused in one line with nothing written."""
    root, _, _ = world
    src = root / "hf-roberta"
    if not zero:
        src = tmp_path / "src"
        make_hf("roberta", src, **{"embeddings.token_type_embeddings.weight": torch.full((1, 16), 0.01)})
    assert_stream_export(src, tmp_path, same_as=root / "to-roberta",
                         refused=None if zero else "'embeddings.token_type.weight' is not all zeros")
