"""Never a silently wrong model (issue 13): a value that changes what the model computes and
cannot be read from the tensors is never guessed; sibling configs are read; diff and verify
compare configs; a config's class must have the file's heads."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, run_irconv

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "examples" / "tiny-bert"


@pytest.fixture(scope="module")
def tf1_bare(tmp_path_factory):
    """A TF1 BERT checkpoint without its bert_config.json (the configuration of issue 13)."""
    d = tmp_path_factory.mktemp("tf1") / "bert"
    run_irconv("convert", TINY, d, "--to", "tf1", check=True)
    (d / "bert_config.json").unlink()
    return d


def test_missing_heads_stop_the_conversion(tf1_bare, tmp):
    proc = run_irconv("convert", tf1_bare, tmp / "out", "--to", "pt")
    line = assert_one_line_error(proc, "num_attention_heads", "--set num_attention_heads=", "--config",
                                 "--accept-defaults")
    assert "hidden_act=gelu" in line                       # the stated defaults, named with their values
    assert not (tmp / "out").exists()
    # Accepting the defaults does not make a head count up.
    assert_one_line_error(run_irconv("convert", tf1_bare, tmp / "out", "--to", "pt", "--accept-defaults"),
                          "num_attention_heads")
    assert not (tmp / "out").exists()


def test_given_heads_and_accepted_defaults_convert_exactly(tf1_bare, tmp):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    out = tmp / "out"
    proc = run_irconv("convert", tf1_bare, out, "--to", "pt", "--set", "num_attention_heads=4",
                      "--accept-defaults", check=True)
    assert b"--accept-defaults" in proc.stderr              # which defaults were taken is said
    config = json.loads((out / "config.json").read_text())
    assert config["num_attention_heads"] == 4 and config["hidden_act"] == "gelu"
    a = transformers.BertForPreTraining.from_pretrained(TINY).eval()
    b = transformers.BertForPreTraining.from_pretrained(out).eval()
    ids = torch.tensor(np.random.default_rng(0).integers(0, 128, (2, 9)))
    with torch.no_grad():
        assert torch.equal(a(ids).prediction_logits, b(ids).prediction_logits)


def test_a_wrong_head_count_changes_the_outputs(tf1_bare, tmp):
    """Why heads are required: the same tensors with 2 heads instead of 4 compute something else."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    run_irconv("convert", tf1_bare, tmp / "two", "--to", "pt", "--set", "num_attention_heads=2",
               "--accept-defaults", check=True)
    a = transformers.BertModel.from_pretrained(TINY).eval()
    b = transformers.BertModel.from_pretrained(tmp / "two").eval()
    ids = torch.tensor(np.random.default_rng(0).integers(0, 128, (2, 9)))
    with torch.no_grad():
        # A random tiny model attends almost uniformly, so the change is small, but it is far
        # beyond float noise (the exact conversion above is bit-identical).
        assert not torch.allclose(a(ids).last_hidden_state, b(ids).last_hidden_state, atol=1e-5)


def test_diff_compares_configs(tf1_bare, tmp):
    proc = run_irconv("diff", TINY, tf1_bare)
    assert proc.returncode == 1 and b"num_attention_heads" in proc.stdout, proc.stdout
    assert b"identical" not in proc.stdout
    proc = run_irconv("diff", TINY, tf1_bare, "--set", "num_attention_heads=4")
    assert proc.returncode == 0 and b"identical" in proc.stdout, proc.stdout
    other = tmp / "other"
    shutil.copytree(TINY, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(dict(config, hidden_act="relu")))
    proc = run_irconv("diff", TINY, other)
    assert proc.returncode == 1 and b"hidden_act: gelu vs relu" in proc.stdout, proc.stdout


def test_a_bare_weights_file_reads_the_config_beside_it(tmp):
    proc = run_irconv("convert", TINY / "model.safetensors", tmp / "out", "--to", "pt", check=True)
    assert b"guess" not in proc.stderr and b"inferred" not in proc.stderr
    written = json.loads((tmp / "out" / "config.json").read_text())
    source = json.loads((TINY / "config.json").read_text())
    assert {k: written.get(k) for k in source if k != "transformers_version"} == \
        {k: v for k, v in source.items() if k != "transformers_version"}


def test_a_bare_tf1_prefix_reads_bert_config_beside_it(tmp):
    d = tmp / "tf1"
    run_irconv("convert", TINY, d, "--to", "tf1", check=True)
    run_irconv("convert", d / "bert_model.ckpt", tmp / "out", "--to", "pt", check=True)
    assert json.loads((tmp / "out" / "config.json").read_text())["num_attention_heads"] == 4


def test_set_overrides_one_field_of_a_given_config(tmp):
    run_irconv("convert", TINY, tmp / "out", "--to", "pt", "--set", "layer_norm_eps=1e-5", check=True)
    assert json.loads((tmp / "out" / "config.json").read_text())["layer_norm_eps"] == 1e-5
    assert_one_line_error(run_irconv("convert", TINY, tmp / "o2", "--to", "pt", "--set", "novalue"), "KEY=VALUE")


def test_a_config_naming_a_headless_class_is_refused(tmp):
    config = json.loads((TINY / "config.json").read_text())
    given = tmp / "config.json"
    given.write_text(json.dumps(dict(config, architectures=["BertModel"])))
    proc = run_irconv("convert", TINY / "model.safetensors", tmp / "out", "--to", "tf2", "--config", given)
    assert_one_line_error(proc, "BertModel", "cls.predictions", "BertForPreTraining")
    assert not (tmp / "out").exists()


def test_verify_refuses_two_different_models_before_running(tmp):
    other = tmp / "other"
    shutil.copytree(TINY, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(dict(config, vocab_size=99)))
    proc = run_irconv("verify", TINY, other)
    assert_one_line_error(proc, "different models", "vocab_size: 128 vs 99")
