"""The hostile-input corpus (tests/attacks/): every crafted file is refused with one line
naming it, within bounded time and memory, leaving nothing at OUT, running nothing and reading
nothing outside the input. See tests/attacks/README.md."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from attacks.corpus import SECRET, load_cases, make_ctx, materialize

CASES = load_cases()
MEM = 1 << 30          # address space a child may map beyond the interpreter's own
MAX_RSS = 768 << 20    # what a refused input may make resident, all told


class ForkServer:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "attacks" / "forkserver.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = json.loads(self.proc.stdout.readline())
        assert ready == {"ready": True}

    def run(self, argv, cwd: Path, stdin=None, timeout=10.0, fsize=None, pipe=False):
        req = {"argv": [str(a) for a in argv], "cwd": str(cwd), "stdout": str(cwd / "stdout.txt"),
               "stderr": str(cwd / "stderr.txt"), "stdin": str(stdin) if stdin else None, "stdin_pipe": pipe,
               "timeout": timeout, "mem": MEM, "fsize": fsize}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        reply["stdout"] = (cwd / "stdout.txt").read_bytes()
        reply["stderr"] = (cwd / "stderr.txt").read_bytes().decode(errors="replace")
        return reply

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def server():
    s = ForkServer()
    yield s
    s.close()


@pytest.fixture(scope="session")
def ctx(tmp_path_factory):
    return make_ctx(tmp_path_factory.mktemp("attacks-ctx"))


def _argv(c, verb, src: Path, out: Path):
    """(argv, stdin) for one verb on one case."""
    inp = "-" if c.stream else src
    stdin = src if c.stream else None
    if verb == "convert":
        return ["convert", inp, out, "--to", c.to, *c.args, *c.out_args], stdin
    if verb == "ls":
        return ["ls", inp, *c.args], stdin
    if verb == "import":
        return ["import", c.fmt, src, "-o", out, *c.args], None
    if verb == "export":
        assert c.stream, f"{c.name}: export runs on stream cases only"
        return ["export", c.to, out, "-i", src, *c.out_args], None
    if verb == "diff":
        return ["diff", src, src, *c.args], None
    raise AssertionError(verb)


def _written(work: Path):
    """Every file under the work directory except the input and the captured output."""
    for p in work.rglob("*"):
        if p.is_file() and "in" not in p.relative_to(work).parts[:1] and p.name not in ("stdout.txt", "stderr.txt"):
            yield p


# A stream case's convert and ls run twice: stdin the file itself, and stdin a pipe (as after
# `irconv import ... |`), where export splices tensor bytes from the pipe into the output.
PARAMS = [pytest.param(name, verb, id=f"{name}:{verb}") for name, c in CASES.items()
          for verb in (*c.verbs, *(f"{v}|pipe" for v in c.verbs if c.stream and v in ("convert", "ls")))]


@pytest.mark.parametrize("name,verb", PARAMS)
def test_attack(name, verb, server, ctx, tmp_path):
    c = CASES[name]
    src = materialize(c, tmp_path, ctx)
    out = tmp_path / "out"
    verb, pipe = verb.split("|")[0], verb.endswith("|pipe")
    argv, stdin = _argv(c, verb, src, out)
    r = server.run(argv, tmp_path, stdin=stdin, timeout=c.timeout, fsize=c.fsize if verb in ("convert", "export") else None,
                   pipe=pipe)
    err = r["stderr"]
    what = f"{name} {verb}: rc={r['rc']} signal={r['signal']} {r['seconds']:.1f}s\n{err[-3000:]}"
    assert not r["timed_out"], f"did not finish within {c.timeout}s: " + what
    assert r["signal"] is None, "crashed: " + what
    assert r["maxrss"] < MAX_RSS, f"resident {r['maxrss'] >> 20} MiB: " + what
    assert "Traceback" not in err and "internal error" not in err, what
    clean = c.expect == "clean" and r["rc"] == 0
    if c.expect == "accept":
        assert r["rc"] == 0, what
        if verb in ("convert", "import", "export"):
            assert out.exists(), what
        for needle in (c.needle,) if isinstance(c.needle, str) else c.needle:
            assert needle.lower() in err.lower(), f"stderr does not say {needle!r}: " + what
        written = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        assert not set(written) & set(c.absent), f"{written} holds some of {c.absent}: " + what
    elif not clean:
        assert r["rc"] == 2, what
        lines = [l for l in err.splitlines() if l.strip() and not l.startswith("irconv: note:")]
        assert len(lines) == 1 and lines[0].startswith("irconv: error: "), what
        line = lines[0].lower()
        named = c.names if c.names is not None else src.name
        assert named.lower() in line, f"the error does not name {named!r}: " + what
        needles = c.pipe_needle if pipe and c.pipe_needle is not None else c.needle
        for needle in (needles,) if isinstance(needles, str) else needles:
            assert needle.lower() in line, f"the error does not say {needle!r}: " + what
        assert not out.exists(), what
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "temporary sibling left: " + what
    assert not ctx.marker.exists(), "a payload ran: " + what
    assert SECRET[:32] not in r["stdout"], "the secret file leaked to stdout: " + what
    for p in _written(tmp_path):
        assert SECRET[:32] not in p.read_bytes(), f"the secret file leaked into {p}: " + what


def test_force_onto_a_symlinked_out_changes_nothing(server, ctx, tmp_path):
    """--force onto an OUT that is a symlink to a directory: refused before anything is written
    (it used to rename the link away, put the output in its place and then fail, exit 2)."""
    src = ctx.bases.copy("pt", tmp_path / "src")
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    link = tmp_path / "out"
    link.symlink_to(target)
    r = server.run(["convert", src, link, "--to", "pt", "--force"], tmp_path)
    lines = [l for l in r["stderr"].splitlines() if l.strip()]
    assert r["rc"] == 2 and len(lines) == 1 and "symbolic link" in lines[0], r
    assert link.is_symlink() and Path(link.readlink()) == target
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_a_preset_never_imports_what_it_names(ctx, tmp_path):
    """config.json, task.json and tokenizer.json name keras_hub modules (and a crafted one any
    module): irconv reads them as text. With booby-trapped keras, keras_hub and os-named
    packages first on sys.path, a task preset with a tokenizer converts and none of them runs."""
    from attacks.cases_kerashub import _copy
    src = _copy(tmp_path, ctx, "classifier")
    trap = tmp_path / "trap"
    for pkg in ("keras", "keras_hub", "evil_module"):
        (trap / pkg).mkdir(parents=True)
        (trap / pkg / "__init__.py").write_text(f"open({str(ctx.marker)!r}, 'w').write({pkg!r})\n")
    config = json.loads((src / "config.json").read_text())
    (src / "preprocessor.json").write_text(json.dumps({"module": "evil_module", "class_name": "Evil", "config": {}}))
    code = ("import sys; from irconv import cli; rc = cli.main(sys.argv[1:]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'keras_hub', 'evil_module'))); "
            "sys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(trap), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code, "convert", str(src), str(tmp_path / "out"), "--to", "pt"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout
    assert not ctx.marker.exists(), ctx.marker.read_text()
    assert config["module"].startswith("keras_hub.") and (tmp_path / "out" / "vocab.txt").is_file()


def test_a_hugging_face_cache_snapshot_is_read_through_its_links(server, ctx, tmp_path):
    """A preset in the Hugging Face cache: snapshots/<rev>/ holds links into the repository's
    blobs/, outside the snapshot directory. Those are the preset's own files, read as such
    (a link anywhere else is refused: kerashub/*-link-outside)."""
    from attacks.cases_kerashub import _copy
    src = _copy(tmp_path, ctx, "classifier")
    repo = tmp_path / "models--keras--tiny"
    snapshot = repo / "snapshots" / "0123abcd"
    (repo / "blobs").mkdir(parents=True)
    for p in sorted(src.rglob("*")):
        if p.is_file():
            blob = repo / "blobs" / f"blob{len(list((repo / 'blobs').iterdir()))}"
            p.replace(blob)
            link = snapshot / p.relative_to(src)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(Path("../" * (len(link.relative_to(repo).parts) - 1)) / "blobs" / blob.name)
    r = server.run(["convert", snapshot, tmp_path / "out", "--to", "pt"], tmp_path)
    assert r["rc"] == 0, r["stderr"]
    assert {"model.safetensors", "vocab.txt"} <= {p.name for p in (tmp_path / "out").iterdir()}, r["stderr"]
