"""keras-hub preset directory (FORMATS.md §12.1): config.json serializing the family's keras_hub
Backbone with the constructor arguments its HubConfig maps from the HF config, metadata.json,
and model.weights.h5 in Keras 3's layout, which `keras_hub.models.Backbone.from_preset(dir)`
loads (by path: every variable at `layers/<key>/.../vars/N`).

A preset holds the Backbone, and, where the HF class is one of the family's keras-hub tasks
(models/kerashub.py HubTask: BertForSequenceClassification is BertTextClassifier,
LlamaForCausalLM LlamaCausalLM), the task: task.json (its class, the Backbone's config nested,
its own arguments from the HF config) and task.weights.h5 (its heads' weights). A head no
task holds (BERT's NSP head), or a task that computes otherwise than the HF class (its limit),
is refused rather than dropped. A classifier's label names (id2label) have no place in a task
(only their count, num_classes): read back, they are transformers' LABEL_i. A decoder's LM
head is the Backbone's own (ReversibleEmbedding's reverse_embeddings when untied); the tie
flag is written into config.json even where the class's get_config() would leave it out
(LlamaBackbone, keras-hub#3098), so the preset reloads as it was written.
"""
from __future__ import annotations

import datetime
import re
from pathlib import Path

import numpy as np

from ..formats import hubtokenizer as tok
from ..formats import kerashub as fmt
from ..ir.checkpoint import Checkpoint
from ..ir.errors import DTypeError, MappingError, UsageError
from ..ir.tensor import Tensor, from_array
from ..models import FAMILIES
from ..models import kerashub as kh
from .base import Exporter, ExportOptions, Progress, tied_copies, write_all

# The Keras dtype policy of a preset whose floating tensors all have this dtype.
POLICIES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}
LAYOUT_VERSIONS = {"keras_version": "3.15.1", "keras_hub_version": "0.32.0"}   # the layout written


def _snake(name: str) -> str:
    """A class's default layer name, as Keras makes it ('LlamaCausalLM' -> 'llama_causal_lm')."""
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()


def policy_of(tensors: list[Tensor]) -> str:
    floats = sorted({t.dtype.name for t in tensors if t.dtype.name in ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")})
    if len(floats) > 1:
        raise DTypeError(f"a keras-hub Backbone has one dtype policy, but the tensors are {', '.join(floats)}; "
                         "pass --cast to make them one")
    name = floats[0] if floats else "F32"
    if name not in POLICIES:
        raise DTypeError(f"a keras-hub Backbone cannot hold {name} variables (float32, bfloat16, float16); "
                         "pass --cast F32")
    return POLICIES[name]


def hub_task(family, view, ckpt: Checkpoint, where: str) -> tuple[kh.HubTask | None, dict]:
    """The keras-hub task the checkpoint's HF class is (None: a Backbone only) and its
    arguments; refused (MappingError) where a head has no place in it."""
    archs = ckpt.config.get("architectures") or []
    arch = archs[0] if archs else None
    task = kh.task_for(family.name, hf_class=arch) if arch else None
    known = "; ".join(f"{t.hf_class} as {t.task}" for t in kh.HUB_TASKS.get(family.name, ())) or "none"
    foreign = [c for c in ckpt.tensors if view.block_of(c) is None]
    if foreign:
        blocks = sorted({c.rsplit(".", 2)[0] for c in foreign})
        raise MappingError(f"{len(foreign)} canonical tensor(s) have no name in the {family.name} {kh.VIEW!r} view: "
                           f"keras-hub's {kh.hub_config(family.name).backbone} holds the backbone only, and no keras-hub "
                           f"task holds {arch or 'this model'}'s {', '.join(blocks)} (the tasks irconv knows: "
                           f"{known}; --base-model leaves the heads out): " + ", ".join(map(repr, foreign[:20]))
                           + (" ..." if len(foreign) > 20 else ""), path=where)
    heads = sorted({view.block_of(c).name for c in ckpt.tensors if fmt.is_task(view.raw_name(c, "") or "")})
    if heads and (task is None or not set(heads) <= set(task.blocks)):
        raise MappingError(f"{arch or 'this model'} is no keras-hub task irconv knows ({known}), and a Backbone "
                           f"preset has no place for its {', '.join(heads)}", path=where)
    if task is None:
        return None, {}
    try:      # (what the task computes otherwise, task.limit, is the view's limit: hub_limits)
        args = task.to_task(ckpt.config)
    except (ValueError, TypeError, KeyError) as exc:
        raise MappingError(f"the config does not give what keras-hub's {task.task} needs: {exc}", path=where) from None
    problems = kh.size_problems(task, args, {c: t.shape for c, t in ckpt.tensors.items()})
    if problems:
        raise MappingError(f"keras-hub's {task.task}: " + "; ".join(problems), path=where)
    return task, args


def task_json(task: kh.HubTask, backbone: dict, args: dict) -> dict:
    """task.json as `Task.save_to_preset` writes it: the class, its Backbone's config (that of
    config.json), no preprocessor (the task then takes token ids, as HF's class does; see
    with_preprocessor) and its own arguments."""
    return {"module": task.module, "class_name": task.task,
            "config": {"backbone": backbone, "preprocessor": None, "name": _snake(task.task), **args},
            "registered_name": f"keras_hub>{task.task}"}


def with_preprocessor(serialized: dict, task: kh.HubTask, tokenizer: dict, hf: dict) -> dict:
    """task.json with the task's preprocessor around the preset's tokenizer (tokenizer.json)."""
    cls, module, args = task.preprocessor
    preprocessor = {"module": module, "class_name": cls,
                    "config": {"name": _snake(cls), "trainable": True,
                               "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                                         "registered_name": None},
                               "tokenizer": tokenizer, "config_file": fmt.PREPROCESSOR, **args(hf)},
                    "registered_name": f"keras_hub>{cls}"}
    return {**serialized, "config": {**serialized["config"], "preprocessor": preprocessor}}


def hub_tensors(ckpt: Checkpoint, where: str) -> tuple[list[Tensor], dict[str, str], dict, dict | None]:
    """The preset's tensors (stored shapes; a task's named 'task/...'), tied aliases, its
    config.json and its task.json (None: a Backbone preset)."""
    family = FAMILIES.get(ckpt.family)
    hub = kh.hub_config(family.name)
    if hub is None or kh.VIEW not in family.views:
        raise UsageError(f"family {family.name!r} has no keras-hub Backbone irconv writes")
    view = family.view(kh.VIEW)
    problem = family.view_limits[kh.VIEW](ckpt.config)
    if problem:
        raise MappingError(f"the {family.name} {kh.VIEW!r} view cannot hold this model: {problem}", path=where)
    # A stream's tensors can be read once, in order: its zero_checked ones are checked in their
    # turn while writing (in_turn_checks), not here.
    values = [] if ckpt.ordered else kh.value_problems(family, hub, ckpt.tensors)
    ckpt = without_zeros(ckpt, hub)
    task, task_args = hub_task(family, view, ckpt, where)
    if values:
        raise MappingError(values[0], path=where)
    try:
        args = kh.hf_to_hub(hub, ckpt.config)
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise MappingError(f"the config does not give what keras-hub's {hub.backbone} needs: {exc}",
                           path=where) from None
    tensors, aliases = view.from_canonical(ckpt, where)
    out = []
    for t in tensors:
        hit = view.canonical_name(t.name, "")
        transform = kh.stored_transform(hit[0].param.spellings[kh.VIEW], ckpt.config) if hit else None
        if transform is not None:
            try:
                t = t.transformed(transform.inverse())
            except (ValueError, TypeError, KeyError, ZeroDivisionError) as exc:
                raise MappingError(f"{t.name!r}: {exc}", path=where) from None
        out.append(t)
    out = kh.view_names(hub, out, ckpt.config, to_view=False)
    aliases = {kh.renamed(hub, a, ckpt.config, False): kh.renamed(hub, b, ckpt.config, False)
               for a, b in aliases.items()}
    if ckpt.ordered and any(kh.STACK in t.name for t in out):
        # The stacked banks take one slice from each expert, which a stream gives expert by expert.
        raise UsageError(f"keras-hub's {hub.backbone} stacks each layer's experts into one variable, which an IR "
                         "stream cannot give in its order: convert from the checkpoint itself (irconv convert)",
                         path=where)
    try:
        out = kh.restack(out)
    except ValueError as exc:
        raise MappingError(str(exc), path=where) from None
    policy = policy_of(out)
    # The Backbone's variables no HF tensor is (HubConfig.unmapped): zeros, of the policy's dtype.
    dtype = next((t.dtype for t in out if t.dtype.name in POLICIES), None)
    for name, shape in hub.unmapped(args).items():
        out.append(from_array(name, np.zeros(shape, dtype.carrier if dtype else np.float32), dtype=dtype))
    config = {"module": hub.module, "class_name": hub.backbone,
              "config": {"name": _snake(hub.backbone), "trainable": True,
                         "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": policy},
                                   "registered_name": None},
                         **args},
              "registered_name": f"keras_hub>{hub.backbone}"}
    return out, aliases, config, task_json(task, config, task_args) if task else None


def without_zeros(ckpt: Checkpoint, hub: kh.HubConfig) -> Checkpoint:
    """`ckpt` without the head the Backbone computes without (HubConfig.zero_head) and its tied
    aliases: all zeros, they add nothing (kh.value_problems refuses them otherwise)."""
    from dataclasses import replace
    if not hub.zero_head:
        return ckpt
    return replace(ckpt, tensors={k: t for k, t in ckpt.tensors.items() if not k.startswith(hub.zero_head)},
                   aliases={a: b for a, b in ckpt.aliases.items() if not a.startswith(hub.zero_head)})


def left_out(ckpt: Checkpoint) -> list[str]:
    """What a written preset does not hold of `ckpt`, as the view declares it: a zero head
    (HubConfig.zero_head) and rows a LeadingRows spelling drops, where they are not zero."""
    family = FAMILIES.get(ckpt.family)
    hub = kh.hub_config(family.name)
    notes = []
    head = [name for name in ckpt.tensors if hub.zero_head and name.startswith(hub.zero_head)]
    if head:
        notes.append(f"left out {', '.join(head)}: all zeros, which keras-hub's {hub.backbone} computes without "
                     f"(its tied head is the token embedding); it comes back as {hub.architecture or 'the Backbone'}")
    for block in family.blocks:
        for param in block.params:
            spelling = param.spellings.get(kh.VIEW)
            transform = kh.stored_transform(spelling, ckpt.config) if spelling else None
            name = f"{block.name}.{param.name}"
            # (A stream's tensors were read once: their rows are said to be left out unread.)
            if isinstance(transform, kh.LeadingRows) and name in ckpt.tensors \
                    and (ckpt.ordered or np.any(ckpt.tensors[name].load()[:transform.skip] != 0)):
                why = hub.dropped_rows.get(name, f"which {family.name} never reads")
                notes.append(f"left out rows 0-{transform.skip - 1} of {name} ({why}), which a preset has no "
                             "place for; they come back as zeros")
    return notes


class KerasHubExporter(Exporter):
    name = "kerashub"
    description = "keras-hub preset directory: config.json (a keras_hub Backbone) + metadata.json + model.weights.h5"
    views = (kh.VIEW,)

    def dropped_parts(self, ckpt) -> dict[str, str]:
        """canonical name -> what of it a preset does not store (for `irconv ls --to kerashub`)."""
        hub = kh.hub_config(ckpt.family)
        return dict(hub.dropped_rows) if hub else {}

    def stored_name(self, ckpt, raw: str) -> str:
        """The preset's name of the view's `raw` (for `irconv ls --to kerashub`)."""
        hub = kh.hub_config(ckpt.family)
        return kh.renamed(hub, raw, ckpt.config, False) if hub else raw

    def writes(self, options):
        return (fmt.WEIGHTS, fmt.METADATA)

    def competes(self, options):
        return (fmt.WEIGHTS, fmt.METADATA, fmt.SHARD_INDEX, "model_*.weights.h5", "task.json", "task.weights.h5",
                "preprocessor.json", fmt.TOKENIZER)

    def save(self, ckpt, out, options, progress=None, check=None):
        # An HF directory's other files (its tokenizer.json above all, which keras-hub would
        # read as its own tokenizer config) do not belong in a preset; its tokenizer files
        # become the preset's tokenizer where the family has one (write_tokenizer).
        from dataclasses import replace
        self._tokenizer_from, self._tokenizer_notes = options.extras_from, ([], [])
        try:
            written = super().save(ckpt, out, replace(options, extras_from=None), progress, check)
        finally:
            self._tokenizer_from = None
        written.notes.extend(left_out(ckpt))
        made, not_made = self._tokenizer_notes
        if written.extras is not None:
            written.extras.made += made
            written.extras.not_carried += not_made
        return written

    def plan(self, ckpt, options):
        from .base import cast_floats
        if options.cast:
            ckpt = cast_floats(ckpt, options.cast)
        tensors, aliases, config, _ = hub_tensors(ckpt, "<plan>")
        specs, _ = tied_copies(tensors, aliases)
        return [(fmt.TASK_WEIGHTS if fmt.is_task(s.name) else fmt.WEIGHTS, s) for s in specs], fmt.CONFIG, config

    def write(self, ckpt: Checkpoint, tmp: Path, options: ExportOptions, progress: Progress) -> None:
        self.view_for(FAMILIES.get(ckpt.family))
        if options.max_shard_size:
            raise UsageError("irconv writes a keras-hub preset's weights as one model.weights.h5; "
                             "--max-shard-size does not apply")
        tensors, aliases, config, task = hub_tensors(ckpt, str(tmp))
        specs, copies = tied_copies(tensors, aliases)
        fmt.write_json(tmp / fmt.CONFIG, config)
        fmt.write_json(tmp / fmt.METADATA, {
            **LAYOUT_VERSIONS, "parameter_count": sum(s.numel for s in specs if not fmt.is_task(s.name)),
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
            "tasks": list(kh.hub_config(ckpt.family).tasks)})
        self._tokenizer_notes = write_tokenizer(ckpt, getattr(self, "_tokenizer_from", None), tmp)
        if task is not None:
            hub_task = kh.task_for(ckpt.family, task=task["class_name"])
            if hub_task.preprocessor and (tmp / fmt.TOKENIZER).is_file():
                from ..importers.base import read_json
                task = with_preprocessor(task, hub_task, read_json(tmp / fmt.TOKENIZER), ckpt.config)
                fmt.write_json(tmp / fmt.PREPROCESSOR, task["config"]["preprocessor"])
            fmt.write_json(tmp / fmt.TASK_CONFIG, task)
        writer = fmt.PresetWeightsWriter(tmp / fmt.WEIGHTS, specs)
        if ckpt.ordered:
            tensors, writer = in_turn_checks(ckpt, tensors, writer, str(tmp))
        write_all(writer, tensors, copies, progress, ckpt=ckpt, options=options)


class _CheckingWriter:
    """A preset writer that takes the zero_checked tensors too, to check them (not write them)."""

    def __init__(self, writer, family, hub, checked: set[str], where: str):
        self._writer, self._family, self._hub, self._checked, self._where = writer, family, hub, checked, where

    def write(self, name, array):
        if name not in self._checked:
            return self._writer.write(name, array)
        problems = kh.value_problems(self._family, self._hub, {name: from_array(name, array)})
        if problems:
            raise MappingError(problems[0], path=self._where)

    def __getattr__(self, name):
        return getattr(self._writer, name)


def in_turn_checks(ckpt: Checkpoint, tensors: list[Tensor], writer, where: str):
    """`tensors` with the family's zero_checked tensors put back in their place in the stream's
    order, and a writer that checks them there."""
    family = FAMILIES.get(ckpt.family)
    hub = kh.hub_config(family.name)
    view = family.view(kh.VIEW)
    prefix = view.export_prefix(ckpt)
    checked = set(kh.zero_checked(hub, ckpt.tensors))
    if not checked:
        return tensors, writer
    out, written = [], iter(tensors)
    for name, t in ckpt.tensors.items():
        if name in checked:
            out.append(Tensor(t.spec, t.load, t.source))      # loaded, never copied as stored
        elif view.raw_name(name, prefix) is not None:
            out.append(next(written))
    out += list(written)
    return out, _CheckingWriter(writer, family, hub, checked, where)


def write_tokenizer(ckpt: Checkpoint, source: Path | None, tmp: Path) -> tuple[list[str], list[str]]:
    """tokenizer.json + assets/tokenizer/ from the source's HF tokenizer files (or, for a
    preset read back, the HF files its tokenizer makes: importers/kerashub.py), where the
    family declares a keras-hub tokenizer (models/kerashub.py HubTokenizer; the per-kind code
    is formats/hubtokenizer.py). Returns (files made, "tokenizer (why not)")."""
    spec = kh.hub_tokenizer(ckpt.family)
    if spec is None or source is None:
        return [], []
    from_preset = ckpt.source.get("format") == "kerashub"
    files = tok.made_files(ckpt.source.get("made", ())) if from_preset else tok.directory_files(source)
    try:
        preset = tok.to_preset(spec, files)
    except (tok.NotWritten, OSError) as exc:
        return [], [f"{fmt.TOKENIZER} (keras-hub's {spec.cls} not written: {exc})"]
    if preset is None:
        return [], list(ckpt.source.get("not_made", ()))
    (tmp / fmt.ASSETS).mkdir(parents=True)
    for name, data in preset.assets.items():
        (tmp / fmt.ASSETS / name).write_bytes(data)
    fmt.write_json(tmp / fmt.TOKENIZER, preset.config)
    return [f"{fmt.TOKENIZER} ({spec.cls})", *(f"{fmt.ASSETS}/{n}" for n in preset.assets)], []
