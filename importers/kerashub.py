"""keras-hub presets: a directory whose config.json serializes a keras_hub Backbone
(`Backbone.save_to_preset(dir)` / `Task.save_to_preset(dir)`), with metadata.json and the
Backbone's Keras 3 weights (formats/kerashub.py; FORMATS.md §12).

The Backbone class names the family (its "kerashub" view, models/kerashub.py); its
constructor arguments become the HF config (HubConfig), so every computing field has a
source; the per-head kernels are reshaped to the canonical matrices before the view's
mapping places them. A Task preset's task.json names a keras-hub task the family declares
(HubTask), which gives the HF class and the config fields of the task's arguments; its
task.weights.h5 holds the heads' weights (its optimizer state is skipped). A task irconv
does not know is refused, never read as its Backbone alone; preprocessor.json is not
read. The tokenizer (tokenizer.json + assets/tokenizer/) becomes the HF tokenizer files of the
same vocabulary (formats/hubtokenizer.py), which every exporter writes with the extras
(ckpt.source "made"; "not_made" says why not).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..formats import hubtokenizer as tok
from ..formats import kerashub as fmt
from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError, MappingError, UsageError
from ..ir.tensor import Tensor
from ..models import FAMILIES
from ..models import kerashub as kh
from ..models.engine import bad_counts
from .base import Importer, require_exists

# Files of a preset that are the preset's own, not extras to carry to another format.
PRESET_FILES = (fmt.CONFIG, fmt.METADATA, fmt.TOKENIZER, "task.json", "task.weights.h5", "preprocessor.json",
                fmt.SHARD_INDEX)

# HF fields the per-head kernels are reshaped by, which must not be 0 (a count may be elsewhere).
_HEAD_COUNTS = ("num_attention_heads", "n_head", "n_heads", "encoder_attention_heads", "num_key_value_heads")

# keras DTypePolicy names -> the torch_dtype an HF config states.
POLICY_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def family_of(preset: fmt.Preset, where: str, model: str | None):
    cls = fmt.backbone_class(preset.config)
    args = preset.config.get("config")
    name = kh.family_for_backbone(cls, args if isinstance(args, dict) else None)
    if model and model != name:
        raise UsageError(f"the preset holds a keras_hub {cls}, which is irconv's {name or 'no'} family, "
                         f"not {model!r}", path=where)
    if name is None:
        known = kh.known_backbones()
        raise FormatError(f"keras_hub {cls} is not a Backbone irconv knows ({', '.join(known)})", path=where)
    return FAMILIES.get(name)


def task_of(preset: fmt.Preset, family, where: str) -> tuple[kh.HubTask | None, dict]:
    """The family's keras-hub task that task.json serializes (None: no task.json) and its own
    arguments; a task irconv does not know, or one whose Backbone is not config.json's, is refused."""
    serialized = preset.task
    if serialized is None:
        return None, {}
    cls, args = serialized.get("class_name"), serialized.get("config")
    task = kh.task_for(family.name, task=cls) if isinstance(cls, str) else None
    if task is None:
        known = ", ".join(t.task for t in kh.HUB_TASKS.get(family.name, ())) or "none"
        raise FormatError(f"task.json holds keras_hub {cls}, a {family.name} task irconv does not read "
                          f"(it reads {known}); it is not read as its Backbone only", path=where)
    if not isinstance(args, dict) or args.get("backbone") != preset.config:
        raise FormatError(f"task.json's {cls} nests another Backbone config than config.json's", path=where)
    own = {k: v for k, v in args.items() if k not in ("backbone", "preprocessor", "name")}
    bad = [f"{key}={value!r} is not a non-negative integer" for key, value in bad_counts(own)]
    if bad:
        raise FormatError(f"task.json's {cls} config: {'; '.join(bad[:4])}", path=where)
    return task, own


def hf_config(hub: kh.HubConfig, preset: fmt.Preset, where: str) -> dict:
    args = dict(preset.config["config"])
    names = {t.name for t in preset.tensors}
    try:
        config = kh.hub_to_hf(hub, args, names)
    except (ValueError, TypeError, KeyError, ZeroDivisionError) as exc:
        raise FormatError(f"config.json: {exc}", path=where) from None
    # The sizes are checked here, as the Backbone's arguments, before any kernel is reshaped
    # by them (hidden_dim "32" or num_heads 0 would fail there, unnamed).
    arg_of = dict(hub.pairs)
    problems = [f"{arg_of.get(key, key)}={value!r} is not a non-negative integer" for key, value in bad_counts(config)]
    problems += [f"{arg_of.get(key, key)}=0: no attention heads" for key in _HEAD_COUNTS if config.get(key) == 0]
    if problems:
        raise FormatError(f"config.json's {hub.backbone} config: {'; '.join(problems[:4])}", path=where)
    policy = args.get("dtype")
    name = policy.get("config", {}).get("name") if isinstance(policy, dict) and isinstance(policy.get("config"), dict) \
        else policy if isinstance(policy, str) else None
    if name in POLICY_DTYPES:
        config["torch_dtype"] = POLICY_DTYPES[name]
    return config


def reshaped(view, tensors: list[Tensor], config: dict, where: str) -> list[Tensor]:
    """Each tensor through its spelling's `stored` transform (per-head kernels as matrices)."""
    out = []
    for t in tensors:
        hit = view.canonical_name(t.name, "")
        try:
            transform = kh.stored_transform(hit[0].param.spellings[kh.VIEW], config) if hit else None
            if transform is not None:
                t = t.transformed(transform)
        except (ValueError, TypeError, KeyError, ZeroDivisionError) as exc:
            raise MappingError(f"{t.name!r}: {exc}", path=where) from None
        out.append(t)
    return out


def unmapped_names(hub: kh.HubConfig, preset: fmt.Preset, where: str) -> set[str]:
    """The Backbone's variables that no HF tensor is (HubConfig.unmapped), skipped on import."""
    try:
        return set(hub.unmapped(dict(preset.config["config"])))
    except (ValueError, TypeError, KeyError) as exc:
        raise FormatError(f"config.json: {exc}", path=where) from None


def tokenizer_back(path: Path, family) -> tuple[list[dict], list[str], list[str]]:
    """(the HF files the preset's tokenizer makes, "tokenizer (why not)", the asset files read).
    A tokenizer file that is a link out of the preset is refused: its bytes would be copied."""
    assets = path / fmt.ASSETS
    listed = sorted(assets.iterdir()) if assets.is_dir() else []
    for p in [path / fmt.TOKENIZER, *listed]:
        if os.path.lexists(p):
            fmt.require_inside(path, p, str(p.relative_to(path)))
    read = [f"{fmt.ASSETS}/{p.name}" for p in listed if p.is_file()]
    if not (path / fmt.TOKENIZER).is_file():
        return [], [], read
    spec, cls = kh.hub_tokenizer(family.name), None
    try:
        config = fmt._read_json(path / fmt.TOKENIZER, fmt.TOKENIZER)
        cls = config.get("class_name")
        if spec is None:
            raise tok.NotWritten(f"irconv writes no keras-hub tokenizer back for {family.name}")
        if cls != spec.cls:
            raise tok.NotWritten(f"keras-hub's {cls} is not the {spec.cls} irconv writes back for {family.name}")
        problem = fmt.serialized_problem(config, fmt.TOKENIZER)
        if problem:
            raise tok.NotWritten(problem)
        return tok.to_hf(spec, config, assets), [], read
    except (tok.NotWritten, FormatError, OSError) as exc:
        return [], [f"{fmt.TOKENIZER} (the preset's {cls or 'keras-hub'} tokenizer not written as HF's files: {exc})"], read


class KerasHubImporter(Importer):
    name = "kerashub"
    description = "keras-hub preset directory: config.json (a keras_hub Backbone) + metadata.json + model.weights.h5"

    def detect(self, path: Path) -> bool:
        return fmt.looks_like(path)

    def raw(self, path):
        return fmt.read(require_exists(Path(path))).tensors

    def load(self, path, *, model=None, view=None, config=None) -> Checkpoint:
        path = require_exists(Path(path))
        if not path.is_dir():
            raise FormatError("a keras-hub preset is a directory (config.json, metadata.json, model.weights.h5)",
                              path=str(path))
        if view not in (None, kh.VIEW):
            raise UsageError(f"a keras-hub preset is named in the {kh.VIEW!r} view, not {view!r}")
        preset = fmt.read(path)
        where = str(path)
        family = family_of(preset, where, model)
        hub = kh.hub_config(family.name)
        task, args = task_of(preset, family, where)
        settled = config if config is not None else hf_config(hub, preset, where)
        if task is not None and config is None:
            try:
                settled.update(task.to_hf(args, preset.config["config"]))
            except (ValueError, TypeError, KeyError) as exc:
                raise FormatError(f"task.json: keras-hub's {task.task} is no HF {task.hf_class}: {exc}",
                                  path=where) from None
            settled["architectures"] = [task.hf_class]
        problem = task.limit(settled) if task is not None else None
        if problem:
            raise FormatError(f"keras-hub's {task.task} is no HF {task.hf_class}: {problem}", path=where)
        family_view = family.view(kh.VIEW)
        unmapped = unmapped_names(hub, preset, where)
        try:
            tensors = kh.view_names(hub, [t for t in preset.tensors if t.name not in unmapped], settled)
        except (ValueError, TypeError, KeyError, ZeroDivisionError) as exc:
            raise FormatError(f"config.json: the layers cannot be numbered from it ({exc!r})", path=where) from None
        tensors = reshaped(family_view, kh.unstack(family_view, tensors), settled, where)
        ckpt = family_view.to_canonical(tensors, settled, where)
        problems = kh.size_problems(task, args, {c: t.shape for c, t in ckpt.tensors.items()}) if task else []
        # The engine needs a head's tensors only where some are there; the task's are its own.
        absent = [b for b in (task.blocks if task else ()) if not any(c.startswith(f"{b}.") for c in ckpt.tensors)]
        if absent:
            raise FormatError(f"task.json's {task.task} has weights of its own ({', '.join(absent)}), and the "
                              f"preset holds none" + ("" if (path / fmt.TASK_WEIGHTS).exists()
                                                      else f" (it has no {fmt.TASK_WEIGHTS})"), path=where)
        if problems:
            raise FormatError(f"keras-hub's {task.task} is no HF {task.hf_class}: {'; '.join(problems)}", path=where)
        made, not_made, assets = tokenizer_back(path, family)
        files = list(dict.fromkeys([f for f in PRESET_FILES if (path / f).exists()] + preset.files + assets))
        ckpt.source.update({"format": self.name, "files": files, "backbone": fmt.backbone_class(preset.config),
                            "made": made, "not_made": not_made})
        ckpt.source["skipped"] = ckpt.source.get("skipped", []) + preset.skipped + \
            [t.name for t in preset.tensors if t.name in unmapped]
        return ckpt
