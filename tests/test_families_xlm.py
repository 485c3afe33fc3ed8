"""XLM and FlauBERT beyond the generic tf2/registry tests: every class pt -> pt, the layouts
TF2_CASES leaves out (one language, so no lang_embeddings; FlauBERT post-norm and with
languages) through tf2 both ways (bare weights files, where --model decides, the untied pred_layer
and old checkpoints' extra tensors: test_families_registry.py)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import test_tf2  # noqa: E402  (its round-trip checks, called for cases TF2_CASES leaves out)
import zoo  # noqa: E402
from irconv import FAMILIES  # noqa: E402

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


