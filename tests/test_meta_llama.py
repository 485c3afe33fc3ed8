"""The original Meta Llama release (consolidated.NN.pth + params.json + tokenizer.model) read
as the llama family's meta view: meta -> pt gives back, bit for bit, the HF model the fixture
was made from (tests/fixtures/make_meta_llama.py writes Meta's layout with torch alone), for 1
and 2 model-parallel shards, and transformers computes that model's logits from it. Shard sets
that do not make one model are refused with one line, nothing written."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

from conftest import assert_one_line_error, run_irconv, run_pipe  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import make_meta_llama  # noqa: E402

SHARDS = (1, 2)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The HF model, its saved directory, and the meta layout of it in 1 and 2 shards."""
    root = tmp_path_factory.mktemp("meta")
    model = make_meta_llama.make_hf(seed=5)
    model.save_pretrained(root / "hf")
    for n in SHARDS:
        make_meta_llama.write_meta(model, root / f"meta{n}", n)
    return model, root


def ids(config) -> torch.Tensor:
    return torch.randint(0, config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(1))


def test_fixture_layout_is_what_hfs_script_undoes(made):
    """The fixture's interleave is the inverse of the permutation convert_llama_weights_to_hf.py
    applies (w.view(heads, rows // heads // 2, 2, cols).transpose(1, 2)), and its shards
    concatenate back to HF's tensors, as the script concatenates them."""
    model, root = made
    heads, kv_heads = model.config.num_attention_heads, model.config.num_key_value_heads
    shards = [torch.load(root / "meta2" / f"consolidated.{n:02d}.pth", weights_only=True) for n in range(2)]

    def hf_permute(w, n):
        rows, cols = w.shape
        return w.view(n, rows // n // 2, 2, cols).transpose(1, 2).reshape(rows, cols)

    sd = model.state_dict()
    for name, hf, n in (("wq", "q_proj", heads), ("wk", "k_proj", kv_heads)):
        merged = torch.cat([s[f"layers.0.attention.{name}.weight"] for s in shards], dim=0)
        assert torch.equal(hf_permute(merged, n), sd[f"model.layers.0.self_attn.{hf}.weight"])
        assert not torch.equal(merged, sd[f"model.layers.0.self_attn.{hf}.weight"])
    assert torch.equal(torch.cat([s["tok_embeddings.weight"] for s in shards], dim=1), sd["model.embed_tokens.weight"])
    assert torch.equal(torch.cat([s["layers.1.attention.wo.weight"] for s in shards], dim=1),
                       sd["model.layers.1.self_attn.o_proj.weight"])


@pytest.mark.parametrize("shards", SHARDS)
def test_meta_to_pt_gives_back_the_hf_model(shards, made, tmp):
    model, root = made
    proc = run_irconv("convert", root / f"meta{shards}", tmp / "out", "--to", "pt", check=True)
    ref, got = load_file(root / "hf" / "model.safetensors"), load_file(tmp / "out" / "model.safetensors")
    assert sorted(ref) == sorted(got)
    for name in ref:
        assert got[name].dtype == torch.bfloat16, name
        assert torch.equal(ref[name].view(torch.uint16), got[name].view(torch.uint16)), name
    config = json.loads((tmp / "out" / "config.json").read_text())
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "vocab_size", "rms_norm_eps", "rope_theta", "tie_word_embeddings"):
        assert config[key] == getattr(model.config, key), key
    # The tokenizer is carried; the shards and params.json are the model, not extras.
    assert (tmp / "out" / "tokenizer.model").read_bytes() == (root / f"meta{shards}" / "tokenizer.model").read_bytes()
    assert not list((tmp / "out").glob("*.pth")) and not (tmp / "out" / "params.json").exists(), proc.stderr
    loaded, info = transformers.LlamaForCausalLM.from_pretrained(tmp / "out", torch_dtype=torch.bfloat16,
                                                                 output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    with torch.no_grad():
        inputs = ids(model.config)
        assert torch.equal(loaded.eval()(inputs).logits, model(inputs).logits)


def test_pipe_and_vocab_from_the_table(made, tmp):
    """`import meta | export pt` writes the same file; params.json's vocab_size -1 (Meta's
    releases leave it to the tokenizer) is the embedding's rows."""
    model, root = made
    src = tmp / "meta"
    shutil.copytree(root / "meta2", src)
    params = json.loads((src / "params.json").read_text())
    (src / "params.json").write_text(json.dumps(dict(params, vocab_size=-1)))
    run_irconv("convert", src, tmp / "convert", "--to", "pt", check=True)
    rc, err, proc = run_pipe(["import", "meta", src], ["export", "pt", tmp / "pipe"])
    assert rc == 0 and proc.returncode == 0, (err, proc.stderr)
    assert (tmp / "pipe" / "model.safetensors").read_bytes() == (tmp / "convert" / "model.safetensors").read_bytes()
    assert json.loads((tmp / "pipe" / "config.json").read_text())["vocab_size"] == model.config.vocab_size


def _resave(path: Path, change) -> None:
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


def _bump(name):
    def change(state):
        state[name] = state[name] + 1
    return change


def _narrow(name):
    def change(state):
        state[name] = state[name][:, 1:].clone()
    return change


def _params(**changes):
    def change(src: Path):
        params = json.loads((src / "params.json").read_text())
        (src / "params.json").write_text(json.dumps(dict(params, **changes)))
    return change


BAD = {
    # The first shard gone: the numbering says so.
    "first shard missing": (lambda src: (src / "consolidated.00.pth").unlink(), ("consolidated.00.pth is missing",)),
    # The second gone: what is left is half of every parallel tensor, which params.json contradicts.
    "last shard missing": (lambda src: (src / "consolidated.01.pth").unlink(), ("params.json", "attention.wq")),
    "replicated norm differs": (lambda src: _resave(src / "consolidated.01.pth", _bump("layers.1.ffn_norm.weight")),
                                ("consolidated.01.pth", "'layers.1.ffn_norm.weight' differs")),
    "shard lacks a tensor": (lambda src: _resave(src / "consolidated.01.pth",
                                                 lambda state: state.pop("layers.1.attention.wv.weight")),
                             ("consolidated.01.pth", "holds other tensors", "layers.1.attention.wv.weight")),
    "shards do not stack": (lambda src: _resave(src / "consolidated.01.pth", _narrow("layers.0.attention.wq.weight")),
                            ("consolidated.00.pth", "cannot merge the shards of 'layers.0.attention.wq.weight'")),
    "dim contradicts": (_params(dim=64), ("params.json",)),
    "kv heads contradict": (_params(n_kv_heads=1), ("params.json", "n_kv_heads=1", "attention.wk")),
    "ffn width contradicts": (_params(multiple_of=256), ("params.json", "multiple_of=256", "feed_forward.w1")),
    "layers contradict": (_params(n_layers=3), ("num_hidden_layers=3",)),
}


@pytest.mark.parametrize("case", list(BAD))
def test_shard_sets_that_make_no_model_are_refused(case, made, tmp):
    _, root = made
    src = tmp / "meta"
    shutil.copytree(root / "meta2", src)
    change, needles = BAD[case]
    change(src)
    proc = run_irconv("convert", src, tmp / "out", "--to", "pt", "--from", "meta")
    assert_one_line_error(proc, *needles)
    assert not (tmp / "out").exists()


def test_pt_to_meta_writes_the_fixtures_layout(made, tmp):
    """The inverse direction: HF -> meta writes what the fixture script wrote for 1 shard
    (torch.load of both, bit for bit), a params.json Meta's FeedForward width formula reads
    the same intermediate size from, and it reads back to the HF model."""
    model, root = made
    run_irconv("convert", root / "hf", tmp / "meta", "--to", "meta", check=True)
    ref = torch.load(root / "meta1" / "consolidated.00.pth", weights_only=True)
    got = torch.load(tmp / "meta" / "consolidated.00.pth", weights_only=True)
    ref.pop("rope.freqs")                      # a buffer HF recomputes: never written
    assert sorted(got) == sorted(ref)
    for name in ref:
        assert torch.equal(ref[name].view(torch.uint16), got[name].view(torch.uint16)), name
    params = json.loads((tmp / "meta" / "params.json").read_text())
    assert make_meta_llama.ffn_width(params["dim"], params["multiple_of"], params["ffn_dim_multiplier"]) \
        == model.config.intermediate_size
    assert (params["n_heads"], params["n_kv_heads"]) == (model.config.num_attention_heads,
                                                         model.config.num_key_value_heads)
    run_irconv("convert", tmp / "meta", tmp / "back", "--to", "pt", check=True)
    assert (tmp / "back" / "model.safetensors").read_bytes() == \
        run_and_read(root / "meta1", tmp / "direct")


def run_and_read(src, out) -> bytes:
    run_irconv("convert", src, out, "--to", "pt", check=True)
    return (out / "model.safetensors").read_bytes()


def test_reading_meta_imports_no_framework(made, tmp):
    _, root = made
    code = (f"import sys, irconv; irconv.convert({str(root / 'meta2')!r}, {str(tmp / 'out')!r}, to='pt'); "
            "bad = sorted(m for m in ('torch', 'tensorflow', 'transformers') if m in sys.modules); "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp / "out" / "model.safetensors").exists()


def test_what_meta_cannot_hold_is_refused(tmp):
    """Meta's attention has dim // n_heads wide heads: a Llama with another head_dim has
    no params.json; a family without a meta view is named. One line each, nothing written."""
    from zoo import make_pt
    make_pt("llama", "LlamaForCausalLM", seed=3, head_dim=16).save_pretrained(tmp / "llama")
    assert_one_line_error(run_irconv("convert", tmp / "llama", tmp / "out", "--to", "meta"), "head_dim=16")
    make_pt("phi3", "Phi3ForCausalLM", seed=3).save_pretrained(tmp / "phi3")
    assert_one_line_error(run_irconv("convert", tmp / "phi3", tmp / "out", "--to", "meta"), "'phi3'", "'meta'")
    assert not (tmp / "out").exists()
