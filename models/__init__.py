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


HEADS = "heads."      # the canonical prefix of a family's task heads (MLM, classifier, LM head ...)


def base_model(ckpt):
    """(`ckpt` as its family's base model, the head blocks left out): the `heads.*` tensors and
    the names tied to them dropped, config.json's architectures the family's class that
    computes none of those heads (BertModel for a BertForPreTraining). A base tensor tied to a
    head keeps its bytes. `--base-model`: what a keras-hub Backbone, which holds no head, takes."""
    from dataclasses import replace
    family = FAMILIES.get(ckpt.family)
    head_roles = {b.role for b in family.blocks if b.name.startswith(HEADS) and b.role}
    bases = [cls for cls, roles in family.architectures.items() if not set(roles) & head_roles]
    if not bases:
        raise UsageError(f"the {family.name} family declares no class without a head to write as its base model")
    tensors = {k: t for k, t in ckpt.tensors.items() if not k.startswith(HEADS)}
    aliases = {}
    for alias, target in ckpt.aliases.items():
        if alias.startswith(HEADS):
            continue
        if target.startswith(HEADS):          # a base name holding a head's bytes keeps them
            tensors[alias] = ckpt.tensors[target].with_spec(name=alias)
        else:
            aliases[alias] = target
    left = sorted({".".join(n.split(".")[:2]) for n in (*ckpt.tensors, *ckpt.aliases) if n.startswith(HEADS)})
    config = dict(ckpt.config, architectures=[bases[0]])
    return replace(ckpt, tensors=tensors, aliases=aliases, config=config), left
