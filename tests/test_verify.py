"""`irconv verify`: both sides run in their real frameworks on the same inputs.

The models here are made by torch/transformers (and one by transformers' own PT->TF
conversion); verify is the thing under test, so every check goes through the CLI: in a
subprocess where the process matters (exit codes, what gets imported), through main() in
this process elsewhere, to keep the module fast."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

import irconv  # noqa: E402
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


# ---------------------------------------------------------------- Keras EfficientNet


@pytest.fixture(scope="module")
def efficientnet(tmp_path_factory):
    """A randomized tf_keras EfficientNetB0 at 64x64 -> irconv pt -> irconv keras."""
    pytest.importorskip("tf_keras")
    from irconv.models.efficientnet import variant_config
    from test_keras_efficientnet import keras_b0
    root = tmp_path_factory.mktemp("efficientnet")
    keras_b0(64, root / "x.h5", seed=0)
    (root / "config.json").write_text(json.dumps(variant_config("b0", image_size=64)))
    run_irconv("convert", root / "x.h5", root / "pt", "--to", "pt", "--config", root / "config.json", check=True)
    run_irconv("convert", root / "pt", root / "keras", "--to", "keras", check=True)
    return root


# Randomized weights leave the features little input dependence (they differ by ~1e-5 between
# the two images): feeding Keras the images with H and W swapped moves the outputs by ~3e-5,
# under the default atol. The tests ask for the float round-off a correct layout gives.
EXACT = 1e-6


@pytest.mark.parametrize("reverse", [False, True], ids=["pt-keras", "keras-pt"])
def test_pt_vs_keras_efficientnet(efficientnet, reverse, capsys):
    sides = [efficientnet / "pt", efficientnet / "keras"]
    code, text = verify_in_process(capsys, *(sides[::-1] if reverse else sides))
    assert code == 0, text
    assert "keras EfficientNetB0 (tf_keras.applications, include_top=False)" in text, text
    assert "pixel_values 2x3x64x64" in text and "note" not in text, text
    rows = result_rows(text)
    assert {k: v[0] for k, v in rows.items()} == {"last_hidden_state": "2x1280x2x2", "pooler_output": "2x1280"}, text
    assert all(v[2] == "ok" and float(v[1]) < EXACT for v in rows.values()), text


def test_keras_weights_of_another_model_fail(efficientnet, tmp, capsys):
    """The same topology with another seed's weights: loads, and verify names both outputs."""
    from test_keras_efficientnet import keras_b0
    shutil.copytree(efficientnet / "keras", tmp / "other")
    keras_b0(64, tmp / "other" / "model.h5", seed=1)
    code, text = verify_in_process(capsys, efficientnet / "pt", tmp / "other")
    assert code == 1, text
    rows = result_rows(text)
    assert [v[2] for v in rows.values()] == ["FAIL", "FAIL"] and float(rows["pooler_output"][1]) > 1e-2, text
    assert re.search(r"^FAILED: 2 of 2 output", text, re.M), text


def test_keras_normalization_statistics_are_applied_and_noted(efficientnet, tmp, capsys):
    """A Keras-born file with real Normalization statistics, converted to pt (which keeps no
    statistics: HF normalizes in its image processor): Keras is fed the pixels its in-graph
    normalization turns into HF's pixel_values, and verify says so."""
    from test_keras_io import b0, with_statistics
    with_statistics(b0(seed=2), seed=2).save_weights(str(tmp / "stats.h5"))
    config = json.loads((efficientnet / "config.json").read_text())
    for to in ("pt", "keras"):        # in this process: the conversions are not under test here
        irconv.convert(tmp / "stats.h5", tmp / to, to, config=config)
    code, text = verify_in_process(capsys, tmp / "pt", tmp / "keras")
    assert code == 0, text
    assert re.search(r"^# .*keras: note: model.h5's Normalization layer holds mean \[0\.\d+", text, re.M), text
    assert all(v[2] == "ok" and float(v[1]) < EXACT for v in result_rows(text).values()), text


def test_keras_classifier_gives_logits(tmp, capsys):
    tf_keras = pytest.importorskip("tf_keras")
    from irconv.models.efficientnet import variant_config
    from test_keras_efficientnet import randomize
    model = tf_keras.applications.EfficientNetB0(weights=None, include_top=True, classes=5, input_shape=(32, 32, 3),
                                                 classifier_activation=None)
    randomize(model, 4).save_weights(str(tmp / "top.h5"))
    config = dict(variant_config("b0", image_size=32), id2label={str(i): f"LABEL_{i}" for i in range(5)})
    irconv.convert(tmp / "top.h5", tmp / "pt", "pt", config=config)
    irconv.convert(tmp / "pt", tmp / "keras", "keras")
    code, text = verify_in_process(capsys, tmp / "pt", tmp / "keras")
    assert code == 0, text
    assert "include_top=True" in text and "EfficientNetForImageClassification" in text, text
    rows = result_rows(text)
    assert list(rows) == ["logits"] and rows["logits"][0] == "2x5" and rows["logits"][2] == "ok", text


def odd_copy(src, dst, **changes):
    """A copy of the directory src whose config.json has `changes`."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps(dict(config, **changes)))
    return dst


def verify_error_lines(capsys, *args) -> list[str]:
    """`irconv verify ARGS` through main(), which must exit 2: its stderr's non-blank lines."""
    from irconv.cli import main
    assert main(["verify", *map(str, args)]) == 2
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_keras_unknown_variant_is_one_line(efficientnet, tmp, capsys):
    """A Keras side whose config names no EfficientNetB0..B7 cannot be built by tf_keras: one
    line. Against the real pt side the configs differ, which verify refuses first; against a pt
    side with the same config, the Keras side (loaded first, as SRC) reaches the variant check."""
    odd = odd_copy(efficientnet / "keras", tmp / "odd", width_coefficient=1.3)
    lines = verify_error_lines(capsys, efficientnet / "pt", odd)
    assert len(lines) == 1 and "describe different models: config width_coefficient: 1.0 vs 1.3" in lines[0], lines
    odd_pt = odd_copy(efficientnet / "pt", tmp / "odd-pt", width_coefficient=1.3)
    lines = verify_error_lines(capsys, odd, odd_pt)
    assert len(lines) == 1 and "width_coefficient 1.3 / depth_coefficient 1 is no EfficientNetB0..B7" in lines[0], lines


def test_encoder_decoder_runs_with_decoder_ids(tmp, capsys):
    """T5 needs decoder_input_ids (verify makes them: the decoder's start token, then random
    ids); a changed decoder weight is then seen in the logits."""
    pytest.importorskip("tensorflow")
    import zoo
    model = zoo.make_pt("t5", "T5ForConditionalGeneration")
    model.save_pretrained(tmp / "pt")
    irconv.convert(tmp / "pt", tmp / "tf2", to="tf2")
    code, text = verify_in_process(capsys, tmp / "pt", tmp / "tf2")
    assert code == 0, text
    assert "decoder_input_ids 2x6" in text, text
    rows = result_rows(text)
    assert rows["logits"][2] == "ok" and float(rows["logits"][1]) < 1e-4, text
    tensors = load_file(tmp / "pt" / "model.safetensors")
    tensors["decoder.final_layer_norm.weight"] = tensors["decoder.final_layer_norm.weight"] * 1.01
    shutil.copytree(tmp / "pt", tmp / "changed")
    save_file(tensors, tmp / "changed" / "model.safetensors", metadata={"format": "pt"})
    code, text = verify_in_process(capsys, tmp / "changed", tmp / "tf2")
    assert code != 0 and result_rows(text)["logits"][2] != "ok", text


def _no_pooler(directory):
    torch.manual_seed(0)
    config = transformers.RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=37, max_position_embeddings=70)
    transformers.RobertaModel(config, add_pooling_layer=False).eval().save_pretrained(directory)
    return directory


def test_a_model_saved_without_its_pooler_verifies_without_one(tmp, capsys):
    """RobertaModel(add_pooling_layer=False) and irconv's copy of it: transformers' class builds a
    pooler by default, which the files do not have; both sides load without one (noted), so
    nothing is newly initialised, and the hidden states are compared."""
    src = _no_pooler(tmp / "src")
    out = tmp / "bin"
    run_irconv("convert", src, out, "--to", "pt", "--bin", check=True)
    code, text = verify_in_process(capsys, src, out)
    assert code == 0, text
    assert "last_hidden_state" in result_rows(text) and "pooler_output" not in result_rows(text)
    assert "newly initialised" not in text and "without a pooler" in text, text


def test_a_pooler_lost_on_one_side_fails(pt_dir, tmp, capsys):
    """Loading without a pooler is no way round a pooler one side has and the other lost."""
    src = tmp / "with"
    transformers.BertModel(transformers.BertConfig.from_pretrained(pt_dir)).eval().save_pretrained(src)
    out = tmp / "without"
    shutil.copytree(src, out)
    weights = load_file(out / "model.safetensors")
    for name in [n for n in weights if n.startswith("pooler.")]:
        del weights[name]
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    code, text = verify_in_process(capsys, src, out)
    assert code == 1, text
    assert "pooler_output" in text and "FAILED" in text, text
