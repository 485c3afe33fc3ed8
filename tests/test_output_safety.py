"""No command destroys a user's file (issue 13): OUT is never the input, an existing OUT keeps
every file irconv does not write, a killed run's temporary directory is cleaned by the next
run, and an interrupt is one line, exit 130."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, run_irconv

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "examples" / "tiny-bert"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def hub(tmp):
    """A hub-style model directory: weights, config, tokenizer files, a card and a
    sentence-transformers module folder."""
    d = tmp / "m"
    shutil.copytree(TINY, d)
    (d / "README.md").write_text("# model card\n")
    (d / "tokenizer.json").write_text('{"version": "1.0"}\n')
    (d / "1_Pooling").mkdir()
    (d / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}\n')
    return d


@pytest.mark.parametrize("force", [False, True])
def test_out_is_src_is_refused_and_src_untouched(hub, force):
    before = snapshot(hub)
    proc = run_irconv("convert", hub, hub, "--to", "tf2", *(["--force"] if force else []))
    line = assert_one_line_error(proc, "is the input itself")
    assert "model.safetensors" in line and "tokenizer.json" in line     # what would have been lost
    assert snapshot(hub) == before


def test_out_containing_src_is_refused(hub, tmp):
    before = snapshot(hub)
    assert_one_line_error(run_irconv("convert", hub / "model.safetensors", hub, "--to", "tf2", "--force",
                                     "--model", "bert"), "contains the input")
    assert_one_line_error(run_irconv("convert", hub, tmp, "--to", "pt", "--force"), "contains the input")
    assert snapshot(hub) == before


def test_out_inside_src_may_not_replace_its_files(hub):
    """m/1_Pooling is part of the input: writing config.json there would replace the input's own."""
    before = snapshot(hub)
    assert_one_line_error(run_irconv("convert", hub, hub / "1_Pooling", "--to", "pt", "--force"),
                          "inside the input", "config.json")
    assert snapshot(hub) == before
    # A new sub-directory clobbers nothing.
    run_irconv("convert", hub, hub / "tf2", "--to", "tf2", check=True)
    assert {k: v for k, v in snapshot(hub).items() if not k.startswith("tf2/")} == before


def test_writing_into_an_existing_directory_keeps_other_files(hub, tmp):
    """Adding tf_model.h5 beside model.safetensors: every other file is kept byte for byte."""
    out = tmp / "out"
    shutil.copytree(hub, out)
    before = snapshot(out)
    proc = run_irconv("convert", hub, out, "--to", "tf2", check=True)
    after = snapshot(out)
    assert set(after) == set(before) | {"tf_model.h5"}
    assert all(after[k] == v for k, v in before.items() if k != "config.json")
    assert b"kept" in proc.stderr
    # tf_model.h5 is there now: without --force it is a clash, named; with it, only it is replaced.
    assert_one_line_error(run_irconv("convert", hub, out, "--to", "tf2"), "tf_model.h5", "--force")
    proc = run_irconv("convert", hub, out, "--to", "tf2", "--force", "--cast", "F16", check=True)
    assert b"replaced tf_model.h5" in proc.stderr
    assert set(snapshot(out)) == set(after)
    assert snapshot(out)["README.md"] == before["README.md"]


def test_a_different_config_is_a_clash(hub, tmp):
    out = tmp / "out"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert_one_line_error(run_irconv("convert", hub, out, "--to", "pt"), "config.json", "--force")
    assert json.loads((out / "config.json").read_text()) == {"model_type": "gpt2"}


def test_import_o_never_replaces_a_file_silently(hub, tmp):
    target = tmp / "keep.irs"
    target.write_bytes(b"precious")
    assert_one_line_error(run_irconv("import", "pt", hub, "-o", target), "already exists", "--force")
    assert target.read_bytes() == b"precious"
    run_irconv("import", "pt", hub, "-o", target, "--force", check=True)
    assert target.read_bytes()[:4] != b"prec"


def _big_model(d: Path, rows: int = 3_000_000) -> Path:
    """tiny-bert with a vocabulary large enough (~400 MB) that a conversion takes a while."""
    from safetensors.numpy import load_file, save_file
    tensors = load_file(TINY / "model.safetensors")
    rng = np.random.default_rng(0)
    for name, t in list(tensors.items()):
        if t.shape and t.shape[0] == 128:
            tensors[name] = rng.standard_normal((rows, *t.shape[1:]), dtype=np.float32)
    d.mkdir()
    save_file(tensors, str(d / "model.safetensors"))
    config = json.loads((TINY / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(dict(config, vocab_size=rows)))
    return d


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "irconv", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _wait_for(pred, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.002)
    return False


def test_stale_temporary_directory_of_a_killed_run_is_cleaned(tmp):
    src = _big_model(tmp / "big")
    out = tmp / "out"
    siblings = lambda: [p for p in tmp.iterdir() if p.name.startswith(".out.irconv-")]
    proc = _start("convert", src, out, "--to", "tf2")
    assert _wait_for(siblings), "the conversion never started writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = siblings()
    assert left and not out.exists()            # what a SIGKILL leaves: the writer could not clean
    # `ls` of the output names it; the next conversion to the same OUT removes it.
    proc = run_irconv("convert", TINY, out, "--to", "pt", check=True)
    assert not siblings() and out.is_dir()
    assert b"killed run" in proc.stderr
    # A temporary directory of a live process is left alone.
    live = tmp / f".out2.irconv-{os.getpid()}-abcd"
    live.mkdir()
    run_irconv("convert", TINY, tmp / "out2", "--to", "pt", check=True)
    assert live.is_dir()


def test_ls_mentions_a_stale_temporary_directory(tmp):
    out = tmp / "m"
    run_irconv("convert", TINY, out, "--to", "pt", check=True)
    dead = subprocess.run(["true"]).args and 2 ** 22 + 12345       # beyond pid_max's default: no process
    (tmp / f".m.irconv-{dead}-zz").mkdir()
    proc = run_irconv("ls", out, check=True)
    assert b"killed run" in proc.stderr


def test_interrupt_during_start_up_is_one_line(tmp):
    """Ctrl-C while the interpreter is still importing: one line, exit 130, no traceback."""
    for delay in (0.15, 0.4):
        proc = _start("convert", TINY, tmp / f"out-{delay}", "--to", "pt")
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0 or err.startswith(b"irconv: wrote "):
            # Finished before the signal (under load, it may land in interpreter teardown after
            # the output was committed, killing with -SIGINT): nothing of start-up to check.
            continue
        assert proc.returncode == 130, err
        assert err.decode().strip() == "irconv: interrupted; no output was written", err


def test_an_interrupt_inside_an_import_is_raised_once_the_import_is_over(tmp_path):
    """irconv imports its codecs when first used, on any thread. A KeyboardInterrupt raised
    inside importlib can leave its import lock held; the next import on a layout or load thread
    then waits forever, and so does the cleanup that joins that thread (seen: ~1 run in 100
    of a tf2 convert interrupted at 0.1-0.3 s hung). So the CLI's handler lets an import that
    is running finish, then raises. Here a module interrupts itself halfway through its body."""
    (tmp_path / "halfway.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\n"
        "for _ in range(20):\n    time.sleep(0.005)\nDONE = True\n")
    (tmp_path / "other.py").write_text("X = 1\n")
    code = """
import signal, sys, threading, time
from irconv import cli
signal.signal(signal.SIGINT, cli._on_interrupt)
try:
    import halfway
    time.sleep(2)
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted after the import:", getattr(sys.modules.get("halfway"), "DONE", False))
thread = threading.Thread(target=lambda: __import__("other"))
thread.start()
thread.join(10)
print("a thread imports:", not thread.is_alive())
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=60)
    assert proc.stdout.decode().splitlines() == ["interrupted after the import: True", "a thread imports: True"], \
        (proc.stdout, proc.stderr)


def test_interrupt_during_a_conversion_is_one_line_and_leaves_nothing(tmp):
    src = _big_model(tmp / "big")
    out = tmp / "out"
    proc = _start("convert", src, out, "--to", "tf2")
    assert _wait_for(lambda: any(p.name.startswith(".out.irconv-") for p in tmp.iterdir()))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.decode().strip().splitlines() == ["irconv: interrupted; no output was written"], err
    assert not out.exists() and not [p for p in tmp.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("directory", [True, False])
def test_an_interrupt_just_after_the_temporary_is_made_leaves_nothing(tmp, monkeypatch, directory):
    """The window the test above can only hit by luck: Ctrl-C landing right after the
    temporary sibling is made, before the code that would remove it is running. A made-up
    KeyboardInterrupt on the return from the very call that creates it."""
    from irconv.exporters import output
    real = os.mkdir if directory else os.open

    def made_then_interrupted(*args, **kwargs):
        result = real(*args, **kwargs)
        if not directory:
            os.close(result)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "mkdir" if directory else "open", made_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        with output.temporary(tmp / "out", directory=directory):
            pass
    monkeypatch.undo()
    assert list(tmp.iterdir()) == []


def test_a_stale_weights_file_of_the_same_format_is_a_clash(tmp):
    """--bin into a directory holding model.safetensors: transformers would load the old
    safetensors file, not the new .bin, so it is a clash, and --force removes it."""
    torch = pytest.importorskip("torch")
    out = tmp / "out"
    run_irconv("convert", TINY, out, "--to", "pt", check=True)
    (out / "README.md").write_text("mine")
    assert_one_line_error(run_irconv("convert", TINY, out, "--to", "pt", "--bin"), "model.safetensors", "--force")
    proc = run_irconv("convert", TINY, out, "--to", "pt", "--bin", "--cast", "F16", "--force", check=True)
    assert b"model.safetensors" in proc.stderr                 # named as replaced
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "pytorch_model.bin"]
    state = torch.load(out / "pytorch_model.bin", weights_only=True)
    assert {t.dtype for t in state.values()} == {torch.float16}


# ---------------------------------------------------------------- a file of the input, links, places


@pytest.mark.parametrize("force", [False, True])
def test_out_naming_a_file_of_the_input_is_refused(hub, tmp, force):
    """OUT = a file in SRC, a bare weights file's config.json beside it, or (import -o) the
    weights themselves: refused, --force or not, and nothing of the input changes."""
    flag = ["--force"] if force else []
    before = snapshot(hub)
    assert_one_line_error(run_irconv("convert", hub, hub / "model.safetensors", "--to", "pt", *flag),
                          "is a file of the input")
    assert_one_line_error(run_irconv("convert", hub / "model.safetensors", hub / "config.json", "--to", "pt",
                                     *flag), "config.json")
    assert_one_line_error(run_irconv("import", "pt", hub, "-o", hub / "model.safetensors", *flag),
                          "model.safetensors")
    assert_one_line_error(run_irconv("import", "pt", hub / "model.safetensors", "-o", hub / "config.json", *flag),
                          "config.json")
    assert snapshot(hub) == before


def test_a_stream_on_stdin_is_an_input(hub, tmp):
    """`export pt s.irs --force < s.irs` would replace the stream being read: refused as -i is."""
    stream = tmp / "s.irs"
    run_irconv("import", "pt", hub, "-o", stream, check=True)
    data = stream.read_bytes()
    for args in (["export", "pt", stream, "--force"], ["convert", "-", stream, "--to", "pt", "--force"]):
        with open(stream, "rb") as f:
            proc = subprocess.run([sys.executable, "-m", "irconv", *map(str, args)], stdin=f, capture_output=True)
        assert_one_line_error(proc, "is the input itself")
        assert stream.read_bytes() == data


def test_nothing_is_written_through_a_link_inside_out(hub, tmp):
    """OUT/1_Pooling a link to another directory (or to the input): the carried 1_Pooling/config.json
    would land outside OUT; refused before anything moves, --force or not."""
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    for target, flag in ((elsewhere, []), (hub, ["--force"])):
        out = tmp / f"out-{target.name}"
        out.mkdir()
        (out / "1_Pooling").symlink_to(target)
        before = snapshot(hub)
        assert_one_line_error(run_irconv("convert", hub, out, "--to", "pt", *flag), "1_Pooling", "symbolic link")
        assert snapshot(hub) == before and not list(elsewhere.iterdir())
        assert sorted(p.name for p in out.iterdir()) == ["1_Pooling"]


@pytest.mark.parametrize("fmt, blocked", [("pt", "model.safetensors"), ("tf1", "checkpoint")])
def test_a_refused_commit_has_changed_nothing(hub, tmp, fmt, blocked):
    """A directory where a written file goes (found only at the commit): refused before the
    first file moves, so the config and the other files there are as they were."""
    out = tmp / "out"
    out.mkdir()
    (out / blocked).mkdir()
    for name in ("config.json", "bert_config.json"):
        (out / name).write_text('{"old": 1}\n')
    before = snapshot(out)
    assert_one_line_error(run_irconv("convert", hub, out, "--to", fmt, "--force"), "is a directory")
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == sorted([
        "bert_config.json", blocked, "config.json"])


def test_writing_the_same_output_again_holds_no_whole_file(hub, tmp):
    """Files already there are compared a piece at a time (they may be GBs): the summary says
    nothing new was written, and the count of other files kept is right."""
    out = tmp / "out"
    run_irconv("convert", hub, out, "--to", "pt", check=True)
    (out / "notes.txt").write_text("mine\n")
    proc = run_irconv("convert", hub, out, "--to", "pt", "--force", check=True)
    assert "nothing new" in proc.stderr.decode() and "kept 1 other file" in proc.stderr.decode(), proc.stderr


def test_import_o_gives_the_stream_the_mode_of_a_new_file(hub, tmp):
    old = os.umask(0o022)
    try:
        run_irconv("import", "pt", hub, "-o", tmp / "s.irs", check=True)
    finally:
        os.umask(old)
    assert (tmp / "s.irs").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("args", [["convert", TINY, "", "--to", "pt"], ["convert", "", "OUT", "--to", "pt"],
                                  ["import", "pt", TINY, "-o", ""], ["export", "pt", "OUT", "-i", ""]])
def test_an_empty_path_is_refused(tmp, args):
    """An unset shell variable ("") is not the current directory."""
    (tmp / "mine.txt").write_text("mine\n")
    proc = run_irconv(*args, cwd=tmp)
    assert_one_line_error(proc, "empty path")
    assert sorted(p.name for p in tmp.iterdir()) == ["mine.txt"]


def test_argument_errors_are_one_line(tmp):
    for args in (["convert", TINY, tmp / "o", "--to", "pt", "--jobs", "-1"], ["convert", TINY],
                 ["convert", TINY, tmp / "o", "--to", "pt", "--no-such-flag"]):
        assert_one_line_error(run_irconv(*args), "--help")


def test_write_errors_name_the_file_of_out(hub, tmp):
    """A write that fails (here: files over a size limit, EFBIG) names OUT's file, not the
    temporary sibling it was going to, and says nothing was written."""
    import resource
    for fmt, name in (("pt", "model.safetensors"), ("tf1", "bert_model.ckpt.data-00000-of-00001"),
                      ("flax", "flax_model.msgpack")):
        out = tmp / f"o-{fmt}"
        proc = subprocess.run([sys.executable, "-m", "irconv", "convert", str(hub), str(out), "--to", fmt],
                              capture_output=True, preexec_fn=lambda: (
                                  signal.signal(signal.SIGXFSZ, signal.SIG_IGN),
                                  resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))))
        line = assert_one_line_error(proc, "nothing was written")
        assert line.startswith(f"irconv: error: {out / name}: cannot write the output"), line
        assert not out.exists() and not [p for p in tmp.iterdir() if p.name.startswith(f".o-{fmt}")]


def test_set_may_not_make_a_given_config_contradict_the_tensors(tmp):
    proc = run_irconv("convert", TINY, tmp / "o", "--to", "pt", "--set", "hidden_size=7")
    assert_one_line_error(proc, "--set hidden_size", "hidden_size=7", "32")
    assert not (tmp / "o").exists()
    run_irconv("convert", TINY, tmp / "o", "--to", "pt", "--set", "hidden_dropout_prob=0.2", check=True)
    assert json.loads((tmp / "o" / "config.json").read_text())["hidden_dropout_prob"] == 0.2


# ---------------------------------------------------------------- signals


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_clean_up_as_ctrl_c_does(tmp, sig):
    src = _big_model(tmp / "big")
    out = tmp / "out"
    proc = _start("convert", src, out, "--to", "pt")
    assert _wait_for(lambda: any(p.name.startswith(".out.irconv-") for p in tmp.iterdir()))
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + getattr(signal, sig), err
    assert err.decode().strip().splitlines() == [f"irconv: stopped by {sig}; no output was written"], err
    assert not out.exists() and not [p for p in tmp.iterdir() if p.name.startswith(".out")]


def test_ctrl_c_pressed_again_during_the_cleanup_is_taken_as_the_first(tmp):
    """The second and third Ctrl-C wait for the first one's cleanup: one line, exit 130, nothing left."""
    src = _big_model(tmp / "big")
    out = tmp / "out"
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "irconv"), "convert", str(src),
                             str(out), "--to", "tf2"], stderr=subprocess.PIPE)
    assert _wait_for(lambda: any(p.name.startswith(".out.irconv-") for p in tmp.iterdir()))
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.005)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.decode().strip().splitlines() == ["irconv: interrupted; no output was written"], err
    assert not out.exists() and not [p for p in tmp.iterdir() if p.name.startswith(".out")]


def test_an_interrupt_during_the_commit_waits_for_it(hub, tmp, monkeypatch, capsys):
    """Ctrl-C while the files move into an existing OUT: the moves end first, so OUT is never
    half old, half new, and the line says it was written."""
    from irconv import cli
    from irconv.exporters import output
    out = tmp / "out"
    out.mkdir()
    (out / "mine.txt").write_text("mine\n")
    real = os.replace
    moved = []

    def replace(a, b):
        if output.moving():
            if not moved:
                os.kill(os.getpid(), signal.SIGINT)     # lands while the first file moves
            moved.append(b)
        return real(a, b)
    monkeypatch.setattr(output.os, "replace", replace)
    monkeypatch.setattr(output, "completed", [])
    monkeypatch.setattr(cli, "_interrupts", [])
    previous = signal.getsignal(signal.SIGINT)
    try:
        code = cli.main(["convert", str(hub), str(out), "--to", "pt", "-q"])
    finally:
        signal.signal(signal.SIGINT, previous)
        output.held.clear()
    assert code == 130 and len(moved) > 1
    assert capsys.readouterr().err.strip().endswith(f"after {out} was written completely")
    assert sorted(p.name for p in out.iterdir()) == sorted(["mine.txt", *(p.name for p in hub.iterdir())])
    from safetensors.numpy import load_file
    src, got = load_file(hub / "model.safetensors"), load_file(out / "model.safetensors")
    assert sorted(src) == sorted(got) and all(src[k].tobytes() == got[k].tobytes() for k in src)
