"""Bad input: one line on stderr, exit 2, nothing left at the output path."""
from __future__ import annotations

import json
import shutil
import os

import pytest

from conftest import assert_one_line_error, run_irconv, run_pipe

torch = pytest.importorskip("torch")
from bert_models import make_model  # noqa: E402
from zoo import assert_same_safetensors  # noqa: E402


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hf") / "bert"
    make_model("BertForMaskedLM").save_pretrained(d)
    return d


def leftovers(parent, name="out"):
    """Anything an aborted conversion left behind: the output or a temporary sibling."""
    return [p.name for p in parent.iterdir() if name in p.name]


def test_missing_file(tmp):
    proc = run_irconv("convert", tmp / "nope", tmp / "out", "--to", "pt")
    assert_one_line_error(proc, "nope", "no such file")
    assert leftovers(tmp) == []


def test_non_checkpoint_file(tmp):
    junk = tmp / "notes.bin"
    junk.write_text("these are not weights\n" * 10)
    proc = run_irconv("convert", junk, tmp / "out", "--to", "pt", "--model", "bert")
    assert_one_line_error(proc, "notes.bin")
    assert leftovers(tmp) == []


def test_truncated_safetensors(hf_dir, tmp):
    src = tmp / "src"
    src.mkdir()
    (src / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
    data = (hf_dir / "model.safetensors").read_bytes()
    (src / "model.safetensors").write_bytes(data[: len(data) - 100])
    proc = run_irconv("convert", src, tmp / "out", "--to", "pt")
    assert_one_line_error(proc, "model.safetensors", "truncated")
    assert leftovers(tmp) == []


def test_directory_without_weights(tmp):
    src = tmp / "src"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"model_type": "bert"}))
    proc = run_irconv("convert", src, tmp / "out", "--to", "pt", "--from", "pt")
    assert_one_line_error(proc, "no weights file")
    assert leftovers(tmp) == []


def test_unknown_model(hf_dir, tmp):
    proc = run_irconv("convert", hf_dir / "model.safetensors", tmp / "out", "--to", "pt", "--model", "gpt9")
    assert_one_line_error(proc, "'gpt9'", "bert")
    assert leftovers(tmp) == []


def test_unknown_formats(hf_dir, tmp):
    assert_one_line_error(run_irconv("convert", hf_dir, tmp / "out", "--to", "onnx9"), "'onnx9'", "pt")
    assert_one_line_error(run_irconv("import", "nope", hf_dir, "-o", tmp / "s"), "'nope'")
    assert leftovers(tmp) == [] and not (tmp / "s").exists()


def test_unknown_model_type_in_config(hf_dir, tmp):
    src = tmp / "src"
    src.mkdir()
    (src / "model.safetensors").write_bytes((hf_dir / "model.safetensors").read_bytes())
    (src / "config.json").write_text(json.dumps({"model_type": "mystery"}))
    assert_one_line_error(run_irconv("convert", src, tmp / "out", "--to", "pt"), "'mystery'")


def test_tensors_that_do_not_fit_are_all_listed(hf_dir, tmp):
    from safetensors.torch import load_file, save_file
    sd = load_file(hf_dir / "model.safetensors")
    sd["bert.encoder.layer.0.surprise.weight"] = torch.zeros(2)
    del sd["bert.encoder.layer.1.output.dense.bias"]
    src = tmp / "src"
    src.mkdir()
    save_file(sd, src / "model.safetensors", metadata={"format": "pt"})
    (src / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
    line = assert_one_line_error(run_irconv("convert", src, tmp / "out", "--to", "pt"),
                                 "surprise", "bert.encoder.layer.1.output.dense.bias")
    assert "missing" in line
    assert leftovers(tmp) == []


def test_existing_output_needs_force(hf_dir, tmp):
    """Writing into an existing directory keeps its other files; only files of the same name
    need --force, and without it nothing there changes."""
    out = tmp / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = run_irconv("convert", hf_dir, out, "--to", "pt", check=True)
    assert b"kept 1 other file" in proc.stderr
    assert (out / "keep.txt").read_text() == "mine" and (out / "model.safetensors").is_file()
    (out / "model.safetensors").write_text("mine too")
    line = assert_one_line_error(run_irconv("convert", hf_dir, out, "--to", "pt"), "--force")
    assert "model.safetensors" in line
    assert (out / "model.safetensors").read_text() == "mine too" and (out / "keep.txt").read_text() == "mine"
    assert leftovers(tmp) == ["out"]
    proc = run_irconv("convert", hf_dir, out, "--to", "pt", "--force", check=True)
    assert b"replaced model.safetensors" in proc.stderr
    assert_same_safetensors(hf_dir, out)
    assert (out / "keep.txt").read_text() == "mine"


def test_failed_import_side_leaves_no_export(tmp):
    rc, err, proc = run_pipe(["import", "pt", tmp / "missing"], ["export", "pt", tmp / "out"])
    assert rc == 2 and proc.returncode == 2
    assert_one_line_error(proc, "not an irconv IR stream")
    assert leftovers(tmp) == []


def test_truncated_stream_leaves_no_export(hf_dir, tmp):
    stream = run_irconv("import", "pt", hf_dir, "-o", tmp / "s.irs", check=True)
    data = (tmp / "s.irs").read_bytes()
    proc = run_irconv("export", "pt", tmp / "out", input=data[: len(data) // 2])
    assert_one_line_error(proc, "truncated")
    assert leftovers(tmp) == []
    assert stream.returncode == 0


def test_import_refuses_a_terminal(hf_dir):
    """`irconv import` with stdout on a terminal writes nothing binary there."""
    import pty
    import subprocess
    import sys
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "irconv", "import", "pt", str(hf_dir)],
                              stdout=slave, stderr=subprocess.PIPE, timeout=120)
        os.close(slave)
        slave = None
        assert proc.returncode == 2
        assert b"terminal" in proc.stderr
        os.set_blocking(master, False)
        try:
            written = os.read(master, 1 << 16)
        except (BlockingIOError, OSError):
            written = b""
        assert b"IRCONV" not in written
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)


def test_debug_shows_the_traceback(tmp):
    proc = run_irconv("convert", tmp / "nope", tmp / "out", "--to", "pt", "--debug")
    assert proc.returncode == 2 and b"Traceback" in proc.stderr


def test_an_error_message_stays_one_line_whatever_a_file_puts_in_it(monkeypatch, capsys):
    """A newline in a file's own text (a config value, a tensor name) is shown escaped: a file
    cannot add a line of its own (a forged "irconv: error: ...") to what irconv prints."""
    from irconv import cli
    from irconv.ir.errors import FormatError

    def fails(args):
        raise FormatError("head_dim=gelu\nirconv: error: forged\r does not fit", path="m/config.json")
    monkeypatch.setattr(cli, "cmd_ls", fails)
    assert cli.main(["ls", "whatever"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\r" not in err, err
    assert err == "irconv: error: m/config.json: head_dim=gelu\\nirconv: error: forged\\r does not fit\n"


def test_kerashub_head_counts_of_another_type_are_one_line(tmp):
    """num_attention_heads an object: the keras-hub per-head layout divided by it (an internal
    error, before)."""
    src = tmp / "m"
    src.mkdir()
    tiny = os.path.join(os.path.dirname(__file__), "..", "examples", "tiny-bert")
    config = json.load(open(os.path.join(tiny, "config.json")))
    (src / "config.json").write_text(json.dumps(dict(config, num_attention_heads={"a": 1},
                                                     hidden_act="gelu_pytorch_tanh")))
    shutil.copy(os.path.join(tiny, "model.safetensors"), src / "model.safetensors")
    proc = run_irconv("convert", src, tmp / "out", "--to", "kerashub", "--base-model", "-q")
    assert_one_line_error(proc, "num_attention_heads")
    assert not (tmp / "out").exists()


def test_a_source_that_is_a_dangling_or_looping_link_says_so(tmp):
    (tmp / "a").symlink_to(tmp / "b")
    (tmp / "b").symlink_to(tmp / "a")
    (tmp / "gone").symlink_to(tmp / "nothing-here")
    for src in ("a", "gone"):
        assert_one_line_error(run_irconv("convert", tmp / src, tmp / "out", "--to", "pt"), "leads nowhere")
    assert_one_line_error(run_irconv("ls", tmp / "absent"), "no such file or directory")
    assert not (tmp / "out").exists()


def test_a_flax_array_of_millions_of_dimensions_is_refused_in_a_short_line(tmp):
    """The shape itself was quoted: an 11.7 MB error line."""
    import msgpack
    src = tmp / "flax"
    src.mkdir()
    payload = msgpack.packb([[1] * 3_000_000, "float32", b""])
    (src / "flax_model.msgpack").write_bytes(msgpack.packb({"params": {"w": msgpack.ExtType(1, payload)}}))
    proc = run_irconv("convert", src, tmp / "out", "--to", "pt")
    line = assert_one_line_error(proc, "flax_model.msgpack", "3,000,000 dimensions")
    assert len(line) < 500
    assert not (tmp / "out").exists()


def test_a_megabyte_of_a_files_own_text_in_an_error_is_cut(tmp):
    """Whatever quotes a name from the file (here a tensor of an unknown dtype named by a MB of
    text), the line stays within a few KB and still names the file first."""
    import json
    import struct
    src = tmp / "src"
    src.mkdir()
    header = json.dumps({"w" * 1_000_000: {"dtype": "Q99", "shape": [1], "data_offsets": [0, 1]}}).encode()
    (src / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0")
    proc = run_irconv("convert", src, tmp / "out", "--to", "tf2")
    line = assert_one_line_error(proc, "model.safetensors", "more characters")
    assert len(line) < 4200
    assert line.index("model.safetensors") < line.index("www")
    assert not (tmp / "out").exists()


@pytest.mark.parametrize("read", ["save", "convert", "stream"])
def test_the_library_reads_no_file_through_a_link_out_of_its_input(tmp, read):
    """irconv.load() reads its tensors later (on save, on write_stream): a TF checkpoint's data
    shard that is a link out of the directory was read through it by the library (the CLI
    refused it); now every read of a loaded checkpoint is held to its input, and nothing is
    written. The same file given as itself is read."""
    import io
    from pathlib import Path
    import irconv
    tiny = os.path.join(os.path.dirname(__file__), "..", "examples", "tiny-bert")
    run_irconv("convert", "-q", tiny, tmp / "t1", "--to", "tf1", check=True)
    (tmp / "elsewhere").mkdir()
    data = next((tmp / "t1").glob("*.data-*"))
    shutil.move(data, tmp / "elsewhere" / data.name)
    data.symlink_to(tmp / "elsewhere" / data.name)
    with pytest.raises(irconv.IrconvError, match="symbolic link out of the input directory"):
        if read == "save":
            irconv.save(irconv.load(tmp / "t1"), tmp / "out", "pt")
        elif read == "convert":
            irconv.convert(tmp / "t1", tmp / "out", to="pt")
        else:
            irconv.write_stream(irconv.load(tmp / "t1"), io.BytesIO())
    assert not (tmp / "out").exists()
    for p in (tmp / "t1").iterdir():
        if not p.is_symlink():
            shutil.copy(p, tmp / "elsewhere" / p.name)
    ckpt = irconv.load(tmp / "elsewhere" / "bert_model.ckpt.index")
    irconv.save(ckpt, tmp / "out", "pt")
    assert_same_safetensors(Path(tiny), tmp / "out")    # read by safetensors: the model, bit for bit
