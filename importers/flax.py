"""HF Flax: a directory with config.json + flax_model.msgpack (or flax_model.msgpack.index.json
and its shards), or a bare .msgpack file (FORMATS.md §11)."""
from __future__ import annotations

from pathlib import Path

from ..formats import flaxmsgpack, sharding
from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError
from ..ir.tensor import Tensor
from .base import Importer, require_exists, resolve_family, sibling_config

WEIGHT_FILES = ("flax_model.msgpack", "flax_model.msgpack.index.json")


def read_weights(path: Path) -> tuple[list[Tensor], list[str]]:
    """Raw tensors named by '/'-joined key path, and the files they came from."""
    if not path.name.endswith(".index.json"):
        return flaxmsgpack.read(path), [path.name]
    shard_of = sharding.read_index(path)
    raw, files, seen = [], [path.name], {}
    for shard in dict.fromkeys(shard_of.values()):
        files.append(shard.name)
        for t in flaxmsgpack.read(shard):
            if t.name in seen:
                raise FormatError(f"tensor {t.name!r} appears in two shards ({seen[t.name].name} and "
                                  f"{shard.name})", path=str(shard))
            if shard_of.get(t.name, shard) != shard:
                raise FormatError(f"tensor {t.name!r} is in {shard.name}, but the index says "
                                  f"{shard_of[t.name].name}", path=str(path))
            seen[t.name] = shard
            raw.append(t)
    missing = [n for n in shard_of if n not in seen]
    if missing:
        raise FormatError(f"{len(missing)} tensor(s) the index lists are in no shard: {missing[:5]!r}", path=str(path))
    return raw, files


def find_weights(path: Path) -> Path:
    if not path.is_dir():
        return path
    found = next((path / n for n in WEIGHT_FILES if (path / n).exists()), None)
    if found is None:
        raise FormatError(f"no Flax weights here (looked for {', '.join(WEIGHT_FILES)})", path=str(path))
    return found


class FlaxImporter(Importer):
    name = "flax"
    description = "HF Flax: flax_model.msgpack (flax.serialization, + sharded .index.json)"

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return any((path / n).exists() for n in WEIGHT_FILES)
        return path.name.endswith((".msgpack", ".msgpack.index.json"))

    def raw(self, path):
        return read_weights(find_weights(require_exists(Path(path))))[0]

    def load(self, path, *, model=None, view=None, config=None) -> Checkpoint:
        path = require_exists(Path(path))
        weights = find_weights(path)
        config = sibling_config(path, config, model)
        raw, files = read_weights(weights)
        if not raw:
            raise FormatError("holds no tensors", path=str(weights))
        view = view or "flax"
        family = resolve_family(model, config, raw, view, str(path))
        ckpt = family.view(view).to_canonical(raw, config, str(path))
        ckpt.source.update({"format": self.name, "files": files})
        return ckpt
