"""HF PyTorch BERT in and out: bit-exact tensors, strict loading, identical outputs.

Every check uses transformers / torch / safetensors as the consumer of what irconv wrote."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors import safe_open  # noqa: E402

import irconv  # noqa: E402
from bert_models import BERT_CLASSES, make_model, model_inputs, outputs_of  # noqa: E402
import zoo  # noqa: E402
from conftest import assert_one_line_error, run_irconv, run_pipe  # noqa: E402


def weight_files(directory):
    """name -> torch tensor of every weight file in an HF directory, read by safetensors/torch."""
    out = {}
    for path in sorted(directory.iterdir()):
        if path.suffix == ".safetensors":
            with safe_open(path, "pt") as f:
                out.update({k: f.get_tensor(k) for k in f.keys()})
        elif path.suffix == ".bin":
            out.update(torch.load(path, weights_only=True))
    return out


def assert_same_tensors(expected: dict, got: dict):
    assert sorted(got) == sorted(expected)
    for name, ref in expected.items():
        t = got[name]
        assert t.dtype == ref.dtype and t.shape == ref.shape, name
        a = ref.contiguous().view(torch.uint8) if ref.numel() else ref
        b = t.contiguous().view(torch.uint8) if t.numel() else t
        assert torch.equal(a, b), f"{name} differs"


def assert_loads_and_matches(cls_name, model, out_dir):
    cls = getattr(transformers, cls_name)
    loaded, info = cls.from_pretrained(out_dir, output_loading_info=True, torch_dtype=model.dtype)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [], info
    assert info["mismatched_keys"] == [], info
    loaded.eval()
    inputs = model_inputs()
    ref, got = outputs_of(model, inputs), outputs_of(loaded, inputs)
    assert sorted(ref) == sorted(got)
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    assert json.loads((out_dir / "config.json").read_text())["architectures"] == [cls_name]


def save_hf(model, directory, mode):
    if mode == "safetensors":
        model.save_pretrained(directory)
    elif mode == "bin":
        model.save_pretrained(directory, safe_serialization=False)
    elif mode == "sharded-safetensors":
        model.save_pretrained(directory, max_shard_size="20KB")
    elif mode == "sharded-bin":
        model.save_pretrained(directory, max_shard_size="20KB", safe_serialization=False)
    return directory


def hf_reference(model, tmp, mode):
    """What transformers itself writes in `mode`: the key set and bytes irconv must match."""
    return weight_files(save_hf(model, tmp / f"hf-ref-{mode}", mode))


@pytest.mark.parametrize("cls_name", BERT_CLASSES)
def test_convert_each_class(cls_name, tmp):
    model = make_model(cls_name)
    src = save_hf(model, tmp / "src", "safetensors")
    out = tmp / "out"
    run_irconv("convert", src, out, "--to", "pt", check=True)
    assert_same_tensors(weight_files(src), weight_files(out))
    assert_loads_and_matches(cls_name, model, out)


@pytest.mark.parametrize("cls_name", BERT_CLASSES)
def test_pipe_bin_in_bin_out(cls_name, tmp):
    model = make_model(cls_name, seed=3)
    src = save_hf(model, tmp / "src", "bin")
    out = tmp / "out"
    rc, err, proc = run_pipe(["import", "pt", src], ["export", "pt", out, "--bin"])
    assert rc == 0 and proc.returncode == 0, (err, proc.stderr)
    got = weight_files(out)
    assert_same_tensors(weight_files(src), got)
    # Tied names come back as views of one storage, as torch.save writes them.
    if "cls.predictions.decoder.weight" in got:
        assert got["cls.predictions.decoder.weight"].untyped_storage().data_ptr() == \
            got["bert.embeddings.word_embeddings.weight"].untyped_storage().data_ptr()
    assert_loads_and_matches(cls_name, model, out)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("route", ["pipe", "convert"])
def test_half_precision(dtype, route, tmp):
    model = make_model("BertForPreTraining", dtype=getattr(torch, dtype), seed=5)
    src = save_hf(model, tmp / "src", "safetensors")
    out = tmp / "out"
    if route == "pipe":
        rc, err, proc = run_pipe(["import", "pt", src], ["export", "pt", out])
        assert rc == 0 and proc.returncode == 0, (err, proc.stderr)
    else:
        irconv.convert(src, out, to="pt")
    got = weight_files(out)
    assert all(t.dtype == getattr(torch, dtype) for t in got.values())
    assert_same_tensors(weight_files(src), got)
    assert_loads_and_matches("BertForPreTraining", model, out)


@pytest.mark.parametrize("src_mode", ["safetensors", "bin", "sharded-safetensors", "sharded-bin"])
@pytest.mark.parametrize("out_mode", ["safetensors", "bin", "sharded-safetensors", "sharded-bin"])
def test_sharding_and_file_kinds(src_mode, out_mode, tmp):
    model = make_model("BertForPreTraining", seed=7)
    src = save_hf(model, tmp / "src", src_mode)
    out = tmp / "out"
    irconv.convert(src, out, to="pt", bin="bin" in out_mode,
                   max_shard_size=20_000 if "sharded" in out_mode else None)
    expected = hf_reference(model, tmp, out_mode)
    got = weight_files(out)
    assert_same_tensors(expected, got)
    if "sharded" in out_mode:
        index_name = "pytorch_model.bin.index.json" if "bin" in out_mode else "model.safetensors.index.json"
        index = json.loads((out / index_name).read_text())
        assert sorted(index["weight_map"]) == sorted(expected)
        assert len(set(index["weight_map"].values())) > 1
        for name, shard in index["weight_map"].items():
            assert (out / shard).is_file()
    assert_loads_and_matches("BertForPreTraining", model, out)


def test_untied_decoder_is_kept(tmp):
    """With tie_word_embeddings false the decoder is a tensor of its own, never dropped."""
    model = make_model("BertForMaskedLM", seed=9, tie_word_embeddings=False)
    assert not torch.equal(model.cls.predictions.decoder.weight, model.bert.embeddings.word_embeddings.weight)
    src = save_hf(model, tmp / "src", "safetensors")
    out = tmp / "out"
    irconv.convert(src, out, to="pt")
    assert_same_tensors(weight_files(src), weight_files(out))
    assert_loads_and_matches("BertForMaskedLM", model, out)


@pytest.mark.parametrize("cls_name", ["BertForPreTraining", "BertModel", "BertForQuestionAnswering"])
def test_bare_weights_file_with_model_flag(cls_name, tmp):
    """A weights file without config.json: family from --model, config inferred from shapes,
    save the heads, which no shape says (128 wide is 2 heads of 64 as in BERT's releases, or 4
    of 32...): refused until given, never guessed."""
    model = make_model(cls_name, seed=11, hidden_size=128, num_attention_heads=2)
    src = save_hf(model, tmp / "src", "bin")
    (src / "config.json").unlink()
    out = tmp / "out"
    zoo.convert_bare(src / "pytorch_model.bin", out, model.config, ("num_attention_heads",),
                     "--to", "pt", "--model", "bert")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [cls_name]
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size", "hidden_act", "layer_norm_eps",
                "position_embedding_type"):
        assert config[key] == getattr(model.config, key), key
    assert_loads_and_matches(cls_name, model, out)


def test_ls_shows_every_tensor(tmp):
    model = make_model("BertForPreTraining")
    src = save_hf(model, tmp / "src", "bin")
    proc = run_irconv("ls", src, check=True)
    text = proc.stdout.decode()
    state = model.state_dict()
    for name in state:
        assert name in text, name
    assert "embeddings.word.weight" in text and "tied to embeddings.word.weight" in text
    line = next(l for l in text.splitlines() if l.startswith("encoder.layers.1.attn.q.weight "))
    assert "bert.encoder.layer.1.attention.self.query.weight" in line and "F32" in line
    assert "32x32" in line and "out,in" in line


def test_stream_file_round_trip(tmp):
    """import -o FILE then export -i FILE: the stream is a file format of its own."""
    model = make_model("BertForMaskedLM", seed=13)
    src = save_hf(model, tmp / "src", "safetensors")
    run_irconv("import", "pt", src, "-o", tmp / "bert.irs", check=True)
    run_irconv("export", "pt", tmp / "out", "-i", tmp / "bert.irs", check=True)
    assert_same_tensors(weight_files(src), weight_files(tmp / "out"))
    proc = run_irconv("ls", "-", input=(tmp / "bert.irs").read_bytes(), check=True)
    assert b"bert.encoder.layer.0.attention.self.query.weight" in proc.stdout


def test_bare_weights_file_with_config_flag(tmp):
    """--config supplies what the shapes cannot tell (here 8 dims per head) for a weights file
    with no config.json beside it (refused without)."""
    model = make_model("BertForMaskedLM", seed=12)
    src = save_hf(model, tmp / "src", "safetensors")
    bare = tmp / "bare"
    bare.mkdir()
    (src / "model.safetensors").rename(bare / "model.safetensors")
    out = tmp / "out"
    assert_one_line_error(run_irconv("convert", bare / "model.safetensors", out, "--to", "pt", "--model", "bert"),
                          "no config.json", "num_attention_heads", "--config")
    assert not out.exists()
    proc = run_irconv("convert", bare / "model.safetensors", out, "--to", "pt",
                      "--config", src / "config.json", check=True)
    assert b"guess" not in proc.stderr and b"inferred" not in proc.stderr
    assert_loads_and_matches("BertForMaskedLM", model, out)
