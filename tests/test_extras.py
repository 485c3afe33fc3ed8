"""A converted model directory is complete (issue 14): the tokenizer, vocab, model card and
sentence-transformers modules are carried to every output, tf1 outputs get Google's layout with
vocab.txt, and the outputs tokenize real sentences exactly as the source does."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_irconv

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
from bert_models import make_model  # noqa: E402

SENTENCES = ["the quick brown fox jumps over the lazy dog",
             "Tokenizers split unknownwordsintopieces, and punctuation!"]
MODULE_FILES = {"modules.json": '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}, '
                                '{"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]\n',
                "sentence_bert_config.json": '{"max_seq_length": 64, "do_lower_case": false}\n',
                "1_Pooling/config.json": '{"word_embedding_dimension": 32, "pooling_mode_mean_tokens": true}\n',
                "README.md": "# a tiny model card\n"}


def _vocab(n: int) -> list[str]:
    words = sorted(set(" ".join(SENTENCES).lower().replace(",", " ").replace("!", " ").split()))
    pieces = ["##s", "##ing", "##ed", "##er", "##words", "##into", "##pieces", ",", "!", "unknown", "in"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + pieces
    return vocab + [f"tok{i}" for i in range(n - len(vocab))]


@pytest.fixture(scope="module")
def st_model(tmp_path_factory):
    """A sentence-transformers-style directory: a tiny BertModel, a real WordPiece tokenizer
    saved by save_pretrained (tokenizer.json, no vocab.txt), module files and a card."""
    d = tmp_path_factory.mktemp("st") / "m"
    model = make_model("BertModel")
    model.save_pretrained(d)
    vocab_file = d.parent / "vocab-src.txt"
    vocab_file.write_text("\n".join(_vocab(model.config.vocab_size)) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(vocab_file))
    tokenizer.save_pretrained(d)
    (d / "vocab.txt").unlink()              # the fast tokenizer's tokenizer.json is all there is
    for rel, text in MODULE_FILES.items():
        (d / rel).parent.mkdir(exist_ok=True)
        (d / rel).write_text(text)
    # A Dense module keeps weights of its own, which belong to the module, not to the model.
    (d / "2_Dense").mkdir()
    (d / "2_Dense" / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    (d / "checkpoint-500").mkdir()          # HF Trainer's intermediate state: not the model's
    (d / "checkpoint-500" / "optimizer.pt").write_bytes(b"state")
    return d


def ids(tokenizer) -> list[list[int]]:
    return [tokenizer(s)["input_ids"] for s in SENTENCES]


@pytest.mark.parametrize("fmt", ["pt", "tf2", "tf1"])
def test_outputs_tokenize_as_the_source_and_keep_the_modules(st_model, tmp, fmt):
    out = tmp / "out"
    proc = run_irconv("convert", st_model, out, "--to", fmt, check=True)
    summary = proc.stderr.decode()
    assert "carried" in summary and "tokenizer.json" in summary and "1_Pooling/config.json" in summary
    for rel in [*MODULE_FILES, "2_Dense/model.safetensors"]:
        assert (out / rel).read_bytes() == (st_model / rel).read_bytes(), rel
    assert not (out / "checkpoint-500").exists() and "checkpoint-500/ (a training checkpoint)" in summary
    want = ids(transformers.AutoTokenizer.from_pretrained(st_model))
    if fmt == "tf1":
        # Google's layout: what run_classifier.py's --vocab_file and --init_checkpoint name.
        assert (out / "bert_config.json").is_file() and (out / "bert_model.ckpt.index").is_file()
        assert ids(transformers.BertTokenizer(str(out / "vocab.txt"), do_lower_case=True)) == want
        assert "vocab.txt" in summary
    else:
        assert ids(transformers.AutoTokenizer.from_pretrained(out)) == want


def test_no_extras_writes_only_the_model(st_model, tmp):
    run_irconv("convert", st_model, tmp / "out", "--to", "pt", "--no-extras", check=True)
    assert sorted(p.name for p in (tmp / "out").iterdir()) == ["config.json", "model.safetensors"]


def test_google_layout_round_trips_to_hf_and_back(st_model, tmp):
    """tf1 (bert_model.ckpt + bert_config.json + vocab.txt) -> HF: vocab.txt is carried, so the
    HF tokenizer loads from it; -> tf1 again: the same variables, read by TensorFlow."""
    tf = pytest.importorskip("tensorflow")
    google = tmp / "google"
    run_irconv("convert", st_model, google, "--to", "tf1", check=True)
    hf = tmp / "hf"
    run_irconv("convert", google, hf, "--to", "pt", check=True)
    want = ids(transformers.AutoTokenizer.from_pretrained(st_model))
    assert ids(transformers.AutoTokenizer.from_pretrained(hf)) == want
    a, b = transformers.BertModel.from_pretrained(st_model).eval(), transformers.BertModel.from_pretrained(hf).eval()
    x = torch.tensor([want[0]])
    with torch.no_grad():
        assert torch.equal(a(x).last_hidden_state, b(x).last_hidden_state)
    back = tmp / "back"
    run_irconv("convert", hf, back, "--to", "tf1", check=True)
    assert (back / "vocab.txt").read_bytes() == (google / "vocab.txt").read_bytes()
    r1 = tf.train.load_checkpoint(str(google / "bert_model.ckpt"))
    r2 = tf.train.load_checkpoint(str(back / "bert_model.ckpt"))
    shapes = r1.get_variable_to_shape_map()
    assert shapes == r2.get_variable_to_shape_map()
    for name in shapes:
        assert (r1.get_tensor(name) == r2.get_tensor(name)).all(), name


def test_dry_run_prints_the_plan_and_writes_nothing(st_model, tmp):
    proc = run_irconv("convert", st_model, tmp / "out", "--to", "tf2", "--dry-run", check=True)
    text = proc.stdout.decode()
    assert not (tmp / "out").exists() and not list(tmp.glob(".out*"))
    assert "tf_model.h5" in text and "bert/embeddings/word_embeddings/weight" in text
    assert "F32" in text and "tokenizer.json" in text and '"model_type": "bert"' in text
    config = json.loads((st_model / "config.json").read_text())
    assert f"{config['vocab_size']}x{config['hidden_size']}" in text
