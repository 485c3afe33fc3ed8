"""Hugging Face style sharding, written once for every format (FORMATS.md §5.2).

Only names and byte sizes matter here, so the same plan, shard names and index serve
safetensors, pytorch_model.bin and any other per-file writer.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable, Mapping

from ..ir.errors import FormatError, IrconvError, UsageError
from ..ir.limits import loads_json, open_regular
from ..ir.tensor import TensorSpec


class WriteError(IrconvError):
    """Writing an output file failed (a full disk: ENOSPC, a file-size limit: EFBIG, ...)."""


@contextlib.contextmanager
def write_errors(path):
    """An OSError while writing `path` as one IrconvError naming the file (the CLI's one line,
    exit 2); a writer's own cleanup runs in its abort(), as usual."""
    try:
        yield
    except OSError as e:
        raise WriteError(f"cannot write: {e.strerror or e}", path=os.fspath(path)) from e


def plan_shards(specs: Iterable[TensorSpec], max_shard_size: int) -> list[list[TensorSpec]]:
    """Split specs into shards of at most `max_shard_size` bytes, like huggingface_hub.

    Greedy in the given order. A tensor larger than the limit cannot fit anywhere, so it
    gets a shard of its own, placed before the shard still being filled (HF numbers
    them the same way).
    """
    if not isinstance(max_shard_size, int) or isinstance(max_shard_size, bool) or max_shard_size <= 0:
        raise UsageError(f"max_shard_size {max_shard_size!r} must be a positive number of bytes")
    shards: list[list[TensorSpec]] = []
    current: list[TensorSpec] = []
    current_size = 0
    for spec in specs:
        size = spec.nbytes
        if size > max_shard_size:
            shards.append([spec])
            continue
        if current and current_size + size > max_shard_size:
            shards.append(current)
            current, current_size = [], 0
        current.append(spec)
        current_size += size
    if current or not shards:  # no tensors at all still makes one (empty) file
        shards.append(current)
    return shards


def _ext(ext: str) -> str:
    return ext[1:] if ext.startswith(".") else ext


def shard_names(stem: str, ext: str, n: int) -> list[str]:
    """HF file names: ['model.safetensors'] for one shard, else 'model-00001-of-00003.safetensors', ..."""
    if n < 1:
        raise UsageError(f"shard count {n!r} must be at least 1")
    ext = _ext(ext)
    if n == 1:
        return [f"{stem}.{ext}"]
    return [f"{stem}-{i:05d}-of-{n:05d}.{ext}" for i in range(1, n + 1)]


def index_name(stem: str, ext: str) -> str:
    """HF index file name: 'model.safetensors.index.json', 'pytorch_model.bin.index.json'."""
    return f"{stem}.{_ext(ext)}.index.json"


def shard_weight_map(shards: list[list[TensorSpec]], names: list[str]) -> dict[str, str]:
    """Tensor name -> shard file name, for a plan and its shard_names()."""
    if len(shards) != len(names):
        raise UsageError(f"{len(shards)} shards but {len(names)} shard names")
    return {spec.name: fname for shard, fname in zip(shards, names) for spec in shard}


def plan_files(specs: list[TensorSpec], stem: str, ext: str, max_shard_size: int | None):
    """(shards, their file names, tensor name -> file) of a write: one file without a limit."""
    shards = plan_shards(specs, max_shard_size) if max_shard_size else [list(specs)]
    names = shard_names(stem, ext, len(shards))
    return shards, names, shard_weight_map(shards, names)


def write_index(path, weight_map: Mapping[str, str], total_size: int,
                extra_metadata: Mapping | None = None) -> None:
    """Write an HF index: {"metadata": {"total_size", ...extra}, "weight_map"}, formatted as HF does."""
    metadata = dict(extra_metadata or {})
    metadata["total_size"] = total_size
    index = {"metadata": metadata, "weight_map": dict(weight_map)}
    # Exactly transformers' serialization, so our indexes diff cleanly against theirs.
    with write_errors(path), open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")


def loads_json_unique(text: str | bytes, *, path: str, what: str) -> object:
    """ir.limits.loads_json (bounded nesting, every failure a FormatError) that also refuses
    a key given twice in one object, which json.loads would silently resolve to the last."""
    return loads_json(text, path=path, what=what, unique=True)


MAX_INDEX_BYTES = 64 << 20     # an index names each tensor once: ~100 bytes a tensor


def read_index(path) -> dict[str, Path]:
    """Tensor name -> shard Path (in the index's folder); every shard must exist, named inside
    the folder (no '..', no absolute path). A symlinked shard is followed, as the HF cache's
    snapshot folders are symlinks into its blob store."""
    path = os.fspath(path)
    with open_regular(path) as f:
        text = f.read(MAX_INDEX_BYTES + 1)
    if len(text) > MAX_INDEX_BYTES:
        raise FormatError(f"index is larger than {MAX_INDEX_BYTES:,} bytes (not an index?)", path=path)
    index = loads_json_unique(text, path=path, what="index")
    wmap = index.get("weight_map") if isinstance(index, dict) else None
    if not (isinstance(wmap, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in wmap.items())):
        raise FormatError("index has no 'weight_map' object mapping tensor names to shard "
                          "file names", path=path)
    folder = Path(path).parent
    shards = sorted(set(wmap.values()))
    # Shard names come from a downloaded file: keep them inside the index's folder.
    outside = [s for s in shards if not s or os.path.isabs(s) or ".." in re.split(r"[\\/]", s)
               or "\0" in s]
    if outside:
        raise FormatError(f"shard names {outside[:5]!r} point outside the index's folder", path=path)
    missing = [s for s in shards if not (folder / s).exists()]
    if missing:
        raise FormatError(f"missing shard file(s) {missing[:5]!r} listed in the index "
                          f"(looked in {str(folder)!r})", path=path)
    return {name: folder / shard for name, shard in wmap.items()}


# Case-insensitive prefixes; decimal units as huggingface_hub/transformers define them.
_UNITS = {"": 1, "B": 1,
          "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")


def parse_size(size, unit: bool = False) -> int:
    """'5GB' -> 5*10**9, '10KiB' -> 10240, '12345' -> 12345 (int passes through). `unit`: a
    number without one is refused (`--max-shard-size 20` means 20 GB to someone, not 20 bytes)."""
    if unit and isinstance(size, str) and size.strip().isdigit():
        raise UsageError(f"size {size!r} has no unit: write {size.strip()}GB, {size.strip()}MB or "
                         f"{size.strip()}B if bytes are meant")
    if isinstance(size, int) and not isinstance(size, bool):
        value = size
    else:
        m = _SIZE_RE.match(size) if isinstance(size, str) else None
        unit = m.group(2) if m else ""
        if not m or unit.upper() not in _UNITS:
            raise UsageError(f"size {size!r} is not a byte count such as '5GB', '200MB', "
                             "'10KiB' or '12345'")
        # transformers reads a lowercase final 'b' ('5Gb') as bits; refuse rather than guess.
        if unit.endswith("b") and unit.upper() in ("KB", "MB", "GB", "TB"):
            raise UsageError(f"size {size!r}: a lowercase 'b' means bits to transformers; "
                             f"write {m.group(1)}{unit[:-1].upper()}B for bytes")
        try:
            value = int(Decimal(m.group(1)) * _UNITS[unit.upper()])
        except InvalidOperation:  # pragma: no cover - the regex admits only decimals
            raise UsageError(f"size {size!r} is not a number") from None
    if value <= 0:
        raise UsageError(f"size {size!r} must be positive")
    return value


__all__ = ["plan_shards", "shard_names", "index_name", "shard_weight_map", "write_index",
           "read_index", "parse_size"]
