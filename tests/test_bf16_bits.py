"""bf16 (and fp8) tensors move through irconv as bits: read, relaid out (transposes, the rotary
permutation, strip reads of >= 1 MiB tensors from their file), through the pipe and written,
as the unsigned int of their width (DType.carrier), so ml_dtypes (~0.7 s to import: most of a
small model's conversion) is never imported by a conversion that does not cast. Each output is
read back by torch (safetensors / torch.load) after a conversion back, bit for bit."""
from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

from zoo import make_pt  # noqa: E402

# Runs the CLI, then says on its last stderr line whether ml_dtypes was imported.
PROBE = ("import sys, runpy; sys.argv = ['irconv'] + sys.argv[1:]\n"
         "try:\n    runpy.run_module('irconv', run_name='__main__')\n"
         "finally:\n    print('ml_dtypes imported:', 'ml_dtypes' in sys.modules, file=sys.stderr)")
# (17000, 32) bf16 is 1.09 MB: past ir/layout.TILED_FROM, so those transposes read strip by strip.
WIDE = 17000


def probe(*args, stdin=None, stdout=None):
    return subprocess.Popen([sys.executable, "-c", PROBE, *map(str, args)], stdin=stdin,
                            stdout=stdout, stderr=subprocess.PIPE)


def assert_no_ml_dtypes(proc, err: bytes):
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 0 and lines[-1] == "ml_dtypes imported: False", err.decode()


def convert(src, out, *args):
    proc = probe("convert", "-q", src, out, *args)
    _, err = proc.communicate()
    assert_no_ml_dtypes(proc, err)


def assert_same_bits(src_dir, out_dir, name="model.safetensors"):
    a, b = load_file(str(src_dir / "model.safetensors")), load_file(str(out_dir / name))
    assert sorted(a) == sorted(b)
    for k in a:
        assert b[k].dtype == torch.bfloat16 and torch.equal(a[k].view(torch.int16), b[k].view(torch.int16)), k


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama") / "src"
    make_pt("llama", "LlamaForCausalLM", seed=5, intermediate_size=WIDE).to(torch.bfloat16).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    path = tmp_path_factory.mktemp("bert") / "src"
    make_pt("bert", "BertForMaskedLM", seed=5, intermediate_size=WIDE).to(torch.bfloat16).save_pretrained(path)
    return path


@pytest.mark.parametrize("target", ["kerashub", "meta"])
def test_llama_there_and_back(llama, target, tmp_path):
    convert(llama, tmp_path / target, "--to", target)
    convert(tmp_path / target, tmp_path / "back", "--to", "pt")
    assert_same_bits(llama, tmp_path / "back")


@pytest.mark.parametrize("target", ["tf1", "flax"])
def test_bert_there_and_back(bert, target, tmp_path):
    convert(bert, tmp_path / target, "--to", target)
    convert(tmp_path / target, tmp_path / "back", "--to", "pt")
    assert_same_bits(bert, tmp_path / "back")


def test_bert_to_a_bin(bert, tmp_path):
    convert(bert, tmp_path / "out", "--to", "pt", "--bin")
    back = torch.load(tmp_path / "out" / "pytorch_model.bin", weights_only=True)
    src = load_file(str(bert / "model.safetensors"))
    assert all(torch.equal(back[k].view(torch.int16), v.view(torch.int16)) for k, v in src.items())


def test_the_pipe_to_kerashub_and_back(llama, tmp_path):
    """import pt | export kerashub, then the preset through the pipe again to pt."""
    for src, fmt, out in [(llama, "kerashub", tmp_path / "hub"), (tmp_path / "hub", "pt", tmp_path / "back")]:
        left = probe("import", "-q", "kerashub" if fmt == "pt" else "pt", src, stdout=subprocess.PIPE)
        right = probe("export", "-q", fmt, out, stdin=left.stdout)
        left.stdout.close()
        _, right_err = right.communicate()
        left_err = left.stderr.read()
        left.wait()
        assert_no_ml_dtypes(left, left_err)
        assert_no_ml_dtypes(right, right_err)
    assert_same_bits(llama, tmp_path / "back")


def test_a_cast_still_converts_the_values(bert, tmp_path):
    """--cast computes on the values, so it does import ml_dtypes, and casts as torch does."""
    proc = probe("convert", "-q", bert, tmp_path / "out", "--to", "pt", "--cast", "F32")
    _, err = proc.communicate()
    assert proc.returncode == 0 and err.decode().strip().splitlines()[-1] == "ml_dtypes imported: True"
    src, out = load_file(str(bert / "model.safetensors")), load_file(str(tmp_path / "out" / "model.safetensors"))
    assert all(out[k].dtype == torch.float32 and torch.equal(out[k], v.float()) for k, v in src.items())
