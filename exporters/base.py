"""What every exporter shares: the contract, options, atomic output."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..ir import limits
from ..ir.checkpoint import Checkpoint
from ..ir.dtypes import by_name
from ..formats.sharding import WriteError
from ..ir.errors import DTypeError, IrconvError, MappingError, OutputExistsError, UsageError
from ..ir.pipeline import done, loaded
from ..ir.stages import stage
from ..ir.tensor import Tensor, TensorSpec
from . import extras, output


@dataclass
class ExportOptions:
    bin: bool = False                   # pt: pytorch_model.bin instead of model.safetensors
    max_shard_size: int | None = None   # bytes; None = one file
    force: bool = False                 # replace files of the same name in an existing OUT
    cast: str | None = None             # convert every floating tensor to this dtype (F32, BF16 ...)
    protect: tuple = ()                 # the input's paths: OUT may not be, contain or clobber them
    extras_from: Path | None = None     # the source model directory whose other files are carried
    jobs: int | None = None             # threads loading ahead of the writer (None: pipeline.default_jobs())


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
             progress: Progress | None = None, check: Callable[[Path], None] | None = None) -> "output.Written":
        """Write every file to a temporary sibling, then commit it to `out` (exporters/output.py:
        other files of an existing OUT are kept, the input is never overwritten); `check(written
        directory)` runs before the commit (--check-sum), so a failed check leaves nothing."""
        if options.bin and not self.supports_bin:
            raise UsageError(f"--bin is not an option of the {self.name!r} format")
        if options.cast:
            ckpt = cast_floats(ckpt, options.cast)
        out = Path(out)
        inside_source = output.check_target(out, options.force, options.protect)
        self.check_clashes(out, options, inside_source)
        cleaned = output.clean_stale(out)
        with limits.inputs(*ckpt.inputs), output.temporary(out) as tmp:
            try:
                self.write(ckpt, tmp, options, progress or (lambda t: None))
            except OSError as exc:
                raise write_error(exc, tmp, out) from None
            except IrconvError as exc:
                raise named_for_out(exc, tmp, out) from None
            ckpt.close()     # a stream is verified to its trailer before the output appears
            try:
                carried = extras.carry(options.extras_from, list(ckpt.source.get("files", ())), tmp, self.name, out,
                                       made=ckpt.source.get("made", ()), not_made=ckpt.source.get("not_made", ()))
            except OSError as exc:
                raise write_error(exc, tmp, out) from None
            if check is not None:
                check(tmp)
            written = output.commit(tmp, out, options.force, inside_source, self.competes(options))
        written.cleaned, written.extras = cleaned, carried
        return written

    def plan(self, ckpt: Checkpoint, options: ExportOptions) -> tuple[list[tuple[str, TensorSpec]], str, dict]:
        """What save() would write, without writing: (file, stored tensor spec) for every stored
        name (tied copies included), the config file's name and its contents."""
        if options.cast:
            ckpt = cast_floats(ckpt, options.cast)
        from ..models import FAMILIES
        family = FAMILIES.get(ckpt.family)
        view = self.view_for(family)
        tensors, aliases = family.view(view).from_canonical(ckpt, "<plan>")
        specs, _ = tied_copies(tensors, aliases if self.stores_aliases(options) else {})
        files = self.files_for(specs, options, view)
        config_name, config = self.config_for(ckpt, family, view)
        return list(zip(files, specs)), config_name, config

    def stores_aliases(self, options: ExportOptions) -> bool:
        """Whether a tied name is stored as a name of its own (TF checkpoints, Keras h5, .bin)."""
        return True

    def files_for(self, specs: list[TensorSpec], options: ExportOptions, view: str) -> list[str]:
        """The file each stored tensor goes to, when written in `view`."""
        return [self.writes(options)[0]] * len(specs)

    def config_for(self, ckpt: Checkpoint, family, view: str) -> tuple[str, dict]:
        config = dict(ckpt.config)
        config.setdefault("model_type", family.model_types[0])
        return "config.json", config

    def writes(self, options: ExportOptions) -> tuple[str, ...]:
        """The weights files this format writes (glob patterns), so that a clash with an
        existing OUT is refused before the work rather than after it; commit() checks every
        written file again."""
        return ()

    def competes(self, options: ExportOptions) -> tuple[str, ...]:
        """Every weights file this format's loader would read (all spellings: single, sharded,
        other containers), so a stale one left beside the new output is not loaded instead."""
        return self.writes(options)

    def check_clashes(self, out: Path, options: ExportOptions, inside_source: bool) -> None:
        if (options.force and not inside_source) or not out.is_dir():
            return
        clash = sorted({p.name for pattern in self.competes(options) for p in out.glob(pattern)})
        if clash and inside_source:
            raise UsageError(f"{out} is inside the input, and writing would replace its {', '.join(clash[:6])}: "
                             "choose another output directory")
        if clash:
            raise OutputExistsError(f"{out} already has {', '.join(clash[:6])}; pass --force to replace those "
                                    "files (every other file there is kept)")

    def write(self, ckpt: Checkpoint, tmp: Path, options: ExportOptions, progress: Progress) -> None:
        raise NotImplementedError


def _in_out(path, tmp: Path, out: Path) -> str | None:
    """`path`, a file of the temporary sibling `tmp` (or tmp itself; a `.partial` name as the
    file it becomes), as the file of OUT it is written for; None for a path elsewhere."""
    try:
        rel = Path(str(path)).resolve().relative_to(Path(tmp).resolve())
    except (ValueError, OSError, RuntimeError):
        return None
    name = str(rel).removesuffix(".partial")
    return str(out) if name in ("", ".") else str(out / name)


def write_error(exc: OSError, tmp: Path, out: Path) -> IrconvError:
    """A failed write (a full disk: ENOSPC, EFBIG) as one line naming the file of OUT it was
    writing; Exporter.save removes whatever was written."""
    name = (_in_out(exc.filename, tmp, out) or str(exc.filename)) if exc.filename else str(out)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return IrconvError(f"cannot write the output: {reason}; nothing was written", path=name)


def named_for_out(exc: IrconvError, tmp: Path, out: Path) -> IrconvError:
    """An error a writer raised about the output (a dtype the format cannot hold, a tensor the
    view has no name for, a failed write), naming OUT or its file rather than the temporary
    sibling it was writing, which never appears. Errors naming another file (a source tensor
    that cannot be read) and unnamed ones of other kinds are kept as they are."""
    name = _in_out(exc.path, tmp, out) if exc.path else None
    if name is None and not (exc.path is None and isinstance(exc, (DTypeError, MappingError, UsageError))):
        return exc
    message = str(exc)[len(exc.path) + 2:] if exc.path else str(exc)
    if isinstance(exc, WriteError) or message.startswith("cannot write:"):
        message = f"{message.replace('cannot write:', 'cannot write the output:', 1)}; nothing was written"
    return type(exc)(message, path=name or str(out))


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
              stored_name: Callable[[str], str] = lambda raw: raw, *, ckpt: Checkpoint,
              options: ExportOptions) -> None:
    """Stream `tensors` into a `.partial` writer, each under its stored name and its tied
    copies', the next ones loading ahead within a byte budget (ir/pipeline.py); close it, or
    abort it (no partial file left) on failure."""
    def put(t: Tensor, array) -> None:
        for raw in [t.name, *copies.get(t.name, ())]:
            with stage("write", array.nbytes):
                writer.write(stored_name(raw), array)

    def copied(t: Tensor) -> bool:
        # Bytes lying as stored (in a file, or still in the stream's pipe) are copied into the
        # file by the writer, holding no memory; a stream's bytes can be taken once only, so a
        # tensor stored under tied names as well is loaded.
        return (t.extent is not None and hasattr(writer, "copy")
                and (isinstance(t.extent, tuple) or not copies.get(t.name))
                and all(writer.copies(stored_name(raw), t.extent) for raw in [t.name, *copies.get(t.name, ())]
                        if hasattr(writer, "copies")))

    def work(t: Tensor) -> None:
        if copied(t):
            for raw in [t.name, *copies.get(t.name, ())]:
                with stage("copy", t.nbytes):
                    writer.copy(stored_name(raw), replace(t.spec, name=stored_name(raw)), t.extent)
        else:
            put(t, t.load_raw())

    try:
        if getattr(writer, "concurrent", False):
            # The writer takes writes from any thread (a TensorBundle, Keras h5): whole tensors
            # are loaded, relaid out, checksummed and written on the threads; one stored as it
            # will be written is copied file to file, holding no tensor in memory. Unless
            # the source must be read in order, those copies go last: they need the file's
            # layout (an h5 writer's is still being made on its own thread), the relayouts
            # before them do not.
            if not ckpt.ordered:
                tensors = sorted(tensors, key=copied)
            for t in done(tensors, work, jobs=options.jobs, ordered=ckpt.ordered,
                          cost=lambda t: 0 if copied(t) else t.holds(), in_turn=copied):
                progress(t)
        else:
            for t, array in loaded(tensors, jobs=options.jobs, ordered=ckpt.ordered):
                put(t, array)
                del array
                progress(t)
        writer.close()
    except BaseException:
        writer.abort()
        raise
