"""`irconv verify`: both sides run in their real frameworks on the same inputs.

The models here are made by torch/transformers (and one by transformers' own PT->TF
conversion); verify is the thing under test, so every check goes through the CLI: in a
subprocess where the process matters (exit codes, what gets imported), through main() in
this process elsewhere, to keep the module fast."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

from bert_models import make_model  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402

FRAMEWORKS = ("torch", "tensorflow", "transformers", "keras", "tf_keras", "jax")


def result_rows(stdout: bytes | str) -> dict[str, list[str]]:
    """name -> [shape, max_abs_diff, verdict] of each per-output line."""
    rows = {}
    text = stdout.decode() if isinstance(stdout, bytes) else stdout
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] in ("ok", "FAIL"):
            rows[parts[0]] = parts[1:]
    return rows


def verify_in_process(capsys, *args) -> tuple[int, str]:
    """`irconv verify ARGS` through the CLI's main() in this process, where torch and
    transformers are already imported: the subprocess start-up is the slow part."""
    from irconv.cli import main
    try:
        code = main(["verify", *map(str, args)])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def pt_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("verify") / "pt"
    make_model("BertForMaskedLM").save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def perturbed_dir(pt_dir):
    directory = pt_dir.parent / "perturbed"
    shutil.copytree(pt_dir, directory)
    weights = load_file(directory / "model.safetensors")
    # One element of a matrix: a constant added to a bias before LayerNorm would cancel out.
    weights["bert.encoder.layer.1.output.dense.weight"][0, 0] += 0.5
    save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def test_pt_vs_irconv_bin_is_exact(pt_dir, tmp):
    out = tmp / "bin"
    run_irconv("convert", pt_dir, out, "--to", "pt", "--bin", check=True)
    assert (out / "pytorch_model.bin").is_file()
    proc = run_irconv("verify", pt_dir, out)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    rows = result_rows(proc.stdout)
    assert rows == {"logits": ["2x7x99", "0", "ok"]}, proc.stdout.decode()
    assert "max abs diff 0)" in proc.stdout.decode()


def test_pt_vs_transformers_tf(pt_dir, tmp, capsys):
    pytest.importorskip("tensorflow")
    tf_dir = tmp / "tf"
    transformers.TFBertForMaskedLM.from_pretrained(pt_dir, from_pt=True).save_pretrained(tf_dir)
    code, text = verify_in_process(capsys, pt_dir, tf_dir)
    assert code == 0, text
    assert "TFBertForMaskedLM" in text
    rows = result_rows(text)
    assert list(rows) == ["logits"] and rows["logits"][2] == "ok", text
    assert float(rows["logits"][1]) < 1e-5, text


def test_perturbed_weight_fails_and_names_the_output(pt_dir, perturbed_dir, capsys):
    code, text = verify_in_process(capsys, pt_dir, perturbed_dir)
    assert code == 1, text
    rows = result_rows(text)
    assert rows["logits"][2] == "FAIL" and float(rows["logits"][1]) > 1e-4, text
    assert re.search(r"^FAILED: 1 of 1 output", text, re.M), text


def test_atol_accepts_the_perturbed_copy(pt_dir, perturbed_dir, capsys):
    code, text = verify_in_process(capsys, pt_dir, perturbed_dir, "--atol", "1e9", "--seed", "3")
    assert code == 0, text
    assert result_rows(text)["logits"][2] == "ok"
    assert "(seed 3)" in text


def test_missing_weight_is_reported(pt_dir, tmp, capsys):
    """A checkpoint that loads only because transformers re-initialised a weight fails."""
    directory = tmp / "short"
    shutil.copytree(pt_dir, directory)
    weights = load_file(directory / "model.safetensors")
    del weights["bert.encoder.layer.0.output.LayerNorm.weight"]
    save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})
    code, text = verify_in_process(capsys, pt_dir, directory, "--atol", "1e9")
    assert code == 1, text
    assert "newly initialised: bert.encoder.layer.0.output.LayerNorm.weight" in text, text
    assert "weight loading problem" in text, text


def test_import_verify_imports_no_framework():
    code = (f"import sys, irconv.verify, irconv.cli\n"
            f"irconv.cli.build_parser()\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})\n"
            f"assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()


@pytest.mark.parametrize("module, pip_name", [("torch", "torch"), ("transformers", "transformers")])
def test_missing_framework_is_one_line(pt_dir, module, pip_name):
    code = (f"import sys\nsys.modules[{module!r}] = None\n"
            f"from irconv.cli import main\nsys.exit(main(['verify', {str(pt_dir)!r}, {str(pt_dir)!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert_one_line_error(proc, pip_name, "irconv[test]")


def test_unrecognised_directory_is_one_line(pt_dir, tmp):
    (tmp / "empty").mkdir()
    (tmp / "empty" / "config.json").write_text("{}")
    assert_one_line_error(run_irconv("verify", pt_dir, tmp / "empty"),
                          "cannot load", "model.safetensors", "tf_model.h5")
    assert_one_line_error(run_irconv("verify", tmp / "nowhere", pt_dir), "no such file")
