"""HF Flax (flax_model.msgpack) both ways, with transformers' Flax classes (jax) as the oracle:
tiny HF PyTorch -> irconv --to flax -> Flax<Class>.from_pretrained loads with nothing missing
or unused and computes what PyTorch computes; irconv's Flax params are transformers' own
from_pt=True cross-load's, bit for bit; a file the Flax class saved itself -> irconv --to pt ->
PyTorch loads strictly and holds the source's tensors bit for bit. One class per family runs
by default, the rest are marked slow."""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import pytest
import transformers

import irconv
import zoo
from conftest import assert_one_line_error, run_irconv, run_pipe
from flax_oracle import assert_same_params, flat_params, flax_from_pretrained, flax_loads_cleanly, run_flax


def _jax_version() -> tuple[int, ...]:
    import jax
    return tuple(int(p) for p in jax.__version__.split(".")[:2])


# transformers 4.57.6's Flax T5 calls jnp.clip(a_max=...), which jax 0.10 removed: under a newer
# jax its classes cannot run at all (test_flax_t5_needs_jax_0_9 shows it), so there is no oracle.
FLAX_T5_RUNS = _jax_version() < (0, 10)
needs_flax_t5 = pytest.mark.skipif(not FLAX_T5_RUNS, reason="transformers 4.57.6's Flax T5 needs jax < 0.10 "
                                   "(jnp.clip(a_max=...)); the [test] pins say which jax runs it")

FX = "flax_model.msgpack"
# Flax Llama, Mistral and Gemma compute rotary positions with base 10000 whatever rope_theta
# says, and build a (max_position_embeddings,)^2 mask; Flax Mistral needs a window (see README).
_ROPE = dict(rope_theta=10000.0, max_position_embeddings=64)
FAST = [
    ("bert", "BertForPreTraining", {}),
    ("roberta", "RobertaForMaskedLM", {}),
    ("xlm-roberta", "XLMRobertaForMaskedLM", {}),
    ("electra", "ElectraForPreTraining", {}),
    ("albert", "AlbertForPreTraining", {"num_labels": 2}),     # Flax ALBERT's SOP head has 2 labels
    ("distilbert", "DistilBertForMaskedLM", {}),
    ("gpt2", "GPT2LMHeadModel", {}),
    ("llama", "LlamaForCausalLM", _ROPE),
    ("mistral", "MistralForCausalLM", dict(_ROPE, sliding_window=64)),
    ("gemma", "GemmaForCausalLM", _ROPE),
    ("bart", "BartForConditionalGeneration", {}),
    ("vit", "ViTForImageClassification", {}),
    ("wav2vec2", "Wav2Vec2Model", {"do_stable_layer_norm": True, "feat_extract_norm": "layer"}),
    ("t5", "T5ForConditionalGeneration", {}),
]
SLOW = [
    ("bert", "BertModel", {}), ("bert", "BertForMaskedLM", {}), ("bert", "BertForSequenceClassification", {}),
    ("bert", "BertForQuestionAnswering", {}),
    ("roberta", "RobertaModel", {}), ("roberta", "RobertaForSequenceClassification", {}),
    ("roberta", "RobertaForCausalLM", {"is_decoder": True}),
    ("xlm-roberta", "XLMRobertaModel", {}), ("electra", "ElectraModel", {}), ("albert", "AlbertModel", {}),
    ("distilbert", "DistilBertModel", {}), ("distilbert", "DistilBertForQuestionAnswering", {}),
    ("distilbert", "DistilBertForSequenceClassification", {}),
    ("gpt2", "GPT2Model", {}), ("gpt2", "GPT2LMHeadModel", {"tie_word_embeddings": False}),
    ("llama", "LlamaModel", _ROPE), ("mistral", "MistralModel", dict(_ROPE, sliding_window=64)),
    ("gemma", "GemmaModel", _ROPE), ("gemma", "GemmaForCausalLM", dict(_ROPE, tie_word_embeddings=False)),
    ("bart", "BartModel", {}), ("bart", "BartForSequenceClassification", {}),
    ("vit", "ViTModel", {}),
    # An untied lm_head (Flax's own Dense kernel; T5 1.1) and the gated feed-forward (wi_0, wi_1).
    ("t5", "T5Model", {}), ("t5", "T5ForConditionalGeneration", {"tie_word_embeddings": False}),
    ("t5", "T5ForConditionalGeneration", {"feed_forward_proj": "gated-gelu"}),
]


def _marks(case, *marks):
    return [*marks, needs_flax_t5] if case[0] == "t5" else list(marks)


CASES = [pytest.param(*c, id=f"{c[1]}{'-' + '-'.join(map(str, c[2].values())) if c in SLOW and c[2] else ''}",
                      marks=_marks(c)) for c in FAST] + [
    pytest.param(*c, id=c[1] + "".join(f"-{k}" for k in c[2]), marks=_marks(c, pytest.mark.slow)) for c in SLOW]


def pt_loads_cleanly(cls_name, directory):
    model, info = getattr(transformers, cls_name).from_pretrained(directory, output_loading_info=True)
    assert not any(info.values()), info
    return model.eval()


@pytest.mark.parametrize("family,cls_name,overrides", CASES)
def test_pt_to_flax_and_back(family, cls_name, overrides, tmp_path):
    pt = zoo.make_pt(family, cls_name, **overrides)
    pt.save_pretrained(tmp_path / "src")
    irconv.convert(tmp_path / "src", tmp_path / "flax", to="flax")
    assert json.loads((tmp_path / "flax" / "config.json").read_text())["architectures"] == [cls_name]

    model = flax_loads_cleanly(cls_name, tmp_path / "flax")
    inputs = zoo.inputs_for(family, pt.config)
    zoo.assert_close(zoo.run_pt(pt, inputs), run_flax(model, inputs), 1e-5)

    cross, _ = flax_from_pretrained(cls_name, tmp_path / "src", from_pt=True)
    assert_same_params(cross.params, model.params)

    model.save_pretrained(tmp_path / "flax-saved")
    # The Flax class saves the very bytes irconv wrote (keys sorted, msgpack's own encoding).
    assert (tmp_path / "flax-saved" / FX).read_bytes() == (tmp_path / "flax" / FX).read_bytes()
    irconv.convert(tmp_path / "flax-saved", tmp_path / "back", to="pt")
    pt_loads_cleanly(cls_name, tmp_path / "back")
    zoo.assert_same_tensors(zoo.hf_safetensors(tmp_path / "src"), zoo.hf_safetensors(tmp_path / "back"))


def test_flax_llama_stores_lm_head_when_tied(tmp_path):
    """FlaxLlamaForCausalLM has an lm_head kernel even when the model ties it: irconv writes the
    embedding transposed there. transformers' own from_pt cross-load leaves it random (it says
    so), so only the other params are compared with it; the copy is dropped on the way back."""
    pt = zoo.make_pt("llama", "LlamaForCausalLM", tie_word_embeddings=True, **_ROPE)
    pt.save_pretrained(tmp_path / "src")
    irconv.convert(tmp_path / "src", tmp_path / "flax", to="flax")
    model = flax_loads_cleanly("LlamaForCausalLM", tmp_path / "flax")
    params = flat_params(model.params)
    assert params["lm_head/kernel"].tobytes() == np.ascontiguousarray(params["model/embed_tokens/embedding"].T).tobytes()
    inputs = zoo.inputs_for("llama", pt.config)
    zoo.assert_close(zoo.run_pt(pt, inputs), run_flax(model, inputs), 1e-5)
    cross, messages = flax_from_pretrained("LlamaForCausalLM", tmp_path / "src", from_pt=True)
    assert any("newly initialized" in m and "lm_head" in m for m in messages), messages
    theirs = {k: v for k, v in flat_params(cross.params).items() if k != "lm_head/kernel"}
    assert sorted(theirs) == sorted(k for k in params if k != "lm_head/kernel")
    assert all(theirs[k].tobytes() == params[k].tobytes() for k in theirs)
    model.save_pretrained(tmp_path / "flax-saved")
    irconv.convert(tmp_path / "flax-saved", tmp_path / "back", to="pt")
    pt_loads_cleanly("LlamaForCausalLM", tmp_path / "back")
    zoo.assert_same_tensors(zoo.hf_safetensors(tmp_path / "src"), zoo.hf_safetensors(tmp_path / "back"))


def test_bf16_sharded_both_ways(tmp_path):
    """A bf16 Llama in HF's sharded PyTorch layout -> sharded Flax (flax_model.msgpack.index.json),
    which the Flax class loads with its bf16 bytes; back to pt, bit for bit."""
    pt = zoo.make_pt("llama", "LlamaForCausalLM", **_ROPE)
    zoo.save_bf16_sharded(pt, tmp_path / "src")
    irconv.convert(tmp_path / "src", tmp_path / "flax", to="flax", max_shard_size=20_000)
    index = json.loads((tmp_path / "flax" / "flax_model.msgpack.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    model = flax_loads_cleanly("LlamaForCausalLM", tmp_path / "flax")
    pt.save_pretrained(tmp_path / "single")      # (transformers cross-loads no sharded safetensors)
    cross, _ = flax_from_pretrained("LlamaForCausalLM", tmp_path / "single", from_pt=True)
    mine = flat_params(model.params)
    assert {str(v.dtype) for v in mine.values()} == {"bfloat16"}
    assert_same_params(cross.params, model.params)   # its cross-load goes through f32 and back
    irconv.convert(tmp_path / "flax", tmp_path / "back", to="pt")
    zoo.assert_same_tensors(zoo.hf_safetensors(tmp_path / "src"), zoo.hf_safetensors(tmp_path / "back"))


def test_cli_convert_pipe_and_refusals(tmp_path):
    pt = zoo.make_pt("bert", "BertForMaskedLM")
    pt.save_pretrained(tmp_path / "src")
    run_irconv("convert", tmp_path / "src", tmp_path / "a", "--to", "flax", check=True)
    rc, err, proc = run_pipe(["import", "pt", tmp_path / "src"], ["export", "flax", tmp_path / "b"])
    assert rc == 0 and proc.returncode == 0, (err, proc.stderr)
    assert (tmp_path / "a" / "flax_model.msgpack").read_bytes() == (tmp_path / "b" / "flax_model.msgpack").read_bytes()
    run_irconv("convert", tmp_path / "a", tmp_path / "c", "--to", "pt", check=True)    # --from detected
    zoo.assert_same_tensors(zoo.hf_safetensors(tmp_path / "src"), zoo.hf_safetensors(tmp_path / "c"))
    # What a Flax class would compute otherwise is refused, and nothing is written.
    llama = zoo.make_pt("llama", "LlamaForCausalLM")          # zoo's rope_theta 5e5
    llama.save_pretrained(tmp_path / "llama")
    assert_one_line_error(run_irconv("convert", tmp_path / "llama", tmp_path / "d", "--to", "flax"),
                          "rope_theta", "base 10000")
    assert not (tmp_path / "d").exists()


def test_verify_runs_flax(tmp_path):
    from irconv.verify import verify
    pt = zoo.make_pt("gpt2", "GPT2LMHeadModel")
    pt.save_pretrained(tmp_path / "src")
    irconv.convert(tmp_path / "src", tmp_path / "flax", to="flax")
    lines = []
    assert verify(tmp_path / "src", tmp_path / "flax", atol=1e-5, echo=lines.append), lines
    assert any("flax FlaxGPT2LMHeadModel" in line for line in lines), lines


def test_flax_t5_needs_jax_0_9():
    """transformers 4.57.6's Flax T5 calls jnp.clip(a_max=...) in its position buckets: jax 0.10
    removed the keyword, so no Flax T5 class runs there and the t5 flax tests skip; jax 0.9 still
    takes it (deprecated), and the t5 flax view is tested against the class (README, Flax)."""
    t5 = transformers.T5Config(**zoo.CONFIGS["t5"][1])
    ids = np.ones((1, 5), dtype=np.int64)
    if not FLAX_T5_RUNS:
        with pytest.raises(TypeError, match="a_max"):
            transformers.FlaxT5ForConditionalGeneration(t5)(input_ids=ids, decoder_input_ids=ids)
        return
    with pytest.warns(DeprecationWarning, match="a_max"):
        out = transformers.FlaxT5ForConditionalGeneration(t5)(input_ids=ids, decoder_input_ids=ids)
    assert out.logits.shape == (1, 5, t5.vocab_size) and np.isfinite(np.asarray(out.logits)).all()


def test_flax_classes_that_cannot_run_here():
    """What transformers 4.57.6's Flax classes cannot do in any jax, shown on their own models
    (README, Flax): Wav2Vec2 builds only do_stable_layer_norm=True (with feat_extract_norm
    'layer'): the flax view of wav2vec2 refuses the post-LN base layout."""
    w2v = zoo.config_for("wav2vec2", "Wav2Vec2Model", do_stable_layer_norm=False)
    with pytest.raises(NotImplementedError, match="do_stable_layer_norm"):
        transformers.FlaxWav2Vec2Model(w2v)
    pt = zoo.make_pt("wav2vec2", "Wav2Vec2Model")
    with tempfile.TemporaryDirectory() as d:
        pt.save_pretrained(d)
        with pytest.raises(irconv.IrconvError, match="do_stable_layer_norm"):
            irconv.convert(d, os.path.join(d, "out"), to="flax")
        assert not os.path.exists(os.path.join(d, "out"))


def test_copied_tensors_make_the_file_written_ones_make(tmp_path, monkeypatch):
    """copy() (a kernel copy from a safetensors range, into each piece of a chunked array too)
    and write() give the same bytes, which flax.serialization reads back."""
    from flax.serialization import msgpack_restore
    from conftest import written_both_ways
    from irconv.formats import flaxmsgpack
    monkeypatch.setattr(flaxmsgpack, "CHUNK_BYTES", 1000)      # 'd' is stored in 280 chunks
    rng = np.random.default_rng(0)
    arrays = {"m/a": rng.standard_normal((30, 7)).astype(np.float32), "m/b": np.arange(10, dtype=np.int32),
              "n/d": rng.standard_normal(70000).astype(np.float32)}
    written, copied = written_both_ways(tmp_path, arrays, flaxmsgpack.FlaxMsgpackWriter, FX)
    assert copied.read_bytes() == written.read_bytes()
    tree = msgpack_restore(copied.read_bytes())
    assert all(np.array_equal(np.asarray(tree[k.split("/")[0]][k.split("/")[1]]), v) for k, v in arrays.items())
