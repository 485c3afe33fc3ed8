"""Model families (one module each) and the descriptor engine.

A new family is one module here exposing `FAMILIES` (a list of `Family`, built from blocks,
reusing shared ones such as bert.encoder_layer) and one entry in MODULES below: the names and
model_types of the families it declares (test_registry checks them against the module).
"""
from __future__ import annotations

import importlib
import threading
from typing import Iterator

from ..ir.errors import UsageError
from ..registry import Registry
from .engine import Family

# module -> {family name: config.json model_types} of the families it declares. A conversion
# needs one family (named by a config's model_type, a stream's header, --model): only its
# module is imported then, not all 26 (~30 ms at every start). Listing, scoring or an unknown
# name imports them all.
MODULES: dict[str, dict[str, tuple[str, ...]]] = {
    "bert": {"bert": ("bert",)},
    "roberta": {"roberta": ("roberta",), "xlm-roberta": ("xlm-roberta",), "camembert": ("camembert",)},
    "layoutlm": {"layoutlm": ("layoutlm",)},
    "electra": {"electra": ("electra",)},
    "albert": {"albert": ("albert",)},
    "distilbert": {"distilbert": ("distilbert",)},
    "dpr": {"dpr": ("dpr",)},
    "wav2vec2": {"wav2vec2": ("wav2vec2",)},
    "xlnet": {"xlnet": ("xlnet",)},
    "xlm": {"xlm": ("xlm",), "flaubert": ("flaubert",)},
    "gpt2": {"gpt2": ("gpt2",), "openai-gpt": ("openai-gpt",)},
    "ctrl": {"ctrl": ("ctrl",)},
    "llama": {"llama": ("llama",), "mistral": ("mistral",), "qwen2": ("qwen2",), "qwen3": ("qwen3",)},
    "mixtral": {"mixtral": ("mixtral",)},
    "gemma": {"gemma": ("gemma",), "gemma2": ("gemma2",)},
    "lxmert": {"lxmert": ("lxmert",)},
    "t5": {"t5": ("t5",)},
    "bart": {"bart": ("bart",)},
    "transfo_xl": {"transfo-xl": ("transfo-xl",)},
    "xlm_roberta_xl": {"xlm-roberta-xl": ("xlm-roberta-xl",)},
    "phi3": {"phi3": ("phi3",)},
    "efficientnet": {"efficientnet": ("efficientnet",)},
    "align": {"align": ("align",)},
    "flava": {"flava": ("flava",), "flava-image-codebook": ("flava_image_codebook",)},
    "vit": {"vit": ("vit",)},
    "deberta_v2": {"deberta-v2": ("deberta-v2",)},
}


class FamilyRegistry(Registry[Family]):
    """The families, each module imported when one of its families is first asked for by
    name; iterating, listing or resolving a name that is not exactly a family's imports all."""

    def __init__(self, modules: dict[str, dict[str, tuple[str, ...]]]):
        super().__init__("model family")
        self._module_of = {name: module for module, fams in modules.items() for name in fams}
        self._by_type = {t: name for fams in modules.values() for name, types in fams.items() for t in types}
        self._modules = tuple(modules)
        self._pending = set(modules)
        self._lock = threading.RLock()     # a family asked for from two threads is added once

    def _import(self, module: str) -> None:
        with self._lock:
            if module in self._pending:
                for family in importlib.import_module(f"{__name__}.{module}").FAMILIES:
                    self.add(family.name, family)
                self._pending.discard(module)

    def load_all(self) -> None:
        for module in self._modules:
            self._import(module)

    def get(self, name: str) -> Family:
        if name in self._module_of:
            self._import(self._module_of[name])
            return self._items[name]
        self.load_all()
        return super().get(name)

    def resolve(self, name: str) -> str:
        if name in self._module_of:
            return name
        self.load_all()
        return super().resolve(name)

    def for_model_type(self, model_type: str) -> Family | None:
        name = self._by_type.get(model_type)
        return None if name is None else self.get(name)

    def names(self) -> list[str]:
        return sorted(self._module_of)

    def __contains__(self, name: str) -> bool:
        return name in self._module_of

    def __iter__(self) -> Iterator[Family]:
        self.load_all()
        return super().__iter__()


FAMILIES = FamilyRegistry(MODULES)


def family_for_model_type(model_type: str) -> Family:
    fam = FAMILIES.for_model_type(model_type)
    if fam is not None:
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
