"""What every family's PyTorch files must survive, once over the registry instead of a copy per
family: a weights file without its config.json (the config from the shapes, the fields the
tensors cannot say given, never guessed), an old pytorch_model.bin that holds the model's
buffers and tied copies (dropped), and an untied head (kept through pt; a format whose view
always ties refuses it naming the tensor, and writes nothing). A new family is covered by its
zoo.CONFIGS entry; what cannot be checked this way is declared here with the reason."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

import zoo  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from irconv import EXPORTERS, FAMILIES  # noqa: E402
from irconv.models.engine import INFERRED, SHAPE_FIELDS  # noqa: E402
from zoo import PT_FORWARD_BROKEN, assert_close, assert_same_safetensors, inputs_for, make_pt, run_pt  # noqa: E402

CASES = [(fam.name, cls) for fam in FAMILIES for cls in fam.architectures]
IDS = [f"{f}-{c}" for f, c in CASES]
# Float noise of a reload: bit-identical weights may differ in the last float bit of outputs
# (torch picks kernels by memory alignment; transformers' own save + from_pretrained does it too).
RELOAD_ATOL = 1e-6

# family -> why a bare weights file of it is not checked here (its own test file covers it).
BARE_ELSEWHERE = {
    "flava": "FLAVA's three towers need three head counts and its codebook; tests/test_flava.py",
    "align": "ALIGN's bare files are Keras ones; tests/test_keras_align.py",
    "efficientnet": "a bare EfficientNet is one of the B0-B7 variants it knows, and zoo's quarter width is none; "
                    "tests/test_keras_efficientnet.py",
}


def pt_loads_cleanly(cls_name, directory):
    model, info = getattr(transformers, cls_name).from_pretrained(directory, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def loading_info(cls_name, directory):
    _, info = getattr(transformers, cls_name).from_pretrained(directory, output_loading_info=True)
    return {k: sorted(v) for k, v in info.items() if k != "error_msgs"}


def same_outputs(family, model, directory, cls_name, like=None):
    """The class loads `directory` with nothing missing or unexpected (or, given `like`, HF's own
    file of the model, exactly as it loads that one) and computes what `model` does."""
    if like is None:
        loaded = pt_loads_cleanly(cls_name, directory)
    else:
        # HF's untied BART saves no encoder/decoder embed_tokens and reports them missing on
        # load, leaving them freshly initialised: the same seed initialises both loads alike.
        assert loading_info(cls_name, directory) == loading_info(cls_name, like)
        torch.manual_seed(0)
        model = getattr(transformers, cls_name).from_pretrained(like).eval()
        torch.manual_seed(0)
        loaded = getattr(transformers, cls_name).from_pretrained(directory).eval()
    if family not in PT_FORWARD_BROKEN:
        inputs = inputs_for(family, model.config)
        assert_close(run_pt(model, inputs), run_pt(loaded, inputs), RELOAD_ATOL)


def stated_defaults_it_does_not_use(fam, config) -> tuple[str, ...]:
    """The family's stated defaults that this model's config does not have (FlauBERT's pre_norm,
    CTRL's n_positions; a default as inferred, RoBERTa's layer_norm_eps 1e-5 beside zoo's
    1e-12): given like the required fields, as a user who knows them would."""
    return tuple(key for key, default in fam.defaults.items() if "." not in key and hasattr(config, key)
                 and (default is INFERRED or getattr(config, key) != default))


def convert_without_config(fam, model, weights, out) -> dict:
    """`irconv convert WEIGHTS OUT --to pt` of a file with no config.json: the family from the
    names (--model only where the names fit several families, which is refused naming this
    one, never guessed), then zoo.convert_bare (the fields the tensors cannot say refused until
    given). Returns the written config."""
    args = ["--to", "pt"]
    probe = run_irconv("convert", weights, out, *args)
    if b"several families" in probe.stderr or b"cannot tell which model family" in probe.stderr:
        assert_one_line_error(probe, fam.name, "--model")
        assert not out.exists()
        args += ["--model", fam.name]
    if probe.returncode == 0:           # a family whose tensors decide its whole config
        assert not fam.required and not fam.defaults, probe.stderr
    else:
        zoo.convert_bare(weights, out, model.config, fam.required_fields([type(model).__name__]), *args,
                         also=stated_defaults_it_does_not_use(fam, model.config))
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] in fam.model_types
    return config


@pytest.mark.parametrize("family,cls_name", [c for c in CASES if c[0] not in BARE_ELSEWHERE],
                         ids=[i for c, i in zip(CASES, IDS) if c[0] not in BARE_ELSEWHERE])
def test_bare_weights_file(family, cls_name, tmp):
    """No config.json: family and class from the names (--model only where the names fit
    several families, which is then said), the config from the shapes; the fields the tensors
    cannot say are refused until given (--set), the stated defaults said and taken with
    --accept-defaults. The output is the model, byte for byte, and loads into its class."""
    fam = FAMILIES.get(family)
    model = make_pt(family, cls_name, seed=54)
    model.save_pretrained(tmp / "src")
    (tmp / "src" / "config.json").unlink()
    config = convert_without_config(fam, model, tmp / "src" / "model.safetensors", tmp / "out")
    if config["architectures"] != [cls_name]:
        # A head made only of ties (T5's lm_head is the shared embedding) leaves no tensor: the
        # class without it is named, and holds every tensor.
        tie_only = {b.role for b in fam.blocks if b.role and all(p.tied_to for p in b.params)}
        assert config["architectures"] == [fam.architecture_for(fam.architectures[cls_name] - tie_only)], config
        cls_name = config["architectures"][0]
    decided = SHAPE_FIELDS | set(fam.required) | set(fam.defaults) | {
        key for block in fam.blocks for _, key in block.repeats}
    for key in sorted(decided):
        if "." not in key and hasattr(model.config, key) and key in config:
            assert config[key] == getattr(model.config, key), key
    assert_same_safetensors(tmp / "src", tmp / "out")
    same_outputs(family, model, tmp / "out", cls_name)


# One class per family: the one with most parts (its heads' tied copies included).
WIDEST = [(fam.name, max(fam.architectures, key=lambda a: len(fam.architectures[a]))) for fam in FAMILIES]


@pytest.mark.parametrize("family,cls_name", WIDEST, ids=[f for f, _ in WIDEST])
def test_old_bin_buffers_and_tied_copies_are_dropped(family, cls_name, tmp):
    """torch.save of the whole state, as older transformers wrote pytorch_model.bin: every
    buffer the module has (position_ids, token_type_ids, causal masks) and every tied name's
    copy come along. The output is what save_pretrained writes, and loads cleanly."""
    model = make_pt(family, cls_name, seed=55)
    state = {**model.state_dict(), **dict(model.named_buffers())}
    (tmp / "src").mkdir()
    torch.save(state, tmp / "src" / "pytorch_model.bin")
    model.config.to_json_file(tmp / "src" / "config.json")
    model.save_pretrained(tmp / "ref")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    assert_same_safetensors(tmp / "ref", tmp / "out")
    same_outputs(family, model, tmp / "out", cls_name)


def tied_heads(fam) -> list[tuple[str, str]]:
    """(class, canonical name) of each head tensor that tie_word_embeddings ties, per class."""
    out = []
    for cls_name, roles in fam.architectures.items():
        names = [f"{b.name}.{p.name}" for b in fam.blocks if b.role in roles and not b.repeats
                 for p in b.params if p.tied_to and p.tie_key == "tie_word_embeddings"]
        if names:
            out.append((cls_name, names[0]))
    return out


UNTIED = [(fam.name, cls, name) for fam in FAMILIES for cls, name in tied_heads(fam)[:1]]


@pytest.mark.parametrize("family,cls_name,canonical", UNTIED, ids=[f for f, _, _ in UNTIED])
def test_untied_head(family, cls_name, canonical, tmp):
    """tie_word_embeddings false: the head's own matrix is kept through pt (bytes and class);
    every other format either holds it (its view names it) or refuses naming it, writing nothing."""
    fam = FAMILIES.get(family)
    model = make_pt(family, cls_name, seed=56, tie_word_embeddings=False)
    model.save_pretrained(tmp / "src")
    raw = fam.view("pt").raw_name(canonical, "")
    assert any(k == raw or k.endswith(f".{raw}") for k in load_file(tmp / "src" / "model.safetensors")), raw
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    # transformers cannot reload its own untied BART (it drops the stacks' embed_tokens and
    # then re-initialises them): irconv's file names them (test_families_bart)
    copies = {f"model.{side}.embed_tokens.weight": "model.shared.weight"
              for side in ("encoder", "decoder")} if family == "bart" else {}
    assert_same_safetensors(tmp / "src", tmp / "out", copies)
    same_outputs(family, model, tmp / "out", cls_name)
    for exporter in EXPORTERS:
        if exporter.name == "pt":
            continue
        try:
            view = exporter.view_for(fam)
        except Exception:
            continue
        proc = run_irconv("convert", tmp / "src", tmp / exporter.name, "--to", exporter.name)
        spelled = fam.view(view).raw_name(canonical, "") is not None
        limit = fam.view_limits.get(view)
        if limit and limit(model.config.to_dict()):
            # A view that cannot hold this model (Meta's layout: head_dim other than dim / n_heads)
            # refuses it by its documented limit, whatever the tie.
            assert_one_line_error(proc, "cannot hold this model")
            assert not (tmp / exporter.name).exists()
        elif spelled:
            assert proc.returncode == 0, proc.stderr.decode()
        else:
            assert_one_line_error(proc, canonical)
            assert not (tmp / exporter.name).exists()
    if family not in BARE_ELSEWHERE:
        # Without its config, the head's own tensor says the model is untied.
        (tmp / "src" / "config.json").unlink()
        config = convert_without_config(fam, model, tmp / "src" / "model.safetensors", tmp / "bare")
        assert config["tie_word_embeddings"] is False
        assert_same_safetensors(tmp / "src", tmp / "bare", copies)
