"""Settling the config of a file that came without one: nothing that changes what the model
computes is ever guessed silently.

An importer given no config (a bare weights file, a TF1 checkpoint without bert_config.json)
infers one from the tensor shapes. What the shapes decide (widths, depths, vocabularies) is
read exactly; the rest is declared per family (models/engine.Family):

- `required`: no tensor says it and no default is safe (attention heads: a fused 768-wide
  projection is 12 heads of 64 or 6 of 128). It must be given: --config FILE or --set KEY=VALUE.
- `defaults`: values the releases use (hidden_act gelu, layer_norm_eps 1e-12); taken only when
  the user says so with --accept-defaults, and then written into the output's config.

Otherwise the import stops with one line naming what is missing and how to give it. --set also
overrides single fields of a config that was given.
"""
from __future__ import annotations

import json
from typing import Iterable

from ..ir.checkpoint import Checkpoint
from ..ir.errors import UsageError
from ..models import FAMILIES
from ..models.engine import INFERRED, config_value, count_field_problems, head_split_problems


def parse_sets(values: Iterable[str] | None) -> dict[str, object]:
    """['num_attention_heads=12', 'hidden_act=gelu'] -> {...}; values are JSON where they parse
    (12, 1e-12, true, [5, 2]), else strings."""
    out: dict[str, object] = {}
    for item in values or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE (e.g. --set num_attention_heads=12)")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _put(config: dict, key: str, value) -> None:
    *path, leaf = key.split(".")
    for part in path:
        nxt = config.get(part)
        if not isinstance(nxt, dict):
            nxt = config[part] = {}
        else:
            nxt = config[part] = dict(nxt)
        config = nxt
    config[leaf] = value


def _drop(config: dict, key: str) -> None:
    *path, leaf = key.split(".")
    for part in path:
        config = config.get(part)
        if not isinstance(config, dict):
            return
    config.pop(leaf, None)


def _show(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def settle_config(ckpt: Checkpoint, where: str, sets: dict | None = None, accept_defaults: bool = False,
                  require: bool = True) -> Checkpoint:
    """Apply --set values; for an inferred config, demand the family's required fields and
    take its stated defaults only with accept_defaults. With require=False (listings) what is
    missing becomes a note instead of an error."""
    sets = dict(sets or {})
    bad = count_field_problems(sets)
    if bad:
        raise UsageError(f"--set {bad[0]}")
    family = FAMILIES.get(ckpt.family)
    if not ckpt.source.get("config_inferred"):
        for key, value in sets.items():
            _put(ckpt.config, key, value)
        if sets and family.complete is not None:
            completed = family.complete(ckpt.config)
            ckpt.config.clear()
            ckpt.config.update(completed)
        problems = ckpt.config_check(ckpt.config) if sets and ckpt.config_check is not None else []
        if problems:
            raise UsageError(f"--set {', '.join(sets)}: the config would contradict the tensors: "
                             + "; ".join(p.removeprefix("config.json ") for p in problems[:6]), path=where)
        return ckpt
    config = json.loads(json.dumps(ckpt.config))          # nested copy
    architectures = config.get("architectures") if isinstance(config.get("architectures"), list) else ()
    required = family.required_fields(sets.get("architectures", architectures))
    for key in required:
        _drop(config, key)                                 # an infer_config guess; never kept
    defaults = {key: (config_value(ckpt.config, key) if value == INFERRED else value)
                for key, value in family.defaults.items()}
    missing = [key for key in required if key not in sets]
    unstated = [key for key in defaults if key not in sets]
    for key, value in sets.items():
        _put(config, key, value)
    # The importer's "inferred" notes describe the config before these values: replaced below.
    notes = [n for n in ckpt.source.get("notes", ()) if "guess" not in n and not n.startswith("no config")]
    if sets:
        notes.append("no config given: inferred from the tensor shapes, with "
                     + ", ".join(f"{k}={_show(v)}" for k, v in sets.items()) + " (--set)")
    if unstated and accept_defaults:
        for key in unstated:
            _put(config, key, defaults[key])
        notes.append("no config given: took the stated defaults "
                     + ", ".join(f"{k}={_show(defaults[k])}" for k in unstated) + " (--accept-defaults)")
    if missing or (unstated and not accept_defaults):
        parts = []
        if missing:
            parts.append(f"the tensors do not say {', '.join(missing)}: give "
                         + ("it" if len(missing) == 1 else "them") + " with --config FILE or "
                         + " ".join(f"--set {k}=..." for k in missing))
        if unstated and not accept_defaults:
            parts.append(f"{', '.join(f'{k}={_show(defaults[k])}' for k in unstated)} would be defaults, not read "
                         "from the file: take them with --accept-defaults or set them")
        message = "no config.json, so the config is inferred from the tensor shapes, but " + "; ".join(parts)
        if require:
            raise UsageError(message, path=where)
        notes.append(message)
    split = head_split_problems(family, config)
    if split:
        raise UsageError((f"--set {', '.join(sets)}: " if sets else "the config: ") + "; ".join(split), path=where)
    if family.from_shapes is not None and not missing:
        try:
            config = family.from_shapes(config, {c: t.spec for c, t in ckpt.tensors.items()})
        except ValueError as exc:
            raise UsageError(str(exc), path=where) from None
    if family.complete is not None and (sets or (unstated and accept_defaults)):
        config = family.complete(config)
    ckpt.config.clear()
    ckpt.config.update(config)
    ckpt.source["notes"] = notes
    return ckpt


# Fields that say how a file was made or trained, not what the model computes.
NOT_COMPUTING = frozenset({"transformers_version", "_name_or_path", "torch_dtype", "dtype", "architectures",
                           "id2label", "label2id", "use_cache", "initializer_range", "initializer_factor",
                           "return_dict", "output_hidden_states", "output_attentions", "gradient_checkpointing",
                           "classifier_dropout", "bos_token_id", "eos_token_id", "sep_token_id",
                           "decoder_start_token_id", "tokenizer_class", "task_specific_params"})
_ABSENT = object()


def _flat(config: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and key not in NOT_COMPUTING:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(family_name: str, a: dict, b: dict) -> tuple[list[str], list[str]]:
    """(fields that change what the model computes, other fields) where configs a and b differ.
    A field one side leaves out counts as its family's stated default when it has one (what
    transformers fills in); a required field one side lacks is a difference."""
    family = FAMILIES.get(family_name)
    fa, fb = _flat(a), _flat(b)
    computing, other = [], []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, _ABSENT), fb.get(key, _ABSENT)
        default = family.defaults.get(key, _ABSENT)
        if default is not INFERRED and default is not _ABSENT:
            va, vb = (default if va is _ABSENT else va), (default if vb is _ABSENT else vb)
        if va == vb:
            continue
        leaf = key.rsplit(".", 1)[-1]
        shown = f"{key}: {_show_absent(va)} vs {_show_absent(vb)}"
        if leaf in NOT_COMPUTING or "dropout" in leaf:
            if va is not _ABSENT and vb is not _ABSENT:
                other.append(shown)      # one side's provenance or training setting: not worth a line
        elif (va is _ABSENT or vb is _ABSENT) and key not in family.required:
            other.append(shown)          # left to transformers' default on one side: unknown here
        else:
            computing.append(shown)
    return computing, other


def _show_absent(value) -> str:
    return "(not given)" if value is _ABSENT else _show(value)
