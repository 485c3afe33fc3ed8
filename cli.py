"""The `irconv` command line. Every verb is a thin wrapper over the Python API."""
from __future__ import annotations

import argparse
import os
import glob
import json
import re
import signal
import stat
import sys
import traceback
from pathlib import Path

from . import __version__, detect_format
from . import load as load_api
from . import verify
from .exporters import EXPORTERS, ExportOptions
from .importers import IMPORTERS
from .importers.base import read_json
from .importers.config import config_differences, parse_sets, settle_config
from .importers.parts import attach_parts, parse_with
from .ir.checkpoint import Checkpoint
from .exporters import extras, output
from .ir.errors import IrconvError, OutputExistsError, UsageError
from .ir import limits
from .ir.limits import open_regular
from .ir.stream import read_stream, stdin_for_stream, write_stream
from .models import FAMILIES
from .models.engine import ConfigFamily
from .checksum import checker


class Progress:
    """Bytes done, rate and time left on stderr (tqdm), per tensor written: on a terminal, or
    with --progress also into a log (one line every few seconds); never with --quiet."""

    def __init__(self, label: str, ckpt: Checkpoint, enabled: bool, force: bool = False):
        self.bar = None
        if enabled and (force or sys.stderr.isatty()) and ckpt.nbytes:
            from tqdm import tqdm
            import shutil
            # A terminal that reports no size (a bare pty) would get a zero-width bar.
            width = shutil.get_terminal_size((100, 24)).columns or 100
            self.bar = tqdm(total=ckpt.nbytes, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                            file=_Stderr(), leave=True, ncols=width,
                            mininterval=0.2 if sys.stderr.isatty() else 5.0)

    def __call__(self, tensor) -> None:
        if self.bar is not None:
            self.bar.update(tensor.nbytes)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Stderr:
    """sys.stderr as tqdm's file. Handed sys.stderr itself, tqdm 4.70 wrote nothing to a
    pseudo-terminal here (its special handling of the standard streams); through a plain
    writer it draws as expected."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _widen_pipe(stream) -> None:
    """A 64 KiB pipe makes the two ends of `import | export` wait on each other; ask Linux
    for the largest buffer an unprivileged process may set. Harmless where unsupported."""
    try:
        import fcntl
        with open("/proc/sys/fs/pipe-max-size") as f:
            size = int(f.read())
        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (OSError, ValueError, ImportError):
        pass


def _notes(ckpt: Checkpoint, quiet: bool) -> None:
    if not quiet:
        for note in ckpt.source.get("notes", ()):
            print(f"irconv: note: {note}", file=sys.stderr)


def _config_arg(args) -> dict | None:
    return read_json(Path(args.config)) if getattr(args, "config", None) else None


def _load(args) -> Checkpoint:
    if args.src == "-":
        return read_stream(stdin_for_stream(), "<stdin>")
    return _import(args.from_ or detect_format(args.src), args)


def _import(fmt: str, args) -> Checkpoint:
    """Run importer `fmt` on args.src with the source options it takes."""
    extra = {}
    if getattr(args, "head", None):
        if fmt != "fairseq":
            raise UsageError(f"--head applies to fairseq checkpoints, not {fmt!r}")
        extra["head"] = args.head
    ckpt = IMPORTERS.get(fmt).load(Path(args.src), model=args.model, view=args.view,
                                   config=_config_arg(args), **extra)
    # Second files (--with NAME=PATH) for a family whose input view holds only part of the
    # model; `ls` lists what there is and notes what is missing.
    ckpt = attach_parts(ckpt, parse_with(getattr(args, "parts", None)), args.src,
                        lambda path, family: load_api(path, model=family), require=args.verb != "ls")
    return settle_config(ckpt, args.src, parse_sets(getattr(args, "set", None)),
                         getattr(args, "accept_defaults", False), require=args.verb not in ("ls", "diff"))


# The files an importer may read beside a bare weights file (or a TF checkpoint prefix).
_READ_BESIDE = ("config.json", "bert_config.json", "params.json", "dict.txt", "checkpoint")


def _named(args) -> list[str]:
    """The input paths named on the command line (SRC, -i, --config, --with), a TF checkpoint
    prefix as its own files."""
    out = []
    for p in (getattr(args, "src", None), getattr(args, "input", None), getattr(args, "config", None),
              *parse_with(getattr(args, "parts", None)).values()):
        if not p or p == "-":
            continue
        if not os.path.lexists(p) and os.path.lexists(f"{p}.index"):     # a TF checkpoint prefix
            out += glob.glob(glob.escape(str(p)) + ".*")
        else:
            out.append(str(p))
    return out


def _inputs(args) -> tuple[Path, ...]:
    """Every path this run reads: OUT may not be, contain or clobber any of them."""
    out = [Path(p) for p in _named(args)]
    for parent in dict.fromkeys(p.parent for p in out if not p.is_dir()):
        out += [q for name in _READ_BESIDE if (q := parent / name).is_file()]   # a config read beside it
    if ((getattr(args, "src", None) == "-" or (getattr(args, "verb", None) == "export" and not args.input))
            and (stdin := _stdin_file()) is not None):
        out.append(stdin)
    return tuple(out)


def _input_roots(args) -> tuple[list[str], list[str]]:
    """(the input directories, the paths named on the command line) for limits.inputs: a
    file read from inside SRC (a directory, or a file's own directory) must be inside it."""
    src = getattr(args, "src", None)
    if not src or src == "-":
        return [], _named(args)
    return [limits.input_root(src)], _named(args)


def _stdin_file() -> Path | None:
    """The regular file on stdin (`export pt OUT < s.irs`), when the system can name it."""
    try:
        st = os.fstat(sys.stdin.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        path = os.readlink("/proc/self/fd/0")
        same = os.stat(path)
    except (OSError, ValueError, AttributeError):
        return None
    return Path(path) if (same.st_dev, same.st_ino) == (st.st_dev, st.st_ino) else None


def _jobs(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if not 0 <= n <= 64:
        raise argparse.ArgumentTypeError(f"expected a number of threads from 0 to 64, not {value!r}")
    return n


def _export_options(args) -> ExportOptions:
    from .formats.sharding import parse_size
    return ExportOptions(bin=args.bin, force=args.force, cast=args.cast, protect=_inputs(args), jobs=args.jobs,
                         max_shard_size=parse_size(args.max_shard_size, unit=True) if args.max_shard_size else None,
                         extras_from=None if args.no_extras else extras.source_directory(getattr(args, "src", None)))


def _plan(args, ckpt: Checkpoint, fmt: str) -> None:
    """--dry-run: every stored name with its dtype, shape and file, the extras to carry and the
    config to write; nothing is written."""
    options = _export_options(args)
    rows, config_name, config = EXPORTERS.get(fmt).plan(ckpt, options)
    out = Path(args.out)
    print(f"# would write {out} as {fmt}: {len(rows)} stored tensors, "
          f"{sum(s.nbytes for _, s in rows):,} bytes, in {len({f for f, _ in rows})} file(s)")
    widths = [max((len(x) for x in col), default=0) for col in zip(*[(f, s.name, s.dtype.name) for f, s in rows])]
    for f, spec in rows:
        shape = "x".join(map(str, spec.shape)) or "scalar"
        print(f"{f:{widths[0]}}  {spec.name:{widths[1]}}  {spec.dtype.name:{widths[2]}}  {shape}")
    carry, skip = extras.plan(options.extras_from, list(ckpt.source.get("files", ())), out)
    print(f"# {config_name}: " + json.dumps(config, sort_keys=True))
    made = [e["name"] for e in ckpt.source.get("made", ())] if options.extras_from is not None else []
    print("# extras carried: " + (", ".join(carry) if carry else "none")
          + (f"; made: {', '.join(made)}" if made else "")
          + (f"; not carried: {', '.join(skip)}" if skip else ""))
    if out.exists():
        print(f"# {out} exists: files of the same name are replaced only with --force; other files are kept")


def _save(args, ckpt: Checkpoint, fmt: str, check=None) -> None:
    if getattr(args, "dry_run", False):
        _plan(args, ckpt, fmt)
        return
    exporter = EXPORTERS.get(fmt)
    progress = Progress(f"export {fmt}", ckpt, not args.quiet, args.progress)
    try:
        written = exporter.save(ckpt, Path(args.out), _export_options(args), progress, check=check)
    finally:
        progress.finish()
    if not args.quiet:
        for name in written.cleaned:
            print(f"irconv: note: removed {name}, a temporary directory a killed run left", file=sys.stderr)
        for note in written.notes:
            print(f"irconv: note: {note}", file=sys.stderr)
        ex = written.extras
        skipped = len(ckpt.source.get("skipped", ()))
        extra = set(ex.carried) | {m.split(" ", 1)[0] for m in ex.made} if ex else set()
        own = [f for f in written.files if f not in extra]
        if ex:      # an extra already there, byte for byte, was not copied again
            ex.carried = [f for f in ex.carried if f in written.files]
        print(f"irconv: wrote {written.out}: {_names(own) or 'nothing new (the files there already held the same)'}"
              + f" ({len(ckpt)} tensors, {ckpt.nbytes:,} bytes)"
              + (f"; skipped {skipped} source tensor(s) (see irconv ls)" if skipped else "")
              + (f"; carried {_names(ex.carried)}" if ex and ex.carried else "")
              + (f"; made {_names(ex.made)}" if ex and ex.made else "")
              + (f"; not carried: {_names(ex.not_carried)}" if ex and ex.not_carried else "")
              + (f"; replaced {_names(written.replaced)}" if written.replaced else "")
              + (f"; kept {written.kept} other file(s) there" if written.kept else ""), file=sys.stderr)


def _names(items: list[str], most: int = 8) -> str:
    return ", ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most else "")


# ---------------------------------------------------------------- verbs


def cmd_import(args) -> None:
    IMPORTERS.get(args.format)
    if args.output is None and sys.stdout.isatty():
        raise UsageError("refusing to write a binary IR stream to a terminal; "
                         "pipe it (| irconv export ...) or pass -o FILE")
    ckpt = _import(args.format, args)
    _notes(ckpt, args.quiet)
    progress = Progress(f"import {args.format}", ckpt, not args.quiet, args.progress)
    try:
        if args.output is None:
            _widen_pipe(sys.stdout)
            write_stream(ckpt, sys.stdout.buffer, progress=progress, jobs=args.jobs)
        else:
            out = Path(args.output)
            output.check_target(out, args.force, _inputs(args), file=True)
            if out.exists() and not args.force:
                raise OutputExistsError(f"{out} already exists; pass --force to replace it")
            output.clean_stale(out)
            try:
                with output.temporary(out, directory=False) as tmp:
                    with open(tmp, "wb") as f:
                        write_stream(ckpt, f, progress=progress, where=str(out), jobs=args.jobs)
                    output.place_file(tmp, out)
            except OSError as exc:
                if exc.filename:        # a read of the input failed: it names its file
                    raise
                raise IrconvError(f"cannot write the stream: {exc.strerror or exc}; nothing was written",
                                  path=str(out)) from None
            if not args.quiet:
                print(f"irconv: wrote {out}: an IR stream ({len(ckpt)} tensors, {ckpt.nbytes:,} bytes; "
                      f"{out.stat().st_size:,} on disk)", file=sys.stderr)
    finally:
        progress.finish()


def cmd_export(args) -> None:
    EXPORTERS.get(args.format)
    if args.input is None:
        if sys.stdin.isatty():
            raise UsageError("expected an IR stream on stdin (irconv import ... | irconv export ...) "
                             "or -i FILE")
        _widen_pipe(sys.stdin)
        ckpt = read_stream(stdin_for_stream(), "<stdin>")
        _save(args, _as_target(args, ckpt), args.format)
    else:
        with open_regular(args.input, "an IR stream") as f:
            _save(args, _as_target(args, read_stream(f, args.input)), args.format)


def _as_target(args, ckpt: Checkpoint) -> Checkpoint:
    """The checkpoint the target options ask for (--base-model: without its heads)."""
    if not getattr(args, "base_model", False):
        return ckpt
    from .models import base_model
    ckpt, left = base_model(ckpt)
    if not args.quiet:
        what = f"left out {', '.join(left)}" if left else "no head to leave out"
        print(f"irconv: note: --base-model: {what}; written as {ckpt.config['architectures'][0]}", file=sys.stderr)
    return ckpt


def cmd_convert(args) -> None:
    EXPORTERS.get(args.to)
    if args.check_sum and args.src == "-":
        raise UsageError("--check-sum reads the source twice, so it needs a file, not a stream on stdin")
    output.check_target(Path(args.out), args.force, _inputs(args))    # before any work
    ckpt = _as_target(args, _load(args))
    _notes(ckpt, args.quiet)
    check = None
    if args.check_sum:
        report = (lambda line: None) if args.quiet else (lambda line: print(f"irconv: {line}", file=sys.stderr))
        check = checker(ckpt, args.to, args.cast, lambda path, fmt: load_api(path, fmt), report)
    _save(args, ckpt, args.to, check)


def cmd_ls(args) -> None:
    if args.raw:
        if args.src == "-":
            raise UsageError("--raw lists a file's stored tensors; an IR stream holds canonical ones (drop --raw)")
        raw = IMPORTERS.get(args.from_ or detect_format(args.src)).raw(Path(args.src))
        print(f"# {len(raw)} stored tensors, {sum(t.nbytes for t in raw):,} bytes (as the file names them)")
        rows = [(t.name, t.dtype.name, "x".join(map(str, t.shape)) or "scalar") for t in raw]
        widths = [max((len(r[i]) for r in rows), default=0) for i in range(2)]
        for r in rows:
            print(f"{r[0]:{widths[0]}}  {r[1]:{widths[1]}}  {r[2]}")
        return
    ckpt = _load(args)
    _notes(ckpt, args.quiet)
    if args.src != "-" and not args.quiet:
        for p in output.stale_siblings(Path(args.src)):
            print(f"irconv: note: {p} is a temporary directory a killed run left (the next convert to "
                  f"{args.src} removes it)", file=sys.stderr)
    src = ckpt.source
    print(f"# family {ckpt.family}, format {src.get('format', 'stream')}, view {src.get('view', '-')}, "
          f"{len(ckpt)} tensors, {ckpt.nbytes:,} bytes"
          + (f", architectures {', '.join(ckpt.config['architectures'])}" if ckpt.config.get("architectures") else ""))
    goes = _destinations(ckpt, args.to) if args.to else {}
    rows = [(name, t.source, t.dtype.name, "x".join(map(str, t.shape)) or "scalar",
             (",".join(t.axes) if t.axes else "-") + (f"  -> {goes[name]}" if goes else ""))
            for name, t in ckpt.tensors.items()]
    rows += [(alias, f"(tied to {target})", "", "", "") for alias, target in ckpt.aliases.items()]
    copies = src.get("copies", {})
    skipped = list(src.get("skipped", ()))
    slots = [raw for raw in skipped if raw not in copies and OPTIMIZER_STATE.search(raw)]
    rows += [("(skipped)", raw, "", "", f"(copy of {copies[raw]})" if raw in copies else "")
             for raw in skipped if raw not in slots]
    if slots:
        kinds = sorted({OPTIMIZER_STATE.search(raw).group(0).strip("/") for raw in slots})
        rows.append(("(skipped)", f"{len(slots)} optimizer/training-state variables", "", "",
                     f"({', '.join(kinds[:6])})"))
    widths = [max(len(r[i]) for r in rows) if rows else 0 for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    if args.src == "-":
        ckpt.close()


# Training state a checkpoint carries beside the weights (Adam slots, step counters), which
# `ls` sums up in one line rather than one per slot.
OPTIMIZER_STATE = re.compile(r"(/adam_[mv]|/Adam(_1)?|^beta[12]_power|global_step|^optimizer/|"
                             r"/\.OPTIMIZER_SLOT/|/\.ATTRIBUTES/VARIABLE_VALUE$|/(m|v|momentum|rms)$)")


def _destinations(ckpt: Checkpoint, fmt: str) -> dict[str, str]:
    """canonical name -> the name `irconv export FMT` stores it under (in the view that
    format writes this family in), for `ls --to`."""
    exporter = EXPORTERS.get(fmt)
    family = FAMILIES.get(ckpt.family)
    name = exporter.view_for(family)
    view = family.concrete(ckpt.config).view(name) if isinstance(family, ConfigFamily) else family.view(name)
    prefix = view.export_prefix(ckpt)
    # What of a stored tensor the format leaves out (keras-hub's RoBERTa: the reserved position rows).
    partly = exporter.dropped_parts(ckpt) if hasattr(exporter, "dropped_parts") else {}
    stored = getattr(exporter, "stored_name", lambda ckpt, raw: raw)     # keras's ALBERT layer keys
    return {c: (f"{stored(ckpt, raw)}  (partly: {partly[c]})" if c in partly else stored(ckpt, raw))
            if (raw := view.raw_name(c, prefix)) else f"(dropped: the {name} view has no place for it)"
            for c in ckpt.tensors}


def cmd_diff(args) -> None:
    """Compare two checkpoints in canonical space; exit 1 when they differ (like diff)."""
    import numpy as np
    from .ir.tensor import as_bytes
    sets = parse_sets(args.set)
    a, b = (settle_config(IMPORTERS.get(args.from_ or detect_format(src)).load(Path(src), model=args.model,
                                                                                view=args.view),
                          src, sets, args.accept_defaults, require=False) for src in (args.a, args.b))
    differ = 0
    if a.family != b.family:
        print(f"family: {a.family} vs {b.family}")
        differ += 1
    else:
        computing, other = config_differences(a.family, a.config, b.config)
        for line in computing:
            print(f"config {line}")
        for line in other:
            print(f"config {line} (does not change what the model computes)")
        differ += len(computing)
    for name in sorted(set(a.tensors) ^ set(b.tensors)):
        print(f"only in {args.a if name in a.tensors else args.b}: {name}")
        differ += 1
    for name in [n for n in a.tensors if n in b.tensors]:
        ta, tb = a.tensors[name], b.tensors[name]
        if ta.spec.dtype != tb.spec.dtype or ta.shape != tb.shape:
            print(f"{name}: {ta.dtype} {list(ta.shape)} vs {tb.dtype} {list(tb.shape)}")
            differ += 1
            continue
        xa, xb = ta.load(), tb.load()
        if not np.array_equal(as_bytes(xa), as_bytes(xb)):
            delta = np.max(np.abs(xa.astype(np.float64) - xb.astype(np.float64))) if xa.size else 0.0
            print(f"{name}: values differ (max abs diff {delta:.3g})")
            differ += 1
    if a.aliases != b.aliases:
        print(f"tied names differ: {a.aliases} vs {b.aliases}")
        differ += 1
    print(f"{'identical' if not differ else f'{differ} difference(s)'}: {len(a)} vs {len(b)} tensors "
          f"({a.family} {a.source.get('format')} vs {b.family} {b.source.get('format')})")
    if differ:
        raise SystemExit(1)


def cmd_formats(args) -> None:
    for name in sorted(set(IMPORTERS.names()) | set(EXPORTERS.names())):
        direction = "in " if name in IMPORTERS else "   "
        direction += "out" if name in EXPORTERS else "   "
        desc = (IMPORTERS.get(name) if name in IMPORTERS else EXPORTERS.get(name)).description
        print(f"{name:10} {direction}  {desc}")


def cmd_models(args) -> None:
    width = max(len(fam.name) for fam in FAMILIES)
    for fam in FAMILIES:
        print(f"{fam.name:{width}} views: {', '.join(fam.views):20} {fam.description}")
        print(f"{'':{width}} classes: {', '.join(fam.architectures)}")


# ---------------------------------------------------------------- parser


EXAMPLES = """examples:
  irconv convert bert-base/ bert-tf2/ --to tf2          # HF PyTorch -> HF TF2 (tokenizer carried)
  irconv convert bert-base/ bert-tf1/ --to tf1          # -> Google's BERT layout (vocab.txt too)
  irconv import pt bert-base/ | irconv export pt out/ --bin
  irconv convert model.safetensors out/ --to pt --model bert --set num_attention_heads=12 --accept-defaults
  irconv ls bert-base/ --to tf2                         # every tensor and the name tf2 gives it
  irconv convert bert-base/ out/ --to tf2 --dry-run     # what would be written
  irconv diff bert-base/ out/                           # tensors and configs, exit 1 if they differ
  irconv verify bert-base/ out/                         # run both in their frameworks (pip install 'irconv[test]')
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as every other error: one line (pointing at --help), exit 2."""

    def error(self, message):
        self.exit(2, f"irconv: error: {' '.join(str(message).split())} (see {self.prog} --help)\n")


# The path arguments: an empty one (an unset shell variable) would mean the current directory.
_PATHS = {"src": "SRC", "out": "OUT", "input": "-i", "output": "-o", "config": "--config"}


def _check_paths(args) -> None:
    for key, what in _PATHS.items():
        if getattr(args, key, None) == "":
            raise UsageError(f"{what} is an empty path (an unset shell variable?); name the file or directory")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="irconv", formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=EXAMPLES, description="Convert trained model weights between "
                                "frameworks through one canonical IR.")
    p.add_argument("--version", action="version", version=f"irconv {__version__}")
    # Accepted before the verb too (`irconv -q convert ...`); merged in main().
    p.add_argument("-q", "--quiet", dest="quiet_top", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--debug", dest="debug_top", action="store_true", help=argparse.SUPPRESS)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress or notes on stderr")
    common.add_argument("--debug", action="store_true", help="show the traceback on errors")
    common.add_argument("--progress", action="store_true", help="show progress even when stderr is not a "
                        "terminal (a line every few seconds, for logs)")
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument("--model", help="model family, when the input does not say (see `irconv models`)")
    source.add_argument("--view", help="naming convention of the input, when not the format's default")
    source.add_argument("--config", help="JSON config for a bare weights file (HF config.json form)")
    source.add_argument("--head", help="fairseq: the classification head to convert (default: the LM head)")
    source.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="set one config field (repeatable; JSON values: --set num_attention_heads=12); "
                        "a file without a config needs the fields its tensors do not decide")
    source.add_argument("--accept-defaults", action="store_true",
                        help="for a file without a config: take the stated defaults of the fields its "
                        "tensors do not decide (hidden_act, layer_norm_eps ...) instead of stopping")
    parts = argparse.ArgumentParser(add_help=False)
    parts.add_argument("--with", dest="parts", action="append", metavar="NAME=PATH",
                       help="a second file holding part of the model (FLAVA: --with codebook=encoder.pkl)")
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("--bin", action="store_true", help="pt: write pytorch_model.bin, not safetensors")
    target.add_argument("--max-shard-size", help="shard the output above this size (e.g. 5GB, 500MB)")
    target.add_argument("--force", action="store_true", help="replace files of the same name (and stale "
                        "weights of the same format) in an existing OUT; its other files are always kept")
    target.add_argument("--no-extras", action="store_true", help="do not carry the source directory's other "
                        "files (tokenizer, vocab, model card, sentence-transformers modules) to OUT")
    target.add_argument("--dry-run", action="store_true", help="print what would be written (every stored "
                        "name, dtype, shape and file; the extras; the config) and write nothing")
    target.add_argument("--base-model", action="store_true", help="write the family's base model: leave "
                        "out the task heads (MLM, NSP, classifier, LM head ...), as a keras-hub Backbone or a "
                        "BertModel holds none; what is left out is said")
    target.add_argument("--cast", metavar="DTYPE", help="convert every floating tensor to DTYPE (F32, F16, "
                        "BF16 ...); without it a dtype is never changed")
    jobs = argparse.ArgumentParser(add_help=False)
    jobs.add_argument("--jobs", type=_jobs, metavar="N", help="threads reading and relaying out tensors "
                      "ahead of the writer (default: one more than the cores, at most 8; 0: none), within a memory "
                      "budget of about the largest tensor")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    s = sub.add_parser("import", parents=[common, source, parts, jobs], help="read a checkpoint, write the IR stream")
    s.add_argument("format", help=f"input format ({', '.join(IMPORTERS.names())})")
    s.add_argument("src", help="the checkpoint: a model directory, a weights file or a TF checkpoint prefix")
    s.add_argument("-o", "--output", help="write the stream to FILE instead of stdout")
    s.add_argument("--force", action="store_true", help="replace FILE if it exists")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("export", parents=[common, target, jobs], help="read the IR stream, write a checkpoint")
    s.add_argument("format", help=f"output format ({', '.join(EXPORTERS.names())})")
    s.add_argument("out", help="the output directory (created; an existing one keeps its other files)")
    s.add_argument("-i", "--input", help="read the stream from FILE instead of stdin")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("convert", parents=[common, source, parts, target, jobs], help="import and export in one process")
    s.add_argument("--check-sum", action="store_true", help="confirm the parameter sums of input and output "
                   "agree (copies the input holds twice counted once); print both to stderr")
    s.add_argument("src", help="the checkpoint: a model directory, a weights file, a TF checkpoint prefix, "
                   "or - for an IR stream on stdin")
    s.add_argument("out", help="the output directory (created; an existing one keeps its other files)")
    s.add_argument("--to", required=True, help=f"(required) output format ({', '.join(EXPORTERS.names())}; "
                   "pytorch, tensorflow ... are understood too)")
    s.add_argument("--from", dest="from_", help="input format (detected when omitted)")
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("ls", parents=[common, source, parts], help="list tensors: canonical name, source name, "
                       "dtype, shape, axes ('-' reads an IR stream)")
    s.add_argument("src", help="the checkpoint to list, or - for an IR stream on stdin")
    s.add_argument("--from", dest="from_", help="input format (detected when omitted)")
    s.add_argument("--raw", action="store_true", help="list the file's tensors under their stored names, "
                   "without placing them in a family (to see why a file does not fit)")
    s.add_argument("--to", help="also show the name each tensor gets when exported to this format "
                   f"({', '.join(EXPORTERS.names())})")
    s.set_defaults(func=cmd_ls)

    s = sub.add_parser("diff", parents=[common, source], help="compare two checkpoints tensor by tensor in "
                       "canonical space (exit 1 if they differ)")
    s.add_argument("a", help="one checkpoint")
    s.add_argument("b", help="the other (any format: both are compared in canonical names and layouts)")
    s.add_argument("--from", dest="from_", help="input format of both (detected when omitted)")
    s.set_defaults(func=cmd_diff)
    verify.add_parser(sub, [common])

    s = sub.add_parser("formats", parents=[common], help="list file formats")
    s.set_defaults(func=cmd_formats)
    s = sub.add_parser("models", parents=[common], help="list model families and their views")
    s.set_defaults(func=cmd_models)
    return p


def _subject(args) -> str:
    """The path a verb is about, for an error that names no file of its own."""
    for key in ("src", "input", "a", "out", "output"):
        value = getattr(args, key, None)
        if value:
            return "<stdin>" if value == "-" else str(value)
    return ""


# Signals that stop a run as Ctrl-C does: the work is abandoned and what it wrote removed
# (exit 128 + the signal). One that the caller set to be ignored (nohup, a shell's background
# job) stays ignored.
_STOPS = ("SIGINT", "SIGTERM", "SIGHUP")
_interrupts = []     # the signals that came, the first being the one that stopped the run
_armed = []          # the timer _on_interrupt set to raise an interrupt it deferred


def _importing(frame) -> bool:
    """Whether the interrupted code is inside Python's import system (finding, loading or
    running a module: irconv imports its codecs when first used, on any thread)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _on_interrupt(signum, frame):
    if signum != getattr(signal, "SIGALRM", None):
        _interrupts.append(signum)
        if len(_interrupts) > 1:
            # The first one's cleanup is running (it takes a moment): let it end. Cut short, it
            # would leave files behind, or a join undone and the h5 layout thread holding
            # libhdf5's lock, which the exit would then wait for forever. (Ctrl-\ still quits.)
            return
    if output.moving():
        output.held.append(signum)      # a commit's moves are under way: raised once they end
        return
    if _importing(frame):
        # A KeyboardInterrupt raised inside importlib can leave its import lock held: the next
        # import on another thread (a layout or load thread) then waits forever, and so does
        # the cleanup that joins it. The interrupt is raised once the import is over instead.
        try:
            signal.signal(signal.SIGALRM, _on_interrupt)
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            _armed.append(True)
            return
        except (ValueError, OSError, AttributeError):    # no timer here: raise it now
            pass
    raise KeyboardInterrupt


def run() -> None:
    """The `irconv` command (the console script and `python -m irconv`): main(), then the exit."""
    code = main()
    if code > 128:
        # Stopped by a signal, said so, and the output removed: end now. The teardown would wait
        # for threads the interrupt may have left mid-job (an h5 layout holding libhdf5's lock),
        # and CPython ends a process whose KeyboardInterrupt passed through a C extension's
        # start-up by SIGINT, not by this code.
        sys.stderr.flush()
        os._exit(code)
    for name in _STOPS:
        # The work is over (written or refused, and said so): a signal now, during the
        # interpreter's teardown, must not turn that into a traceback or death by signal.
        try:
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        except (AttributeError, ValueError, OSError):
            pass
    sys.exit(code)


def main(argv=None) -> int:
    try:
        return _main(argv)
    finally:
        if _armed:       # the work ended before a deferred interrupt was raised: no alarm after it
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
            except (ValueError, OSError):
                pass
            _armed.clear()


# Past this, an error message is cut: a name or value quoted from a crafted file can be megabytes.
MAX_MESSAGE = 4000


def _one_line(text: str) -> str:
    """An error message as the one line it must be: a newline or carriage return in it (from a
    file's own text: a config value, a tensor name) is shown escaped, never begun anew, so a
    file cannot add lines of its own (a forged "irconv: error: ...") to what is printed; and at
    most MAX_MESSAGE characters of it."""
    if len(text) > MAX_MESSAGE:
        text = f"{text[:MAX_MESSAGE]}... ({len(text) - MAX_MESSAGE:,} more characters)"
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _stopped() -> int:
    """The one line and exit status of a run a signal stopped."""
    signum = _interrupts[0] if _interrupts else signal.SIGINT
    how = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    if output.completed:
        print(f"irconv: {how}, after {output.completed[-1]} was written completely", file=sys.stderr)
    else:
        print(f"irconv: {how}; no output was written", file=sys.stderr)
    return 128 + signum


def _main(argv) -> int:
    for name in _STOPS:
        sig = getattr(signal, name, None)
        try:
            if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, _on_interrupt)
        except (ValueError, OSError):
            pass
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        return _stopped()
    args.quiet = args.quiet or args.quiet_top
    args.debug = args.debug or args.debug_top
    try:
        _check_paths(args)
        with limits.inputs(*_input_roots(args)):
            args.func(args)
    except IrconvError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"irconv: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        if args.debug:
            traceback.print_exc()
        if isinstance(exc, BrokenPipeError):
            # The reader went away (`| head`, or a failed export that said why itself).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            if args.verb == "import":
                print("irconv: error: the stream's reader closed the pipe early", file=sys.stderr)
                return 2
            return 0
        else:
            where = exc.filename or _subject(args)
            message = f"{where}: {exc.strerror or exc}" if where else str(exc.strerror or exc)
            print(f"irconv: error: {_one_line(message)}", file=sys.stderr)
        return 2
    except (MemoryError, RecursionError) as exc:
        # A safety net: every reader bounds what a file declares before allocating or
        # walking it, so reaching this means a limit was missed; still one line, exit 2.
        if args.debug:
            traceback.print_exc()
        what = "needs more memory than there is" if isinstance(exc, MemoryError) else "nests too deeply to read"
        print(f"irconv: error: {_subject(args)}: {what}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _stopped()
    except Exception as exc:  # a bug, not bad input: still one line, with the way to see more
        if _interrupts:       # an error the interrupt caused (an import it cut short on a thread)
            return _stopped()
        if args.debug:
            traceback.print_exc()
        print(f"irconv: internal error: {type(exc).__name__}: {exc} (rerun with --debug and report it)",
              file=sys.stderr)
        return 1
    return 0
