"""Keras 2 / tf-keras h5: a directory with config.json and model.h5, the weights file
`model.save_weights("model.h5")` writes, for families with a "keras" view (keras.applications
models such as EfficientNet).

tf_keras' `load_weights("model.h5")` matches by topology, not by name: the n-th layer with
weights in the file goes to the n-th such layer in `model.layers`, and a layer's weights go
in order (trainable ones, then non-trainable). So the file holds one layer per first name
component of the view's names ('stem_conv/kernel' -> layer 'stem_conv'), in the order the
view declares them, and each layer's weights in the order its params are declared: the
descriptors declare a "keras" view in model.layers order, weights trainable first.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..formats import kerash5
from ..ir.checkpoint import Checkpoint
from ..ir.errors import DTypeError, UsageError
from ..ir.tensor import Tensor, TensorSpec
from ..models import FAMILIES
from ..models.engine import ConfigFamily, Family
from .base import Exporter, ExportOptions, Progress, tied_copies, write_all
from .pt import write_config

WEIGHTS_NAME = "model.h5"
VIEW = "keras"

# h5py stores these natively and Keras 2 loaders (tf_keras, transformers' TF classes) read
# them back; bf16/fp8 would be opaque datasets that neither can assign to a variable.
H5_DTYPES = frozenset({"F64", "F32", "F16", "I64", "I32", "I16", "I8", "U8", "BOOL"})


def refuse_unloadable_dtypes(tensors: list[Tensor], what: str) -> None:
    bad = sorted({t.dtype.name for t in tensors} - H5_DTYPES)
    if bad:
        raise DTypeError(f"{what} cannot hold {', '.join(bad)} tensors that Keras can load; "
                         "pass --cast F32 to convert them")


def concrete_view(family: Family, view: str, config: dict):
    """The view that names this config's tensors: a ConfigFamily's table follows its config
    (EfficientNet's block names), so its declaration order is the concrete family's."""
    if isinstance(family, ConfigFamily):
        return family.concrete(config).view(view)
    return family.view(view)


def declared_order(family: Family, ckpt: Checkpoint) -> Callable[[str], tuple]:
    """Sort key of a raw "keras" name: its block's place in the family, the block's repeat
    indices, its param's place in the block. Independent of the order the checkpoint (or the
    stream it came from) lists tensors in."""
    view = concrete_view(family, VIEW, ckpt.config)
    prefix = view.export_prefix(ckpt)
    blocks = {id(b): n for n, b in enumerate(view.family.blocks)}

    def key(raw: str) -> tuple:
        entry, _, idx = view.canonical_name(raw, prefix)
        return (blocks[id(entry.block)], tuple(idx[f] for f, _ in entry.block.repeats),
                entry.block.params.index(entry.param))
    return key


def layer_of(raw: str) -> str:
    return raw.split("/", 1)[0]


def stored_name(raw: str) -> str:
    return f"{raw}:0"        # Keras 2 lists variables by graph name


def write_keras_h5(ckpt: Checkpoint, path: Path, options: ExportOptions, progress: Progress) -> None:
    """model.h5 of `ckpt` under its family's "keras" names, one tensor in memory at a time."""
    family = FAMILIES.get(ckpt.family)
    if options.max_shard_size:
        raise UsageError("a Keras h5 weights file is one file; --max-shard-size does not apply")
    tensors, aliases = family.view(VIEW).from_canonical(ckpt, str(path))
    refuse_unloadable_dtypes(tensors, "Keras h5 files")
    # A tied name the view spells is a second variable holding the same values.
    specs, copies = tied_copies(tensors, aliases)
    order = declared_order(family, ckpt)
    layers: dict[str, list[TensorSpec]] = {}
    for spec in sorted(specs, key=lambda s: order(s.name)):
        layers.setdefault(layer_of(spec.name), []).append(replace(spec, name=stored_name(spec.name)))
    writer = kerash5.KerasH5Writer(path, list(layers.items()))
    write_all(writer, tensors, copies, progress, stored_name, ckpt=ckpt, options=options)


def write_keras_directory(ckpt: Checkpoint, tmp: Path, options: ExportOptions, progress: Progress) -> None:
    write_config(ckpt, tmp)
    write_keras_h5(ckpt, tmp / WEIGHTS_NAME, options, progress)


class KerasExporter(Exporter):
    name = "keras"
    description = "Keras directory: config.json + model.h5 (Keras 2 / tf-keras h5, load_weights by layer order)"
    views = (VIEW,)

    def writes(self, options):
        return ("model.h5",)

    def write(self, ckpt: Checkpoint, tmp: Path, options: ExportOptions, progress: Progress) -> None:
        self.view_for(FAMILIES.get(ckpt.family))
        write_keras_directory(ckpt, tmp, options, progress)
