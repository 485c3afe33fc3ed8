"""Model families (one module each) and the descriptor engine.

A new family is one module here exposing `FAMILIES` (a list of `Family`, built from blocks,
reusing shared ones such as bert.encoder_layer) and one entry in MODULES below.
"""
from __future__ import annotations

from ..ir.errors import UsageError
from ..registry import Registry
from . import albert, align, bart, bert, ctrl, deberta_v2, distilbert, dpr, efficientnet, electra, flava, gemma, gpt2, layoutlm, llama, lxmert, mixtral, phi3, roberta, t5, transfo_xl, vit, wav2vec2, xlm, xlm_roberta_xl, xlnet
from .engine import Family

MODULES = (bert, roberta, layoutlm, electra, albert, distilbert, dpr, wav2vec2, xlnet, xlm, gpt2, ctrl, llama, mixtral, gemma, lxmert, t5, bart, transfo_xl, xlm_roberta_xl, phi3, efficientnet, align, flava, vit, deberta_v2)

FAMILIES: Registry[Family] = Registry("model family")
for _module in MODULES:
    for _family in _module.FAMILIES:
        FAMILIES.add(_family.name, _family)


def family_for_model_type(model_type: str) -> Family:
    for fam in FAMILIES:
        if model_type in fam.model_types:
            return fam
    raise UsageError(f"config.json model_type {model_type!r} is not a family irconv knows "
                     f"({', '.join(FAMILIES.names())}); see `irconv models`")
