"""The original Meta Llama layout: consolidated.00.pth (one model-parallel shard: the whole
model, as Meta released its smallest models) and params.json, what Meta's llama code and
convert_llama_weights_to_hf.py read. The family's meta view renames and moves q/k rows back to
the interleaved rotary layout (the inverse of the transforms the importer applies)."""
from __future__ import annotations

import json
from pathlib import Path

from ..formats import torchzip
from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError, UsageError
from ..models import FAMILIES
from .base import Exporter, ExportOptions, Progress, write_all

WEIGHTS = "consolidated.00.pth"


class MetaExporter(Exporter):
    name = "meta"
    description = "the original Meta Llama layout: consolidated.00.pth (one shard) + params.json"
    views = ("meta",)

    def writes(self, options):
        return (WEIGHTS,)

    def competes(self, options):
        return ("consolidated.*.pth",)

    def config_for(self, ckpt, family, view):
        vc = family.view_configs[view]
        try:
            return vc.filename, vc.from_canonical(ckpt.config)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"the {family.name} config cannot be written as {vc.filename}: {exc}") from None

    def write(self, ckpt: Checkpoint, tmp: Path, options: ExportOptions, progress: Progress) -> None:
        if options.max_shard_size:
            raise UsageError("Meta's layout is written as one consolidated.00.pth; --max-shard-size does not apply")
        family = FAMILIES.get(ckpt.family)
        view = self.view_for(family)
        tensors, aliases = family.view(view).from_canonical(ckpt, str(tmp))
        name, params = self.config_for(ckpt, family, view)
        try:
            (tmp / name).write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:      # a full disk (ENOSPC, EFBIG): one line naming the file
            raise FormatError(f"cannot write: {exc.strerror or exc}", path=str(tmp / name)) from None
        # A tied output.weight is stored as torch.save stores tied weights: a second name of
        # the embedding's storage (Meta's loader copies each name into its own parameter).
        write_all(torchzip.TorchZipWriter(tmp / WEIGHTS, [t.spec for t in tensors], aliases), tensors, {}, progress,
                  ckpt=ckpt, options=options)
