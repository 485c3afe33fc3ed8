"""FLAVA: the original checkpoint + DALL-E's encoder -> HF FlavaForPreTraining, and DALL-E's
encoder alone -> HF FlavaImageCodebook (convert_flava_original_pytorch_to_hf.py and the DALL-E
codebook conversion it calls are the spec).

The oracles are the real `DALL-E` package (dall_e.Encoder, saved whole with torch.save as its
release is) and transformers' Flava classes. The original-format FLAVA checkpoint is made from
a random HF FlavaForPreTraining by undoing the seed's renames (ORIG_TO_HF below is the seed's
list; the fixture is checked to map back through it exactly) and adding the second copy of
each tower's embeddings that the original release stores."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
dall_e = pytest.importorskip("dall_e")

from conftest import assert_one_line_error, run_irconv, run_pipe  # noqa: E402
from zoo import assert_close, assert_same_safetensors, perturb_pt  # noqa: E402

# The seed's upgrade_state_dict renames, in its order (original name part -> HF name part).
ORIG_TO_HF = [
    ("heads.cmd.mim_head.cls.predictions", "mmm_image_head"),
    ("heads.cmd.mlm_head.cls.predictions", "mmm_text_head"),
    ("heads.cmd.itm_head.cls", "itm_head"),
    ("heads.cmd.itm_head.pooler", "itm_head.pooler"),
    ("heads.cmd.clip_head.logit_scale", "flava.logit_scale"),
    ("heads.fairseq_mlm.cls.predictions", "mlm_head"),
    ("heads.imagenet.mim_head.cls.predictions", "mim_head"),
    ("mm_text_projection", "flava.text_to_mm_projection"),
    ("mm_image_projection", "flava.image_to_mm_projection"),
    ("image_encoder.module", "flava.image_model"),
    ("text_encoder.module", "flava.text_model"),
    ("mm_encoder.module.encoder.cls_token", "flava.multimodal_model.cls_token"),
    ("mm_encoder.module", "flava.multimodal_model"),
    ("text_projection", "flava.text_projection"),
    ("image_projection", "flava.image_projection"),
]
# HF name prefix -> original, longest first (the inverse of the list above, as prefixes).
HF_TO_ORIG = [
    ("flava.multimodal_model.cls_token", "mm_encoder.module.encoder.cls_token"),
    ("flava.multimodal_model.", "mm_encoder.module."),
    ("flava.text_model.", "text_encoder.module."),
    ("flava.image_model.", "image_encoder.module."),
    ("flava.text_to_mm_projection.", "mm_text_projection."),
    ("flava.image_to_mm_projection.", "mm_image_projection."),
    ("flava.text_projection.", "text_projection."),
    ("flava.image_projection.", "image_projection."),
    ("flava.logit_scale", "heads.cmd.clip_head.logit_scale"),
    ("mmm_image_head.", "heads.cmd.mim_head.cls.predictions."),
    ("mmm_text_head.", "heads.cmd.mlm_head.cls.predictions."),
    ("itm_head.pooler.", "heads.cmd.itm_head.pooler."),
    ("itm_head.", "heads.cmd.itm_head.cls."),
    ("mlm_head.", "heads.fairseq_mlm.cls.predictions."),
    ("mim_head.", "heads.imagenet.mim_head.cls.predictions."),
]

# DALL-E's smallest encoder (its validators: n_hid >= 64, vocab_size >= 512).
N_HID, VOCAB = 64, 512
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def flava_config(**overrides):
    return transformers.FlavaConfig(
        text_config=dict(TINY, vocab_size=99, max_position_embeddings=64),
        # The MIM heads predict codebook tokens: their vocabulary is the codebook's.
        image_config=dict(TINY, image_size=32, patch_size=8, vocab_size=VOCAB),
        multimodal_config=dict(TINY, num_hidden_layers=1),
        image_codebook_config=dict(hidden_size=N_HID, vocab_size=VOCAB, num_blocks_per_group=1),
        hidden_size=32, projection_dim=24, **overrides)


def random_encoder(seed: int, n_blk_per_group: int):
    """A dall_e.Encoder with every parameter random (its conv biases start at zero)."""
    torch.manual_seed(seed)
    enc = dall_e.Encoder(n_hid=N_HID, n_blk_per_group=n_blk_per_group, vocab_size=VOCAB)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(torch.randn(p.shape) * 0.05)
    return enc.eval()


def hf_to_dalle(name: str) -> str:
    """FlavaImageCodebook name -> dall_e.Encoder name (the codebook spec's renames, reversed)."""
    name = re.sub(r"\.group\.(block_\d+)", r".\1", name).replace("res_path.path.", "res_path.")
    return re.sub(r"\.weight$", ".w", re.sub(r"\.bias$", ".b", name))


def make_flava(tmp, seed=5, **overrides):
    """A random HF FlavaForPreTraining (saved to tmp/hf), its original-format checkpoint
    (tmp/flava.pt, a torch.save'd state dict) and its codebook as a whole pickled dall_e.Encoder
    (tmp/encoder.pkl), and the HF config (tmp/config.json)."""
    torch.manual_seed(seed)
    model = perturb_pt(transformers.FlavaForPreTraining(flava_config(**overrides)), seed).eval()
    model.save_pretrained(tmp / "hf")
    model.config.to_json_file(tmp / "config.json")
    state = model.state_dict()
    orig = {}
    for name, value in state.items():
        if name.startswith("image_codebook."):
            continue
        orig[to_orig(name)] = value
    for name in list(orig):
        for tower in ("text", "image"):
            if name.startswith(f"{tower}_encoder.module.embeddings."):
                orig[name.replace(".module.", ".", 1)] = orig[name].clone()
    assert seed_upgrade(orig) == {k: v for k, v in state.items() if not k.startswith("image_codebook.")}.keys()
    torch.save(orig, tmp / "flava.pt")
    if model.image_codebook is not None:
        enc = random_encoder(seed, 1)
        codebook = {k[len("image_codebook."):]: v for k, v in state.items() if k.startswith("image_codebook.")}
        enc.load_state_dict({hf_to_dalle(k): v for k, v in codebook.items()}, strict=True)
        torch.save(enc, tmp / "encoder.pkl")
    return model, orig


def to_orig(name: str) -> str:
    for hf, orig in HF_TO_ORIG:
        if name.startswith(hf):
            return orig + name[len(hf):]
    raise AssertionError(f"no original name for {name}")


def seed_upgrade(orig: dict):
    """The seed's key upgrade (drop the embedding copies, apply its renames in order)."""
    out = {}
    for key in orig:
        if "text_encoder.embeddings" in key or "image_encoder.embeddings" in key:
            continue
        for old, new in ORIG_TO_HF:
            key = key.replace(old, new)
        out[key] = None
    return out.keys()


def flava_inputs(config, seed=1) -> list[dict]:
    """Three passes: text+image (ITM, MMM heads, contrastive; the codebook makes the MMM image
    labels), image alone (MIM head) and text alone (MLM head)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, config.text_config.vocab_size, (2, 7), generator=g)
    pixels = torch.randn(2, 3, 32, 32, generator=g)
    codebook_pixels = torch.rand(2, 3, 32, 32, generator=g)
    masked = torch.zeros(2, 16, dtype=torch.long)
    masked[:, ::3] = 1
    both = dict(input_ids=ids, input_ids_masked=ids, pixel_values=pixels, codebook_pixel_values=codebook_pixels,
                bool_masked_pos=masked, attention_mask=torch.ones_like(ids), mlm_labels=ids,
                itm_labels=torch.tensor([1, 0]))
    image = dict(pixel_values=pixels, codebook_pixel_values=codebook_pixels, bool_masked_pos=masked)
    text = dict(input_ids=ids, input_ids_masked=ids, mlm_labels=ids)
    return [both, image, text]


def run_flava(model, inputs: dict) -> dict:
    with torch.no_grad():
        out = model(**inputs)
    return {k: v.numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}


def load_strict(cls, path):
    model, info = cls.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


# --------------------------------------------------------------------------- DALL-E -> codebook


def test_dalle_encoder_pickle_to_flava_image_codebook(tmp):
    """torch.save(dall_e.Encoder) -> irconv (no torch, no dall_e, no pickle code run) -> HF
    FlavaImageCodebook with the matching config: the same logits as dall_e's own forward."""
    enc = random_encoder(0, n_blk_per_group=2)
    torch.save(enc, tmp / "encoder.pkl")
    proc = run_irconv("convert", tmp / "encoder.pkl", tmp / "out", "--to", "pt", check=True)
    assert b"error" not in proc.stderr
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["model_type"] == "flava_image_codebook" and config["architectures"] == ["FlavaImageCodebook"]
    assert {k: config[k] for k in ("hidden_size", "vocab_size", "num_blocks_per_group", "num_groups",
                                   "input_channels")} == dict(hidden_size=N_HID, vocab_size=VOCAB,
                                                              num_blocks_per_group=2, num_groups=4, input_channels=3)
    hf = load_strict(transformers.FlavaImageCodebook, tmp / "out")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref, got = enc(x), hf(x)
        assert torch.equal(hf.get_codebook_indices(x), ref.argmax(1))
    assert ref.shape == (2, VOCAB, 4, 4)
    assert float((ref - got).abs().max()) <= 1e-5
    # And every tensor is dall_e's own, bit for bit.
    ours = hf.state_dict()
    for name, value in enc.state_dict().items():
        hf_name = re.sub(r"(group_\d)\.(block_\d)", r"\1.group.\2", name).replace("res_path.", "res_path.path.")
        hf_name = re.sub(r"\.w$", ".weight", re.sub(r"\.b$", ".bias", hf_name))
        assert torch.equal(ours[hf_name], value), name


def test_dalle_listing_names_the_module_tree(tmp):
    torch.save(random_encoder(0, n_blk_per_group=1), tmp / "encoder.pkl")
    text = run_irconv("ls", tmp / "encoder.pkl", check=True).stdout.decode()
    assert text.startswith("# family flava-image-codebook, format pt, view dalle")
    assert re.search(r"^group_2\.block_1\.id_path\.weight +blocks\.group_2\.block_1\.id_path\.w ", text, re.M)


# --------------------------------------------------------------------------- original FLAVA


@pytest.fixture
def flava(tmp):
    model, orig = make_flava(tmp)
    return tmp, model, orig


def test_original_flava_with_codebook_to_flava_for_pretraining(flava):
    """orig checkpoint + --with codebook=encoder.pkl -> FlavaForPreTraining: loads with nothing
    missing or unexpected, holds exactly the source model's bytes, gives its outputs; and
    --check-sum reports agreeing sums."""
    tmp, model, _ = flava
    proc = run_irconv("convert", tmp / "flava.pt", tmp / "out", "--to", "pt", "--with",
                      f"codebook={tmp / 'encoder.pkl'}", "--config", tmp / "config.json", "--check-sum", check=True)
    err = proc.stderr.decode()
    assert "parameter sums agree" in err and "copies counted once" in err, err
    assert_same_safetensors(tmp / "hf", tmp / "out")
    loaded = load_strict(transformers.FlavaForPreTraining, tmp / "out")
    config = json.loads((tmp / "out" / "config.json").read_text())
    assert config["architectures"] == ["FlavaForPreTraining"] and config["init_codebook"] is True
    for inputs in flava_inputs(model.config):
        ref, got = run_flava(model, inputs), run_flava(loaded, inputs)
        assert "loss" in ref
        assert_close(ref, got, 1e-5)


def test_view_and_family_are_detected_and_the_pipe_matches_convert(flava):
    """`import pt ORIG --view orig --with ... | export pt` gives the bytes convert gives."""
    tmp, _, _ = flava
    with_codebook = ["--with", f"codebook={tmp / 'encoder.pkl'}", "--config", tmp / "config.json"]
    run_irconv("convert", tmp / "flava.pt", tmp / "out", "--to", "pt", *with_codebook, check=True)
    rc, err, proc = run_pipe(["import", "pt", tmp / "flava.pt", "--view", "orig", *with_codebook],
                             ["export", "pt", tmp / "piped"])
    assert rc == 0 and proc.returncode == 0, (err, proc.stderr)
    assert_same_safetensors(tmp / "out", tmp / "piped")
    assert json.loads((tmp / "out" / "config.json").read_text()) == json.loads((tmp / "piped" / "config.json").read_text())


# Each tower's head count: no tensor says it (a 32-wide projection is 4 heads of 8 or 2 of 16).
HEADS = tuple(f"{tower}_config.num_attention_heads" for tower in ("text", "image", "multimodal"))


def alone(path):
    """A copy of PATH in a directory of its own: make_flava writes the HF config.json beside its
    files, and a weights file reads the config.json beside it."""
    (path.parent / f"{path.stem}-alone").mkdir()
    copy = path.parent / f"{path.stem}-alone" / path.name
    copy.write_bytes(path.read_bytes())
    return copy


def heads_of(model) -> dict[str, int]:
    """The model's own head counts, as --set / overrides= keys."""
    return {key: getattr(model.config, key.split(".")[0]).num_attention_heads for key in HEADS}


def test_without_a_config_the_heads_must_be_given_and_the_shapes_decide_the_rest(flava):
    """The original checkpoint has no config: the conversion stops (one line, naming the three
    head counts and how to give them) rather than guess; given them, every field the shapes
    decide is the source model's, and the outputs are its outputs."""
    tmp, model, _ = flava
    bare = alone(tmp / "flava.pt")
    args = ["--to", "pt", "--with", f"codebook={tmp / 'encoder.pkl'}"]
    line = assert_one_line_error(run_irconv("convert", bare, tmp / "out", *args),
                                 "no config.json", *HEADS, *(f"--set {key}=" for key in HEADS),
                                 "--accept-defaults")
    assert "guess" not in line
    assert not (tmp / "out").exists()
    # The heads alone are not enough: hidden_act and layer_norm_eps would be defaults.
    sets = [arg for key, value in heads_of(model).items() for arg in ("--set", f"{key}={value}")]
    assert_one_line_error(run_irconv("convert", bare, tmp / "out", *args, *sets),
                          "text_config.hidden_act=gelu", "layer_norm_eps=1e-12", "--accept-defaults")
    assert not (tmp / "out").exists()
    proc = run_irconv("convert", bare, tmp / "out", *args, *sets, "--accept-defaults", check=True)
    assert b"--accept-defaults" in proc.stderr
    loaded = load_strict(transformers.FlavaForPreTraining, tmp / "out")
    assert_same_safetensors(tmp / "hf", tmp / "out")
    for sub, keys in {"text_config": ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size",
                                      "max_position_embeddings", "type_vocab_size", "num_attention_heads",
                                      "hidden_act", "layer_norm_eps"),
                      "image_config": ("image_size", "patch_size", "num_channels", "vocab_size", "hidden_size",
                                       "num_hidden_layers", "intermediate_size", "num_attention_heads",
                                       "hidden_act", "layer_norm_eps"),
                      "multimodal_config": ("hidden_size", "num_hidden_layers", "intermediate_size",
                                            "num_attention_heads", "hidden_act", "layer_norm_eps"),
                      "image_codebook_config": ("hidden_size", "vocab_size", "num_blocks_per_group")}.items():
        for key in keys:
            assert getattr(getattr(loaded.config, sub), key) == getattr(getattr(model.config, sub), key), (sub, key)
    assert (loaded.config.hidden_size, loaded.config.projection_dim) == (model.config.hidden_size, 24)
    for inputs in flava_inputs(model.config):
        assert_close(run_flava(model, inputs), run_flava(loaded, inputs), 1e-5)


def test_ls_shows_where_every_key_goes(flava):
    """Every original key is listed: with its canonical name, as a copy of its twin, or as a
    tie; the codebook's tensors name the second file's keys."""
    tmp, _, orig = flava
    proc = run_irconv("ls", tmp / "flava.pt", "--with", f"codebook={tmp / 'encoder.pkl'}", check=True)
    text = proc.stdout.decode()
    assert text.startswith("# family flava, format pt, view orig")
    lines = text.splitlines()[1:]
    sources = {line.split()[1] for line in lines if not line.startswith("(")}
    skipped = {line.split()[1]: line for line in lines if line.startswith("(skipped)")}
    for key in orig:
        assert key in sources or key in skipped, key
    copy = skipped["text_encoder.embeddings.word_embeddings.weight"]
    assert "(copy of text_encoder.module.embeddings.word_embeddings.weight)" in copy
    assert "(copy of heads.fairseq_mlm.cls.predictions.bias)" in skipped["heads.fairseq_mlm.cls.predictions.decoder.bias"]
    assert re.search(r"^image_codebook\.input\.weight +codebook:blocks\.input\.w ", text, re.M)
    assert re.search(r"^text\.encoder\.layers\.1\.attn\.q\.weight +text_encoder\.module\.encoder\.layer\.1\."
                     r"attention\.attention\.query\.weight ", text, re.M)
    # Without the second file the listing still works, and says what is missing.
    proc = run_irconv("ls", tmp / "flava.pt", check=True)
    assert b"--with codebook=PATH" in proc.stderr and b"image_codebook." not in proc.stdout


def test_check_sum_fails_on_a_copy_that_is_not_one(flava):
    """The seed drops the second embeddings as copies. If one is not a copy (here: it differs
    from its twin), dropping it loses data: converted faithfully otherwise, the sums then
    disagree, because --check-sum counts a copy once only when it is one. Without the check
    the conversion goes through, as the seed's would; with it, one line, exit 2, no output."""
    tmp, _, orig = flava
    bad = dict(orig)
    bad["image_encoder.embeddings.position_embeddings"] = bad["image_encoder.embeddings.position_embeddings"] + 1.0
    torch.save(bad, tmp / "bad.pt")
    args = ["--to", "pt", "--with", f"codebook={tmp / 'encoder.pkl'}", "--config", tmp / "config.json"]
    line = assert_one_line_error(run_irconv("convert", tmp / "bad.pt", tmp / "out", *args, "--check-sum"),
                                 "parameter sums disagree", "image_encoder.embeddings.position_embeddings")
    assert "difference" in line
    assert not (tmp / "out").exists()
    run_irconv("convert", tmp / "bad.pt", tmp / "out", *args, check=True)
    assert_same_safetensors(tmp / "hf", tmp / "out")


EXAMPLE_BERT = os.path.join(os.path.dirname(__file__), "..", "examples", "tiny-bert")


def test_a_missing_codebook_is_one_line_saying_what_to_pass(flava):
    tmp, _, _ = flava
    assert_one_line_error(run_irconv("convert", tmp / "flava.pt", tmp / "out", "--to", "pt"),
                          "--with codebook=PATH", "init_codebook")
    assert not (tmp / "out").exists()
    assert_one_line_error(run_irconv("convert", tmp / "flava.pt", tmp / "out", "--to", "pt", "--with", "vq=x.pkl"),
                          "--with vq=", "--with codebook=PATH")
    assert_one_line_error(run_irconv("convert", tmp / "flava.pt", tmp / "out", "--to", "pt", "--with", "codebook"),
                          "NAME=PATH")
    # A BERT is not a codebook.
    assert_one_line_error(run_irconv("convert", tmp / "flava.pt", tmp / "out", "--to", "pt", "--with",
                                     f"codebook={EXAMPLE_BERT}"), "bert")
    assert not (tmp / "out").exists()


def test_a_model_without_codebook_converts_without_one(tmp):
    """init_codebook false: FlavaForPreTraining has no image_codebook, and no --with is needed."""
    model, _ = make_flava(tmp, init_codebook=False)
    run_irconv("convert", tmp / "flava.pt", tmp / "out", "--to", "pt", "--config", tmp / "config.json",
               "--check-sum", check=True)
    assert_same_safetensors(tmp / "hf", tmp / "out")
    loaded = load_strict(transformers.FlavaForPreTraining, tmp / "out")
    assert loaded.image_codebook is None
    text_only = flava_inputs(model.config)[2]
    assert_close(run_flava(model, text_only), run_flava(loaded, text_only), 1e-5)


def test_flava_conversion_imports_no_framework(flava):
    """The module-pickle path and --with run with torch installed but never imported."""
    tmp, model, _ = flava
    # Both alone: the FLAVA config.json beside encoder.pkl describes another model.
    bare, encoder = alone(tmp / "flava.pt"), alone(tmp / "encoder.pkl")
    code = f"""
import sys, irconv
irconv.convert({str(bare)!r}, {str(tmp / 'a')!r}, to="pt", parts={{"codebook": {str(tmp / 'encoder.pkl')!r}}},
               check_sum=True, overrides={heads_of(model)!r}, accept_defaults=True)
irconv.convert({str(encoder)!r}, {str(tmp / 'b')!r}, to="pt")
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'transformers', 'dall_e', 'keras'))
assert not bad, bad
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp / "a" / "model.safetensors").is_file() and (tmp / "b" / "model.safetensors").is_file()


def test_check_sum_is_generic(tmp):
    """--check-sum is no FLAVA code: a BERT to TF2 h5 and from there to pytorch_model.bin (whose
    tied decoder is stored twice, as one storage) pass it; a stream cannot be read twice."""
    proc = run_irconv("convert", EXAMPLE_BERT, tmp / "tf2", "--to", "tf2", "--check-sum", check=True)
    assert b"parameter sums agree" in proc.stderr
    proc = run_irconv("convert", tmp / "tf2", tmp / "bin", "--to", "pt", "--bin", "--check-sum", check=True)
    assert b"parameter sums agree" in proc.stderr
    assert_one_line_error(run_irconv("convert", "-", tmp / "x", "--to", "pt", "--check-sum"), "stream")
