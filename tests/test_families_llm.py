"""The decoder LLM families (llama, mistral, mixtral, qwen2, qwen3, gemma, gemma2) as people
convert them now: every HF class saved in bf16 and sharded (safetensors shards + index), pt ->
pt bit-exact with transformers loading the output strictly and giving the same logits, the
shell pipe writing the same file, tie_word_embeddings both ways, weights files without a
config (never a guessed head count or rope_theta), and Mistral's TF2 classes."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

import zoo  # noqa: E402
from conftest import assert_one_line_error, run_irconv, run_pipe  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from zoo import inputs_for, make_pt, run_pt  # noqa: E402

LLM_FAMILIES = ("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2")
CAUSAL = [(fam, next(c for c in FAMILIES.get(fam).architectures if c.endswith("ForCausalLM"))) for fam in LLM_FAMILIES]
# Every other class (the LMs are test_tie_both_ways_and_the_pipe's, tied and untied).
CASES = [(fam, cls) for fam in LLM_FAMILIES for cls in FAMILIES.get(fam).architectures if (fam, cls) not in CAUSAL]
ids = [f"{f}-{c}" for f, c in CASES]


def safetensors_dir(directory) -> dict:
    """Every tensor of a directory's safetensors files (one file or shards), read by safetensors."""
    out = {}
    for path in sorted(directory.glob("*.safetensors")):
        shard = load_file(path)
        assert not set(shard) & set(out), path
        out.update(shard)
    return out


def assert_bit_exact(src, out):
    ref, got = safetensors_dir(src), safetensors_dir(out)
    assert sorted(ref) == sorted(got)
    for name, tensor in ref.items():
        assert got[name].dtype == tensor.dtype and got[name].shape == tensor.shape, name
        assert torch.equal(tensor.reshape(-1).view(torch.uint8), got[name].reshape(-1).view(torch.uint8)), name


def loads_strictly(cls_name, directory, dtype=torch.bfloat16):
    model, info = getattr(transformers, cls_name).from_pretrained(directory, output_loading_info=True, dtype=dtype)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def assert_same_outputs(ref: dict, got: dict):
    """Same weights, same class, same dtype, same CPU kernels: the outputs are the same numbers."""
    assert ref and sorted(ref) == sorted(got)
    for key in ref:
        assert ref[key].shape == got[key].shape and (ref[key] == got[key]).all(), key


def bf16_sharded(family, cls_name, directory, seed=31, **overrides):
    """A tiny random HF model in bf16, saved in ~20 KB shards with an index, as hub LLMs are;
    returned as transformers loads that directory (a model cast with .to(bf16) also rounds its
    rotary inv_freq buffer, which a loaded one keeps in float32)."""
    make_pt(family, cls_name, seed=seed, **overrides).to(torch.bfloat16).save_pretrained(directory, max_shard_size="20KB")
    assert (directory / "model.safetensors.index.json").exists() and len(list(directory.glob("*.safetensors"))) > 1
    return loads_strictly(cls_name, directory)


@pytest.mark.parametrize("family,cls_name", CASES, ids=ids)
def test_bf16_sharded_to_pt(family, cls_name, tmp):
    model = bf16_sharded(family, cls_name, tmp / "src")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    assert_bit_exact(tmp / "src", tmp / "out")
    assert all(t.dtype == torch.bfloat16 for t in safetensors_dir(tmp / "out").values())
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == family and config["architectures"] == [cls_name]
    loaded = loads_strictly(cls_name, tmp / "out")
    inputs = inputs_for(family, model.config)
    assert_same_outputs(run_pt(model, inputs), run_pt(loaded, inputs))


@pytest.mark.parametrize("family,cls_name", CAUSAL, ids=[f for f, _ in CAUSAL])
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_tie_both_ways_and_the_pipe(family, cls_name, tie, tmp):
    model = bf16_sharded(family, cls_name, tmp / "src", seed=32, tie_word_embeddings=tie)
    assert ("lm_head.weight" in safetensors_dir(tmp / "src")) is not tie
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    assert_bit_exact(tmp / "src", tmp / "out")
    # HF writes the flag only where it is not the config class's default (Gemma's is true).
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == family and config["architectures"] == [cls_name]
    assert config.get("tie_word_embeddings", FAMILIES.get(family).tie_default) is tie
    loaded = loads_strictly(cls_name, tmp / "out")
    assert (loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()) is tie
    inputs = inputs_for(family, model.config)
    assert_same_outputs(run_pt(model, inputs), run_pt(loaded, inputs))
    # `irconv import pt DIR | irconv export pt OUT` writes the very same file.
    rc, err, proc = run_pipe(["import", "pt", tmp / "src"], ["export", "pt", tmp / "piped"])
    assert rc == 0 and proc.returncode == 0, (err, proc.stderr)
    assert (tmp / "piped" / "model.safetensors").read_bytes() == (tmp / "out" / "model.safetensors").read_bytes()


def torch_bin_dir(directory) -> dict:
    """Every tensor of a directory's pytorch_model*.bin files, read by torch.load(weights_only=True)."""
    out = {}
    for path in sorted(directory.glob("pytorch_model*.bin")):
        out.update(torch.load(path, weights_only=True))
    return out


def test_bf16_bin_shards_both_ways(tmp):
    """bf16 through the torch zip pickle: sharded pytorch_model-*.bin in, sharded .bin out."""
    model = make_pt("mixtral", "MixtralForCausalLM", seed=38).to(torch.bfloat16)
    model.save_pretrained(tmp / "src", max_shard_size="20KB", safe_serialization=False)
    assert (tmp / "src" / "pytorch_model.bin.index.json").exists()
    ref = loads_strictly("MixtralForCausalLM", tmp / "src")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", "--bin", "--max-shard-size", "20KB", check=True)
    assert (tmp / "out" / "pytorch_model.bin.index.json").exists()
    src, out = torch_bin_dir(tmp / "src"), torch_bin_dir(tmp / "out")
    assert sorted(src) == sorted(out) and all(t.dtype == torch.bfloat16 for t in out.values())
    for name, tensor in src.items():
        assert torch.equal(tensor.reshape(-1).view(torch.uint8), out[name].reshape(-1).view(torch.uint8)), name
    loaded = loads_strictly("MixtralForCausalLM", tmp / "out")
    inputs = inputs_for("mixtral", model.config)
    assert_same_outputs(run_pt(ref, inputs), run_pt(loaded, inputs))


def test_old_rotary_buffers_are_dropped(tmp):
    """Checkpoints saved before transformers made inv_freq non-persistent carry it per layer."""
    model = make_pt("llama", "LlamaForCausalLM", seed=33)
    model.save_pretrained(tmp / "src")
    tensors = load_file(tmp / "src" / "model.safetensors")
    for i in range(2):
        tensors[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = torch.arange(4, dtype=torch.float32)
    save_file(tensors, tmp / "src" / "model.safetensors", metadata={"format": "pt"})
    listed = run_irconv("ls", tmp / "src", check=True)
    assert b"model.layers.1.self_attn.rotary_emb.inv_freq" in listed.stdout + listed.stderr   # said, not hidden
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    out = load_file(tmp / "out" / "model.safetensors")
    assert not [k for k in out if "inv_freq" in k]
    loaded = loads_strictly("LlamaForCausalLM", tmp / "out", dtype=torch.float32)
    inputs = inputs_for("llama", model.config)
    assert_same_outputs(run_pt(model, inputs), run_pt(loaded, inputs))


def test_llama_attention_and_mlp_biases(tmp):
    model = bf16_sharded("llama", "LlamaForCausalLM", tmp / "src", seed=34, attention_bias=True, mlp_bias=True)
    assert "model.layers.1.self_attn.o_proj.bias" in safetensors_dir(tmp / "src")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    assert_bit_exact(tmp / "src", tmp / "out")
    loaded = loads_strictly("LlamaForCausalLM", tmp / "out")
    inputs = inputs_for("llama", model.config)
    assert_same_outputs(run_pt(model, inputs), run_pt(loaded, inputs))


# family -> what a bare weights file must be given (beyond REQUIRED's num_attention_heads,
# rope_theta, rms_norm_eps) and the stated defaults the tiny model does not share.
BARE = {"llama": ((), ()), "mistral": (("sliding_window",), ()), "qwen2": ((), ()), "qwen3": ((), ()),
        "mixtral": (("num_experts_per_tok", "sliding_window"), ()), "gemma": ((), ()),
        "gemma2": (("query_pre_attn_scalar", "sliding_window"), ())}


# Every family's LM tied and untied, and Llama's other classes (a tied LM head leaves no tensor,
# so the classifiers' heads must not read as an LM's).
BARE_CASES = [(f, c, tie) for f, c in CAUSAL for tie in (True, False)] + \
    [("llama", c, False) for c in FAMILIES.get("llama").architectures if not c.endswith("ForCausalLM")]


@pytest.mark.parametrize("family,cls_name,tie", BARE_CASES,
                         ids=[f"{c}-{'tied' if tie else 'untied'}" for _, c, tie in BARE_CASES])
def test_bare_weights_file(family, cls_name, tie, tmp):
    model = make_pt(family, cls_name, seed=35, tie_word_embeddings=tie)
    model.save_pretrained(tmp / "src")
    (tmp / "src" / "config.json").unlink()
    if family in ("llama", "mistral", "gemma"):
        # They name every tensor alike: without a config the family is asked for.
        proc = run_irconv("convert", tmp / "src" / "model.safetensors", tmp / "out", "--to", "pt")
        assert_one_line_error(proc, "model.safetensors", "--model")
    required, also = BARE[family]
    zoo.convert_bare(tmp / "src" / "model.safetensors", tmp / "out", model.config,
                     ("num_attention_heads", "rope_theta", "rms_norm_eps", *required), "--to", "pt", "--model", family,
                     # A batch's padding (which token the sequence classifier reads) is no tensor either.
                     also=("max_position_embeddings", *also, *(("pad_token_id",) if "Sequence" in cls_name else ())))
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["architectures"] == [cls_name]
    assert config["tie_word_embeddings"] is tie or not cls_name.endswith("LM")
    # head_dim and the kv heads follow from num_attention_heads and the q/k projections.
    head_dim = getattr(model.config, "head_dim", None) or model.config.hidden_size // model.config.num_attention_heads
    assert config["head_dim"] == head_dim == model.base_model.layers[0].self_attn.head_dim
    assert config["num_key_value_heads"] == model.config.num_key_value_heads == 2
    zoo.assert_same_safetensors(tmp / "src", tmp / "out")
    loaded = loads_strictly(cls_name, tmp / "out", dtype=torch.float32)
    inputs = inputs_for(family, model.config)
    assert_same_outputs(run_pt(model, inputs), run_pt(loaded, inputs))


def test_a_config_whose_heads_do_not_fit_is_refused(tmp):
    model = make_pt("qwen2", "Qwen2ForCausalLM", seed=37)
    model.save_pretrained(tmp / "src")
    config = json.loads((tmp / "src" / "config.json").read_text())
    (tmp / "src" / "config.json").write_text(json.dumps(dict(config, num_key_value_heads=4)))
    proc = run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt")
    assert_one_line_error(proc, "num_key_value_heads=4 does not fit", "num_key_value_heads=2")
    assert not (tmp / "out").exists()


def test_a_head_count_that_does_not_fit_is_refused(tmp):
    model = make_pt("llama", "LlamaForCausalLM", seed=36, head_dim=16)
    model.save_pretrained(tmp / "src")
    (tmp / "src" / "config.json").unlink()
    # q_proj has 4 * 16 = 64 rows: 3 heads do not divide them, 8 heads of 8 leave k_proj's 32
    # rows as 4 kv heads, which is a fit, but a given num_key_value_heads=2 then is not.
    for sets, needle in ((["num_attention_heads=3"], "does not divide q_proj's 64 rows"),
                         (["num_attention_heads=8", "num_key_value_heads=2"], "num_key_value_heads=2 does not fit")):
        args = [a for s in sets for a in ("--set", s)]
        proc = run_irconv("convert", tmp / "src" / "model.safetensors", tmp / "out", "--to", "pt", "--model", "llama", *args,
                          "--set", "rope_theta=500000.0", "--set", "rms_norm_eps=1e-5", "--accept-defaults")
        assert_one_line_error(proc, "model.safetensors", needle)
        assert not (tmp / "out").exists()


# ---- Mistral in TF2 (TFMistralModel, TFMistralForCausalLM, TFMistralForSequenceClassification)

TF_ATOL = 1e-5
TF_CLASSES = ["MistralModel", "MistralForCausalLM", "MistralForSequenceClassification"]
# TF Mistral masks no sliding window (its attention is causal only): the same model computes the
# same there only for inputs within the window, so these models have none.
NO_WINDOW = dict(sliding_window=None)


@pytest.fixture(scope="module")
def tf_helpers():
    pytest.importorskip("tensorflow")
    import test_tf2
    return test_tf2


@pytest.mark.parametrize("cls_name,tie", [(c, False) for c in TF_CLASSES] + [("MistralForCausalLM", True)],
                         ids=[*TF_CLASSES, "MistralForCausalLM-tied"])
def test_mistral_pt_to_tf2_and_back(cls_name, tie, tf_helpers, tmp):
    model = make_pt("mistral", cls_name, seed=41, tie_word_embeddings=tie, **NO_WINDOW)
    model.save_pretrained(tmp / "pt")
    run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2", check=True)
    tf_model = tf_helpers.tf_loads_cleanly(cls_name, tmp / "tf2")
    if tie:
        # TF's lm_head is a Dense layer of its own: it holds the embedding matrix, transposed.
        kernel = tf_model.lm_head.weights[0].numpy()
        assert tf_helpers.same_bytes(kernel, model.model.embed_tokens.weight.detach().numpy().T.copy())
    inputs = inputs_for("mistral", model.config)
    zoo.assert_close(run_pt(model, inputs), zoo.run_tf(tf_model, inputs), TF_ATOL)
    run_irconv("convert", tmp / "tf2", tmp / "back", "--to", "pt", check=True)
    zoo.assert_same_safetensors(tmp / "pt", tmp / "back")
    loaded = loads_strictly(cls_name, tmp / "back", dtype=torch.float32)
    assert_same_outputs(run_pt(model, inputs), run_pt(loaded, inputs))


@pytest.mark.parametrize("cls_name", TF_CLASSES)
def test_mistral_tf2_made_by_tf_to_pt(cls_name, tf_helpers, tmp):
    tf_model = zoo.make_tf("mistral", cls_name, seed=42, **NO_WINDOW)
    tf_model.save_pretrained(tmp / "tf2")
    run_irconv("convert", tmp / "tf2", tmp / "pt", "--to", "pt", check=True)
    loaded = loads_strictly(cls_name, tmp / "pt", dtype=torch.float32)
    inputs = inputs_for("mistral", tf_model.config)
    zoo.assert_close(zoo.run_tf(tf_model, inputs), run_pt(loaded, inputs), TF_ATOL)
    # ... and back to TF2 the very same variables.
    run_irconv("convert", tmp / "pt", tmp / "tf2-again", "--to", "tf2", check=True)
    ref, got = tf_helpers.h5_datasets(tmp / "tf2" / "tf_model.h5"), tf_helpers.h5_datasets(tmp / "tf2-again" / "tf_model.h5")
    assert sorted(ref) == sorted(got) and all(tf_helpers.same_bytes(ref[k], got[k]) for k in ref)


def test_mistral_bf16_to_tf2_only_with_cast(tf_helpers, tmp):
    """HF's TF classes load no bf16 h5: refused, never cast silently; --cast f32 converts."""
    model = bf16_sharded("mistral", "MistralForCausalLM", tmp / "src", seed=43, **NO_WINDOW)
    proc = run_irconv("convert", tmp / "src", tmp / "tf2", "--to", "tf2")
    assert_one_line_error(proc, "BF16", "--cast F32")
    assert not (tmp / "tf2").exists()
    run_irconv("convert", tmp / "src", tmp / "tf2", "--to", "tf2", "--cast", "f32", check=True)
    assert {a.dtype.name for a in tf_helpers.h5_datasets(tmp / "tf2" / "tf_model.h5").values()} == {"float32"}
    tf_model = tf_helpers.tf_loads_cleanly("MistralForCausalLM", tmp / "tf2")
    reference = loads_strictly("MistralForCausalLM", tmp / "src", dtype=torch.float32)   # bf16 values, f32 math
    inputs = inputs_for("mistral", model.config)
    zoo.assert_close(run_pt(reference, inputs), zoo.run_tf(tf_model, inputs), TF_ATOL)
    # The cast is exact (every bf16 is a float32): back to bf16 gives the source bytes.
    run_irconv("convert", tmp / "tf2", tmp / "back", "--to", "pt", "--cast", "bf16", check=True)
    assert_bit_exact(tmp / "src", tmp / "back")


def test_mistral_with_its_own_head_dim_is_refused_for_tf2(tmp):
    """TF Mistral has no head_dim setting: a model whose heads are not hidden_size / heads wide
    would load there with wrongly shaped projections; it is refused, nothing written."""
    model = make_pt("mistral", "MistralForCausalLM", seed=44, head_dim=16)
    model.save_pretrained(tmp / "pt")
    proc = run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2")
    assert_one_line_error(proc, f"{tmp / 'tf2'}: ", "head_dim=16", "32 / 4")
    assert not (tmp / "tf2").exists()


@pytest.mark.parametrize("cls_name", ["MistralForTokenClassification", "MistralForQuestionAnswering"])
def test_mistral_classes_tf_lacks_are_refused_for_tf2(cls_name, tmp):
    make_pt("mistral", cls_name, seed=45).save_pretrained(tmp / "pt")
    assert not hasattr(transformers, "TF" + cls_name)
    proc = run_irconv("convert", tmp / "pt", tmp / "tf2", "--to", "tf2")
    assert_one_line_error(proc, f"{tmp / 'tf2'}: ", f"transformers has no TF{cls_name}")
    assert not (tmp / "tf2").exists()
