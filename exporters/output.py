"""How an exporter's files reach OUT without destroying anything of the user's.

Every exporter writes into a fresh temporary sibling of OUT (`.OUT.irconv-PID-XXXX`); only
when every file is complete does `commit` move them into place:

- OUT does not exist (or is an empty directory): the temporary directory is renamed to OUT.
- OUT is a directory with files: each written file is renamed into it, one by one, and every
  other file there (the tokenizer, the model card, weights of another framework) is kept. A
  file of the same name is replaced only with --force; without it the write is refused naming
  those files, except a config.json identical to the one being written (same model).
- OUT is SRC, contains SRC, is a file of SRC, or lies inside SRC where a written file would
  replace one of the input's: refused before anything is written, --force or not. The inputs
  are every file the run reads (cli._inputs): a bare weights file's config beside it, --config,
  --with, and a stream on stdin that is a file.
- Nothing is written through a symbolic link below OUT (a linked sub-directory would put files
  outside it, or into the input), nor over a directory: every written file's place is checked
  before the first one is moved, so a refused commit has changed nothing.
- The moves into an existing OUT are not cut short by Ctrl-C / SIGTERM: a signal that arrives
  then is taken once they are done (the CLI then says OUT was written completely).

A run that is killed (SIGKILL, the OOM killer) cannot clean up after itself; the next run on the
same OUT removes temporary siblings whose writing process is gone (the PID in their name) and
says so.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
import secrets
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..ir.errors import IrconvError, OutputExistsError, UsageError

# Fields of a config.json that say how a file was written, not what model it holds.
_PROVENANCE = ("transformers_version", "_name_or_path", "torch_dtype", "dtype")
_CONFIG_FILES = ("config.json", "bert_config.json")


@dataclass
class Written:
    """What a commit did, for the summary line."""
    out: Path
    files: list[str] = field(default_factory=list)      # written (relative to out)
    replaced: list[str] = field(default_factory=list)   # existing files a written one replaced
    kept: int = 0                                       # other files of an existing OUT, untouched
    cleaned: list[str] = field(default_factory=list)    # stale temporary siblings removed
    extras: object = None                               # extras.Extras: what was carried beside the weights
    notes: list[str] = field(default_factory=list)      # what the format left out, as its view declares


def _tmp_pattern(name: str) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(name)}\.irconv-(?:old-)?(\d+)(?:-.*)?$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True             # someone else's live process
    return True


def stale_siblings(out: Path) -> list[Path]:
    """Temporary siblings of `out` left by runs whose process is gone."""
    parent = out.parent if str(out.parent) else Path(".")
    pattern = _tmp_pattern(out.name)
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if (m := pattern.match(p.name)) and not _alive(int(m.group(1))))


def clean_stale(out: Path) -> list[str]:
    removed = []
    for p in stale_siblings(out):
        try:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            removed.append(p.name)
        except OSError:
            pass
    return removed


@contextmanager
def temporary(out: Path, directory: bool = True) -> Iterator[Path]:
    """A fresh temporary sibling of `out` (a directory, or an empty file), removed if the block
    raises. Its name is chosen before it is made, so an interrupt that lands anywhere, even
    between the mkdir and the line after it, still finds it to remove."""
    parent = out.parent if str(out.parent) else Path(".")
    prefix = f".{out.name}.irconv-{os.getpid()}-"
    path = None
    try:
        while True:
            # Every name with this process's PID is this process's (a stale one of a dead
            # process with the same PID included): removing it on the way out is right.
            path = parent / (prefix + secrets.token_hex(4))
            try:
                if directory:
                    os.mkdir(path, 0o700)
                else:
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                break
            except FileExistsError:
                continue
            except OSError as exc:      # a read-only or full file system: nothing was made
                path = None
                raise IrconvError(f"cannot write the output: {exc.strerror or exc}; nothing was written",
                                  path=str(out)) from None
        yield path
    except BaseException:
        if path is not None:
            if directory:
                # A writer's thread interrupted mid-way (an h5 layout) may still add a file
                # while the tree is removed: try again, a few times, briefly.
                for _ in range(5):
                    shutil.rmtree(path, ignore_errors=True)
                    if not os.path.lexists(path):
                        break
                    time.sleep(0.05)
            else:
                with suppress(OSError):
                    os.unlink(path)
        raise


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_target(out: Path, force: bool, sources: tuple = (), file: bool = False) -> bool:
    """Refuse an OUT that cannot be written safely; True when OUT lies inside a source
    directory (so no existing file there may be replaced, --force or not). `file`: OUT is one
    file (`import -o`), not a directory."""
    out = Path(out)
    if out.is_symlink():
        # Replacing it would rename the link and leave its target as it was; following it
        # would write somewhere the user did not name. Neither is what was asked.
        raise UsageError(f"{out} is a symbolic link (to {os.readlink(out)}); give the directory it "
                         "points to, or remove the link")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{out}: parent directory {str(parent)!r} does not exist")
    real_out, inside = _real(out), False
    for src in sources:
        if src is None or str(src) == "-" or not os.path.lexists(src):
            continue
        real_src = _real(Path(src))
        if real_out == real_src:
            kept = _listing(real_src)
            raise UsageError(f"{out} is the input itself; writing there would replace what is being read"
                             + (f" ({kept})" if kept else "") + ": choose another output directory")
        if _within(real_src, real_out):
            raise UsageError(f"{out} contains the input {src}; writing there could replace it: choose "
                             "another output directory")
        if _within(real_out, real_src):
            inside = True
    if os.path.lexists(out) and not out.is_dir():
        if inside:
            raise UsageError(f"{out} is a file of the input; writing there would replace it, --force or not: "
                             "choose another output")
        if not force and not file:
            raise OutputExistsError(f"{out} exists and is a file; pass --force to replace it with the output "
                                    "directory")
    return inside


def _listing(directory: Path, most: int = 6) -> str:
    try:
        names = sorted(p.name for p in directory.iterdir())
    except OSError:
        return ""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def _same_file(existing: Path, new: Path) -> bool:
    """A file already there that says what the new one says is no clash: the same bytes (a
    carried tokenizer file, or weights written again: compared a MiB at a time), or a
    config.json describing the same model."""
    try:
        if existing.stat().st_size == new.stat().st_size and _same_bytes(existing, new):
            return True
    except OSError:
        return False
    return new.name in _CONFIG_FILES and _same_config(existing, new)


def _same_bytes(a: Path, b: Path, piece: int = 1 << 20) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(piece), fb.read(piece)
            if x != y:
                return False
            if not x:
                return True


def _same_config(existing: Path, new: Path) -> bool:
    try:
        a, b = json.loads(existing.read_text("utf-8")), json.loads(new.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return False
    return ({k: v for k, v in a.items() if k not in _PROVENANCE}
            == {k: v for k, v in b.items() if k not in _PROVENANCE})


def commit(tmp: Path, out: Path, force: bool, inside_source: bool = False,
           competing: tuple[str, ...] = ()) -> Written:
    """Move the complete output in `tmp` to `out` (see the module docstring). `competing`:
    glob patterns of the weights files this format's loader reads; one already in OUT that
    this write does not replace (model.safetensors beside a new pytorch_model.bin, which
    transformers would load first) would make OUT load another model, so it is a clash too,
    and with --force it is removed."""
    written = Written(out)
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        os.chmod(tmp, 0o777 & ~_umask())
        with uninterrupted():
            os.replace(tmp, out)
            completed.append(out)
        written.files = _files(out)
        return written
    if not out.is_dir():                     # a file, and --force was given (check_target)
        old = out.with_name(f".{out.name}.irconv-old-{os.getpid()}")
        os.chmod(tmp, 0o777 & ~_umask())
        with uninterrupted():
            os.replace(out, old)
            os.replace(tmp, out)
            old.unlink()
            completed.append(out)
        written.files, written.replaced = _files(out), [out.name]
        return written
    new = _files(tmp)
    _check_places(out, new)
    same = [f for f in new if (out / f).is_file() and _same_file(out / f, tmp / f)]
    clash = [f for f in new if f not in same and os.path.lexists(out / f)]
    stale = sorted({p.name for pattern in competing for p in out.glob(pattern)} - set(new))
    if stale and not force:
        raise OutputExistsError(f"{out} already has {', '.join(stale[:6])}, which would be loaded instead of "
                                "(or beside) what this writes; pass --force to replace it (every other file "
                                "there is kept)")
    if stale and inside_source:
        raise UsageError(f"{out} is inside the input, and its {', '.join(stale[:6])} would be loaded instead "
                         "of what this writes: choose another output directory")
    if clash and inside_source:
        raise UsageError(f"{out} is inside the input, and writing would replace its "
                         f"{', '.join(clash[:6])}: choose another output directory")
    if clash and not force:
        raise OutputExistsError(f"{out} already has {', '.join(clash[:6])}"
                                + (f" and {len(clash) - 6} more" if len(clash) > 6 else "")
                                + "; pass --force to replace those files (every other file there is kept)")
    before = set(_files(out))
    with uninterrupted():
        for f in new:
            if f in same:
                continue
            dest = out / f
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / f, dest)
        for f in stale:
            (out / f).unlink()
        shutil.rmtree(tmp, ignore_errors=True)
        completed.append(out)
    written.files, written.replaced = [f for f in new if f not in same], clash + stale
    written.kept = len(before - set(new) - set(stale))
    return written


def _check_places(out: Path, files: list[str]) -> None:
    """Refuse, before anything moves, a written file whose place in OUT is a directory, or lies
    through a symbolic link or a file (a linked sub-directory would take it outside OUT)."""
    for f in files:
        place = out
        for part in Path(f).parts[:-1]:
            place = place / part
            if place.is_symlink():
                raise UsageError(f"{place} is a symbolic link; irconv does not write through links inside "
                                 f"the output (it would put {f} outside {out}): remove it or choose another "
                                 "output directory")
            if os.path.lexists(place) and not place.is_dir():
                raise UsageError(f"{place} is a file, where the output needs a directory for {f}")
        dest = out / f
        if dest.is_dir() and not dest.is_symlink():
            raise UsageError(f"{dest} is a directory; cannot replace it with the file {f}")


# Signals the CLI turns into an interrupt; while the moves of a commit run, one that arrives
# waits (`held`) until they are done, and `completed` says which OUT was then whole.
_moving: list[bool] = []
held: list[int] = []
completed: list[Path] = []


def moving() -> bool:
    return bool(_moving)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Run the block to its end even if the CLI's SIGINT/SIGTERM handler fires inside it (it
    consults moving() and leaves the signal in `held`); the interrupt is raised after it."""
    _moving.append(True)
    try:
        yield
    finally:
        _moving.pop()
    if held and not _moving:
        raise KeyboardInterrupt


def place_file(tmp: Path, out: Path) -> None:
    """The finished temporary file `tmp` as `out` (`import -o`), with the mode a new file gets."""
    os.chmod(tmp, 0o666 & ~_umask())
    with uninterrupted():
        os.replace(tmp, out)
        completed.append(out)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
