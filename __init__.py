"""irconv: convert trained model weights between frameworks through one canonical IR.

    import irconv
    ckpt = irconv.load("bert-base/")                 # format and family detected
    irconv.save(ckpt, "bert-out/", "pt", bin=True)   # any registered exporter
    irconv.convert("bert-base/", "bert-out/", to="pt")

Importers lift a format into a Checkpoint (canonical names, layouts, config); exporters
write one. Nothing here imports torch or tensorflow.
"""
from __future__ import annotations

import os as _os
import signal as _signal
import sys as _sys


def _interrupted_while_starting(signum, frame):      # Ctrl-C before the CLI's own handler is up
    _sys.stderr.write("irconv: interrupted; no output was written\n")
    _sys.stderr.flush()
    _os._exit(130)


# As the `irconv` command (console script or `python -m irconv`), an interrupt during the
# imports below ends with one line, not a traceback; cli.main() puts Python's handler back.
if _os.path.basename(_sys.argv[0] if _sys.argv else "") in ("irconv", "-m"):
    try:
        _signal.signal(_signal.SIGINT, _interrupted_while_starting)
    except (ValueError, OSError):       # not the main thread
        pass
    # irconv's numpy never multiplies matrices, and OpenBLAS's thread pool, started when numpy
    # is imported, spins ~0.1 s of CPU per process first (two processes in a pipe, on the cores
    # the conversion needs). A user's own setting is kept.
    _os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pathlib import Path
from typing import BinaryIO, Mapping

from .exporters import EXPORTERS, ExportOptions
from .importers import IMPORTERS
from .importers.config import settle_config
from .importers.parts import attach_parts
from .ir import Checkpoint, IrconvError, Tensor, TensorSpec
from .ir.errors import UsageError
from .ir.limits import input_root as _input_root, inputs as _inputs, missing as _missing, require_regular
from .ir.stream import read_stream, write_stream
from .models import FAMILIES
from .checksum import checker

__version__ = "0.1.0"
__all__ = ["load", "save", "convert", "open_stream", "write_stream", "detect_format",
           "Checkpoint", "Tensor", "TensorSpec", "IrconvError", "IMPORTERS", "EXPORTERS", "FAMILIES"]


def detect_format(src) -> str:
    """The key of the first importer that recognises `src`."""
    path = Path(src)
    if not path.exists() and not Path(f"{src}.index").is_file():   # a TF checkpoint prefix names no file
        raise _missing(src, IrconvError)
    if path.exists() and not path.is_dir():
        require_regular(path)        # a FIFO or device would block the first read
    for importer in IMPORTERS:
        if importer.detect(path):
            return importer.name
    odd = _irregular_entries(path)
    raise UsageError(f"{src}: cannot tell its format"
                     + (f" ({', '.join(odd)} not a regular file)" if odd else "")
                     + f"; name it with --from ({', '.join(IMPORTERS.names())})")


def _irregular_entries(path: Path) -> list[str]:
    """The entries of a directory that are neither regular files nor directories (FIFOs,
    devices, dangling links), which no importer reads, for the error that says so."""
    if not path.is_dir():
        return []
    try:
        return sorted(p.name for p in path.iterdir() if not (p.is_file() or p.is_dir()))[:5]
    except OSError:
        return []


def load(src, format: str | None = None, *, model: str | None = None, view: str | None = None,
         config: dict | None = None, parts: Mapping[str, object] | None = None,
         require_parts: bool = True, overrides: Mapping[str, object] | None = None,
         accept_defaults: bool = False, require_config: bool = True) -> Checkpoint:
    """Read `src` into a lazy canonical Checkpoint (no tensor bytes are read yet). `parts`
    names second files by part name (`--with codebook=encoder.pkl`), for families whose
    views hold only part of the model (see importers.parts). For a file without a config,
    `overrides` ({"num_attention_heads": 12}, dotted keys for towers) gives what the tensors do
    not decide and `accept_defaults` takes the family's stated defaults; else it raises
    (importers/config.py). `overrides` also changes single fields of a given config."""
    # A file read from inside SRC (a directory, or a file's own directory) must be inside it,
    # now and when the lazy tensors are read (ckpt.inputs): a link out of it is refused.
    roots = (_input_root(src),)
    named = (str(src), *(str(p) for p in (parts or {}).values()))
    with _inputs(roots, named):
        importer = IMPORTERS.get(format or detect_format(src))
        ckpt = importer.load(Path(src), model=model, view=view, config=config)
        ckpt = attach_parts(ckpt, parts, str(src), lambda path, family: load(path, model=family),
                            require=require_parts)
        ckpt = settle_config(ckpt, str(src), dict(overrides or {}), accept_defaults, require=require_config)
    ckpt.inputs = (roots, named)
    return ckpt


def save(ckpt: Checkpoint, out, format: str, *, progress=None, **options):
    """Write `ckpt` to `out` atomically; options: bin, max_shard_size (bytes), force."""
    return EXPORTERS.get(format).save(ckpt, Path(out), ExportOptions(**options), progress)


def convert(src, out, to: str, *, from_: str | None = None, model: str | None = None,
            view: str | None = None, config: dict | None = None, parts: Mapping[str, object] | None = None,
            check_sum: bool = False, report=None, progress=None, overrides: Mapping[str, object] | None = None,
            accept_defaults: bool = False, **options):
    """load() then save(), streaming one tensor at a time. check_sum: also confirm that the
    parameter sums of source and output agree (see checksum.py; `report(line)` gets the
    numbers), else raise CheckError and write nothing."""
    exporter = EXPORTERS.get(to)      # fail on a bad target before reading anything
    options = ExportOptions(**options)
    ckpt = load(src, from_, model=model, view=view, config=config, parts=parts, overrides=overrides,
                accept_defaults=accept_defaults)
    check = checker(ckpt, to, options.cast, lambda path, fmt: load(path, fmt),
                    report or (lambda line: None)) if check_sum else None
    return exporter.save(ckpt, Path(out), options, progress, check=check)


def open_stream(src: BinaryIO, where: str = "<stream>") -> Checkpoint:
    """A Checkpoint read from an IR stream (as `irconv import` writes it)."""
    return read_stream(src, where)
