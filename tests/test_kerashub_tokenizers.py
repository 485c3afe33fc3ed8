"""keras-hub preset tokenizers both ways, with keras_hub and transformers as the oracles.

HF -> preset: a tiny HF model directory with its tokenizer (a WordPiece vocab.txt, a byte-pair
vocab.json + merges.txt trained here, a SentencePiece tokenizer.model trained here) ->
`irconv convert --to kerashub` -> keras_hub's `Tokenizer.from_preset(dir)` tokenizes the
samples (unicode, runs of spaces, unknown words, special tokens in the text where both sides
keep them whole) into the ids HF's tokenizer class gives, without the specials HF adds itself.

Preset -> HF: keras_hub builds a tokenizer from the same vocabulary and saves it beside its own
Backbone (save_to_preset) -> `irconv convert --to pt` -> HF's tokenizer class loads the files
irconv wrote and gives keras_hub's ids.

keras_hub runs in one subprocess for the module (KERAS_BACKEND=jax), as in test_kerashub.py.
"""
from __future__ import annotations

import json
import shutil

import pytest

# The tokenizer checks (their own keras_hub run) are in make test-long, to keep make test within its
# time; test_kerashub.py and test_kerashub_tasks.py exercise the same machinery in the fast set.
pytestmark = pytest.mark.slow

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")
tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("keras_hub")

from irconv.exporters import extras  # noqa: E402
from irconv.formats import hubtokenizer as tok  # noqa: E402
from irconv.formats import kerashub as fmt  # noqa: E402
from irconv.models import kerashub as kh  # noqa: E402
from conftest import run_irconv  # noqa: E402
from test_kerashub import HUB_CASES, hub_oracle, make_hf  # noqa: E402

SAMPLES = ["Hello  wörld, café!  東京 zzqx", " the lazy dog jumps  ", "it's HERE, naïve", "xyzzy quux"]
SPECIAL_SAMPLES = {"bpe": "<|im_start|>hello<|im_end|> world<|endoftext|>", "wordpiece": "hello [MASK] world [SEP]"}
CORPUS = ["the quick brown fox jumps over the lazy dog", "hello world, café naïve ünïcode 東京", "it's here and i'm there"] * 20
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "the", "cafe", "lazy", "dog", "##g",
         ",", "!", "it", "'", "s", "here", "nai", "##ve", "jump", "##s", "東", "京", "x", "##y"]

# case -> (HF family (test_kerashub HF_CASES), kind, keras-hub class, HF tokenizer class, HF kwargs)
CASES = {
    "bert": ("bert", "wordpiece", "BertTokenizer", "BertTokenizer", dict(do_lower_case=True)),
    "bert-cased": ("bert", "wordpiece", "BertTokenizer", "BertTokenizer", dict(do_lower_case=False)),
    "distilbert": ("distilbert", "wordpiece", "DistilBertTokenizer", "DistilBertTokenizer", dict(do_lower_case=True)),
    "qwen2": ("qwen2", "bpe", "QwenTokenizer", "Qwen2Tokenizer",
              dict(additional_special_tokens=["<|im_start|>", "<|im_end|>"])),
    "qwen3": ("qwen3", "bpe", "Qwen3Tokenizer", "Qwen2Tokenizer",
              dict(eos_token="<|im_end|>", additional_special_tokens=["<|im_start|>", "<|im_end|>"])),
    "llama": ("llama", "sentencepiece", "LlamaTokenizer", "LlamaTokenizer", dict(legacy=True)),
    "mistral": ("mistral", "sentencepiece", "MistralTokenizer", "LlamaTokenizer", dict(legacy=True)),
    "gemma": ("gemma", "sentencepiece", "GemmaTokenizer", "GemmaTokenizer", {}),
    "gemma2": ("gemma2", "sentencepiece", "GemmaTokenizer", "GemmaTokenizer", {}),
}
BPE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

ORACLE = r"""
import json, os, sys
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np, keras, keras_hub
samples = json.loads(sys.argv[2])
report = {}
for job in json.load(open(sys.argv[1])):
    try:
        if "build" in job:
            keras.utils.set_random_seed(7)
            getattr(keras_hub.models, job["backbone"])(**job["backbone_args"]).save_to_preset(job["dir"])
        if "build" in job and job["build"]:
            args = dict(job["args"])
            if "merges" in args:      # a list, as a keras-hub user gives it: its file has no header line
                args["vocabulary"] = json.load(open(args["vocabulary"], encoding="utf-8"))
                args["merges"] = [l.rstrip("\n") for l in open(args["merges"], encoding="utf-8")
                                  if not l.startswith("#version")]
            tokenizer = getattr(keras_hub.models, job["build"])(**args)
            tokenizer.save_to_preset(job["dir"])
        tokenizer = keras_hub.models.Tokenizer.from_preset(job["dir"])
        report[job["dir"]] = {"class": type(tokenizer).__name__,
                              "ids": [np.asarray(tokenizer(s)).tolist() for s in samples + job.get("more", [])]}
    except Exception as exc:
        report[job["dir"]] = {"error": f"{type(exc).__name__}: {exc}"[:800]}
json.dump(report, open(sys.argv[3], "w"))
"""


def train_bpe(directory) -> None:
    """A byte-level BPE vocab.json + merges.txt (with its "#version" header), without the
    special tokens, which HF adds after the vocabulary as Qwen's files do."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    directory.mkdir(parents=True, exist_ok=True)
    tok.model.save(str(directory))


def train_sentencepiece(directory, gemma: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "corpus.txt").write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    ids = dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>") \
        if gemma else dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    spm.SentencePieceTrainer.train(input=str(directory / "corpus.txt"), model_prefix=str(directory / "sp"),
                                   vocab_size=80, model_type="bpe", character_coverage=1.0, minloglevel=3, **ids)


@pytest.fixture(scope="module")
def vocabularies(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    (root / "vocab.txt").write_text("".join(f"{w}\n" for w in dict.fromkeys(WORDS)), encoding="utf-8")
    train_bpe(root / "bpe")
    train_sentencepiece(root / "sp", gemma=False)
    train_sentencepiece(root / "sp-gemma", gemma=True)
    return root


def hf_tokenizer(case, vocab, directory):
    """HF's tokenizer class of the case on the shared vocabulary, saved into `directory`."""
    _, kind, _, hf_class, kwargs = CASES[case]
    cls = getattr(transformers, hf_class)
    if kind == "wordpiece":
        tok = cls(str(vocab / "vocab.txt"), **kwargs)
    elif kind == "bpe":
        tok = cls(str(vocab / "bpe" / "vocab.json"), str(vocab / "bpe" / "merges.txt"), **kwargs)
    else:
        tok = cls(str(vocab / ("sp-gemma" if case.startswith("gemma") else "sp") / "sp.model"), **kwargs)
    tok.save_pretrained(directory)
    return tok


def keras_args(case, vocab) -> dict:
    """The keras-hub tokenizer of the case built from the same vocabulary (as a user would)."""
    _, kind, _, _, kwargs = CASES[case]
    if kind == "wordpiece":
        # As HF keeps [MASK] written in the text whole (keras-hub's default splits it: refused below).
        return {"vocabulary": str(vocab / "vocab.txt"), "lowercase": kwargs["do_lower_case"],
                "special_tokens_in_strings": True}
    if kind == "bpe":
        full = json.loads((vocab / "bpe" / "vocab.json").read_text(encoding="utf-8"))
        full.update({t: len(full) + i for i, t in enumerate(BPE_SPECIALS)})
        (vocab / "bpe" / "with-specials.json").write_text(json.dumps(full), encoding="utf-8")
        return {"vocabulary": str(vocab / "bpe" / "with-specials.json"), "merges": str(vocab / "bpe" / "merges.txt"),
                "unsplittable_tokens": BPE_SPECIALS}
    return {"proto": str(vocab / ("sp-gemma" if case.startswith("gemma") else "sp") / "sp.model")}


@pytest.fixture(scope="module")
def world(tmp_path_factory, vocabularies):
    root = tmp_path_factory.mktemp("hubtok")
    jobs, hf = [], {}
    for case, (family, kind, keras_cls, _, _) in CASES.items():
        src = root / f"hf-{case}"
        make_hf(family, src)
        hf[case] = hf_tokenizer(case, vocabularies, src)
        run_irconv("convert", src, root / f"to-{case}", "--to", "kerashub", check=True)
        more = [SPECIAL_SAMPLES[kind]] if kind in SPECIAL_SAMPLES else []
        jobs.append({"dir": str(root / f"to-{case}"), "more": more})
        backbone, args, _ = HUB_CASES[family]
        jobs.append({"dir": str(root / f"hub-{case}"), "build": keras_cls, "args": keras_args(case, vocabularies),
                     "backbone": backbone, "backbone_args": args, "more": more})
    # GPT-2's byte-pair files beside a GPT2LMHeadModel, through the CLI like the others.
    src = root / "hf-gpt2"
    make_hf("gpt2", src)
    hf["gpt2"] = transformers.GPT2Tokenizer(str(vocabularies / "bpe" / "vocab.json"),
                                            str(vocabularies / "bpe" / "merges.txt"))
    hf["gpt2"].save_pretrained(src)
    run_irconv("convert", src, root / "to-gpt2", "--to", "kerashub", check=True)
    jobs.append({"dir": str(root / "to-gpt2"), "more": []})
    gpt2 = dict(vocabulary_size=300, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=8)
    full = json.loads((vocabularies / "bpe" / "vocab.json").read_text(encoding="utf-8"))
    full["<|endoftext|>"] = len(full)
    (root / "gpt2-vocab.json").write_text(json.dumps(full), encoding="utf-8")
    jobs.append({"dir": str(root / "hub-gpt2"), "build": "GPT2Tokenizer", "backbone": "GPT2Backbone",
                 "backbone_args": gpt2, "args": {"vocabulary": str(root / "gpt2-vocab.json"),
                                                 "merges": str(vocabularies / "bpe" / "merges.txt")}})
    return root, hf, hub_oracle(jobs, root, ORACLE, SAMPLES, timeout=900)


def test_gpt2s_declared_tokenizer_both_ways(world, tmp_path):
    """HF's GPT2Tokenizer files -> the preset's GPT2Tokenizer, and keras_hub's own back -> HF's
    GPT2Tokenizer, which drops merges.txt's first line whatever it holds (irconv's way back
    writes the "#version" line a keras-hub merges list has not)."""
    root, hf, report = world
    got = report[str(root / "to-gpt2")]
    assert "error" not in got, got
    assert got["class"] == "GPT2Tokenizer" and got["ids"] == hf_ids(hf["gpt2"], "gpt2")
    theirs = report[str(root / "hub-gpt2")]
    assert "error" not in theirs, theirs
    hub = root / "hub-gpt2"
    made = tok.to_hf(kh.hub_tokenizer("gpt2"), json.loads((hub / fmt.TOKENIZER).read_text()), hub / fmt.ASSETS)
    out = tmp_path / "hf"
    out.mkdir()
    extras.write_made(made, out, extras.Extras())
    assert hf_ids(transformers.GPT2Tokenizer.from_pretrained(out), "gpt2") == theirs["ids"]
    assert (out / "merges.txt").read_bytes() == b"#version: 0.2\n" + (hub / fmt.ASSETS / "merges.txt").read_bytes()


def hf_ids(tok, kind: str) -> list[list[int]]:
    texts = SAMPLES + ([SPECIAL_SAMPLES[kind]] if kind in SPECIAL_SAMPLES else [])
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


@pytest.mark.parametrize("case", list(CASES))
def test_hf_tokenizer_becomes_the_presets(case, world):
    root, hf, report = world
    _, kind, keras_cls, _, _ = CASES[case]
    got = report[str(root / f"to-{case}")]
    assert "error" not in got, got
    assert got["class"] == keras_cls
    assert got["ids"] == hf_ids(hf[case], kind)
    # What HF adds itself: [CLS] ... [SEP] (BERT), <s>/<bos> first (SentencePiece), nothing (Qwen).
    tok = hf[case]
    plain = hf_ids(tok, kind)[0]
    added = {"wordpiece": [tok.cls_token_id, *plain, tok.sep_token_id],
             "sentencepiece": [tok.bos_token_id, *plain], "bpe": plain}[kind]
    assert tok(SAMPLES[0])["input_ids"] == added
    if kind != "bpe":        # the samples hold words (or characters) the vocabulary has not
        assert tok.unk_token_id in sum(got["ids"], [])


@pytest.mark.parametrize("case", list(CASES))
def test_the_vocabulary_files_are_carried_unchanged(case, world):
    root, _, _ = world
    _, kind, _, _, _ = CASES[case]
    assets, src = root / f"to-{case}" / "assets" / "tokenizer", root / f"hf-{case}"
    pairs = {"wordpiece": [("vocabulary.txt", "vocab.txt")], "bpe": [("merges.txt", "merges.txt")],
             "sentencepiece": [("vocabulary.spm", "tokenizer.model")]}[kind]
    for ours, theirs in pairs:
        assert (assets / ours).read_bytes() == (src / theirs).read_bytes()
    if kind == "bpe":
        # merges.txt keeps HF's "#version" header line, which keras-hub skips.
        assert (assets / "merges.txt").read_text(encoding="utf-8").startswith("#version")


@pytest.mark.parametrize("case", list(CASES))
def test_keras_hub_tokenizer_preset_to_hf(case, world, tmp_path):
    root, _, report = world
    _, kind, keras_cls, hf_class, _ = CASES[case]
    theirs = report[str(root / f"hub-{case}")]
    assert "error" not in theirs, theirs
    assert theirs["class"] == keras_cls
    proc = run_irconv("convert", root / f"hub-{case}", tmp_path / "pt", "--to", "pt", check=True)
    assert "tokenizer_config.json" in proc.stderr.decode()
    assert not (tmp_path / "pt" / "assets").exists() and not (tmp_path / "pt" / "tokenizer.json").exists()
    tok = getattr(transformers, hf_class).from_pretrained(tmp_path / "pt")
    assert hf_ids(tok, kind) == theirs["ids"]
    if kind == "bpe":
        # keras-hub saved its merges from a list without the header, which HF's GPT2Tokenizer
        # would drop as the first line: irconv wrote one.
        assert (tmp_path / "pt" / "merges.txt").read_text(encoding="utf-8").startswith("#version")
        assert not (root / f"hub-{case}" / "assets" / "tokenizer" / "merges.txt").read_text(
            encoding="utf-8").startswith("#version")
    if kind == "sentencepiece":
        assert (tmp_path / "pt" / "tokenizer.model").read_bytes() == \
            (root / f"hub-{case}" / "assets" / "tokenizer" / "vocabulary.spm").read_bytes()


def test_a_preset_tokenizer_through_pt_and_back_is_the_same(world, tmp_path):
    """preset -> pt -> preset: the same assets, and a tokenizer.json of the same settings."""
    root, _, _ = world
    run_irconv("convert", root / "to-qwen2", tmp_path / "pt", "--to", "pt", check=True)
    run_irconv("convert", tmp_path / "pt", tmp_path / "hub", "--to", "kerashub", check=True)
    a, b = root / "to-qwen2", tmp_path / "hub"
    assert json.loads((a / "assets/tokenizer/vocabulary.json").read_text()) == \
        json.loads((b / "assets/tokenizer/vocabulary.json").read_text())
    assert (a / "assets/tokenizer/merges.txt").read_bytes() == (b / "assets/tokenizer/merges.txt").read_bytes()
    assert json.loads((a / "tokenizer.json").read_text()) == json.loads((b / "tokenizer.json").read_text())
    # And a preset straight to a preset.
    run_irconv("convert", root / "to-qwen2", tmp_path / "hub2", "--to", "kerashub", check=True)
    assert json.loads((a / "tokenizer.json").read_text()) == json.loads((tmp_path / "hub2" / "tokenizer.json").read_text())
    # --dry-run names the files the way back makes.
    proc = run_irconv("convert", root / "to-qwen2", tmp_path / "dry", "--to", "pt", "--dry-run", check=True)
    assert "made: vocab.json, merges.txt, tokenizer_config.json" in proc.stdout.decode()


def edited(src, dst, name: str, change: dict, nested: str = ""):
    """A copy of the directory `src` with JSON file `name` changed (a None value: left out)."""
    shutil.copytree(src, dst)
    config = json.loads((dst / name).read_text())
    target = config[nested] if nested else config
    for key, value in change.items():
        if value is None:
            del target[key]
        else:
            target[key] = value
    (dst / name).write_text(json.dumps(config))
    return dst


def refused(src, out, to, *needles):
    """The weights converted, the tokenizer not, and stderr says which and why."""
    proc = run_irconv("convert", src, out, "--to", to)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "not written" in err or "not carried" in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert (out / ("model.weights.h5" if to == "kerashub" else "model.safetensors")).is_file()
    tokenizer = ("tokenizer.json", "assets") if to == "kerashub" else \
        ("vocab.txt", "vocab.json", "tokenizer.model", "tokenizer_config.json", "assets", "tokenizer.json")
    assert not [name for name in tokenizer if (out / name).exists()]


@pytest.mark.parametrize("case,change,needles", [
    # Qwen2-Instruct ends with <|im_end|>; keras-hub's QwenTokenizer always with <|endoftext|>.
    ("qwen2", {"eos_token": "<|im_end|>"}, ("QwenTokenizer", "eos_token", "<|im_end|>")),
    ("bert", {"do_lower_case": None}, ("BertTokenizer", "do_lower_case")),
    ("bert", {"tokenizer_class": "XLMRobertaTokenizer"}, ("BertTokenizer", "XLMRobertaTokenizer")),
], ids=["eos", "no-casing", "other-class"])
def test_an_hf_tokenizer_keras_hub_cannot_be_said_to_compute_is_not_written(case, change, needles, world, tmp_path):
    root, _, _ = world
    src = edited(root / f"hf-{case}", tmp_path / "src", "tokenizer_config.json", change)
    refused(src, tmp_path / "out", "kerashub", *needles)


@pytest.mark.parametrize("change,needle", [
    ({"lowercase": None}, "lowercase"),
    ({"special_tokens_in_strings": False}, "special_tokens_in_strings=false"),
], ids=["no-casing", "splits-specials"])
def test_a_preset_tokenizer_hf_cannot_say_is_not_written_back(change, needle, world, tmp_path):
    root, _, _ = world
    src = edited(root / "hub-bert", tmp_path / "hub", "tokenizer.json", change, nested="config")
    refused(src, tmp_path / "pt", "pt", needle)


def test_a_fast_only_tokenizer_is_named_not_written(world, tmp_path):
    """A Llama 3 directory has tokenizer.json only: no tokenizer.model for LlamaTokenizer."""
    root, _, _ = world
    src = tmp_path / "src"
    src.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(root / "hf-llama" / name, src / name)
    (src / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}))
    refused(src, tmp_path / "out", "kerashub", "LlamaTokenizer", "tokenizer.model")
