"""keras-hub preset directory (FORMATS.md §12.1): config.json serializing the family's keras_hub
Backbone with the constructor arguments its HubConfig maps from the HF config, metadata.json,
and model.weights.h5 in Keras 3's layout, which `keras_hub.models.Backbone.from_preset(dir)`
loads (by path: every variable at `layers/<key>/.../vars/N`).

A preset holds the Backbone: a head the Backbone does not hold (BERT's MLM and NSP heads, a
classifier) has no place, and the export is refused rather than dropping it. A decoder's LM
head is the Backbone's own (ReversibleEmbedding's reverse_embeddings when untied); the tie
flag is written into config.json even where the class's get_config() would leave it out
(LlamaBackbone, keras-hub#3098), so the preset reloads as it was written.
"""
from __future__ import annotations

import datetime
import re
from pathlib import Path

from ..formats import hubtokenizer as tok
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
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


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


def hub_tensors(ckpt: Checkpoint, where: str) -> tuple[list[Tensor], dict[str, str], dict]:
    """The preset's tensors (stored shapes), tied aliases, and its config.json."""
    family = FAMILIES.get(ckpt.family)
    hub = kh.hub_config(family.name)
    if hub is None or kh.VIEW not in family.views:
        raise UsageError(f"family {family.name!r} has no keras-hub Backbone irconv writes")
    view = family.view(kh.VIEW)
    problem = family.view_limits[kh.VIEW](ckpt.config)
    if problem:
        raise MappingError(f"the {family.name} {kh.VIEW!r} view cannot hold this model: {problem}", path=where)
    foreign = [c for c in ckpt.tensors if view.block_of(c) is None]
    if foreign:
        raise MappingError(f"{len(foreign)} canonical tensor(s) have no name in the {family.name} {kh.VIEW!r} view "
                           f"(keras-hub's {hub.backbone} holds the backbone only; convert the base model): "
                           + ", ".join(map(repr, foreign[:40])) + (" ..." if len(foreign) > 40 else ""), path=where)
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
    return out, aliases, config


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
        # read as its own tokenizer config) do not belong in a preset; its tokenizer files
        # become the preset's tokenizer where the family has one (write_tokenizer).
        from dataclasses import replace
        self._tokenizer_from, self._tokenizer_notes = options.extras_from, ([], [])
        try:
            written = super().save(ckpt, out, replace(options, extras_from=None), progress, check)
        finally:
            self._tokenizer_from = None
        made, not_made = self._tokenizer_notes
        if written.extras is not None:
            written.extras.made += made
            written.extras.not_carried += not_made
        return written

    def plan(self, ckpt, options):
        from .base import cast_floats
        if options.cast:
            ckpt = cast_floats(ckpt, options.cast)
        tensors, aliases, config = hub_tensors(ckpt, "<plan>")
        specs, _ = tied_copies(tensors, aliases)
        return [(fmt.WEIGHTS, s) for s in specs], fmt.CONFIG, config

    def write(self, ckpt: Checkpoint, tmp: Path, options: ExportOptions, progress: Progress) -> None:
        self.view_for(FAMILIES.get(ckpt.family))
        if options.max_shard_size:
            raise UsageError("irconv writes a keras-hub preset's weights as one model.weights.h5; "
                             "--max-shard-size does not apply")
        tensors, aliases, config = hub_tensors(ckpt, str(tmp))
        specs, copies = tied_copies(tensors, aliases)
        fmt.write_json(tmp / fmt.CONFIG, config)
        fmt.write_json(tmp / fmt.METADATA, {
            **LAYOUT_VERSIONS, "parameter_count": sum(s.numel for s in specs),
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
            "tasks": list(kh.hub_config(ckpt.family).tasks)})
        self._tokenizer_notes = write_tokenizer(ckpt, getattr(self, "_tokenizer_from", None), tmp)
        writer = fmt.PresetWeightsWriter(tmp / fmt.WEIGHTS, specs)
        write_all(writer, tensors, copies, progress, ckpt=ckpt, options=options)


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
