"""Attacks on keras-hub preset directories (formats/kerashub.py, formats/hubtokenizer.py,
importers/kerashub.py): the HDF5 redirections, truncations and FIFOs of cases_h5 on a preset's
model.weights.h5 and task.weights.h5, files of the preset that are links out of it, a shard
index naming files outside the preset, config.json and task.json values that do not describe
the weights or a class irconv knows (or say two classes at once), metadata.json lies, tokenizer
assets that lie, and Mixtral expert banks that do not hold the experts the config says.

A tokenizer the preset's files cannot be said to describe is not written (the weights still
convert, `expect="accept"`: exit 0, the reason on stderr, no HF tokenizer file at OUT); a file
that is a link out of the preset is refused outright. Nothing a preset names is ever imported:
test_attacks.py runs a conversion with booby-trapped keras and keras_hub packages importable.

Bases, each written as a preset by irconv itself: examples/tiny-bert's BertModel part (its
hidden_act set to the tanh GELU BertBackbone computes); the same with a 3-class classifier
head and a WordPiece vocabulary (a BertTextClassifier task preset with a BertTokenizer); and
numpy-made one-layer Llama (SentencePiece tokenizer), Qwen2 (byte-pair tokenizer) and
two-expert Mixtral checkpoints.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import h5py
import numpy as np

from attacks import cases_h5
from attacks.corpus import REPO, SECRET, case

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


def _task_preset(d, ctx) -> cases_h5.Target:
    src = _copy(d, ctx, "classifier")
    return cases_h5.Target(src, src / "task.weights.h5", "layers/dense/vars/1")


cases_h5.CONTAINERS["kerashub"] = (_preset, "kerashub", (), "model.weights.h5")
cases_h5.CONTAINERS["kerashub-task"] = (_task_preset, "kerashub", (), "task.weights.h5")
for _attack in cases_h5.REDIRECTS:
    cases_h5._register_redirect("kerashub", _attack)
cases_h5._register_redirect("kerashub-task", "external-link")     # the same reader, on the task's file
cases_h5._fifo_case("kerashub")
for _cut in (0.0, 0.5, 0.999):
    cases_h5._damage_case("kerashub", "truncated", _cut, "refuse")
for _cut in (0.01, 0.5):
    cases_h5._damage_case("kerashub-task", "truncated", _cut, "refuse")


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


# --------------------------------------------------------------------------- more bases

TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(123)]
SPM = "assets/tokenizer/vocabulary.spm"
VOCAB = "assets/tokenizer/vocabulary.txt"
BANK = "layers/mixtral_transformer_decoder/_sparse_moe_block/expert_bank/vars/"


def _hf_dir(dest: Path, config: dict, arrays: dict, files: dict) -> Path:
    from irconv.formats import safetensors
    from irconv.ir.tensor import from_array
    dest.mkdir(parents=True)
    safetensors.write(dest / "model.safetensors", [from_array(n, a) for n, a in arrays.items()])
    (dest / "config.json").write_text(json.dumps(config))
    for name, text in files.items():
        (dest / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return dest


def _classifier_hf(dest: Path) -> Path:
    """tiny-bert's BertModel part with a 3-class head and a WordPiece vocabulary, as HF's."""
    from irconv.formats import safetensors
    src = REPO / "examples" / "tiny-bert"
    arrays = {t.name: t.load() for t in safetensors.read(src / "model.safetensors")
              if t.name.startswith("bert.")}
    rng = np.random.default_rng(0)
    arrays.update({"classifier.weight": rng.standard_normal((3, 32)).astype(np.float32),
                   "classifier.bias": np.zeros(3, np.float32)})
    config = dict(json.loads((src / "config.json").read_text()), architectures=["BertForSequenceClassification"],
                  num_labels=3, hidden_act="gelu_pytorch_tanh")
    return _hf_dir(dest, config, arrays, {
        "vocab.txt": "".join(f"{t}\n" for t in TOKENS),
        "tokenizer_config.json": json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True})})


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _message(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def spm_proto(pieces: list[str]) -> bytes:
    """A SentencePiece ModelProto: field 1 per piece (its text, score and type)."""
    return b"".join(_message(1, _message(1, p.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", -i)
                             + _varint(3 << 3) + _varint(2 if p == "<unk>" else 3 if p in ("<s>", "</s>") else 1))
                    for i, p in enumerate(pieces))


SPM_PIECES = ["<unk>", "<s>", "</s>"] + [f"\u2581w{i}" for i in range(37)]
BPE_TOKENS = ["a", "b", "c", "ab", "abc", "\u0120", "\u0120a"] + [f"t{i}" for i in range(32)] + ["<|endoftext|>"]


def _decoder_hf(dest: Path, family: str) -> Path:
    """A one-layer, 16-wide Llama / Qwen2 / two-expert Mixtral, as HF's, with its tokenizer."""
    h, inner, vocab, heads, kv = 16, 24, 40, 2, 1
    rng = np.random.default_rng(0)

    def r(*shape):
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)
    p = "model.layers.0."
    arrays = {"model.embed_tokens.weight": r(vocab, h), "model.norm.weight": np.ones(h, np.float32),
              "lm_head.weight": r(vocab, h), p + "self_attn.q_proj.weight": r(h, h),
              p + "self_attn.k_proj.weight": r(kv * h // heads, h), p + "self_attn.v_proj.weight": r(kv * h // heads, h),
              p + "self_attn.o_proj.weight": r(h, h), p + "input_layernorm.weight": np.ones(h, np.float32),
              p + "post_attention_layernorm.weight": np.ones(h, np.float32)}
    config = dict(model_type=family, vocab_size=vocab, hidden_size=h, intermediate_size=inner, num_hidden_layers=1,
                  num_attention_heads=heads, num_key_value_heads=kv, rms_norm_eps=1e-5, rope_theta=10000.0,
                  max_position_embeddings=32, hidden_act="silu", tie_word_embeddings=False)
    files = {}
    if family == "mixtral":
        arrays[p + "block_sparse_moe.gate.weight"] = r(2, h)
        for j in range(2):
            e = f"{p}block_sparse_moe.experts.{j}."
            arrays.update({e + "w1.weight": r(inner, h), e + "w2.weight": r(h, inner), e + "w3.weight": r(inner, h)})
        config.update(architectures=["MixtralForCausalLM"], num_local_experts=2, num_experts_per_tok=1,
                      sliding_window=None, router_jitter_noise=0.0, router_aux_loss_coef=0.02)
    else:
        arrays.update({p + "mlp.gate_proj.weight": r(inner, h), p + "mlp.up_proj.weight": r(inner, h),
                       p + "mlp.down_proj.weight": r(h, inner)})
    if family == "llama":
        config["architectures"] = ["LlamaForCausalLM"]
        files = {"tokenizer.model": spm_proto(SPM_PIECES), "tokenizer_config.json": json.dumps(
            {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})}
    if family == "qwen2":
        for k in "qkv":
            arrays[f"{p}self_attn.{k}_proj.bias"] = np.zeros(arrays[f"{p}self_attn.{k}_proj.weight"].shape[0], np.float32)
        config.update(architectures=["Qwen2ForCausalLM"], rms_norm_eps=1e-6)
        files = {"vocab.json": json.dumps({t: i for i, t in enumerate(BPE_TOKENS)}),
                 "merges.txt": "#version: 0.2\na b\nab c\n\u0120 a\n",
                 "tokenizer_config.json": json.dumps({"tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|endoftext|>",
                                                      "bos_token": None, "add_prefix_space": False})}
    return _hf_dir(dest, config, arrays, files)


_HF = {"classifier": _classifier_hf, "llama": lambda d: _decoder_hf(d, "llama"),
       "qwen2": lambda d: _decoder_hf(d, "qwen2"), "mixtral": lambda d: _decoder_hf(d, "mixtral")}


def _preset_of(ctx, kind: str) -> Path:
    """Base preset `kind` (a key of _HF), converted by irconv with its tokenizer, once per ctx."""
    key = f"{ctx.root}:{kind}"
    if key not in _MADE:
        import irconv
        dest = ctx.root / f"kerashub-{kind}"
        if not dest.exists():
            tmp = Path(tempfile.mkdtemp(dir=ctx.root))
            hf = _HF[kind](tmp / "hf")
            irconv.convert(hf, tmp / "p", to="kerashub", extras_from=hf)
            hf.rename(ctx.root / f"kerashub-{kind}-hf")      # kept: the HF side of some cases
            (tmp / "p").rename(dest)
            shutil.rmtree(tmp)
        _MADE[key] = dest
    return _MADE[key]


def _copy(d, ctx, kind: str) -> Path:
    src = d / "preset"
    shutil.copytree(_preset_of(ctx, kind), src)
    return src


def _edit_json(path: Path, edit) -> None:
    value = json.loads(path.read_text())
    edit(value)
    path.write_text(json.dumps(value))


def _edit_h5(path: Path, edit) -> None:
    with h5py.File(path, "r+") as f:
        edit(f)


def _edited(d, ctx, kind: str, rel: str, edit) -> Path:
    """A copy of base preset `kind` whose JSON or h5 file `rel` edit() has changed."""
    preset = _copy(d, ctx, kind)
    (_edit_h5 if rel.endswith(".h5") else _edit_json)(preset / rel, edit)
    return preset


def _put(f, name: str, array) -> None:
    if name in f:
        del f[name]
    f[name] = array


def _outside(ctx, name: str, data: bytes) -> Path:
    """A file beside the inputs (outside every one) holding `data`, made once."""
    path = ctx.root / "outside" / name
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    return path


def _link_out(preset: Path, rel: str, target: Path) -> Path:
    (preset / rel).unlink()
    os.symlink(target, preset / rel)
    return preset


# --------------------------------------------------------------------------- links out of the preset
# Each target is a valid file of its kind that holds the secret, so that reading it would
# show: the weights' LayerNorm gamma is its first 128 bytes, the vocabularies have it as a token.

def _secret_weights(ctx) -> Path:
    path = ctx.root / "outside" / "model.weights.h5"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        shutil.copyfile(_base(ctx) / "model.weights.h5", path)
        _edit_h5(path, lambda f: _put(f, GAMMA, np.frombuffer(SECRET[:128], np.float32)))
    return path


@case("kerashub/weights-link-outside", fmt="kerashub", verbs=("convert", "ls", "import", "diff"),
      needle="outside the preset", names="model.weights.h5")
def weights_link_outside(d, ctx):
    """model.weights.h5 a symbolic link to a valid weights file outside the preset."""
    return _link_out(_preset(d, ctx).entry, "model.weights.h5", _secret_weights(ctx))


@case("kerashub/shard-link-outside", fmt="kerashub", verbs=("convert",),
      needle="outside the preset", names="model_00000.weights.h5")
def shard_link_outside(d, ctx):
    """The shard a model.weights.json names, beside it, a link to weights outside the preset."""
    t = _preset(d, ctx)
    (t.entry / "model.weights.h5").unlink()
    os.symlink(_secret_weights(ctx), t.entry / "model_00000.weights.h5")
    (t.entry / "model.weights.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"/layers/layer_normalization/vars": "model_00000.weights.h5"}}))
    return t.entry


@case("kerashub/task-weights-link-outside", fmt="kerashub", verbs=("convert",), needle="outside the preset",
      names="task.weights.h5")
def task_weights_link_outside(d, ctx):
    """task.weights.h5 a link to the (valid) task weights of another preset, outside this one."""
    return _link_out(_copy(d, ctx, "classifier"), "task.weights.h5", _preset_of(ctx, "classifier") / "task.weights.h5")


@case("kerashub/metadata-link-outside", fmt="kerashub", verbs=("convert",), needle="outside the preset",
      names="metadata.json")
def metadata_link_outside(d, ctx):
    """metadata.json a link to a file outside the preset."""
    return _link_out(_preset(d, ctx).entry, "metadata.json", _base(ctx) / "metadata.json")


@case("kerashub/vocab-link-outside", fmt="kerashub", verbs=("convert", "ls", "import"), needle="outside the preset",
      names="vocabulary.txt")
def vocab_link_outside(d, ctx):
    """assets/tokenizer/vocabulary.txt a link to a valid vocabulary outside the preset that
    holds the secret: copied into the output's vocab.txt, before."""
    target = _outside(ctx, "vocabulary.txt", "".join(f"{t}\n" for t in TOKENS).encode() + SECRET + b"\n")
    return _link_out(_copy(d, ctx, "classifier"), VOCAB, target)


@case("kerashub/assets-dir-link-outside", fmt="kerashub", verbs=("convert",), needle="outside the preset",
      names="vocabulary.txt")
def assets_dir_link_outside(d, ctx):
    """assets/tokenizer itself a link to a directory outside the preset."""
    target = ctx.root / "outside" / "tokenizer-dir"
    if not target.exists():
        target.mkdir(parents=True)
        (target / "vocabulary.txt").write_bytes("".join(f"{t}\n" for t in TOKENS).encode() + SECRET + b"\n")
    preset = _copy(d, ctx, "classifier")
    shutil.rmtree(preset / "assets" / "tokenizer")
    os.symlink(target, preset / "assets" / "tokenizer")
    return preset


@case("kerashub/spm-link-outside", fmt="kerashub", verbs=("convert",), needle="outside the preset",
      names="vocabulary.spm")
def spm_link_outside(d, ctx):
    """assets/tokenizer/vocabulary.spm a link to a valid SentencePiece model outside the
    preset with the secret as a piece."""
    target = _outside(ctx, "vocabulary.spm", spm_proto(SPM_PIECES + [SECRET.decode()]))
    return _link_out(_copy(d, ctx, "llama"), SPM, target)


@case("kerashub/tokenizer-json-link-outside", fmt="kerashub", verbs=("convert",), needle="outside the preset",
      names="tokenizer.json")
def tokenizer_json_link_outside(d, ctx):
    """tokenizer.json a link to a file outside the preset."""
    return _link_out(_copy(d, ctx, "classifier"), "tokenizer.json", ctx.secret)


# --------------------------------------------------------------------------- task.json

def _edit_task(d, ctx, edit) -> Path:
    return _edited(d, ctx, "classifier", "task.json", edit)


@case("kerashub/task-other-backbone", fmt="kerashub", verbs=("convert", "ls", "import"),
      needle="another backbone config")
def task_other_backbone(d, ctx):
    """task.json's nested Backbone with 3 layers where config.json's has 2."""
    return _edit_task(d, ctx, lambda t: t["config"]["backbone"]["config"].update(num_layers=3))


@case("kerashub/task-other-family", fmt="kerashub", verbs=("convert",), needle="does not read")
def task_other_family(d, ctx):
    """task.json naming another family's task (GPT2CausalLM) over a BertBackbone."""
    return _edit_task(d, ctx, lambda t: t.update(class_name="GPT2CausalLM", module="keras_hub.src.models.gpt2.gpt2_causal_lm",
                                                 registered_name="keras_hub>GPT2CausalLM"))


@case("kerashub/task-unknown-class", fmt="kerashub", verbs=("convert",), needle="does not read")
def task_unknown_class(d, ctx):
    """task.json naming a task class irconv has no mapping for."""
    return _edit_task(d, ctx, lambda t: t.update(class_name="BertQuestionAnswerer",
                                                 registered_name="keras_hub>BertQuestionAnswerer"))


@case("kerashub/task-module-outside", fmt="kerashub", verbs=("convert", "ls", "import"), needle="not in keras_hub",
      names="task.json")
def task_module_outside(d, ctx):
    """task.json's BertTextClassifier said to live in module 'os' (Keras would import it)."""
    return _edit_task(d, ctx, lambda t: t.update(module="os", registered_name=None))


@case("kerashub/task-registered-other", fmt="kerashub", verbs=("convert",), needle="registered_name",
      names="task.json")
def task_registered_other(d, ctx):
    """task.json's class_name BertTextClassifier, registered_name another class (which Keras builds)."""
    return _edit_task(d, ctx, lambda t: t.update(registered_name="keras_hub>BertMaskedLM"))


@case("kerashub/task-class-not-string", fmt="kerashub", verbs=("convert",), needle="class_name", names="task.json")
def task_class_not_string(d, ctx):
    """task.json's class_name a list."""
    return _edit_task(d, ctx, lambda t: t.update(class_name=["BertTextClassifier"]))


@case("kerashub/task-config-not-object", fmt="kerashub", verbs=("convert",), needle="another backbone config")
def task_config_not_object(d, ctx):
    """task.json's config a string."""
    return _edit_task(d, ctx, lambda t: t.update(config="backbone"))


@case("kerashub/task-num-classes-string", fmt="kerashub", verbs=("convert",), needle="num_classes")
def task_num_classes_string(d, ctx):
    """num_classes "3": not the head's 3 rows."""
    return _edit_task(d, ctx, lambda t: t["config"].update(num_classes="3"))


@case("kerashub/task-not-object", fmt="kerashub", verbs=("convert",), needle="not a json object", names="task.json")
def task_not_object(d, ctx):
    """task.json a JSON list."""
    preset = _copy(d, ctx, "classifier")
    (preset / "task.json").write_text("[]")
    return preset


# --------------------------------------------------------------------------- task.weights.h5

TASK_KERNEL, TASK_BIAS = "layers/dense/vars/0", "layers/dense/vars/1"     # (32, 3), (3,)


def _edit_task_weights(d, ctx, edit) -> Path:
    return _edited(d, ctx, "classifier", "task.weights.h5", edit)


@case("kerashub/task-weights-missing", fmt="kerashub", verbs=("convert", "ls", "import"),
      needle="no task.weights.h5")
def task_weights_missing(d, ctx):
    """A BertTextClassifier preset without task.weights.h5: its head, before, silently absent
    from a BertForSequenceClassification output."""
    preset = _copy(d, ctx, "classifier")
    (preset / "task.weights.h5").unlink()
    return preset


@case("kerashub/task-weights-no-head", fmt="kerashub", verbs=("convert",), needle="has weights of its own")
def task_weights_no_head(d, ctx):
    """task.weights.h5 without the classifier's Dense layer."""
    return _edit_task_weights(d, ctx, lambda f: f.__delitem__("layers/dense"))


@case("kerashub/task-weights-kernel-shape", fmt="kerashub", verbs=("convert",), needle="num_classes")
def task_weights_kernel_shape(d, ctx):
    """The head's kernel (32, 5) where task.json says num_classes 3."""
    return _edit_task_weights(d, ctx, lambda f: _put(f, TASK_KERNEL, np.zeros((32, 5), np.float32)))


@case("kerashub/task-weights-bias-length", fmt="kerashub", verbs=("convert",), needle="num_classes")
def task_weights_bias_length(d, ctx):
    """The head's bias 4 long beside a (32, 3) kernel: written as it was, before."""
    return _edit_task_weights(d, ctx, lambda f: _put(f, TASK_BIAS, np.zeros(4, np.float32)))


@case("kerashub/task-weights-kernel-rank", fmt="kerashub", verbs=("convert",), needle="axes")
def task_weights_kernel_rank(d, ctx):
    """The head's kernel a (32, 3, 1) array."""
    return _edit_task_weights(d, ctx, lambda f: _put(f, TASK_KERNEL, np.zeros((32, 3, 1), np.float32)))


@case("kerashub/task-weights-extra-var", fmt="kerashub", verbs=("convert",), needle="not in the bert")
def task_weights_extra_var(d, ctx):
    """A third variable of the head's Dense (vars/2)."""
    return _edit_task_weights(d, ctx, lambda f: _put(f, "layers/dense/vars/2", np.zeros(3, np.float32)))


@case("kerashub/task-weights-extra-layer", fmt="kerashub", verbs=("convert",), needle="not in the bert")
def task_weights_extra_layer(d, ctx):
    """A second Dense layer in task.weights.h5 that no task of the class has."""
    return _edit_task_weights(d, ctx, lambda f: _put(f, "layers/dense_1/vars/0", np.zeros((32, 3), np.float32)))


@case("kerashub/task-weights-missing-var", fmt="kerashub", verbs=("convert",), needle="missing")
def task_weights_missing_var(d, ctx):
    """The head's bias left out."""
    return _edit_task_weights(d, ctx, lambda f: f.__delitem__(TASK_BIAS))


@case("kerashub/task-weights-backbone-layer", fmt="kerashub", verbs=("convert",), needle="not in the bert")
def task_weights_backbone_layer(d, ctx):
    """A Backbone layer's name in task.weights.h5 (its own are counted apart, never merged)."""
    return _edit_task_weights(d, ctx, lambda f: _put(f, "layers/transformer_encoder/vars/0", np.zeros(4, np.float32)))


# --------------------------------------------------------------------------- config.json

@case("kerashub/config-dim-string", fmt="kerashub", verbs=("convert", "ls", "import"), needle="hidden_dim")
def config_dim_string(d, ctx):
    """hidden_dim "32": an internal TypeError reshaping the kernels by it, before."""
    return _edit_config(d, ctx, lambda c: c["config"].update(hidden_dim="32"))


@case("kerashub/config-heads-zero", fmt="kerashub", verbs=("convert",), needle="num_heads")
def config_heads_zero(d, ctx):
    """num_heads 0: an internal ZeroDivisionError, before."""
    return _edit_config(d, ctx, lambda c: c["config"].update(num_heads=0))


@case("kerashub/config-dim-negative", fmt="kerashub", verbs=("convert",), needle="hidden_dim")
def config_dim_negative(d, ctx):
    """hidden_dim -32."""
    return _edit_config(d, ctx, lambda c: c["config"].update(hidden_dim=-32))


@case("kerashub/config-dim-float", fmt="kerashub", verbs=("convert",), needle="hidden_dim")
def config_dim_float(d, ctx):
    """hidden_dim 32.5."""
    return _edit_config(d, ctx, lambda c: c["config"].update(hidden_dim=32.5))


@case("kerashub/config-dim-bool", fmt="kerashub", verbs=("convert",), needle="hidden_dim")
def config_dim_bool(d, ctx):
    """hidden_dim true (a bool is no count, though Python's True == 1)."""
    return _edit_config(d, ctx, lambda c: c["config"].update(hidden_dim=True))


@case("kerashub/config-dim-huge", fmt="kerashub", verbs=("convert",), needle="shape")
def config_dim_huge(d, ctx):
    """hidden_dim 10**12 (4 heads of 2.5e11): nothing of that size is allocated."""
    return _edit_config(d, ctx, lambda c: c["config"].update(hidden_dim=10 ** 12))


@case("kerashub/config-vocab-huge", fmt="kerashub", verbs=("convert",), needle="vocab_size")
def config_vocab_huge(d, ctx):
    """vocabulary_size 2**70 for a 128-row table."""
    return _edit_config(d, ctx, lambda c: c["config"].update(vocabulary_size=2 ** 70))


@case("kerashub/config-registered-other", fmt="kerashub", verbs=("convert", "ls", "import"), needle="registered_name",
      names="config.json")
def config_registered_other(d, ctx):
    """class_name BertBackbone, registered_name keras_hub>GPT2Backbone (which Keras would build)."""
    return _edit_config(d, ctx, lambda c: c.update(registered_name="keras_hub>GPT2Backbone"))


@case("kerashub/config-module-outside", fmt="kerashub", verbs=("convert",), needle="not in keras_hub",
      names="config.json")
def config_module_outside(d, ctx):
    """The BertBackbone said to live in module 'os.path'."""
    return _edit_config(d, ctx, lambda c: c.update(module="os.path"))


@case("kerashub/config-args-not-object", fmt="kerashub", verbs=("convert",), needle="keras_hub backbone",
      names="config.json")
def config_args_not_object(d, ctx):
    """The Backbone's config a list."""
    return _edit_config(d, ctx, lambda c: c.update(config=[1, 2]))


@case("kerashub/config-deep", fmt="kerashub", verbs=("convert", "ls", "import"), needle="nest", names="config.json")
def config_deep(d, ctx):
    """config.json nesting 100000 lists inside the Backbone's config."""
    t = _preset(d, ctx)
    text = (t.entry / "config.json").read_text().rstrip()
    (t.entry / "config.json").write_text(text[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return t.entry


@case("kerashub/config-not-utf8", fmt="kerashub", verbs=("convert",), needle="utf-8", names="config.json")
def config_not_utf8(d, ctx):
    """config.json in Latin-1 with a non-ASCII name."""
    t = _preset(d, ctx)
    (t.entry / "config.json").write_bytes((t.entry / "config.json").read_text().replace(
        '"bert_backbone"', '"b\u00e9rt"').encode("latin-1"))
    return t.entry


@case("kerashub/config-enormous", fmt="kerashub", verbs=("convert",), needle="mib", names="config.json")
def config_enormous(d, ctx):
    """config.json of 100 MiB (sparse): refused by its size, not read."""
    t = _preset(d, ctx)
    with open(t.entry / "config.json", "r+b") as f:
        f.truncate(100 << 20)
    return t.entry


# --------------------------------------------------------------------------- metadata.json

@case("kerashub/metadata-lies", fmt="kerashub", verbs=("convert",), expect="accept")
def metadata_lies(d, ctx):
    """metadata.json claiming other versions, 10**15 parameters and a CausalLM task: it is
    not believed for anything (the weights and config.json say what the preset is)."""
    t = _preset(d, ctx)
    (t.entry / "metadata.json").write_text(json.dumps({"keras_version": 99, "keras_hub_version": "9.9",
                                                       "parameter_count": 10 ** 15, "tasks": ["CausalLM"]}))
    return t.entry


@case("kerashub/metadata-not-object", fmt="kerashub", verbs=("convert",), needle="not a json object",
      names="metadata.json")
def metadata_not_object(d, ctx):
    t = _preset(d, ctx)
    (t.entry / "metadata.json").write_text('"keras_hub"')
    return t.entry


@case("kerashub/metadata-not-utf8", fmt="kerashub", verbs=("convert",), needle="utf-8", names="metadata.json")
def metadata_not_utf8(d, ctx):
    t = _preset(d, ctx)
    (t.entry / "metadata.json").write_bytes(b'{"keras_hub_version": "\xff"}')
    return t.entry


# --------------------------------------------------------------------------- tokenizers that lie
# Not written as HF's files (the weights convert; the reason is said): the HF files are absent.

HF_TOKENIZER = ("vocab.txt", "vocab.json", "merges.txt", "tokenizer.model", "tokenizer_config.json")


def _tokenizer_case(name: str, kind: str, needle: str, doc: str, **kw):
    def register(edit):
        @case(f"kerashub/tokenizer-{name}", fmt="kerashub", verbs=("convert",), expect="accept", needle=needle,
              absent=HF_TOKENIZER, **kw)
        def build(d, ctx):
            preset = _copy(d, ctx, kind)
            edit(preset, ctx)
            return preset
        build.__doc__ = doc
        return edit
    return register


def _write(rel: str, data: bytes):
    return lambda preset, ctx: (preset / rel).write_bytes(data)


def _tok_config(**changes):
    return lambda preset, ctx: _edit_json(preset / "tokenizer.json", lambda t: t["config"].update(changes))


_tokenizer_case("vocabulary-relative-path", "classifier", "gives its vocabulary itself",
                "tokenizer.json's vocabulary '../../secret.bin', a file keras-hub would read instead of the assets.")(
    lambda preset, ctx: _tok_config(vocabulary=os.path.relpath(ctx.secret, preset))(preset, ctx))
_tokenizer_case("proto-absolute-path", "llama", "gives its proto itself",
                "tokenizer.json's proto the secret file's absolute path.")(
    lambda preset, ctx: _tok_config(proto=str(ctx.secret))(preset, ctx))
_tokenizer_case("vocabulary-inline", "qwen2", "gives its vocabulary itself",
                "tokenizer.json's vocabulary an inline object that is not the assets' vocabulary.json.")(
    _tok_config(vocabulary={"x": 0}))
_tokenizer_case("registered-other", "classifier", "registered_name",
                "tokenizer.json's BertTokenizer registered as another class.")(
    lambda preset, ctx: _edit_json(preset / "tokenizer.json", lambda t: t.update(registered_name="keras_hub>GPT2Tokenizer")))
_tokenizer_case("vocab-not-utf8", "classifier", "not utf-8", "vocabulary.txt in Latin-1 with a non-ASCII token: "
                "copied as it was, before.")(
    _write(VOCAB, "".join(f"{t}\n" for t in TOKENS + ["caf\u00e9"]).encode("latin-1")))
_tokenizer_case("vocab-without-specials", "classifier", "[cls]",
                "vocabulary.txt without [CLS], which BertTokenizer needs: copied as it was, before.")(
    _write(VOCAB, "".join(f"{t}\n" for t in TOKENS if t != "[CLS]").encode()))
_tokenizer_case("vocab-huge", "classifier", "over 32 mib", "vocabulary.txt of 40 MiB (sparse): not read.")(
    lambda preset, ctx: os.truncate(preset / VOCAB, 40 << 20))
_tokenizer_case("vocab-json-not-object", "qwen2", "token -> id", "vocabulary.json a list.")(
    _write("assets/tokenizer/vocabulary.json", b"[1, 2]"))
_tokenizer_case("vocab-json-ids-strings", "qwen2", "token -> id", "vocabulary.json's ids strings.")(
    _write("assets/tokenizer/vocabulary.json", json.dumps({t: str(i) for i, t in enumerate(BPE_TOKENS)}).encode()))
_tokenizer_case("merges-unknown-token", "qwen2", "merges.txt line 2", "merges.txt merging a token the vocabulary lacks.")(
    _write("assets/tokenizer/merges.txt", b"#version: 0.2\na zz\n"))
_tokenizer_case("merges-not-pairs", "qwen2", "merges.txt line 2", "merges.txt with a line of three tokens.")(
    _write("assets/tokenizer/merges.txt", b"#version: 0.2\na b c\n"))
_tokenizer_case("merges-not-utf8", "qwen2", "not utf-8", "merges.txt with a byte that is not UTF-8.")(
    _write("assets/tokenizer/merges.txt", b"#version: 0.2\na \xff\n"))


def _spm_case(name: str, data, needle: str, doc: str):
    _tokenizer_case(f"spm-{name}", "llama", needle, doc)(
        lambda preset, ctx: (preset / SPM).write_bytes(data if isinstance(data, bytes) else data(preset / SPM)))


_spm_case("truncated", lambda p: p.read_bytes()[:50], "runs past the end", "vocabulary.spm cut inside a piece.")
_spm_case("overrunning", b"\x0a\xff\xff\xff\xff\x0f" + b"\0" * 16, "runs past the end",
          "a piece declaring 4 GiB in a 22-byte file: nothing of that size is allocated.")
_spm_case("varint-overlong", lambda p: p.read_bytes() + b"\x0a" + b"\x80" * 11 + b"\x01", "varint",
          "a length varint of 12 bytes after the valid pieces.")
_spm_case("piece-not-utf8", b"\x0a\x04\x0a\x02\xff\xfe", "not utf-8", "a piece whose text is not UTF-8.")
_spm_case("empty", b"", "no pieces", "vocabulary.spm empty.")
_spm_case("group-wire-type", b"\x0b\x0c", "wire type", "a deprecated group wire type where a piece should be.")
_spm_case("without-specials", spm_proto(["<unk>", "\u2581a"]), "</s>",
          "a valid model without the <s> and </s> LlamaTokenizer fixes.")


# --------------------------------------------------------------------------- Mixtral's expert banks

def _edit_bank(d, ctx, edit) -> Path:
    return _edited(d, ctx, "mixtral", "model.weights.h5", edit)


@case("kerashub/mixtral-bank-extra-expert", fmt="kerashub", verbs=("convert",), needle="num_local_experts")
def mixtral_bank_extra_expert(d, ctx):
    """The gate bank (2, 16, 24) grown to 3 experts, the others left at 2."""
    return _edit_bank(d, ctx, lambda f: _put(f, BANK + "0", np.zeros((3, 16, 24), np.float32)))


@case("kerashub/mixtral-banks-extra-expert", fmt="kerashub", verbs=("convert",), needle="num_local_experts")
def mixtral_banks_extra_expert(d, ctx):
    """All three banks with 3 experts where the config and the router have 2."""
    def edit(f):
        for k, shape in (("0", (3, 16, 24)), ("1", (3, 16, 24)), ("2", (3, 24, 16))):
            _put(f, BANK + k, np.zeros(shape, np.float32))
    return _edit_bank(d, ctx, edit)


@case("kerashub/mixtral-bank-no-experts", fmt="kerashub", verbs=("convert",), needle="missing")
def mixtral_bank_no_experts(d, ctx):
    """The up bank (0, 16, 24): no expert at all."""
    return _edit_bank(d, ctx, lambda f: _put(f, BANK + "1", np.zeros((0, 16, 24), np.float32)))


@case("kerashub/mixtral-bank-unstacked", fmt="kerashub", verbs=("convert",), needle="axes")
def mixtral_bank_unstacked(d, ctx):
    """The up bank one (16, 24) matrix, not a stack of them."""
    return _edit_bank(d, ctx, lambda f: _put(f, BANK + "1", np.zeros((16, 24), np.float32)))


@case("kerashub/mixtral-bank-scalar", fmt="kerashub", verbs=("convert",), needle="missing")
def mixtral_bank_scalar(d, ctx):
    """The up bank a scalar."""
    return _edit_bank(d, ctx, lambda f: _put(f, BANK + "1", np.float32(1)))


def _expert_count(count, needle: str):
    @case(f"kerashub/mixtral-num-experts-{count}", fmt="kerashub", verbs=("convert", "ls"), needle=needle)
    def build(d, ctx):
        return _edited(d, ctx, "mixtral", "config.json", lambda c: c["config"].update(num_experts=count))
    build.__doc__ = f"config.json's num_experts {count!r} for banks of 2 experts."


for _count in (3, 0, 10 ** 9):
    _expert_count(_count, "num_local_experts")
_expert_count("2", "num_experts")
_expert_count(-1, "num_experts")


@case("kerashub/hf-vocab-link-outside", verbs=("convert",), to="kerashub", expect="accept", needle="outside",
      absent=("tokenizer.json", "assets"))
def hf_vocab_link_outside(d, ctx):
    """pt -> kerashub from a model directory whose vocab.txt is a link to a valid vocabulary
    outside it that holds the secret: written into the preset's assets, before."""
    src = d / "hf"
    shutil.copytree(_preset_of(ctx, "classifier").with_name("kerashub-classifier-hf"), src)
    target = _outside(ctx, "vocab.txt", "".join(f"{t}\n" for t in TOKENS).encode() + SECRET + b"\n")
    (src / "vocab.txt").unlink()
    os.symlink(target, src / "vocab.txt")
    return src
