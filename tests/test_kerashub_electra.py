"""ELECTRA's keras-hub view, with keras_hub itself as the oracle (test_kerashub's pattern).

keras-hub has no HF converter for ELECTRA, so irconv is the only path. ElectraBackbone returns
{sequence_output, pooled_output}; the pooled output comes from a tanh `pooled_dense` that HF's
ElectraModel does not have (nor does any keras-hub task read it): irconv writes it as zeros
(pooled_output is then exactly 0) and skips it, listed, on the way back. The rest is byte for
byte both ways, with and without the embeddings projection (embedding_size != hidden_size).
"""
from __future__ import annotations

import numpy as np
import pytest

# ELECTRA's preset checks (their own keras_hub run) are in make test-long, to keep make test within its
# time; the other families' modules exercise the same view machinery in the fast set.
pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("keras_hub")

import irconv  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from test_kerashub import IDS, back_to_pt, h5_datasets, hub_oracle, outputs  # noqa: E402

ELECTRA = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
               max_position_embeddings=16, hidden_act="gelu_pytorch_tanh")
# case -> HF ElectraConfig kwargs: a projection 8 -> 16, and none (embedding_size == hidden_size).
HF_CASES = {"projected": dict(ELECTRA, embedding_size=8), "same": dict(ELECTRA, embedding_size=16)}
HUB_ARGS = dict(vocab_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=24, max_sequence_length=16)
HUB_CASES = {"projected": dict(HUB_ARGS, embedding_dim=8), "same": dict(HUB_ARGS, embedding_dim=16)}


def make_electra(kwargs: dict, directory, cls="ElectraModel"):
    torch.manual_seed(3)
    model = getattr(transformers, cls)(transformers.ElectraConfig(**kwargs))
    with torch.no_grad():
        for p in model.parameters():          # norms off their initial ones
            p.add_(torch.randn_like(p) * 0.02)
    model.save_pretrained(directory)
    return model.eval()


def last_hidden(model) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor(IDS)).last_hidden_state.numpy()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("kerashub-electra")
    hf, jobs = {}, []
    for case, kwargs in HF_CASES.items():
        hf[case] = last_hidden(make_electra(kwargs, root / f"hf-{case}"))
        irconv.convert(root / f"hf-{case}", root / f"to-{case}", to="kerashub")
        jobs.append({"dir": str(root / f"to-{case}"), "out": str(root / f"to-{case}.npz")})
        jobs.append({"dir": str(root / f"hf-{case}"), "out": str(root / f"hf-{case}.npz")})
    for case, args in HUB_CASES.items():
        jobs.append({"build": "ElectraBackbone", "args": args, "dir": str(root / f"hub-{case}"), "out": str(root / f"hub-{case}.npz")})
    return root, hf, hub_oracle(jobs, root)


@pytest.mark.parametrize("case", list(HF_CASES))
def test_hf_to_kerashub_computes_hf(case, world):
    root, hf, report = world
    assert "error" not in report[str(root / f"to-{case}")], report[str(root / f"to-{case}")]
    got = outputs(root / f"to-{case}.npz")
    assert np.abs(got["hidden"] - hf[case]).max() < 1e-4, np.abs(got["hidden"] - hf[case]).max()
    # The pooler HF's ElectraModel lacks: written as zeros, so its output is exactly tanh(0).
    assert not got["pooled"].any()


def test_keras_hub_has_no_loader_for_an_hf_electra(world):
    root, _, report = world
    assert "no converter" in report[str(root / "hf-projected")].get("error", ""), report[str(root / "hf-projected")]


@pytest.mark.parametrize("case", list(HF_CASES))
def test_same_variables_as_keras_hubs_own_preset(case, world):
    """Paths, order and shapes as ElectraBackbone's own save_to_preset of the same arguments."""
    root, _, report = world
    ours, theirs = report[str(root / f"to-{case}")], report[str(root / f"hub-{case}")]
    assert "error" not in theirs, theirs
    assert ours["variables"] == theirs["variables"]
    assert h5_shapes(root / f"to-{case}" / "model.weights.h5") == h5_shapes(root / f"hub-{case}" / "model.weights.h5")
    assert ("embeddings_projection" in str(ours["variables"])) == (case == "projected")


def h5_shapes(path) -> dict:
    return {name: value[:2] for name, value in h5_datasets(path).items()}


@pytest.mark.parametrize("case", list(HF_CASES))
def test_hf_to_kerashub_to_pt_is_bit_exact(case, world, tmp_path):
    root, _, _ = world
    config, source = back_to_pt(root, case, tmp_path)
    for key in ("embedding_size", "hidden_size", "layer_norm_eps", "hidden_act", "type_vocab_size"):
        assert config[key] == source[key], key


def pooler(case: str) -> str:
    return "dense_1" if case == "projected" else "dense"


@pytest.mark.parametrize("case", list(HUB_CASES))
def test_keras_hub_preset_to_pt(case, world, tmp_path):
    """keras_hub's own save_to_preset -> pt: transformers loads it strictly and computes its
    sequence_output; the pooler is skipped (listed), and comes back as zeros, all else byte for byte."""
    root, _, report = world
    assert "error" not in report[str(root / f"hub-{case}")], report[str(root / f"hub-{case}")]
    proc = run_irconv("convert", root / f"hub-{case}", tmp_path / "pt", "--to", "pt", check=True)
    assert "skipped 2 source tensor(s)" in proc.stdout.decode() + proc.stderr.decode()
    ls = run_irconv("ls", root / f"hub-{case}", check=True).stdout.decode()
    skipped = {line.split()[1] for line in ls.splitlines() if line.startswith("(skipped)")}
    key = "dense_1" if case == "projected" else "dense_0"
    assert skipped == {f"{key}/vars/0", f"{key}/vars/1"}
    model, info = transformers.ElectraModel.from_pretrained(tmp_path / "pt", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    ref = outputs(root / f"hub-{case}.npz")["hidden"]
    assert np.abs(last_hidden(model.eval()) - ref).max() < 1e-4
    irconv.convert(tmp_path / "pt", tmp_path / "hub", to="kerashub")
    theirs, ours = h5_datasets(root / f"hub-{case}" / "model.weights.h5"), h5_datasets(tmp_path / "hub" / "model.weights.h5")
    assert sorted(theirs) == sorted(ours)
    pooled = {n for n in theirs if n.startswith(f"layers/{pooler(case)}/")}
    assert len(pooled) == 2
    for name in theirs:
        if name in pooled:
            assert ours[name][:2] == theirs[name][:2] and not np.frombuffer(ours[name][2], "<f4").any(), name
        else:
            assert ours[name] == theirs[name], name


def test_the_discriminator_head_is_refused(tmp_path):
    """ElectraForPreTraining's head has no place in the Backbone, and keras-hub has no ELECTRA task."""
    make_electra(HF_CASES["projected"], tmp_path / "pre", cls="ElectraForPreTraining")
    proc = run_irconv("convert", tmp_path / "pre", tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, "ElectraBackbone holds the backbone only", "'heads.discriminator.dense.weight'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change,needle", [
    ({"hidden_act": "gelu"}, "hidden_act='gelu'"),
    ({"layer_norm_eps": 1e-5}, "layer_norm_eps=1e-05"),
], ids=["exact-gelu", "eps"])
def test_what_electra_backbone_cannot_compute_is_refused(change, needle, tmp_path):
    make_electra(dict(HF_CASES["projected"], **change), tmp_path / "src")
    proc = run_irconv("convert", tmp_path / "src", tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "out").exists()


def test_irconv_verify_runs_a_preset_beside_hf(world):
    """The preset's pooled_output has no HF counterpart: verify says so and compares the rest."""
    root, _, _ = world
    proc = run_irconv("verify", root / "hf-projected", root / "to-projected")
    out = proc.stdout.decode()
    assert proc.returncode == 0, (out, proc.stderr.decode()[-2000:])
    assert "only in" in out and "pooler_output" in out
    assert "last_hidden_state" in out and "verified: 1 output(s)" in out
