"""Attacks that are not about one container: what the input path is, config.json, the CLI."""
from __future__ import annotations

import json
import os

from attacks.corpus import case


def _with_config(d, ctx, edit):
    src = ctx.bases.copy("pt", d / "m")
    cfg = json.loads((src / "config.json").read_text())
    edit(cfg)
    (src / "config.json").write_text(json.dumps(cfg))
    return src


@case("misc/fifo-input", fmt="pt", verbs=("convert", "ls", "diff", "import"), needle="fifo", timeout=5)
def fifo_input(d, ctx):
    """A FIFO given as the input (nobody writes to it): refused without blocking."""
    p = d / "model.safetensors"
    os.mkfifo(p)
    return p


def _fifo_in_model(name: str):
    """A model directory whose `name` is a FIFO (nobody writes to it)."""
    def build(d, ctx):
        src = ctx.bases.copy("pt", d / "m")
        (src / name).unlink()
        os.mkfifo(src / name)
        return src
    build.__doc__ = f"A model directory whose {name} is a FIFO."
    return build


for _name in ("model.safetensors", "config.json"):
    case(f"misc/fifo-{_name.split('.')[0].replace('model', 'weights')}", verbs=("convert", "ls"), needle="fifo",
         names=_name, timeout=5)(_fifo_in_model(_name))


@case("misc/config-deep-json", verbs=("convert", "ls"), names="config.json", needle="nest")
def config_deep_json(d, ctx):
    """config.json nested 100000 deep (json's recursion limit, not a clean error, before)."""
    src = ctx.bases.copy("pt", d / "m")
    (src / "config.json").write_text('{"model_type": "bert", "x": ' + "[" * 100000 + "]" * 100000 + "}")
    return src


@case("misc/config-huge-layer-count", verbs=("convert", "ls"), names="config.json", needle="num_hidden_layers")
def config_huge_layers(d, ctx):
    """num_hidden_layers 10**12: a name table of 10**12 rows, before."""
    return _with_config(d, ctx, lambda c: c.update(num_hidden_layers=10**12))


@case("misc/config-layers-string", verbs=("convert", "ls"), names="config.json", needle="num_hidden_layers")
def config_layers_string(d, ctx):
    """num_hidden_layers "x"."""
    return _with_config(d, ctx, lambda c: c.update(num_hidden_layers="x"))


@case("misc/config-layers-float", verbs=("convert", "ls"), names="config.json", needle="num_hidden_layers")
def config_layers_float(d, ctx):
    """num_hidden_layers 2.5."""
    return _with_config(d, ctx, lambda c: c.update(num_hidden_layers=2.5))


@case("misc/config-layers-negative", verbs=("convert", "ls"), names="config.json", needle="num_hidden_layers")
def config_layers_negative(d, ctx):
    """num_hidden_layers -1."""
    return _with_config(d, ctx, lambda c: c.update(num_hidden_layers=-1))


@case("misc/config-hidden-contradicts", verbs=("convert", "ls"), names="config.json", needle="hidden_size")
def config_hidden_contradicts(d, ctx):
    """hidden_size twice what the tensors hold: copied into the output unchecked, before."""
    return _with_config(d, ctx, lambda c: c.update(hidden_size=2 * c["hidden_size"]))


@case("misc/config-heads-do-not-divide", verbs=("convert", "ls"), names="config.json",
      needle="does not divide hidden_size")
def config_heads_do_not_divide(d, ctx):
    """A head count that does not split hidden_size into equal heads (no tensor records it):
    written as given before, a model transformers refuses to build."""
    return _with_config(d, ctx, lambda c: c.update(num_attention_heads=c["hidden_size"] - 1))


@case("misc/config-not-object", verbs=("convert", "ls"), names="config.json")
def config_not_object(d, ctx):
    """config.json holding a list."""
    src = ctx.bases.copy("pt", d / "m")
    (src / "config.json").write_text("[1, 2, 3]")
    return src


@case("misc/config-model-type-list", verbs=("convert", "ls"), names="config.json", needle="model_type")
def config_model_type_list(d, ctx):
    """model_type a list rather than a string."""
    return _with_config(d, ctx, lambda c: c.update(model_type=["bert"]))


@case("misc/config-architectures-an-int", verbs=("convert", "ls"), needle="architectures")
def config_architectures_int(d, ctx):
    """architectures 7, not a list (an internal error in the exporters, before)."""
    return _with_config(d, ctx, lambda c: c.update(architectures=7))


@case("misc/config-invalid-utf8", verbs=("convert", "ls"), names="config.json")
def config_invalid_utf8(d, ctx):
    """config.json that is not UTF-8."""
    src = ctx.bases.copy("pt", d / "m")
    (src / "config.json").write_bytes(b'{"model_type": "\xff\xfe"}')
    return src


@case("misc/extra-link-outside", fmt="pt", verbs=("convert",), expect="accept", needle="outside",
      absent=("tokenizer.json",))
def extra_link_outside(d, ctx):
    """A model directory's tokenizer.json a link to the secret file outside it: carried into
    the output (its bytes copied) as any extra was, before; now named as not carried."""
    src = ctx.bases.copy("pt", d / "m")
    os.symlink(ctx.secret, src / "tokenizer.json")
    return src
