"""What every exporter shares: the contract, options, atomic output."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..ir.checkpoint import Checkpoint
from ..ir.dtypes import by_name
from ..ir.errors import IrconvError, OutputExistsError, UsageError
from ..ir.tensor import Tensor, TensorSpec


@dataclass
class ExportOptions:
    bin: bool = False                   # pt: pytorch_model.bin instead of model.safetensors
    max_shard_size: int | None = None   # bytes; None = one file
    force: bool = False                 # replace an existing output
    cast: str | None = None             # convert every floating tensor to this dtype (F32, BF16 ...)


Progress = Callable[[Tensor], None]


class Exporter:
    """Writes a canonical Checkpoint in one format. Subclasses set `name`."""
    name: str = ""
    description: str = ""
    supports_bin: bool = False
    # The family views this format writes, in preference order: a family is written in the
    # first one it declares (tf1 and tf2 write a family that has only Keras names in those).
    views: tuple[str, ...] = ()

    def view_for(self, family) -> str:
        """The view `family` is written in here, or a UsageError naming what would do."""
        for view in self.views:
            if view in family.views:
                return view
        raise UsageError(f"the {self.name!r} format writes {' or '.join(map(repr, self.views))} names, and "
                         f"family {family.name!r} has only {', '.join(map(repr, family.views))}")

    def save(self, ckpt: Checkpoint, out: Path, options: ExportOptions,
             progress: Progress | None = None, check: Callable[[Path], None] | None = None) -> None:
        """Write atomically; `check(written directory)` runs before the output is committed
        (--check-sum), so a failed check leaves nothing at `out`."""
        if options.bin and not self.supports_bin:
            raise UsageError(f"--bin is not an option of the {self.name!r} format")
        if options.cast:
            ckpt = cast_floats(ckpt, options.cast)
        with atomic_directory(out, options.force) as tmp:
            try:
                self.write(ckpt, tmp, options, progress or (lambda t: None))
            except OSError as exc:
                raise write_error(exc, tmp, out) from None
            ckpt.close()     # a stream is verified to its trailer before the output appears
            if check is not None:
                check(tmp)

    def write(self, ckpt: Checkpoint, tmp: Path, options: ExportOptions, progress: Progress) -> None:
        raise NotImplementedError


def write_error(exc: OSError, tmp: Path, out: Path) -> IrconvError:
    """A failed write (a full disk: ENOSPC, EFBIG) as one line naming the file of OUT it was
    writing; whatever was written is removed by atomic_directory."""
    name = str(out)
    if exc.filename:
        try:
            name = str(out / Path(str(exc.filename)).resolve().relative_to(Path(tmp).resolve()))
        except ValueError:
            name = str(exc.filename)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return IrconvError(f"cannot write the output: {reason}; nothing was written", path=name)


FLOATS = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


def cast_floats(ckpt: Checkpoint, dtype_name: str) -> Checkpoint:
    """Every floating tensor converted to `dtype_name`; the one way irconv changes a dtype."""
    target = by_name(dtype_name)
    if target.name not in FLOATS:
        raise UsageError(f"--cast takes a floating dtype ({', '.join(sorted(FLOATS))}), not {dtype_name!r}")
    tensors = {n: t.cast(target) if t.dtype.name in FLOATS and t.dtype != target else t
               for n, t in ckpt.tensors.items()}
    config = dict(ckpt.config)
    for key in ("torch_dtype", "dtype"):
        if key in config:
            config[key] = target.torch
    return replace(ckpt, tensors=tensors, config=config)


def tied_copies(tensors: list[Tensor], aliases: dict[str, str]) -> tuple[list[TensorSpec], dict[str, list[str]]]:
    """For formats that store a tied name as a second variable (TF checkpoints, Keras h5): the
    spec of every stored name (an alias takes its target's dtype and shape) and target -> its
    aliases, so that write_all() loads each tensor once for all the names holding it."""
    spec_of = {t.name: t.spec for t in tensors}
    specs = [t.spec for t in tensors] + [replace(spec_of[target], name=alias) for alias, target in aliases.items()]
    copies: dict[str, list[str]] = {}
    for alias, target in aliases.items():
        copies.setdefault(target, []).append(alias)
    return specs, copies


def write_all(writer, tensors: list[Tensor], copies: dict[str, list[str]], progress: Progress,
              stored_name: Callable[[str], str] = lambda raw: raw) -> None:
    """Stream `tensors` into a `.partial` writer, one array in memory at a time, each under its
    stored name and its tied copies'; close it, or abort it (no partial file left) on failure."""
    try:
        for t in tensors:
            array = t.load()
            for raw in [t.name, *copies.get(t.name, ())]:
                writer.write(stored_name(raw), array)
            progress(t)
        writer.close()
    except BaseException:
        writer.abort()
        raise


@contextlib.contextmanager
def atomic_directory(out: Path, force: bool):
    """Yield a temporary sibling of `out`; rename it to `out` only if the body succeeds."""
    out = Path(out)
    if out.is_symlink():
        # Replacing it would rename the link and leave its target as it was; following it
        # would write somewhere the user did not name. Neither is what was asked.
        raise UsageError(f"{out} is a symbolic link (to {os.readlink(out)}); give the directory it "
                         "points to, or remove the link")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        if not force:
            raise OutputExistsError(f"{out} already exists; pass --force to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{out}: parent directory {str(parent)!r} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.irconv-", dir=parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if out.exists():
            old = out.with_name(f".{out.name}.irconv-old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
