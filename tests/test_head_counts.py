"""A head count no tensor records, given so that it cannot split its width into equal heads
(BertConfig's num_attention_heads=3 beside hidden_size 32), makes a model transformers cannot
build, load or run: irconv refuses it, from a config.json, a --set or a stream alike (a stream's
case is in test_stream), one line naming the field, exit 2, nothing written."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import assert_one_line_error, run_irconv
from irconv.models import FAMILIES
from irconv.models.engine import config_value
from zoo import CONFIGS, config_for, inputs_for, make_pt

pytestmark = pytest.mark.filterwarnings("ignore")

# Families whose heads are sized by a field of their own, not by splitting the width.
OWN_HEAD_SIZE = {"t5": "d_kv", "transfo-xl": "d_head"}


def _heads_keys(fam) -> list[str]:
    return [k for k in fam.required if k.rsplit(".", 1)[-1] in
            ("num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads",
             "decoder_attention_heads")]


def test_every_family_with_a_head_count_says_how_its_heads_are_sized():
    """A family joins with a head count it requires: it declares the width that count splits
    (head_widths), derives the split from its projections (from_shapes), or sizes heads by a
    field of its own."""
    for fam in FAMILIES:
        for key in _heads_keys(fam):
            assert key in fam.head_widths or fam.from_shapes is not None or fam.name in OWN_HEAD_SIZE, \
                (fam.name, key)
        for heads, width in fam.head_widths.items():
            assert heads.rsplit(".", 1)[-1] != width.rsplit(".", 1)[-1], (fam.name, heads)


CASES = [(fam.name, heads, width) for fam in FAMILIES for heads, width in fam.head_widths.items()
         if fam.name in CONFIGS]


def _bad(width: int) -> int:
    return next(n for n in (3, 5, 7) if width % n)


def _hf_fails(cls_name: str, directory, family: str) -> bool:
    """Whether transformers refuses the model at `directory`: building it from the config,
    loading the tensors into it, or running it."""
    import torch
    import transformers
    try:
        model = getattr(transformers, cls_name).from_pretrained(directory)
        config = model.config
        inputs = inputs_for(family, config)
        with torch.no_grad():
            model(**{k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()})
    except Exception:           # noqa: BLE001 - any refusal of transformers' is the point
        return True
    return False


def _saved_with(directory, family: str, cls_name: str, seed: int, key: str, value):
    """A tiny HF model saved at `directory`, its config.json then given key=value (dotted: a
    tower's field); returns the edited config."""
    make_pt(family, cls_name, seed=seed).save_pretrained(directory)
    config = json.loads((directory / "config.json").read_text())
    *outer, last = key.split(".")
    node = config
    for part in outer:
        node = node[part]
    node[last] = value
    (directory / "config.json").write_text(json.dumps(config))
    return config


@pytest.mark.parametrize("family,heads,width", CASES, ids=[f"{f}-{h}" for f, h, _ in CASES])
def test_a_config_whose_heads_do_not_divide_the_width_is_refused(tmp, family, heads, width):
    fam = FAMILIES.get(family)
    cls_name = next(iter(fam.architectures))
    src = tmp / "src"
    size = config_value(config_for(family, cls_name).to_dict(), width)
    bad_value = _bad(size)
    _saved_with(src, family, cls_name, 3, heads, bad_value)
    assert _hf_fails(cls_name, src, family)               # the oracle: no such model exists
    line = assert_one_line_error(run_irconv("convert", src, tmp / "out", "--to", "pt"),
                                 f"{heads}={bad_value} does not divide {width}={size}")
    assert "config.json" in line
    assert not (tmp / "out").exists()


def test_set_heads_that_do_not_divide_the_width_is_refused(tmp):
    """Given config or none, --set may not make the heads unequal."""
    tiny = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples" / "tiny-bert"
    line = assert_one_line_error(run_irconv("convert", tiny, tmp / "o", "--to", "pt", "--set",
                                            "num_attention_heads=5"), "--set num_attention_heads",
                                 "num_attention_heads=5 does not divide hidden_size=32")
    assert not (tmp / "o").exists(), line
    bare = tmp / "bare"
    bare.mkdir()
    shutil.copy(tiny / "model.safetensors", bare / "model.safetensors")
    for value in (5, 0):
        assert_one_line_error(run_irconv("convert", bare / "model.safetensors", tmp / "o", "--to", "pt",
                                         "--set", f"num_attention_heads={value}", "--accept-defaults"),
                              f"num_attention_heads={value} does not divide hidden_size=32")
        assert not (tmp / "o").exists()
    run_irconv("convert", bare / "model.safetensors", tmp / "o", "--to", "pt", "--set", "num_attention_heads=4",
               "--accept-defaults", check=True)
    assert json.loads((tmp / "o" / "config.json").read_text())["num_attention_heads"] == 4


def test_a_decoder_given_no_heads_at_all_is_refused(tmp):
    """num_attention_heads=0 (a count, so no type error): transformers divides by it. A decoder's
    heads are checked against its projections (from_shapes), zero among them."""
    src = tmp / "src"
    _saved_with(src, "llama", "LlamaForCausalLM", 2, "num_attention_heads", 0)
    assert _hf_fails("LlamaForCausalLM", src, "llama")
    assert_one_line_error(run_irconv("convert", src, tmp / "out", "--to", "pt"), "num_attention_heads=0")
    assert not (tmp / "out").exists()


def test_xlnet_heads_are_the_attention_tensors_own(tmp):
    """XLNet stores q as (d_model, n_head, d_head): a config's n_head that divides d_model but is
    not the tensors' count makes a model they do not fit (XLNetConfig then also refuses the saved
    d_head)."""
    src = tmp / "src"
    _saved_with(src, "xlnet", "XLNetLMHeadModel", 4, "n_head", 8)
    assert _hf_fails("XLNetLMHeadModel", src, "xlnet")
    assert_one_line_error(run_irconv("convert", src, tmp / "out", "--to", "tf2"),
                          "n_head=8 does not fit the tensors, which say n_head=4")
    assert not (tmp / "out").exists()
