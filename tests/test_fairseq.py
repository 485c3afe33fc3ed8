"""fairseq checkpoints made by real fairseq 0.12.2 (tests/fixtures/fairseq, see its README)
-> irconv -> transformers' classes, which must reproduce fairseq's own reference outputs."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import assert_one_line_error, run_irconv, run_pipe  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "fairseq"
# fixture -> HF class prefix its architecture converts to
KINDS = {"roberta_base": "Roberta", "roberta_prenorm": "XLMRobertaXL"}
ATOL = 1e-5


def fixtures(pattern="*"):
    found = sorted(p for p in FIXTURES.glob(pattern) if (p / "model.pt").is_file())
    return pytest.mark.parametrize("fixture", found, ids=[p.name for p in found])


def reference(fixture):
    return torch.load(fixture / "reference_outputs.pt", weights_only=True)


def hf_class(fixture, kind):
    return getattr(transformers, KINDS[fixture.name.split("-")[0]] + kind)


def strict(cls, directory):
    model, info = cls.from_pretrained(directory, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


@fixtures()
def test_masked_lm_reproduces_fairseq(fixture, tmp):
    run_irconv("convert", fixture, tmp / "hf", "--to", "pt", check=True)
    model = strict(hf_class(fixture, "ForMaskedLM"), tmp / "hf")
    ref = reference(fixture)
    tokens = ref["tokens"].reshape(1, -1)
    with torch.no_grad():
        out = model(input_ids=tokens, output_hidden_states=True)
    np.testing.assert_allclose(out.logits.numpy(), ref["logits"].numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(out.hidden_states[-1].numpy(), ref["features"].numpy(), atol=ATOL, rtol=0)


@fixtures("*-trainer")
def test_classification_head_reproduces_fairseq(fixture, tmp):
    ref = reference(fixture)
    assert "head_logits" in ref
    run_irconv("convert", fixture, tmp / "hf", "--to", "pt", "--head", "mnli", check=True)
    model = strict(hf_class(fixture, "ForSequenceClassification"), tmp / "hf")
    with torch.no_grad():
        logits = model(input_ids=ref["tokens"].reshape(1, -1)).logits
    np.testing.assert_allclose(logits.numpy(), ref["head_logits"].numpy(), atol=ATOL, rtol=0)


def test_fairseq_to_tf2_composes_through_the_pipe(tmp):
    """fairseq -> tf2 needs no code of its own: import fairseq | export tf2."""
    fixture = FIXTURES / "roberta_base-trainer"
    rc, err, proc = run_pipe(["import", "fairseq", fixture], ["export", "tf2", tmp / "tf2"])
    assert rc == 0 and proc.returncode == 0, (err, proc.stderr)
    tf_model, info = transformers.TFRobertaForMaskedLM.from_pretrained(tmp / "tf2", output_loading_info=True)
    assert not info["unexpected_keys"] and not [k for k in info["missing_keys"] if "dropout" not in k], info
    ref = reference(fixture)
    logits = tf_model(input_ids=ref["tokens"].reshape(1, -1).numpy(), training=False).logits.numpy()
    np.testing.assert_allclose(logits, ref["logits"].numpy(), atol=ATOL, rtol=0)


def test_unknown_head_names_the_heads(tmp):
    proc = run_irconv("convert", FIXTURES / "roberta_base-trainer", tmp / "hf", "--to", "pt", "--head", "nope")
    assert_one_line_error(proc, "'nope'", "'mnli'")
    assert not (tmp / "hf").exists()


def test_ls_lists_what_is_skipped():
    text = run_irconv("ls", FIXTURES / "roberta_base-trainer", check=True).stdout.decode()
    skipped = {line.split()[1] for line in text.splitlines() if line.startswith("(skipped)")}
    assert "classification_heads.mnli.out_proj.weight" in skipped      # not chosen with --head
    assert "encoder.lm_head.weight" in skipped                          # the tied embedding copy


def _with_pickle(src: Path, out: Path, mutate) -> Path:
    """A copy of fixture `src` whose data.pkl is mutate(bytes)."""
    out.mkdir()
    (out / "dict.txt").write_bytes((src / "dict.txt").read_bytes())
    with zipfile.ZipFile(src / "model.pt") as zin, zipfile.ZipFile(out / "model.pt", "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            zout.writestr(info, mutate(data) if info.filename.endswith("data.pkl") else data)
    return out


def test_a_pickle_referencing_any_other_global_is_refused(tmp):
    marker = tmp / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    evil = pickle.dumps(Evil(), protocol=2)
    # Replace the checkpoint's pickle wholesale: a dict whose model entry runs a command.
    bad = _with_pickle(FIXTURES / "roberta_base-trainer", tmp / "bad",
                       lambda data: pickle.dumps({"model": {}, "extra_state": Evil()}, protocol=2))
    proc = run_irconv("convert", bad, tmp / "out", "--to", "pt")
    assert_one_line_error(proc, "model.pt", "system")
    assert not marker.exists() and not (tmp / "out").exists()
    assert b"system" in evil


def test_fairseq_model_classes_are_not_imported(tmp):
    """A pickled fairseq object (not plain data) is refused by name, nothing imported."""
    bad = _with_pickle(FIXTURES / "roberta_base-trainer", tmp / "bad",
                       lambda data: b"\x80\x02cfairseq.models.roberta.model\nRobertaModel\n)\x81}b.")
    assert_one_line_error(run_irconv("convert", bad, tmp / "out", "--to", "pt"),
                          "fairseq.models.roberta.model.RobertaModel")


def test_unknown_architecture_names_it_and_the_known_ones(tmp):
    import argparse
    ckpt = {"args": argparse.Namespace(arch="transformer_wmt_en_de"),
            "model": {"encoder.embed_tokens.weight": torch.zeros(4, 2)}}
    (tmp / "mt").mkdir()
    torch.save(ckpt, tmp / "mt" / "model.pt")
    (tmp / "mt" / "dict.txt").write_text("a 1\n")
    assert_one_line_error(run_irconv("convert", tmp / "mt", tmp / "out", "--to", "pt"),
                          "'transformer_wmt_en_de'", "roberta_base")


def test_older_naming_generations(tmp):
    """The names of pre-2021 checkpoints (decoder.*, emb_layer_norm, fused in_proj q/k/v),
    made from a real fixture by renaming and stacking its tensors, give the same model."""
    fixture = FIXTURES / "roberta_base-args"
    # The test's own fixture, loaded by torch (an oracle, not the code under test).
    ckpt = torch.load(fixture / "model.pt", weights_only=False)
    old = {}
    state = ckpt["model"]
    for name, value in state.items():
        if ".self_attn." in name and any(f".{p}_proj." in name for p in "kv"):
            continue
        if ".self_attn.q_proj." in name:
            leaf = name.rsplit(".", 1)[1]
            stem = name.split(".self_attn.")[0]
            name = f"{stem}.self_attn.in_proj_{leaf}"
            value = torch.cat([state[f"{stem}.self_attn.{p}_proj.{leaf}"] for p in "qkv"])
        name = name.replace("encoder.", "decoder.", 1).replace(".layernorm_embedding.", ".emb_layer_norm.")
        old[name] = value
    assert any(".in_proj_weight" in n for n in old) and any(n.startswith("decoder.") for n in old)
    ckpt["model"] = old
    (tmp / "old").mkdir()
    torch.save(ckpt, tmp / "old" / "model.pt")
    (tmp / "old" / "dict.txt").write_bytes((fixture / "dict.txt").read_bytes())
    run_irconv("convert", tmp / "old", tmp / "hf", "--to", "pt", check=True)
    model = strict(transformers.RobertaForMaskedLM, tmp / "hf")
    ref = reference(fixture)
    with torch.no_grad():
        logits = model(input_ids=ref["tokens"].reshape(1, -1)).logits
    np.testing.assert_allclose(logits.numpy(), ref["logits"].numpy(), atol=ATOL, rtol=0)


def test_legacy_torch_format_like_the_2019_releases(tmp):
    """The 2019 RoBERTa / XLM-R releases are pre-1.6 (non-zip) torch.save files."""
    fixture = FIXTURES / "roberta_base-args"
    ckpt = torch.load(fixture / "model.pt", weights_only=False)   # the test's own fixture
    (tmp / "old").mkdir()
    torch.save(ckpt, tmp / "old" / "model.pt", _use_new_zipfile_serialization=False)
    assert not (tmp / "old" / "model.pt").read_bytes().startswith(b"PK")
    (tmp / "old" / "dict.txt").write_bytes((fixture / "dict.txt").read_bytes())
    run_irconv("convert", tmp / "old", tmp / "hf", "--to", "pt", check=True)
    model = strict(transformers.RobertaForMaskedLM, tmp / "hf")
    ref = reference(fixture)
    with torch.no_grad():
        logits = model(input_ids=ref["tokens"].reshape(1, -1)).logits
    np.testing.assert_allclose(logits.numpy(), ref["logits"].numpy(), atol=ATOL, rtol=0)
