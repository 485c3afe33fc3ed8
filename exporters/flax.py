"""HF Flax: config.json + flax_model.msgpack as transformers' Flax classes save and load it
(sharded with flax_model.msgpack.index.json above --max-shard-size)."""
from __future__ import annotations

from pathlib import Path

from ..formats import flaxmsgpack, sharding
from ..ir.checkpoint import Checkpoint
from ..models import FAMILIES
from .base import Exporter, ExportOptions, Progress, tied_copies, write_all
from .pt import write_config


class _Shards:
    """One writer per shard file behind write_all's one-writer interface."""
    concurrent = True

    def __init__(self, writers: dict, shard_of: dict[str, str]):
        self.writers, self.shard_of = writers, shard_of

    def write(self, name, array):
        self.writers[self.shard_of[name]].write(name, array)

    def copies(self, name, extent) -> bool:
        return self.writers[self.shard_of[name]].copies(name, extent)

    def copy(self, name, spec, extent):
        self.writers[self.shard_of[name]].copy(name, spec, extent)

    def close(self):
        for w in self.writers.values():
            w.close()

    def abort(self):
        for w in self.writers.values():
            w.abort()


class FlaxExporter(Exporter):
    name = "flax"
    description = "HF Flax directory: config.json + flax_model.msgpack (flax.serialization's bytes)"
    views = ("flax",)

    def writes(self, options):
        return ("flax_model.msgpack",) + (("flax_model-*-of-*.msgpack", "flax_model.msgpack.index.json")
                                          if options.max_shard_size else ())

    def competes(self, options):
        return ("flax_model.msgpack", "flax_model-*-of-*.msgpack", "flax_model.msgpack.index.json")

    def files_for(self, specs, options, view):
        file_of = sharding.plan_files(specs, "flax_model", ".msgpack", options.max_shard_size)[2]
        return [file_of[s.name] for s in specs]

    def write(self, ckpt: Checkpoint, tmp: Path, options: ExportOptions, progress: Progress) -> None:
        family = FAMILIES.get(ckpt.family)
        tensors, aliases = family.view(self.view_for(family)).from_canonical(ckpt, str(tmp))
        # A tied name the view spells (FlaxLlamaForCausalLM's lm_head) is stored as a copy.
        specs, copies = tied_copies(tensors, aliases)
        shards, names, shard_of = sharding.plan_files(specs, "flax_model", ".msgpack", options.max_shard_size)
        write_config(ckpt, tmp)
        writers = {}
        try:
            for name, shard in zip(names, shards):
                writers[name] = flaxmsgpack.FlaxMsgpackWriter(tmp / name, shard)
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        write_all(_Shards(writers, shard_of), tensors, copies, progress, ckpt=ckpt, options=options)
        if len(shards) > 1:
            sharding.write_index(tmp / "flax_model.msgpack.index.json", shard_of, sum(s.nbytes for s in specs))
