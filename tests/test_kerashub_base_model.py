"""The hub's task checkpoints (BertForPreTraining, RobertaForMaskedLM, ...) -> `irconv convert
--to kerashub --base-model` -> keras_hub's `Backbone.from_preset` computes what the HF model's
base model (model.bert, model.roberta, ...) computes. A Backbone holds no head: without
--base-model the heads are refused (test_kerashub's refusal tests); with it they are left out,
and said so. keras_hub runs in one subprocess (test_kerashub's pattern)."""
from __future__ import annotations

import json

import numpy as np
import pytest

# Its own keras_hub world (~35 s of setup): under make test-long, to keep make test within its time.
pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("keras_hub")

from conftest import run_irconv  # noqa: E402
from test_kerashub import hub_oracle, outputs  # noqa: E402
from test_kerashub_encoders import ORACLE, hf_outputs  # noqa: E402  (sequence and, where there is one, pooled output)

IDS = [[0, 5, 7, 9, 3, 2, 11, 40]]
ENCODER = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
               max_position_embeddings=18)
ROBERTA = dict(ENCODER, layer_norm_eps=1e-5, type_vocab_size=1)
# case -> (HF config class, HF task class as the hub holds it, config kwargs, the Backbone class)
CASES = {
    "bert": ("BertConfig", "BertForPreTraining", dict(ENCODER, hidden_act="gelu_pytorch_tanh"), "BertBackbone"),
    "roberta": ("RobertaConfig", "RobertaForMaskedLM", ROBERTA, "RobertaBackbone"),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaForMaskedLM", ROBERTA, "XLMRobertaBackbone"),
    "albert": ("AlbertConfig", "AlbertForPreTraining", dict(ENCODER, embedding_size=8), "AlbertBackbone"),
    "electra": ("ElectraConfig", "ElectraForPreTraining", dict(ENCODER, hidden_act="gelu_pytorch_tanh"),
                "ElectraBackbone"),
    "distilbert": ("DistilBertConfig", "DistilBertForMaskedLM",
                   dict(vocab_size=50, dim=16, n_layers=2, n_heads=2, hidden_dim=24, max_position_embeddings=18),
                   "DistilBertBackbone"),
}


def make_task(case: str, directory):
    config_cls, task_cls, kwargs, _ = CASES[case]
    torch.manual_seed(5)
    model = getattr(transformers, task_cls)(getattr(transformers, config_cls)(**kwargs))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        base = getattr(model, model.base_model_prefix)
        if case in ("roberta", "xlm-roberta"):       # as released (test_kerashub_encoders.make_hf)
            base.embeddings.token_type_embeddings.weight.zero_()
            base.embeddings.position_embeddings.weight[1].zero_()
    model.save_pretrained(directory)
    return model.eval()


def base_outputs(model) -> dict:
    return hf_outputs(getattr(model, model.base_model_prefix), IDS)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("kerashub-base")
    hf, notes, jobs = {}, {}, []
    for case in CASES:
        hf[case] = base_outputs(make_task(case, root / f"hf-{case}"))
        proc = run_irconv("convert", root / f"hf-{case}", root / f"to-{case}", "--to", "kerashub", "--base-model",
                          check=True)
        notes[case] = proc.stderr.decode()
        jobs.append({"dir": str(root / f"to-{case}"), "out": str(root / f"to-{case}.npz")})
    return root, hf, notes, hub_oracle(jobs, root, ORACLE, IDS)


@pytest.mark.parametrize("case", list(CASES))
def test_a_task_checkpoint_as_its_backbone_computes_its_base_model(case, world):
    root, hf, notes, report = world
    got = report[str(root / f"to-{case}")]
    assert "error" not in got, got
    assert got["class"] == CASES[case][3]
    keras_out = outputs(root / f"to-{case}.npz")
    for key, ref in hf[case].items():
        assert np.abs(keras_out[key] - ref).max() < 1e-4, (key, np.abs(keras_out[key] - ref).max())
    # What was left out is said.
    assert "--base-model: left out heads." in notes[case], notes[case]
    assert json.loads((root / f"to-{case}" / "config.json").read_text())["class_name"] == CASES[case][3]


def test_without_base_model_the_heads_are_refused_and_named(world, tmp_path):
    root, _, _, _ = world
    proc = run_irconv("convert", root / "hf-roberta", tmp_path / "out", "--to", "kerashub")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "--base-model" in err and "heads.mlm" in err, err
    assert not (tmp_path / "out").exists()
