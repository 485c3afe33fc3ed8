"""irconv: convert trained model weights between frameworks through one canonical IR.

    import irconv
    ckpt = irconv.load("bert-base/")                 # format and family detected
    irconv.save(ckpt, "bert-out/", "pt", bin=True)   # any registered exporter
    irconv.convert("bert-base/", "bert-out/", to="pt")

Importers lift a format into a Checkpoint (canonical names, layouts, config); exporters
write one. Nothing here imports torch or tensorflow.
"""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from .exporters import EXPORTERS, ExportOptions
from .importers import IMPORTERS
from .ir import Checkpoint, IrconvError, Tensor, TensorSpec
from .ir.errors import UsageError
from .ir.stream import read_stream, write_stream
from .models import FAMILIES

__version__ = "0.1.0"
__all__ = ["load", "save", "convert", "open_stream", "write_stream", "detect_format",
           "Checkpoint", "Tensor", "TensorSpec", "IrconvError", "IMPORTERS", "EXPORTERS", "FAMILIES"]


def detect_format(src) -> str:
    """The key of the first importer that recognises `src`."""
    path = Path(src)
    if not path.exists():
        raise IrconvError("no such file or directory", path=str(src))
    for importer in IMPORTERS:
        if importer.detect(path):
            return importer.name
    raise UsageError(f"{src}: cannot tell its format; name it with --from "
                     f"({', '.join(IMPORTERS.names())})")


def load(src, format: str | None = None, *, model: str | None = None, view: str | None = None,
         config: dict | None = None) -> Checkpoint:
    """Read `src` into a lazy canonical Checkpoint (no tensor bytes are read yet)."""
    importer = IMPORTERS.get(format or detect_format(src))
    return importer.load(Path(src), model=model, view=view, config=config)


def save(ckpt: Checkpoint, out, format: str, *, progress=None, **options) -> None:
    """Write `ckpt` to `out` atomically; options: bin, max_shard_size (bytes), force."""
    EXPORTERS.get(format).save(ckpt, Path(out), ExportOptions(**options), progress)


def convert(src, out, to: str, *, from_: str | None = None, model: str | None = None,
            view: str | None = None, config: dict | None = None, progress=None, **options) -> None:
    """load() then save(), streaming one tensor at a time."""
    exporter = EXPORTERS.get(to)      # fail on a bad target before reading anything
    ckpt = load(src, from_, model=model, view=view, config=config)
    exporter.save(ckpt, Path(out), ExportOptions(**options), progress)


def open_stream(src: BinaryIO, where: str = "<stream>") -> Checkpoint:
    """A Checkpoint read from an IR stream (as `irconv import` writes it)."""
    return read_stream(src, where)
