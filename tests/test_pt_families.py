"""pt -> pt for every class of every family in the registry: a new family is covered by
adding its tiny config to zoo.CONFIGS, with no new test code."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from irconv import FAMILIES  # noqa: E402
from conftest import run_irconv  # noqa: E402
from zoo import PT_FORWARD_BROKEN, assert_close, assert_same_safetensors, inputs_for, make_pt, run_pt  # noqa: E402

CASES = [(fam.name, cls) for fam in FAMILIES for cls in fam.architectures]
# Float noise only: some heads (DPRReader's one-wide relevance head, ELECTRA) give results
# ~1e-8 apart between two loads of identical bytes, transformers' own files included.
RELOAD_ATOL = 1e-6


@pytest.mark.parametrize("family,cls_name", CASES, ids=[f"{f}-{c}" for f, c in CASES])
def test_pt_to_pt_every_class(family, cls_name, tmp):
    model = make_pt(family, cls_name, seed=17)
    model.save_pretrained(tmp / "src")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    assert_same_safetensors(tmp / "src", tmp / "out")
    loaded, info = getattr(transformers, cls_name).from_pretrained(tmp / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] in FAMILIES.get(family).model_types and config["architectures"] == [cls_name]
    if family not in PT_FORWARD_BROKEN:
        inputs = inputs_for(family, model.config)
        assert_close(run_pt(model, inputs), run_pt(loaded.eval(), inputs), RELOAD_ATOL)
