"""phi3: the fused qkv_proj and gate_up_proj are a declared split into the canonical q/k/v and
gate/up tensors and a merge back. Every class, from a bf16 model that HF saved in shards:
irconv -> pt is bit-exact, loads strictly and computes the same logits; the pipe writes the
same bytes; the canonical parts are the rows HF's own forward slices; tied and untied heads;
a fused tensor the config does not split is refused."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

import irconv  # noqa: E402
import zoo  # noqa: E402
from conftest import assert_one_line_error, run_irconv, run_pipe  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from zoo import inputs_for, make_pt  # noqa: E402

CLASSES = list(FAMILIES.get("phi3").architectures)
SHARD = "20KB"          # the tiny bf16 model is ~60 KB: HF writes it in several shards


def hf_tensors(directory) -> dict:
    """Every tensor of an HF directory, over all its safetensors shards (read by safetensors)."""
    out = {}
    for path in sorted(directory.glob("*.safetensors")):
        out.update(load_file(path))
    return out


def assert_same_tensors(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype == torch.bfloat16, name
        assert torch.equal(a[name].reshape(-1).view(torch.uint8), b[name].reshape(-1).view(torch.uint8)), name


def logits(cls_name, directory, inputs):
    model, info = getattr(transformers, cls_name).from_pretrained(directory, torch_dtype=torch.bfloat16,
                                                                   output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    with torch.no_grad():
        out = model.eval()(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    return out[0]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Class -> a directory holding that class as a bf16 HF model in shards (built once)."""
    root = tmp_path_factory.mktemp("phi3")
    out = {}
    for n, cls_name in enumerate(CLASSES):
        model = make_pt("phi3", cls_name, seed=90 + n).to(torch.bfloat16)
        model.save_pretrained(root / cls_name, max_shard_size=SHARD)
        assert (root / cls_name / "model.safetensors.index.json").exists()
        out[cls_name] = root / cls_name
    return out


@pytest.mark.parametrize("cls_name", CLASSES)
def test_every_class_to_pt_bit_exact_and_same_logits(cls_name, sources, tmp):
    src = sources[cls_name]
    run_irconv("convert", src, tmp / "out", "--to", "pt", check=True)
    assert_same_tensors(hf_tensors(src), hf_tensors(tmp / "out"))
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == "phi3" and config["architectures"] == [cls_name]
    inputs = inputs_for("phi3", transformers.AutoConfig.from_pretrained(src))
    assert torch.equal(logits(cls_name, src, inputs), logits(cls_name, tmp / "out", inputs))


def test_pipe_writes_the_same_bytes(sources, tmp):
    src = sources["Phi3ForCausalLM"]
    run_irconv("convert", src, tmp / "convert", "--to", "pt", check=True)
    rc, err, proc = run_pipe(["import", "pt", src], ["export", "pt", tmp / "pipe"])
    assert rc == 0 and proc.returncode == 0, (err, proc.stderr)
    assert (tmp / "pipe" / "model.safetensors").read_bytes() == (tmp / "convert" / "model.safetensors").read_bytes()


def test_canonical_parts_are_the_rows_hf_slices(sources):
    """q, k, v and gate, up are the rows of the fused tensors in the order Phi3Attention and
    Phi3MLP slice them (q: heads * head_dim, k and v: kv heads * head_dim; gate then up)."""
    src = sources["Phi3ForCausalLM"]
    config = transformers.AutoConfig.from_pretrained(src)
    hf = hf_tensors(src)
    ckpt = irconv.load(src)
    head_dim = config.hidden_size // config.num_attention_heads
    q, kv = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    assert q != kv                                  # the three parts differ in size
    for i in range(config.num_hidden_layers):
        qkv = hf[f"model.layers.{i}.self_attn.qkv_proj.weight"]
        gate_up = hf[f"model.layers.{i}.mlp.gate_up_proj.weight"]
        want = {"attn.q": qkv[:q], "attn.k": qkv[q:q + kv], "attn.v": qkv[q + kv:],
                "ffn.gate": gate_up[:config.intermediate_size], "ffn.up": gate_up[config.intermediate_size:]}
        for name, rows in want.items():
            got = torch.from_numpy(ckpt.tensors[f"decoder.layers.{i}.{name}.weight"].load().view("uint16"))
            assert torch.equal(got, rows.contiguous().view(torch.uint16)), (i, name)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_tied_and_untied_lm_head(tied, tmp):
    model = make_pt("phi3", "Phi3ForCausalLM", seed=97, tie_word_embeddings=tied).to(torch.bfloat16)
    model.save_pretrained(tmp / "src", max_shard_size=SHARD)
    assert ("lm_head.weight" in hf_tensors(tmp / "src")) is not tied
    ckpt = irconv.load(tmp / "src")
    assert (ckpt.aliases == {"heads.lm.weight": "embeddings.word.weight"}) is tied
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    assert_same_tensors(hf_tensors(tmp / "src"), hf_tensors(tmp / "out"))
    inputs = inputs_for("phi3", model.config)
    assert torch.equal(logits("Phi3ForCausalLM", tmp / "src", inputs), logits("Phi3ForCausalLM", tmp / "out", inputs))


BARE_CASES = [("Phi3ForCausalLM", True)] + [(c, False) for c in CLASSES]


@pytest.mark.parametrize("cls_name,tied", BARE_CASES, ids=[f"{c}-{'tied' if t else 'untied'}" for c, t in BARE_CASES])
def test_bare_weights_file_needs_the_head_counts(cls_name, tied, tmp):
    """No config.json: the fused tensors split by the shapes (q is hidden_size rows), the k/v
    heads follow from the given head count, and each class comes back as itself."""
    model = make_pt("phi3", cls_name, seed=98, tie_word_embeddings=tied).to(torch.bfloat16)
    model.save_pretrained(tmp / "src")
    (tmp / "src" / "config.json").unlink()
    # The padding token (which token the sequence classifier reads; Phi3Model's embedding
    # refuses Phi-3's 32000 in a 99-word table) is no tensor either.
    zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "out", model.config,
                     ("num_attention_heads", "rope_theta", "rms_norm_eps"), "--to", "pt", "--model", "phi3",
                     also=("max_position_embeddings", "original_max_position_embeddings", "pad_token_id"))
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["architectures"] == [cls_name]
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "rope_theta"):
        assert config[key] == getattr(model.config, key), key
    assert config["tie_word_embeddings"] is tied or not cls_name.endswith("LM")
    assert_same_tensors(hf_tensors(tmp / "src"), hf_tensors(tmp / "out"))
    inputs = inputs_for("phi3", model.config)
    with torch.no_grad():
        want = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})[0]
    assert torch.equal(want, logits(cls_name, tmp / "out", inputs))


def test_fused_tensor_the_config_does_not_split_is_refused(sources, tmp):
    """A config whose head counts give other q/k/v extents than qkv_proj's rows: one line, exit 2."""
    src = tmp / "src"
    src.mkdir()
    config = json.loads((sources["Phi3Model"] / "config.json").read_text())
    config["num_key_value_heads"] = 1                    # 32 + 8 + 8 rows, the file holds 32 + 16 + 16
    (src / "config.json").write_text(json.dumps(config))
    save_file(hf_tensors(sources["Phi3Model"]), src / "model.safetensors")
    proc = run_irconv("convert", src, tmp / "out", "--to", "pt")
    assert_one_line_error(proc, "qkv_proj.weight", "does not split into [32, 8, 8]")
    assert not (tmp / "out").exists()


def test_bin_output_holds_the_fused_tensors(sources, tmp):
    """--bin: torch.load reads the re-stacked qkv_proj and gate_up_proj, HF's bytes."""
    src = sources["Phi3ForCausalLM"]
    run_irconv("convert", src, tmp / "out", "--to", "pt", "--bin", check=True)
    got = torch.load(tmp / "out" / "pytorch_model.bin", weights_only=True)
    assert_same_tensors(hf_tensors(src), got)
    assert "model.layers.1.mlp.gate_up_proj.weight" in got
