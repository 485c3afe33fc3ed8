"""The hostile-input corpus: a registry of cases, each a small function that writes one crafted
input, and the promise every case is checked against.

A case module (cases_*.py beside this file, one per container kind) declares cases with
@case(...). A case's builder gets an empty directory `d` and a Ctx, writes its input there
and returns the path to give irconv. The harness (tests/test_attacks.py) then runs the verbs
the case names through the real CLI, each in a forked child under a time, address-space and
(for write-failure cases) file-size limit, and asserts:

  - exit code 2 (or, for `expect="clean"` mutations of a file without checksums, 0 or 2; for
    `expect="accept"` lies irconv does not believe, 0 with OUT written, the needle on stderr and
    the `absent` files not in it),
  - exactly one line on stderr, "irconv: error: ...", naming the file (and no traceback),
  - no output and no temporary sibling at OUT,
  - no marker file created (what an evil payload would write), and no byte of the secret file
    outside the input (what a redirection would read) anywhere in what irconv wrote.

`python tests/attacks/make_corpus.py DIR` writes every case's input under DIR/<case>/ to look at.
"""
from __future__ import annotations

import importlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SECRET = b"IRCONV-SECRET-" + b"0123456789abcdef" * 64       # 1 KiB, easy to recognise anywhere

# Every verb a case can ask for; OUT is always `out` inside the case's work directory.
VERBS = ("convert", "ls", "import", "export", "diff")


@dataclass
class Case:
    name: str
    build: Callable[[Path, "Ctx"], Path]
    fmt: str | None = None            # importer for `import FMT SRC` (None: import is not run)
    args: tuple = ()                  # source options (--model bert ...)
    verbs: tuple = ("convert", "ls")
    to: str = "pt"                    # convert/export target
    out_args: tuple = ()              # target options (--bin, --max-shard-size ...)
    needle: str | tuple = ()          # what the error line must also say (case-insensitive)
    pipe_needle: str | tuple | None = None   # ... when a stream comes through a pipe (size unknown)
    names: str | None = None          # the file the error must name (default: the input's name)
    expect: str = "refuse"            # "refuse": exit 2; "clean": exit 0 or a clean exit 2; "accept":
                                      # exit 0 (OUT written, the needle said on stderr)
    absent: tuple = ()                # files that must not be in OUT (an "accept" case's unwritten parts)
    fsize: int | None = None          # RLIMIT_FSIZE for the child: writes past it fail with EFBIG
    stream: bool = False              # the input is an IR stream (export -i SRC, ls -, convert -)
    timeout: float = 10.0
    doc: str = ""


@dataclass
class Ctx:
    """What a builder may use: the secret file outside every input, the marker a payload would
    create, and valid base files of every format (built once per session)."""
    root: Path
    secret: Path
    marker: Path
    bases: "Bases"


CASES: dict[str, Case] = {}


def case(name: str, **kw):
    def register(fn):
        if name in CASES:
            raise ValueError(f"duplicate attack case {name!r}")
        CASES[name] = Case(name=name, build=fn, doc=(fn.__doc__ or "").strip().splitlines()[0:1] and
                           (fn.__doc__ or "").strip().splitlines()[0], **kw)
        return fn
    return register


def load_cases() -> dict[str, Case]:
    for path in sorted(HERE.glob("cases_*.py")):
        importlib.import_module(f"attacks.{path.stem}")
    return CASES


class Bases:
    """Valid inputs of every format, made by irconv itself from examples/tiny-bert (a tiny BERT
    checkpoint committed to the repository), built lazily once per session in `root`. The
    attacks mutate copies of these. (irconv writing them is fine: nothing is asserted about
    their content, only that damaged copies are refused.)"""

    def __init__(self, root: Path):
        self.root = root
        self._made: dict[str, Path] = {}

    def get(self, kind: str) -> Path:
        if kind not in self._made:
            self._made[kind] = getattr(self, f"_make_{kind.replace('-', '_')}")(self.root / kind)
        return self._made[kind]

    def copy(self, kind: str, dest: Path) -> Path:
        """A fresh copy of base `kind` at dest (a directory or file, as the base is)."""
        src = self.get(kind)
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            shutil.copyfile(src, dest)
        return dest

    # ---- the bases

    def _convert(self, dest: Path, fmt: str, **options) -> Path:
        import irconv
        irconv.convert(REPO / "examples" / "tiny-bert", dest, to=fmt, **options)
        return dest

    def _make_pt(self, dest):          # config.json + model.safetensors
        shutil.copytree(REPO / "examples" / "tiny-bert", dest)
        return dest

    def _make_pt_bin(self, dest):      # config.json + pytorch_model.bin (torch zip)
        return self._convert(dest, "pt", bin=True)

    def _make_pt_sharded(self, dest):  # model-0000N-of-0000M.safetensors + index
        return self._convert(dest, "pt", max_shard_size=40_000)

    def _make_tf2(self, dest):         # config.json + tf_model.h5
        return self._convert(dest, "tf2")

    def _make_tf1(self, dest):         # bert_config.json + bert_model.ckpt.{index,data-*} + checkpoint
        return self._convert(dest, "tf1")

    def _make_stream(self, dest):      # an IR stream file
        import irconv
        ckpt = irconv.load(REPO / "examples" / "tiny-bert")
        with open(dest, "wb") as f:
            irconv.write_stream(ckpt, f)
        return dest


def materialize(c: Case, work: Path, ctx: Ctx) -> Path:
    d = work / "in"
    d.mkdir(parents=True)
    return c.build(d, ctx)


def make_ctx(root: Path) -> Ctx:
    root.mkdir(parents=True, exist_ok=True)
    secret = root / "secret.bin"
    secret.write_bytes(SECRET)
    (root / "bases").mkdir(exist_ok=True)
    return Ctx(root=root, secret=secret, marker=root / "pwned", bases=Bases(root / "bases"))


def describe(c: Case) -> str:
    return json.dumps({"name": c.name, "doc": c.doc, "verbs": c.verbs, "expect": c.expect})
