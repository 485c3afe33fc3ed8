"""GPT-2 and OpenAI GPT beyond the generic tf2/registry tests: every class pt -> pt, Conv1D
weights moved without a transpose and their TF (1, out) biases, the tied lm_head (an alias in
the IR, whatever the source) and the mask buffers older checkpoints carry (bare weights files
and the untied lm_head: test_families_registry.py)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

import irconv  # noqa: E402
import test_tf2  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from irconv import FAMILIES  # noqa: E402
from zoo import assert_close, inputs_for, make_pt, make_tf, run_pt  # noqa: E402

CASES = [(fam, cls) for fam in ("gpt2", "openai-gpt") for cls in FAMILIES.get(fam).architectures]
ids = [f"{f}-{c}" for f, c in CASES]
LM = {"gpt2": "GPT2LMHeadModel", "openai-gpt": "OpenAIGPTLMHeadModel"}
# Shapes of a real release: 64 dims per head (gpt2: 768 wide, 12 heads).
REAL_SHAPES = dict(n_embd=128, n_head=2)


@pytest.mark.parametrize("family", ["gpt2", "openai-gpt"])
def test_conv1d_is_not_transposed_and_tf_bias_is_a_row(family, tmp):
    """PyTorch Conv1D weights are (in, out) like TF's: the bytes go across unchanged, and TF's
    (1, out) bias is the PyTorch (out,) one with a unit axis."""
    model = make_pt(family, LM[family], seed=62)
    model.save_pretrained(tmp / "src")
    irconv.convert(tmp / "src", tmp / "tf2", to="tf2")
    pt = load_file(tmp / "src" / "model.safetensors")
    tf = test_tf2.h5_datasets(tmp / "tf2" / "tf_model.h5")
    w = pt["transformer.h.0.attn.c_attn.weight"].numpy()
    assert w.shape == (32, 96)              # fused q/k/v, stored fused again (the IR holds them apart)
    assert test_tf2.same_bytes(tf["transformer/transformer/h_._0/attn/c_attn/weight:0"], w)
    b = pt["transformer.h.1.mlp.c_fc.bias"].numpy()
    assert test_tf2.same_bytes(tf["transformer/transformer/h_._1/mlp/c_fc/bias:0"], b[None])
    ckpt = irconv.load(tmp / "src")
    assert ckpt.tensors["decoder.layers.0.attn.q.weight"].axes == ("in", "out")
    assert test_tf2.same_bytes(ckpt.tensors["decoder.layers.0.attn.k.weight"].load(), w[:, 32:64])


@pytest.mark.parametrize("family", ["gpt2", "openai-gpt"])
@pytest.mark.parametrize("source", ["pt", "tf2"])
def test_lm_head_is_an_alias_of_the_word_embeddings(family, source, tmp):
    """Neither HF file stores lm_head (safetensors drops the tie, TF has no variable): the
    config's class says the head is there, and the IR ties it to the word embeddings."""
    if source == "pt":
        make_pt(family, LM[family], seed=63).save_pretrained(tmp / "src")
    else:
        make_tf(family, LM[family], seed=63).save_pretrained(tmp / "src")
    ckpt = irconv.load(tmp / "src")
    assert ckpt.aliases == {"heads.lm.weight": "embeddings.word.weight"}
    bare = FAMILIES.get(family).architectures
    model_cls = next(c for c in bare if not c.endswith("LMHeadModel"))
    make_pt(family, model_cls, seed=63).save_pretrained(tmp / "bare")
    assert irconv.load(tmp / "bare").aliases == {}


@pytest.mark.parametrize("family", ["gpt2", "openai-gpt"])
def test_old_checkpoint_mask_buffers_are_skipped(family, tmp):
    """Checkpoints from before the causal mask became a non-persistent buffer carry
    h.N.attn.bias (and GPT-2's masked_bias): skipped, never mistaken for c_attn's bias."""
    model = make_pt(family, LM[family], seed=66)
    model.save_pretrained(tmp / "src")
    state = load_file(tmp / "src" / "model.safetensors")
    n = model.config.n_positions
    for i in range(model.config.n_layer):
        state[f"transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
        if family == "gpt2":
            state[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    if family == "openai-gpt":
        state["transformer.position_ids"] = torch.arange(n)[None]
    save_file(state, tmp / "src" / "model.safetensors", metadata={"format": "pt"})
    ckpt = irconv.load(tmp / "src")
    assert "transformer.h.0.attn.bias" in ckpt.source["skipped"]
    irconv.convert(tmp / "src", tmp / "tf2", to="tf2")
    inputs = inputs_for(family, model.config)
    tfm = test_tf2.tf_loads_cleanly(LM[family], tmp / "tf2")
    assert_close(run_pt(model, inputs), test_tf2.run_tf(tfm, inputs), test_tf2.ATOL)


def test_tf_bias_with_a_wrong_unit_axis_is_one_line_error(tmp):
    tfm = make_tf("gpt2", "GPT2Model", seed=67)
    tfm.save_pretrained(tmp / "tf2")
    path = tmp / "tf2" / "tf_model.h5"
    with h5py.File(path, "r+") as f:
        group = f["transformer"]
        name = next(n for n in group.attrs["weight_names"] if n.endswith("h_._0/attn/c_attn/bias:0"))
        name = name.decode() if isinstance(name, bytes) else name
        del group[name]
        group.create_dataset(name, data=np.zeros((2, 48), np.float32))
    proc = run_irconv("convert", tmp / "tf2", tmp / "out", "--to", "pt")
    assert_one_line_error(proc, "c_attn/bias", "unit")
    assert not (tmp / "out").exists()
