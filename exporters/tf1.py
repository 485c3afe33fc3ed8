"""TF checkpoints in a family's "tf1" naming (the original BERT release): a directory with
model.ckpt.index, model.ckpt.data-0000k-of-0000N, the `checkpoint` state file and the
family's own config file (bert_config.json).

A family with no "tf1" view but a "keras" one (keras.applications models) is written under its
Keras variable names ('stem_conv/kernel'), name-based: tf_keras' `load_weights("out/model.ckpt")`
restores such a checkpoint by variable name into a model whose layers are named so."""
from __future__ import annotations

import json
from pathlib import Path

from ..formats import tensorbundle
from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError
from ..models import FAMILIES
from .base import Exporter, ExportOptions, Progress, tied_copies, write_all
from .pt import write_config

# Google's BERT release names its checkpoint bert_model.ckpt (what run_classifier.py's
# --init_checkpoint points at); a family written under its Keras names (name-based, for
# tf_keras load_weights) keeps TF's default prefix.
PREFIXES = {"tf1": "bert_model.ckpt", "keras": "model.ckpt"}


class Tf1Exporter(Exporter):
    name = "tf1"
    description = ("TF1 checkpoint directory, Google's BERT layout (bert_model.ckpt.index + data shards + "
                   "checkpoint + bert_config.json + vocab.txt)")
    views = ("tf1", "keras")

    def writes(self, options):
        return tuple(p for prefix in PREFIXES.values() for p in (f"{prefix}.index", f"{prefix}.data-*")) + ("checkpoint",)

    def files_for(self, specs, options, view):
        prefix = PREFIXES[view]
        return [f"{prefix}.data-*" if options.max_shard_size else f"{prefix}.data-00000-of-00001"] * len(specs)

    def config_for(self, ckpt, family, view):
        view_config = family.view_configs.get(view)
        if view_config is None:
            return super().config_for(ckpt, family, view)
        return view_config.filename, view_config.from_canonical(ckpt.config)

    def write(self, ckpt: Checkpoint, tmp: Path, options: ExportOptions, progress: Progress) -> None:
        family = FAMILIES.get(ckpt.family)
        view = self.view_for(family)
        tensors, aliases = family.view(view).from_canonical(ckpt, str(tmp))
        view_config = family.view_configs.get(view)
        if view_config is not None:
            path = tmp / view_config.filename
            try:
                with open(path, "w", encoding="utf-8") as f:
                    json.dump(view_config.from_canonical(ckpt.config), f, indent=2, sort_keys=True)
                    f.write("\n")
            except OSError as exc:      # a full disk (ENOSPC, EFBIG): one line naming the file
                raise FormatError(f"cannot write: {exc.strerror or exc}", path=str(path)) from None
        else:
            write_config(ckpt, tmp)
        specs, copies = tied_copies(tensors, aliases)
        writer = tensorbundle.BundleWriter(tmp / PREFIXES[view], specs, write_state=True,
                                           max_shard_size=options.max_shard_size)
        write_all(writer, tensors, copies, progress, ckpt=ckpt, options=options)
