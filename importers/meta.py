"""The original Meta Llama release: a directory of consolidated.NN.pth model-parallel shards,
params.json and tokenizer.model (what convert_llama_weights_to_hf.py reads).

Each shard is read by irconv's own torch reader (no pickle code run). Every tensor is merged
from its shards along the axis the family's meta view declares for it (Spelling.shard), lazily:
a merged tensor reads its shards when it is written. A tensor declared whole in every shard
(the norms) is compared across them here, before anything is written, rather than trusted.
The view then renames and re-permutes (models/llama_meta.py); params.json gives the config.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..formats import torchzip
from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError
from ..ir.layout import Split
from ..ir.tensor import Tensor, as_bytes
from ..models import FAMILIES
from .base import Importer, read_json, require_exists

SHARD = re.compile(r"^consolidated\.(\d+)\.pth$")
PARAMS = "params.json"


def shard_files(directory: Path) -> list[Path]:
    """consolidated.00.pth, .01.pth ...: numbered from 0 with none missing."""
    numbered = sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := SHARD.match(p.name)))
    if not numbered:
        raise FormatError("no consolidated.NN.pth shards here", path=str(directory))
    gaps = [n for n in range(numbered[-1][0] + 1) if n not in {k for k, _ in numbered}]
    if gaps:
        raise FormatError(f"shard consolidated.{gaps[0]:02d}.pth is missing (the shards go up to "
                          f"{numbered[-1][1].name})", path=str(directory))
    return [p for _, p in numbered]


def _first_different(parts: list[Tensor]) -> int | None:
    """The index of the first part whose dtype, shape or bytes differ from parts[0]'s, or None."""
    first = parts[0]
    if any(t.dtype != first.dtype or t.shape != first.shape for t in parts):
        return next(n for n, t in enumerate(parts) if (t.dtype, t.shape) != (first.dtype, first.shape))
    want = as_bytes(first.load_raw()).tobytes()
    return next((n for n, t in enumerate(parts[1:], 1) if as_bytes(t.load_raw()).tobytes() != want), None)


class MetaImporter(Importer):
    name = "meta"
    description = ("the original Meta Llama release: consolidated.NN.pth model-parallel shards + params.json "
                   "(+ tokenizer.model); shards merged and q/k rows re-permuted as the llama family declares")

    def detect(self, path: Path) -> bool:
        directory = path if path.is_dir() else path.parent
        return (directory / PARAMS).is_file() and any(SHARD.match(p.name) for p in directory.glob("consolidated.*.pth"))

    def raw(self, path):
        directory = self._directory(path)
        return [t for p in shard_files(directory) for t in torchzip.read(p)]

    @staticmethod
    def _directory(path) -> Path:
        path = require_exists(Path(path))
        return path if path.is_dir() else path.parent

    def load(self, path, *, model=None, view=None, config=None) -> Checkpoint:
        directory = self._directory(path)
        files = shard_files(directory)
        params = read_json(directory / PARAMS)
        family = FAMILIES.get(model or "llama")
        view = view or "meta"
        fv = family.view(view)
        shards = [{t.name: t for t in torchzip.read(p)} for p in files]
        for p, shard in zip(files[1:], shards[1:]):
            if set(shard) != set(shards[0]):
                odd = sorted(set(shard) ^ set(shards[0]))
                raise FormatError(f"holds other tensors than {files[0].name}: {', '.join(map(repr, odd[:5]))}",
                                  path=str(p))
        merged = [self._merge(fv, view, name, [s[name] for s in shards], files) for name in shards[0]]
        if config is None:
            try:
                config = family.view_configs[view].to_canonical(
                    {**params, "__shapes__": {t.name: t.shape for t in merged}})
            except (KeyError, TypeError, ValueError) as exc:
                raise FormatError(f"does not describe these shards: {exc}", path=str(directory / PARAMS)) from None
        ckpt = fv.to_canonical(merged, config, str(directory))
        ckpt.source.update({"format": self.name, "files": [p.name for p in files] + [PARAMS]})
        return ckpt

    @staticmethod
    def _merge(fv, view: str, name: str, parts: list[Tensor], files: list[Path]) -> Tensor:
        """One tensor from its shards, along the axis the view declares for it."""
        hit = fv.canonical_name(name, "")
        if len(parts) == 1 or hit is None:
            return parts[0]           # the view places it, skips it, or names it unplaced
        entry = hit[0]
        axis = entry.param.spellings[view].shard
        if axis is None:
            odd = _first_different(parts)
            if odd is not None:
                raise FormatError(f"{name!r} differs from {files[0].name}'s, but every shard holds the whole "
                                  "tensor (it is not model-parallel)", path=str(files[odd]))
            return parts[0]
        wrong = [t for t in parts if len(t.shape) != len(entry.raw_axes)]
        if wrong:
            return wrong[0]           # the view reports the shape it expected
        index = entry.raw_axes.index(axis)
        try:
            return Split(index, tuple(t.shape[index] for t in parts)).merge(parts, name)
        except ValueError as exc:
            raise FormatError(f"cannot merge the shards of {name!r} along {axis!r}: {exc}",
                              path=str(files[0])) from None
