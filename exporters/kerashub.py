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

from ..formats import kerashub as fmt
from ..ir.checkpoint import Checkpoint
from ..ir.errors import DTypeError, MappingError, UsageError
from ..ir.tensor import Tensor
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
                           f"no keras-hub task holds {arch or 'this model'}'s {', '.join(blocks)} (the tasks irconv knows: "
                           f"{known}; convert the base model): " + ", ".join(map(repr, foreign[:20]))
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
    task, task_args = hub_task(family, view, ckpt, where)
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
    policy = policy_of(out)
    config = {"module": hub.module, "class_name": hub.backbone,
              "config": {"name": _snake(hub.backbone), "trainable": True,
                         "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": policy},
                                   "registered_name": None},
                         **args},
              "registered_name": f"keras_hub>{hub.backbone}"}
    return out, aliases, config, task_json(task, config, task_args) if task else None


class KerasHubExporter(Exporter):
    name = "kerashub"
    description = "keras-hub preset directory: config.json (a keras_hub Backbone) + metadata.json + model.weights.h5"
    views = (kh.VIEW,)

    def writes(self, options):
        return (fmt.WEIGHTS, fmt.METADATA)

    def competes(self, options):
        return (fmt.WEIGHTS, fmt.METADATA, fmt.SHARD_INDEX, "model_*.weights.h5", "task.json", "task.weights.h5",
                "preprocessor.json", fmt.TOKENIZER)

    def save(self, ckpt, out, options, progress=None, check=None):
        # An HF directory's other files (its tokenizer.json above all, which keras-hub would
        # read as its own tokenizer config) do not belong in a preset; its WordPiece
        # vocabulary is written as the preset's tokenizer (write_tokenizer).
        from dataclasses import replace
        self._tokenizer_from = options.extras_from
        try:
            return super().save(ckpt, out, replace(options, extras_from=None), progress, check)
        finally:
            self._tokenizer_from = None

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
        write_tokenizer(ckpt, getattr(self, "_tokenizer_from", None), tmp)
        if task is not None:
            hub_task = kh.task_for(ckpt.family, task=task["class_name"])
            if hub_task.preprocessor and (tmp / fmt.TOKENIZER).is_file():
                from ..importers.base import read_json
                task = with_preprocessor(task, hub_task, read_json(tmp / fmt.TOKENIZER), ckpt.config)
                fmt.write_json(tmp / fmt.PREPROCESSOR, task["config"]["preprocessor"])
            fmt.write_json(tmp / fmt.TASK_CONFIG, task)
        writer = fmt.PresetWeightsWriter(tmp / fmt.WEIGHTS, specs)
        write_all(writer, tensors, copies, progress, ckpt=ckpt, options=options)


# family -> the keras_hub tokenizer class that reads an HF WordPiece vocab.txt as its vocabulary.
WORDPIECE = {"bert": "BertTokenizer"}


def write_tokenizer(ckpt: Checkpoint, source: Path | None, tmp: Path) -> None:
    """tokenizer.json + assets/tokenizer/vocabulary.txt from the source's vocab.txt, where the
    family's keras-hub tokenizer is a WordPiece one and tokenizer_config.json says how it cases
    (do_lower_case); otherwise no tokenizer (the Backbone loads without one)."""
    cls = WORDPIECE.get(ckpt.family)
    if cls is None or source is None or not (source / "vocab.txt").is_file() \
            or not (source / "tokenizer_config.json").is_file():
        return
    from ..importers.base import read_json
    hf = read_json(source / "tokenizer_config.json")
    lower = hf.get("do_lower_case")
    if not isinstance(lower, bool):
        return
    accents = hf.get("strip_accents")
    (tmp / fmt.ASSETS).mkdir(parents=True)
    with open(source / "vocab.txt", "rb") as src, open(tmp / fmt.ASSETS / "vocabulary.txt", "wb") as dst:
        dst.write(src.read(fmt.MAX_JSON))
    fmt.write_json(tmp / fmt.TOKENIZER, {
        "module": f"keras_hub.src.models.{ckpt.family}.{ckpt.family}_tokenizer", "class_name": cls,
        "config": {"name": _snake(cls), "trainable": True,
                   "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "int32"},
                             "registered_name": None},
                   "config_file": fmt.TOKENIZER, "vocabulary": None, "sequence_length": None,
                   "lowercase": lower, "strip_accents": lower if accents is None else bool(accents),
                   "split": True, "suffix_indicator": "##", "oov_token": hf.get("unk_token", "[UNK]"),
                   "special_tokens": None, "special_tokens_in_strings": False},
        "registered_name": f"keras_hub>{cls}"})
