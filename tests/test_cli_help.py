"""The command line helps (issue 14): names people type, help that says what to give, a
summary after every write, progress for logs, ls --raw, and a start-up that imports only what
the command needs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_irconv

TINY = Path(__file__).resolve().parent.parent / "examples" / "tiny-bert"


@pytest.mark.parametrize("spelling,fmt", [("pytorch", "pt"), ("PyTorch", "pt"), ("safetensors", "pt"),
                                          ("tensorflow", "tf2"), ("TF", "tf2"), ("h5", "tf2")])
def test_format_names_people_type(spelling, fmt, tmp):
    out = tmp / "out"
    run_irconv("convert", TINY, out, "--to", spelling, check=True)
    assert (out / ("model.safetensors" if fmt == "pt" else "tf_model.h5")).is_file()


def test_unknown_names_say_did_you_mean(tmp):
    assert_one_line_error(run_irconv("convert", TINY, tmp / "o", "--to", "tensorflo"), "did you mean 'tf2'")
    assert_one_line_error(run_irconv("convert", TINY / "model.safetensors", tmp / "o", "--to", "pt",
                                     "--model", "bret"), "did you mean 'bert'")
    assert not (tmp / "o").exists()


@pytest.mark.parametrize("spelling", ["fp16", "float16", "F16", "half"])
def test_cast_spellings(spelling, tmp):
    safetensors = pytest.importorskip("safetensors.numpy")
    run_irconv("convert", TINY, tmp / "o", "--to", "pt", "--cast", spelling, check=True)
    assert {str(a.dtype) for a in safetensors.load_file(tmp / "o" / "model.safetensors").values()} == {"float16"}


def test_a_shard_size_without_a_unit_is_refused(tmp):
    assert_one_line_error(run_irconv("convert", TINY, tmp / "o", "--to", "pt", "--max-shard-size", "20"),
                          "no unit", "20GB")


def test_help_says_what_to_give():
    top = run_irconv("--help", check=True).stdout.decode()
    assert "examples:" in top and "irconv convert" in top
    convert = run_irconv("convert", "--help", check=True).stdout.decode()
    assert "(required) output format" in convert and "the output directory" in convert
    assert "--set KEY=VALUE" in convert and "--accept-defaults" in convert and "--dry-run" in convert
    verify = run_irconv("verify", "--help", check=True).stdout.decode()
    assert "irconv[test]" in verify and "random" in verify and "--text" in verify


def test_help_imports_no_codec():
    """--help, formats and argument errors never import ml_dtypes (a second of start-up)."""
    code = ("import sys\nfrom irconv.cli import main\n"
            "for argv in (['--help'], ['formats'], ['convert', 'a']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('ml_dtypes' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.stdout.decode().strip().splitlines()[-1] == "False", proc.stdout


def test_summary_after_every_write_and_quiet(tmp):
    proc = run_irconv("convert", TINY, tmp / "o", "--to", "tf2", check=True)
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"irconv: wrote {tmp / 'o'}: ")
    assert "tf_model.h5" in lines[0] and "46 tensors" in lines[0]
    assert run_irconv("convert", TINY, tmp / "q", "--to", "tf2", "-q", check=True).stderr == b""


def test_progress_goes_to_logs_when_asked(tmp):
    proc = run_irconv("convert", TINY, tmp / "o", "--to", "pt", "--progress", check=True)
    err = proc.stderr.decode()
    assert "export pt" in err and "100%" in err        # tqdm's bar, with a not-a-terminal stderr


def test_ls_raw_lists_a_file_that_fits_no_family(tmp):
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file
    import numpy as np
    path = tmp / "model.safetensors"
    save_file({"encoder.mystery.weight": np.zeros((3, 4), np.float32)}, str(path))
    assert run_irconv("ls", path).returncode == 2
    listing = run_irconv("ls", path, "--raw", check=True).stdout.decode()
    assert "encoder.mystery.weight" in listing and "3x4" in listing and "F32" in listing


def test_stream_dry_run_names_every_file(tmp):
    stream = tmp / "m.irs"
    run_irconv("import", "pt", TINY, "-o", stream, check=True)
    proc = run_irconv("export", "pt", tmp / "o", "-i", stream, "--max-shard-size", "40KB", "--dry-run", check=True)
    text = proc.stdout.decode()
    assert "model-00001-of-" in text and not (tmp / "o").exists()
    config = json.loads(text.split("# config.json: ", 1)[1].splitlines()[0])
    assert config["num_attention_heads"] == 4
