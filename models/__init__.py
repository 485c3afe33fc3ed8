"""Model families (one module each) and the descriptor engine.

A new family is one module here that builds a `Family` from blocks (reusing shared ones,
like bert.encoder_layer) and one line below that registers it.
"""
from __future__ import annotations

from ..ir.errors import UsageError
from ..registry import Registry
from .engine import Family
from . import bert

FAMILIES: Registry[Family] = Registry("model family")
FAMILIES.add("bert", bert.BERT)


def family_for_model_type(model_type: str) -> Family:
    for fam in FAMILIES:
        if model_type in fam.model_types:
            return fam
    raise UsageError(f"config.json model_type {model_type!r} is not a family irconv knows "
                     f"({', '.join(FAMILIES.names())}); see `irconv models`")
