"""DeBERTa-v3's keras-hub view (DebertaV3Backbone, DebertaV3TextClassifier), with keras_hub
itself as the oracle (one subprocess, KERAS_BACKEND=jax) beside HF PyTorch.

keras-hub has no HF converter for DeBERTa, so the variables are compared with keras-hub's own
save_to_preset of the same arguments. The inputs fill the whole span (16 ids, span 16), so every
relative distance, log buckets included, is computed. keras-hub rounds its log buckets in
another order than HF; test_the_bucket_rule_* check irconv's refusal rule against both
frameworks' own bucket functions.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import irconv  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from irconv.models.deberta_v2 import bucket_disagreement  # noqa: E402
from test_kerashub import assert_stream_export, back_to_pt, hub_oracle, loads_strictly, outputs  # noqa: E402
from test_kerashub import make_hf as kerashub_make_hf  # noqa: E402
from test_kerashub_tasks import task_datasets  # noqa: E402

IDS = [[1, 5, 7, 9, 3, 2, 11, 40, 4, 6, 8, 10, 12, 14, 16, 49]]
# DeBERTa-v3's layout, tiny: 8 buckets over a span of 16 (distances 5..15 are log-bucketed).
V3 = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
          max_position_embeddings=16, relative_attention=True, position_buckets=8, pos_att_type=["p2c", "c2p"],
          share_att_key=True, norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0,
          layer_norm_eps=1e-7, hidden_act="gelu")
# case -> (HF config class, HF class, config kwargs), as test_kerashub.make_hf takes them
HF_CASES = {"v3": ("DebertaV2Config", "DebertaV2Model", V3),
            # a relative span of its own (max_relative_positions)
            "classifier": ("DebertaV2Config", "DebertaV2ForSequenceClassification",
                           dict(V3, max_position_embeddings=64, max_relative_positions=32, num_labels=3,
                                pooler_dropout=0.1))}
HUB_ARGS = dict(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=24,
                max_sequence_length=16, bucket_size=8)
# keras_hub's own presets: case -> (task class or None, task args, HF class)
HUB_CASES = {"v3": (None, {}, "DebertaV2Model"),
             "classifier": ("DebertaV3TextClassifier", {"num_classes": 3, "dropout": 0.2},
                            "DebertaV2ForSequenceClassification"),
             # a pooled_dense narrower than the model, which HF's ContextPooler cannot compute
             "narrow": ("DebertaV3TextClassifier", {"num_classes": 3, "hidden_dim": 12}, None)}
# (buckets, span) pairs whose buckets are compared between the frameworks' own functions.
BUCKET_GRID = [(b, s) for b in (8, 16, 24, 32, 64, 128, 256) for s in (16, 32, 64, 100, 128, 256, 512, 1024)
               if s - 1 > b // 2]

ORACLE = r"""
import json, os, sys
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np, keras, keras_hub
from keras_hub.src.models.deberta_v3.disentangled_self_attention import DisentangledSelfAttention
ids = np.array(json.loads(sys.argv[2]))
inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
report = {}
for job in json.load(open(sys.argv[1])):
    try:
        if "buckets" in job:        # keras-hub's own bucket function over distances -n..n
            out = {}
            for b, s, n in job["buckets"]:
                layer = DisentangledSelfAttention(num_heads=1, hidden_dim=4, max_position_embeddings=s, bucket_size=b)
                out[f"{b}-{s}"] = np.asarray(layer._make_log_bucket_position(np.arange(-n, n + 1)))
            np.savez(job["out"], **out)
            report[job["out"]] = {}
            continue
        if "build" in job:
            keras.utils.set_random_seed(7)
            model = keras_hub.models.DebertaV3Backbone(**job["args"])
            if job["task"]:
                model = getattr(keras_hub.models, job["task"])(model, **job["task_args"])
            rng = np.random.default_rng(7)
            for v in model.weights:        # norms and biases off their initial ones and zeros
                v.assign((np.asarray(v, "float32") + rng.normal(0, 0.05, v.shape)).astype(v.dtype))
            model.save_to_preset(job["dir"])
        elif job.get("task"):
            model = keras_hub.models.TextClassifier.from_preset(job["dir"])
        else:
            model = keras_hub.models.Backbone.from_preset(job["dir"])
        if isinstance(model, keras_hub.models.Backbone):
            np.savez(job["out"], hidden=np.asarray(model(inputs), "float32"))
        else:
            np.savez(job["out"], logits=np.asarray(model(inputs), "float32"))
        report[job["dir"]] = {"class": type(model).__name__, "variables": [[v.path, list(v.shape)] for v in model.weights]}
    except Exception as exc:
        report[job["dir"]] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
json.dump(report, open(sys.argv[3], "w"))
"""


def make_hf(case: str, directory):
    return kerashub_make_hf(case, directory, cases=HF_CASES)


def hf_outputs(model) -> dict:
    with torch.no_grad():
        out = model(torch.tensor(IDS))
    return {"logits": out.logits.numpy()} if hasattr(out, "logits") else {"hidden": out.last_hidden_state.numpy()}


def torch_buckets(buckets: int, span: int, n: int) -> np.ndarray:
    from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position
    return make_log_bucket_position(torch.arange(-n, n + 1), buckets, span).long().numpy()


def reach(buckets: int, span: int) -> int:
    """A distance past which both frameworks' buckets clamp to the table's last row."""
    mid = buckets // 2
    return int(mid * ((span - 1) / mid) ** ((buckets - mid + 1) / (mid - 1))) + 2


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("kerashub-deberta")
    hf, jobs = {}, []
    for case in HF_CASES:
        hf[case] = hf_outputs(make_hf(case, root / f"hf-{case}"))
        irconv.convert(root / f"hf-{case}", root / f"to-{case}", to="kerashub")
        jobs.append({"dir": str(root / f"to-{case}"), "out": str(root / f"to-{case}.npz"),
                     "task": HUB_CASES[case][0]})
    for case, (task, task_args, _) in HUB_CASES.items():
        jobs.append({"build": True, "args": HUB_ARGS, "task": task, "task_args": task_args,
                     "dir": str(root / f"hub-{case}"), "out": str(root / f"hub-{case}.npz")})
    jobs.append({"buckets": [(b, s, reach(b, s)) for b, s in BUCKET_GRID], "out": str(root / "buckets.npz")})
    return root, hf, hub_oracle(jobs, root, ORACLE, IDS)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(HF_CASES))
def test_hf_to_kerashub_computes_hf(case, world):
    root, hf, report = world
    assert "error" not in report[str(root / f"to-{case}")], report[str(root / f"to-{case}")]
    got = outputs(root / f"to-{case}.npz")
    assert sorted(got) == sorted(hf[case])
    for key, ref in hf[case].items():
        assert np.abs(got[key] - ref).max() < 1e-4, (key, np.abs(got[key] - ref).max())


@pytest.mark.slow
@pytest.mark.parametrize("case", list(HF_CASES))
def test_same_variables_as_keras_hubs_own_preset(case, world):
    root, _, report = world
    ours, theirs = report[str(root / f"to-{case}")], report[str(root / f"hub-{case}")]
    assert "error" not in theirs, theirs
    if case == "v3":
        assert ours["variables"] == theirs["variables"]
        assert _shapes(root / "to-v3" / "model.weights.h5") == _shapes(root / "hub-v3" / "model.weights.h5")
    else:          # the classifier's own arguments are HF's, not HUB_CASES': its paths are the same
        assert [p for p, _ in ours["variables"]] == [p for p, _ in theirs["variables"]]
        assert sorted(_shapes(root / "to-classifier" / "task.weights.h5")) == \
            sorted(_shapes(root / "hub-classifier" / "task.weights.h5"))


def _shapes(path) -> dict:
    return {name: value[:2] for name, value in task_datasets(path).items()}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(HF_CASES))
def test_hf_to_kerashub_to_pt_is_bit_exact(case, world, tmp_path):
    root, _, _ = world
    config, source = back_to_pt(root, case, tmp_path)
    for key in ("hidden_size", "layer_norm_eps", "hidden_act", "position_buckets"):
        assert config.get(key) == source.get(key), key
    assert config.get("num_labels", len(config.get("id2label", ()))) == source.get("num_labels", len(source.get("id2label", ())))
    # The span the buckets are scaled to, whichever field said it.
    span = lambda c: c["max_relative_positions"] if c.get("max_relative_positions", -1) >= 1 else c["max_position_embeddings"]
    assert span(config) == span(source)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c, (_, _, cls) in HUB_CASES.items() if cls])
def test_keras_hub_preset_to_pt(case, world, tmp_path):
    """keras_hub's own save_to_preset -> pt: transformers loads it strictly and computes the
    keras model's outputs; back to kerashub gives the same datasets."""
    root, _, report = world
    assert "error" not in report[str(root / f"hub-{case}")], report[str(root / f"hub-{case}")]
    irconv.convert(root / f"hub-{case}", tmp_path / "pt", to="pt")
    model = loads_strictly(HUB_CASES[case][2], tmp_path / "pt")
    ref, got = outputs(root / f"hub-{case}.npz"), hf_outputs(model)
    assert sorted(ref) == sorted(got)
    for key in ref:
        assert np.abs(ref[key] - got[key]).max() < 1e-4, (key, np.abs(ref[key] - got[key]).max())
    irconv.convert(tmp_path / "pt", tmp_path / "hub", to="kerashub")
    for name in ("model.weights.h5", "task.weights.h5") if HUB_CASES[case][0] else ("model.weights.h5",):
        assert task_datasets(root / f"hub-{case}" / name) == task_datasets(tmp_path / "hub" / name), name


@pytest.mark.slow
def test_a_classifier_hf_cannot_compute_is_refused(world, tmp_path):
    root, _, report = world
    assert "error" not in report[str(root / "hub-narrow")], report[str(root / "hub-narrow")]
    proc = run_irconv("convert", root / "hub-narrow", tmp_path / "pt", "--to", "pt")
    assert_one_line_error(proc, "pooler_hidden_size=12 but hidden_size=16")
    assert not (tmp_path / "pt").exists()


@pytest.mark.slow
def test_the_bucket_rule_admits_only_configs_whose_buckets_agree(world):
    """Every (buckets, span) irconv writes computes, in keras-hub's own bucket function, the
    relative rows HF's make_log_bucket_position gives, at every distance up to where both clamp."""
    root, _, _ = world
    keras_buckets = outputs(root / "buckets.npz")
    admitted = 0
    for b, s in BUCKET_GRID:
        if bucket_disagreement(b, s) is None:
            admitted += 1
            n = reach(b, s)
            ours, theirs = torch_buckets(b, s, n), keras_buckets[f"{b}-{s}"].astype(np.int64)
            rows = lambda x: (np.clip(x + b, 0, 2 * b - 1), np.clip(b - x, 0, 2 * b - 1))
            for hf_rows, hub_rows in zip(rows(ours), rows(theirs)):
                assert (hf_rows == hub_rows).all(), (b, s, np.nonzero(hf_rows != hub_rows)[0][:5] - n)
    assert admitted > len(BUCKET_GRID) // 2, admitted
    assert bucket_disagreement(256, 512) is None        # DeBERTa-v3's released configs


@pytest.mark.slow
def test_the_bucket_rule_is_needed(world):
    """Configs where the two frameworks' buckets really differ exist, and are refused."""
    root, _, _ = world
    keras_buckets = outputs(root / "buckets.npz")
    b, s = 64, 512
    n = reach(b, s)
    ours, theirs = torch_buckets(b, s, n), keras_buckets[f"{b}-{s}"].astype(np.int64)
    assert (np.clip(b - ours, 0, 2 * b - 1) != np.clip(b - theirs, 0, 2 * b - 1)).any()
    assert "distance of 511" in bucket_disagreement(b, s)


@pytest.mark.slow
def test_irconv_verify_runs_a_preset_beside_hf(world):
    root, _, _ = world
    proc = run_irconv("verify", root / "hf-v3", root / "to-v3")
    out = proc.stdout.decode()
    assert proc.returncode == 0, (out, proc.stderr.decode()[-2000:])
    assert "kerashub" in out and "last_hidden_state" in out and "verified: 1 output(s)" in out
    # verify's inputs pad a position, where HF's DeBERTa zeroes the embedding and keras-hub's does not.
    assert "compared where attention_mask is 1" in out


# ---------------------------------------------------------------------------- without keras_hub

def test_a_stream_export_is_the_convert(tmp_path):
    make_hf("v3", tmp_path / "hf")
    irconv.convert(tmp_path / "hf", tmp_path / "to", to="kerashub")
    assert_stream_export(tmp_path / "hf", tmp_path, same_as=tmp_path / "to")


@pytest.mark.parametrize("change,needle", [
    ({"position_biased_input": True}, "position_biased_input=True"),
    pytest.param({"share_att_key": False}, "share_att_key=False", marks=pytest.mark.slow),
    pytest.param({"pos_att_type": ["c2p"]}, "pos_att_type=['c2p']", marks=pytest.mark.slow),
    pytest.param({"norm_rel_ebd": "none"}, "norm_rel_ebd='none'", marks=pytest.mark.slow),
    pytest.param({"type_vocab_size": 2}, "type_vocab_size=2", marks=pytest.mark.slow),
    ({"conv_kernel_size": 3}, "conv_kernel_size=3"),
    pytest.param({"embedding_size": 8}, "embedding_size=8", marks=pytest.mark.slow),
    pytest.param({"layer_norm_eps": 1e-5}, "layer_norm_eps=1e-05", marks=pytest.mark.slow),
    pytest.param({"hidden_act": "gelu_new"}, "hidden_act='gelu_new'", marks=pytest.mark.slow),
    ({"position_buckets": 64, "max_position_embeddings": 512}, "distance of 511"),
], ids=["abs-positions", "own-pos-keys", "c2p-only", "no-rel-norm", "token-types", "conv", "embed-proj", "eps",
        "gelu-new", "buckets-differ"])
def test_what_deberta_v3_backbone_cannot_compute_is_refused(change, needle, tmp_path):
    make_hf_with(dict(V3, **change), tmp_path / "src")
    proc = run_irconv("convert", tmp_path / "src", tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "out").exists()


def make_hf_with(kwargs: dict, directory, cls="DebertaV2Model"):
    torch.manual_seed(3)
    getattr(transformers, cls)(transformers.DebertaV2Config(**kwargs)).save_pretrained(directory)


def test_a_config_left_to_hfs_defaults_is_read_as_hf_computes_it(tmp_path):
    """share_att_key and norm_rel_ebd are no DebertaV2Config fields: HF's classes default them
    (to False and 'none'), and a config that leaves them out is refused as such, not guessed."""
    make_hf_with(V3, tmp_path / "src")
    config = json.loads((tmp_path / "src" / "config.json").read_text())
    del config["share_att_key"]
    (tmp_path / "src" / "config.json").write_text(json.dumps(config))
    proc = run_irconv("convert", tmp_path / "src", tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, "share_att_key not given (HF's classes then compute False)")
    assert not (tmp_path / "out").exists()


def test_the_mlm_head_is_refused_and_the_base_model_converts(tmp_path):
    """keras-hub's DebertaV3MaskedLM computes its norm with 1e-5: the head is refused (the error
    says --base-model), and with --base-model the backbone converts, its head left out."""
    make_hf_with(V3, tmp_path / "src", cls="DebertaV2ForMaskedLM")
    proc = run_irconv("convert", tmp_path / "src", tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, "--base-model")
    assert not (tmp_path / "out").exists()
    run_irconv("convert", tmp_path / "src", tmp_path / "out", "--to", "kerashub", "--base-model", check=True)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["class_name"] == "DebertaV3Backbone" and not (tmp_path / "out" / "task.json").exists()


@pytest.mark.parametrize("buckets,span,needle", [
    ("8", 16, "must be integers"), (8, True, "must be integers"), (2, 16, "position_buckets >= 4"),
    (8, 5, "a span above"), (4, 10**12, "would have to be checked"), (512, 10**7, "would have to be checked"),
])
def test_a_crafted_bucket_config_is_refused_without_the_walk(buckets, span, needle):
    """What no walk over distances can settle (or would take unbounded time) is refused, not tried."""
    assert needle in bucket_disagreement(buckets, span)
