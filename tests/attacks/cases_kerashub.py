"""Attacks on keras-hub preset directories (formats/kerashub.py): the HDF5 redirections of
cases_h5 on a preset's model.weights.h5, a shard index naming files outside the preset, and
config.json values that do not describe the weights or a Backbone irconv knows.

Base: examples/tiny-bert's BertModel part (its hidden_act set to the tanh GELU BertBackbone
computes), written as a preset by irconv itself.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np

from attacks import cases_h5
from attacks.corpus import REPO, case

GAMMA = "layers/layer_normalization/vars/0"       # the embeddings' LayerNorm gamma, (32,) F32
_MADE: dict[str, Path] = {}


def _base(ctx) -> Path:
    key = str(ctx.root)
    if key not in _MADE:
        import irconv
        dest = ctx.root / "kerashub-base"
        if not dest.exists():
            tmp = Path(tempfile.mkdtemp(dir=ctx.root))
            ckpt = irconv.load(REPO / "examples" / "tiny-bert", overrides={"hidden_act": "gelu_pytorch_tanh"})
            ckpt = _base_model(ckpt)
            irconv.save(ckpt, tmp / "p", "kerashub")
            (tmp / "p").rename(dest)
            shutil.rmtree(tmp)
        _MADE[key] = dest
    return _MADE[key]


def _base_model(ckpt):
    """The checkpoint without its heads, as BertModel (a preset holds the backbone only)."""
    from dataclasses import replace
    tensors = {n: t for n, t in ckpt.tensors.items() if not n.startswith("heads.")}
    aliases = {a: t for a, t in ckpt.aliases.items() if not a.startswith("heads.")}
    return replace(ckpt, tensors=tensors, aliases=aliases, config=dict(ckpt.config, architectures=["BertModel"]))


def _preset(d, ctx) -> cases_h5.Target:
    src = d / "preset"
    shutil.copytree(_base(ctx), src)
    return cases_h5.Target(src, src / "model.weights.h5", GAMMA)


cases_h5.CONTAINERS["kerashub"] = (_preset, "kerashub", (), "model.weights.h5")
for _attack in cases_h5.REDIRECTS:
    cases_h5._register_redirect("kerashub", _attack)


def _edit_config(d, ctx, edit) -> Path:
    t = _preset(d, ctx)
    path = t.entry / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))
    return t.entry


@case("kerashub/shard-index-outside", fmt="kerashub", verbs=("convert", "ls", "import"),
      needle="not a model_nnnnn.weights.h5", names="model.weights.json")
def shard_index_outside(d, ctx):
    """model.weights.json (with no model.weights.h5) naming a shard outside the preset."""
    t = _preset(d, ctx)
    (t.entry / "model.weights.h5").unlink()
    (t.entry / "model.weights.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"/layers/dense/vars": f"../../{ctx.secret.name}"}}))
    return t.entry


@case("kerashub/unknown-backbone", fmt="kerashub", verbs=("convert", "ls", "import"), needle="not a backbone irconv knows")
def unknown_backbone(d, ctx):
    """config.json naming a keras_hub Backbone class irconv has no family for."""
    return _edit_config(d, ctx, lambda c: c.update(class_name="EvilBackbone", registered_name="keras_hub>EvilBackbone"))


@case("kerashub/config-missing-arg", fmt="kerashub", verbs=("convert", "ls", "import"), needle="num_heads")
def missing_arg(d, ctx):
    """The Backbone config without num_heads: no source for the head count."""
    return _edit_config(d, ctx, lambda c: c["config"].pop("num_heads"))


@case("kerashub/heads-do-not-fit", fmt="kerashub", verbs=("convert", "ls", "import"), needle="shape")
def heads_do_not_fit(d, ctx):
    """num_heads 3, which does not split the (32, 4, 8) per-head kernels."""
    return _edit_config(d, ctx, lambda c: c["config"].update(num_heads=3))


@case("kerashub/layer-count-beyond-file", fmt="kerashub", verbs=("convert", "ls"), needle="num_hidden_layers")
def layers_beyond_file(d, ctx):
    """num_layers 1000000 for a 2-layer file: no table of a million layers is built."""
    return _edit_config(d, ctx, lambda c: c["config"].update(num_layers=1_000_000))


@case("kerashub/vars-not-positions", fmt="kerashub", verbs=("convert", "ls"), needle="not in the bert")
def vars_not_positions(d, ctx):
    """A variable stored at vars/7 where the layer has vars/0 and vars/1."""
    t = _preset(d, ctx)
    with h5py.File(t.h5, "r+") as f:
        f["layers/dense/vars/7"] = np.zeros(3, np.float32)
    return t.entry
