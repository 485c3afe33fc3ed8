"""HF PyTorch: config.json + model.safetensors (default) or pytorch_model.bin (--bin),
sharded with an HF index above --max-shard-size."""
from __future__ import annotations

import json
from pathlib import Path

from ..formats import safetensors, sharding, torchzip
from ..ir import pipeline
from ..ir.checkpoint import Checkpoint
from ..ir.stages import stage
from ..models import FAMILIES
from .base import Exporter, ExportOptions, Progress


def write_config(ckpt: Checkpoint, directory: Path, name: str = "config.json") -> None:
    config = dict(ckpt.config)
    config.setdefault("model_type", FAMILIES.get(ckpt.family).model_types[0])
    with sharding.write_errors(directory / name), open(directory / name, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def _write_tensors(tensors, writers, shard_of, options: ExportOptions, ordered: bool):
    """Write every tensor into its shard's writer; yield each once written, in order.

    Both writers (safetensors, and the .bin's zip) have their layout fixed up front and take
    writes in any order from any thread, so the threads of ir/pipeline.py load, relay out and
    write whole tensors in parallel (shards too); a tensor stored as it will be written into a
    safetensors file is copied file to file, holding no tensor in memory."""
    def copied(t) -> bool:
        return t.extent is not None and hasattr(writers[shard_of[t.name]], "copy")

    def work(t) -> None:
        writer = writers[shard_of[t.name]]
        if copied(t):
            with stage("copy", t.nbytes):
                writer.copy(t.name, t.spec, t.extent)
            return
        array = t.load_raw()
        with stage("write", array.nbytes):
            writer.write(t.name, array)

    yield from pipeline.done(tensors, work, jobs=options.jobs, ordered=ordered,
                             cost=lambda t: 0 if copied(t) else t.holds(), in_turn=copied)


class PtExporter(Exporter):
    name = "pt"
    description = "HF PyTorch directory: config.json + model.safetensors, or pytorch_model.bin with --bin"
    supports_bin = True
    views = ("pt",)

    @staticmethod
    def stem_ext(options) -> tuple[str, str]:
        return ("pytorch_model", ".bin") if options.bin else ("model", ".safetensors")

    def writes(self, options):
        stem, ext = self.stem_ext(options)
        shards = (f"{stem}-*-of-*{ext}", f"{stem}{ext}.index.json") if options.max_shard_size else ()
        return (f"{stem}{ext}", *shards)

    def competes(self, options):
        return ("model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model-*-of-*.bin", "pytorch_model.bin.index.json")

    def stores_aliases(self, options):
        return options.bin          # HF drops tied copies from safetensors files

    def files_for(self, specs, options, view):
        file_of = sharding.plan_files(specs, *self.stem_ext(options), options.max_shard_size)[2]
        return [file_of[s.name] for s in specs]

    def write(self, ckpt: Checkpoint, tmp: Path, options: ExportOptions, progress: Progress) -> None:
        family = FAMILIES.get(ckpt.family)
        tensors, aliases = family.view(self.view_for(family)).from_canonical(ckpt, str(tmp))
        write_config(ckpt, tmp)
        # torch.save keeps tied names as views of one storage, and so does a .bin; HF drops tied
        # copies from safetensors files (from_pretrained re-ties them).
        if not self.stores_aliases(options):
            aliases = {}
        stem, ext = self.stem_ext(options)
        specs = [t.spec for t in tensors]
        shards, names, shard_of = sharding.plan_files(specs, stem, ext, options.max_shard_size)
        writers = {}
        try:
            for n, shard in enumerate(shards):
                path = tmp / names[n]
                if options.bin:
                    shard_aliases = {a: t for a, t in aliases.items() if shard_of[t] == names[n]}
                    writers[names[n]] = torchzip.TorchZipWriter(path, shard, shard_aliases)
                else:
                    writers[names[n]] = safetensors.SafetensorsWriter(path, shard, metadata={"format": "pt"})
            for t in _write_tensors(tensors, writers, shard_of, options, ckpt.ordered):
                progress(t)
            for w in writers.values():
                w.close()
        except BaseException:
            # Every writer drops its partial file now (a full disk must not leave an open
            # archive for the garbage collector to finish).
            for w in writers.values():
                w.abort()
            raise
        if len(shards) > 1:
            weight_map = dict(shard_of)
            weight_map.update({a: shard_of[t] for a, t in aliases.items()})
            sharding.write_index(tmp / f"{stem}{ext}.index.json", weight_map,
                                 sum(s.nbytes for s in specs))
