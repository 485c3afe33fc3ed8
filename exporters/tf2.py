"""HF TF2: config.json + tf_model.h5 laid out as transformers' TF classes save and load it
(sharded with tf_model.h5.index.json above --max-shard-size).

A family with no "tf2" view but a "keras" one (keras.applications models, which have no HF TF
class) is written as the Keras exporter writes it: config.json + model.h5."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from ..formats import kerash5, sharding
from ..ir.checkpoint import Checkpoint
from ..ir.errors import DTypeError, UsageError
from ..ir.tensor import TensorSpec
from ..models import FAMILIES
from .base import Exporter, ExportOptions, Progress, tied_copies, write_all
from .keras import H5_DTYPES, KerasExporter, write_keras_directory
from .pt import write_config

# h5py stores these natively and transformers' TF loader reads them back.
TF2_DTYPES = H5_DTYPES


def keras_name(class_name: str) -> str:
    """Keras' default layer name for a class: 'TFBertForMaskedLM' -> 'tf_bert_for_masked_lm'."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Tf2Exporter(Exporter):
    name = "tf2"
    description = "HF TF2 directory: config.json + tf_model.h5 (Keras 2 h5, transformers' layout)"
    views = ("tf2", "keras")

    def writes(self, options):
        return ("tf_model.h5", "model.h5") + (("tf_model-*-of-*.h5", "tf_model.h5.index.json")
                                             if options.max_shard_size else ())

    def competes(self, options):
        return ("tf_model.h5", "tf_model-*-of-*.h5", "tf_model.h5.index.json", "model.h5")

    def files_for(self, specs, options, view):
        file_of = sharding.plan_files(specs, "tf_model", ".h5", options.max_shard_size)[2]
        return [file_of[s.name] for s in specs]

    def plan(self, ckpt, options):
        if self.view_for(FAMILIES.get(ckpt.family)) == "keras":
            return KerasExporter().plan(ckpt, options)
        return super().plan(ckpt, options)

    def write(self, ckpt: Checkpoint, tmp: Path, options: ExportOptions, progress: Progress) -> None:
        family = FAMILIES.get(ckpt.family)
        if self.view_for(family) == "keras":
            write_keras_directory(ckpt, tmp, options, progress)
            return
        view = family.view("tf2")
        tensors, aliases = view.from_canonical(ckpt, str(tmp))
        bad = sorted({t.dtype.name for t in tensors} - TF2_DTYPES)
        if bad:
            raise DTypeError(f"HF TF2 h5 files cannot hold {', '.join(bad)} tensors that transformers "
                             "can load; pass --cast F32 to convert them")
        archs = ckpt.config.get("architectures") or []
        if not archs:
            raise UsageError("the config names no architecture, so the TF class (and its Keras layer "
                             "names) is unknown; add 'architectures' to config.json")
        model_name = keras_name("TF" + archs[0])

        prefix = view.export_prefix(ckpt)

        def block_of_raw(raw: str):
            return view.canonical_name(raw, prefix)[0].block

        def full_name(raw: str) -> str:
            # The stored name is the Keras model name (or the block's own name scope) + the
            # raw name. A one-component name is a variable made outside every scope (BART's
            # final_logits_bias): HF's loader drops the first component of stored and live
            # names alike, so it must stay bare to match.
            scope = block_of_raw(raw).h5_scope.get("tf2", model_name if "/" in raw else "")
            return f"{scope}/{raw}:0" if scope else f"{raw}:0"

        def full(spec) -> TensorSpec:
            return replace(spec, name=full_name(spec.name))

        def layer_of(raw: str) -> str:
            return block_of_raw(raw).h5_layer.get("tf2") or raw.split("/", 1)[0]

        # One Keras layer per first name component (or the block's declared h5_layer), in
        # first-seen order. A head whose TF layer holds another block (the MLM head holds the
        # embeddings) lists those weights again; a tied name the view spells (an alias) is a
        # second variable with the same values.
        layers: dict[str, list[TensorSpec]] = {}
        specs, copies = tied_copies(tensors, aliases)
        for spec in specs:
            layers.setdefault(layer_of(spec.name), []).append(full(spec))
        raw_of = dict(zip(ckpt.tensors, tensors))
        block_of = {c: view.block_of(c).name for c in ckpt.tensors}
        for block in family.blocks:
            held = block.lists_also.get("tf2", ())
            own = [c for c in ckpt.tensors if block_of[c] == block.name]
            if held and own:
                group = layers[layer_of(raw_of[own[0]].name)]
                group += [full(t.spec) for c, t in raw_of.items() if block_of[c] in held]

        write_config(ckpt, tmp)
        if options.max_shard_size:
            specs = [s for group in layers.values() for s in group]
            specs = list({s.name: s for s in specs}.values())
            writer = kerash5.HFShardedH5Writer(tmp, sharding.plan_shards(specs, options.max_shard_size))
        else:
            writer = kerash5.KerasH5Writer(tmp / "tf_model.h5", list(layers.items()))
        write_all(writer, tensors, copies, progress, full_name, ckpt=ckpt, options=options)
