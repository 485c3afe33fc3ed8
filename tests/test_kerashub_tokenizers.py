"""keras-hub preset tokenizers both ways, with keras_hub and transformers as the oracles.

HF -> preset: a tiny HF model directory with its tokenizer (a WordPiece vocab.txt, a byte-pair
vocab.json + merges.txt trained here, a SentencePiece model trained here in each class's layout:
tokenizer.model, spiece.model, sentencepiece.bpe.model) ->
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
import test_kerashub_deberta as deberta  # noqa: E402
import test_kerashub_electra as electra  # noqa: E402
import test_kerashub_encoders as encoders  # noqa: E402
import test_kerashub_seq2seq as seq2seq  # noqa: E402

SAMPLES = ["Hello  wörld, café!  東京 zzqx", " the lazy dog jumps  ", "it's HERE, naïve", "xyzzy quux"]
SPECIAL_SAMPLES = {"bpe": "<|im_start|>hello<|im_end|> world<|endoftext|>", "wordpiece": "hello [MASK] world [SEP]",
                   # fairseq's byte-pair specials, with the space before <mask> (which HF's default <mask> strips)
                   "roberta": "hello <mask> world</s><s> <pad>x <unk>y", "bart": "hello <mask> world</s><s> <pad>x <unk>y",
                   # a sentinel HF's default T5Tokenizer has and keras-hub's has not
                   "t5": "<extra_id_0> hello"}
CORPUS = ["the quick brown fox jumps over the lazy dog", "hello world, café naïve ünïcode 東京", "it's here and i'm there"] * 20
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "the", "cafe", "lazy", "dog", "##g",
         ",", "!", "it", "'", "s", "here", "nai", "##ve", "jump", "##s", "東", "京", "x", "##y"]


def as_is(token: str):
    """A mask token HF keeps whole without taking the space before it (its default lstrip does),
    as keras-hub keeps its unsplittable tokens."""
    return tokenizers.AddedToken(token, lstrip=False, rstrip=False, normalized=False, special=True)


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
    "roberta": ("roberta", "bpe", "RobertaTokenizer", "RobertaTokenizer", dict(mask_token=as_is("<mask>"))),
    "bart": ("bart", "bpe", "BartTokenizer", "BartTokenizer", dict(mask_token=as_is("<mask>"))),
    "xlm-roberta": ("xlm-roberta", "sentencepiece", "XLMRobertaTokenizer", "XLMRobertaTokenizer", {}),
    # The text as the model has it: no lowercasing, no accent stripping (HF's defaults do both).
    "albert": ("albert", "sentencepiece", "AlbertTokenizer", "AlbertTokenizer",
               dict(do_lower_case=False, keep_accents=True)),
    # No <extra_id_N> sentinels (HF's default adds 100), as keras-hub's has none.
    "t5": ("t5", "sentencepiece", "T5Tokenizer", "T5Tokenizer", dict(extra_ids=0)),
    "electra": ("electra", "wordpiece", "ElectraTokenizer", "ElectraTokenizer", dict(do_lower_case=True)),
    "mixtral": ("mixtral", "sentencepiece", "MixtralTokenizer", "LlamaTokenizer", dict(legacy=True)),
    # DeBERTa-v3's layout: [PAD] [CLS] [SEP] [UNK] first, no [MASK] piece (both classes put it last).
    "deberta-v2": ("deberta-v2", "sentencepiece", "DebertaV3Tokenizer", "DebertaV2Tokenizer", {}),
}
# The SentencePiece model of a case: its layout of special pieces (the trainer's arguments).
SP_LAYOUTS = {
    "sp": dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1),      # Llama's, Mistral's, XLM-R's (fairseq's)
    "sp-gemma": dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>"),
    "sp-t5": dict(pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>"),
    "sp-albert": dict(pad_id=0, unk_id=1, bos_id=2, eos_id=3, pad_piece="<pad>", unk_piece="<unk>", bos_piece="[CLS]",
                      eos_piece="[SEP]", user_defined_symbols="[MASK]"),
    "sp-deberta": dict(pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]",
                       unk_piece="[UNK]"),
}
SP_MODEL = {"gemma": "sp-gemma", "gemma2": "sp-gemma", "t5": "sp-t5", "albert": "sp-albert",
            "deberta-v2": "sp-deberta"}      # else "sp"
# The byte-pair files of RoBERTa and BART: fairseq's <s> <pad> </s> <unk> first, <mask> last.
FAIRSEQ_BPE = ("roberta", "bart")
# family -> (its HF model maker, its keras-hub Backbone cases), where test_kerashub has none.
SOURCES = {"roberta": (encoders.make_hf, encoders.HUB_CASES), "xlm-roberta": (encoders.make_hf, encoders.HUB_CASES),
           "albert": (encoders.make_hf, encoders.HUB_CASES),
           "bart": (lambda f, d: make_hf(f, d, cases=seq2seq.HF_CASES), seq2seq.HUB_CASES),
           "t5": (lambda f, d: make_hf(f, d, cases=seq2seq.HF_CASES), seq2seq.HUB_CASES),
           "electra": (lambda f, d: electra.make_electra(electra.HF_CASES["same"], d),
                       {"electra": ("ElectraBackbone", electra.HUB_CASES["same"], "ElectraModel")}),
           "deberta-v2": (lambda f, d: deberta.make_hf("v3", d),
                          {"deberta-v2": ("DebertaV3Backbone", deberta.HUB_ARGS, "DebertaV2Model")})}
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


def train_sentencepiece(directory, ids: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "corpus.txt").write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(directory / "corpus.txt"), model_prefix=str(directory / "sp"),
                                   vocab_size=80, model_type="bpe", character_coverage=1.0, minloglevel=3, **ids)


@pytest.fixture(scope="module")
def vocabularies(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    (root / "vocab.txt").write_text("".join(f"{w}\n" for w in dict.fromkeys(WORDS)), encoding="utf-8")
    train_bpe(root / "bpe")
    vocab = json.loads((root / "bpe" / "vocab.json").read_text(encoding="utf-8"))
    fairseq = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", *vocab, "<mask>"])}
    (root / "bpe" / "fairseq.json").write_text(json.dumps(fairseq), encoding="utf-8")
    for name, ids in SP_LAYOUTS.items():
        train_sentencepiece(root / name, ids)
    return root


def sp_model(case, vocab):
    return vocab / SP_MODEL.get(case, "sp") / "sp.model"


def bpe_vocab(case, vocab):
    return vocab / "bpe" / ("fairseq.json" if case in FAIRSEQ_BPE else "vocab.json")


def hf_tokenizer(case, vocab, directory, kwargs=None):
    """HF's tokenizer class of the case on the shared vocabulary (with the case's kwargs, or
    these), saved into `directory`."""
    _, kind, _, hf_class, theirs = CASES[case]
    kwargs = theirs if kwargs is None else kwargs
    cls = getattr(transformers, hf_class)
    if kind == "wordpiece":
        tok = cls(str(vocab / "vocab.txt"), **kwargs)
    elif kind == "bpe":
        tok = cls(str(bpe_vocab(case, vocab)), str(vocab / "bpe" / "merges.txt"), **kwargs)
    else:
        tok = cls(str(sp_model(case, vocab)), **kwargs)
    tok.save_pretrained(directory)
    return tok


def weights_of(case, root, directory):
    """The case's HF model directory without its tokenizer files."""
    shutil.copytree(root / f"hf-{case}", directory, ignore=shutil.ignore_patterns(*tok.HF_FILES))
    return directory


def keras_args(case, vocab) -> dict:
    """The keras-hub tokenizer of the case built from the same vocabulary (as a user would)."""
    _, kind, _, _, kwargs = CASES[case]
    if kind == "wordpiece":
        # As HF keeps [MASK] written in the text whole (keras-hub's default splits it: refused below).
        return {"vocabulary": str(vocab / "vocab.txt"), "lowercase": kwargs["do_lower_case"],
                "special_tokens_in_strings": True}
    if case in FAIRSEQ_BPE:         # keras-hub's own unsplittable tokens: the class's special tokens
        return {"vocabulary": str(bpe_vocab(case, vocab)), "merges": str(vocab / "bpe" / "merges.txt")}
    if kind == "bpe":
        full = json.loads((vocab / "bpe" / "vocab.json").read_text(encoding="utf-8"))
        full.update({t: len(full) + i for i, t in enumerate(BPE_SPECIALS)})
        (vocab / "bpe" / "with-specials.json").write_text(json.dumps(full), encoding="utf-8")
        return {"vocabulary": str(vocab / "bpe" / "with-specials.json"), "merges": str(vocab / "bpe" / "merges.txt"),
                "unsplittable_tokens": BPE_SPECIALS}
    return {"proto": str(sp_model(case, vocab))}


def more(case) -> list[str]:
    """The sample with special tokens in the text, where both sides keep them whole."""
    _, kind, _, _, _ = CASES.get(case, (None, case, None, None, None))
    special = SPECIAL_SAMPLES.get(case, SPECIAL_SAMPLES.get(kind))
    return [special] if special else []


@pytest.fixture(scope="module")
def world(tmp_path_factory, vocabularies):
    root = tmp_path_factory.mktemp("hubtok")
    jobs, hf = [], {}
    for case, (family, kind, keras_cls, _, _) in CASES.items():
        src = root / f"hf-{case}"
        maker, hub_cases = SOURCES.get(family, (make_hf, HUB_CASES))
        maker(family, src)
        hf[case] = hf_tokenizer(case, vocabularies, src)
        run_irconv("convert", src, root / f"to-{case}", "--to", "kerashub", check=True)
        jobs.append({"dir": str(root / f"to-{case}"), "more": more(case)})
        backbone, args, _ = hub_cases[family]
        jobs.append({"dir": str(root / f"hub-{case}"), "build": keras_cls, "args": keras_args(case, vocabularies),
                     "backbone": backbone, "backbone_args": args, "more": more(case)})
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


def hf_ids(tok, case: str) -> list[list[int]]:
    texts = SAMPLES + more(case)
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


@pytest.mark.parametrize("case", list(CASES))
def test_hf_tokenizer_becomes_the_presets(case, world):
    root, hf, report = world
    _, kind, keras_cls, _, _ = CASES[case]
    got = report[str(root / f"to-{case}")]
    assert "error" not in got, got
    assert got["class"] == keras_cls
    assert got["ids"] == hf_ids(hf[case], case)
    # What HF adds itself: [CLS] ... [SEP] (BERT, ALBERT; <s> ... </s> RoBERTa, BART, XLM-R),
    # <s>/<bos> first (Llama, Gemma), </s> last (T5), nothing (Qwen).
    tok = hf[case]
    plain = hf_ids(tok, case)[0]
    if kind == "wordpiece" or case in ("roberta", "bart", "xlm-roberta", "albert", "deberta-v2"):
        added = [tok.cls_token_id, *plain, tok.sep_token_id]
    else:
        added = {"t5": [*plain, tok.eos_token_id]}.get(case, [tok.bos_token_id, *plain] if kind == "sentencepiece"
                                                       else plain)
    assert tok(SAMPLES[0])["input_ids"] == added
    if kind != "bpe":        # the samples hold words (or characters) the vocabulary has not
        assert tok.unk_token_id in sum(got["ids"], [])


@pytest.mark.parametrize("case", list(CASES))
def test_the_vocabulary_files_are_carried_unchanged(case, world):
    root, _, _ = world
    family, kind, _, _, _ = CASES[case]
    assets, src = root / f"to-{case}" / "assets" / "tokenizer", root / f"hf-{case}"
    pairs = {"wordpiece": [("vocabulary.txt", "vocab.txt")], "bpe": [("merges.txt", "merges.txt")],
             "sentencepiece": [("vocabulary.spm", kh.hub_tokenizer(family).model_file)]}[kind]
    for ours, theirs in pairs:
        assert (assets / ours).read_bytes() == (src / theirs).read_bytes()
    if kind == "bpe":
        # merges.txt keeps HF's "#version" header line, which keras-hub skips.
        assert (assets / "merges.txt").read_text(encoding="utf-8").startswith("#version")


@pytest.mark.parametrize("case", list(CASES))
def test_keras_hub_tokenizer_preset_to_hf(case, world, tmp_path):
    root, _, report = world
    family, kind, keras_cls, hf_class, _ = CASES[case]
    theirs = report[str(root / f"hub-{case}")]
    assert "error" not in theirs, theirs
    assert theirs["class"] == keras_cls
    proc = run_irconv("convert", root / f"hub-{case}", tmp_path / "pt", "--to", "pt", check=True)
    assert "tokenizer_config.json" in proc.stderr.decode()
    assert not (tmp_path / "pt" / "assets").exists() and not (tmp_path / "pt" / "tokenizer.json").exists()
    tok = getattr(transformers, hf_class).from_pretrained(tmp_path / "pt")
    assert hf_ids(tok, case) == theirs["ids"]
    if kind == "bpe":
        # keras-hub saved its merges from a list without the header, which HF's GPT2Tokenizer
        # would drop as the first line: irconv wrote one.
        assert (tmp_path / "pt" / "merges.txt").read_text(encoding="utf-8").startswith("#version")
        assert not (root / f"hub-{case}" / "assets" / "tokenizer" / "merges.txt").read_text(
            encoding="utf-8").startswith("#version")
    if kind == "sentencepiece":
        assert (tmp_path / "pt" / kh.hub_tokenizer(family).model_file).read_bytes() == \
            (root / f"hub-{case}" / "assets" / "tokenizer" / "vocabulary.spm").read_bytes()


@pytest.mark.parametrize("case", ["qwen2", "roberta", "bart", "xlm-roberta", "albert", "t5", "deberta-v2"])
def test_a_preset_tokenizer_through_pt_and_back_is_the_same(case, world, tmp_path):
    """preset -> pt -> preset: the same assets, and a tokenizer.json of the same settings."""
    root, _, _ = world
    run_irconv("convert", root / f"to-{case}", tmp_path / "pt", "--to", "pt", check=True)
    run_irconv("convert", tmp_path / "pt", tmp_path / "hub", "--to", "kerashub", check=True)
    a, b = root / f"to-{case}", tmp_path / "hub"
    assets = sorted(p.name for p in (a / "assets/tokenizer").iterdir())
    assert assets == sorted(p.name for p in (b / "assets/tokenizer").iterdir())
    for name in assets:
        ours, back = (a / "assets/tokenizer" / name), (b / "assets/tokenizer" / name)
        if name.endswith(".json"):
            assert json.loads(ours.read_text()) == json.loads(back.read_text())
        else:
            assert ours.read_bytes() == back.read_bytes()
    assert json.loads((a / "tokenizer.json").read_text()) == json.loads((b / "tokenizer.json").read_text())
    # And a preset straight to a preset.
    run_irconv("convert", root / f"to-{case}", tmp_path / "hub2", "--to", "kerashub", check=True)
    assert json.loads((a / "tokenizer.json").read_text()) == json.loads((tmp_path / "hub2" / "tokenizer.json").read_text())
    # --dry-run names the files the way back makes.
    proc = run_irconv("convert", root / f"to-{case}", tmp_path / "dry", "--to", "pt", "--dry-run", check=True)
    made = ", ".join([*tok.hf_files(kh.hub_tokenizer(CASES[case][0])), "tokenizer_config.json"])
    assert f"made: {made}" in proc.stdout.decode()


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


@pytest.mark.parametrize("case,kwargs,needles", [
    # HF's <mask> takes the space before it (lstrip); keras-hub's unsplittable <mask> leaves it.
    ("roberta", {}, ("RobertaTokenizer", "'<mask>'", "lstrip")),
    ("bart", {}, ("BartTokenizer", "'<mask>'", "lstrip")),
    # HF's AlbertTokenizer lowercases and strips accents unless told not to.
    ("albert", {}, ("AlbertTokenizer", "do_lower_case")),
    ("albert", dict(do_lower_case=False), ("AlbertTokenizer", "keep_accents")),
    # HF's T5Tokenizer adds 100 <extra_id_N> sentinels after the model's pieces.
    ("t5", {}, ("T5Tokenizer", "extra_ids")),
], ids=["roberta-mask", "bart-mask", "albert-lowercase", "albert-accents", "t5-extra-ids"])
def test_hf_defaults_keras_hub_does_not_compute_as_are_not_written(case, kwargs, needles, world, vocabularies,
                                                                    tmp_path):
    """HF's own class with these settings gives other ids than keras-hub's class of the same
    vocabulary (the preset written beside the case's settings) for the samples: not written."""
    root, _, report = world
    src = weights_of(case, root, tmp_path / "src")
    theirs = hf_tokenizer(case, vocabularies, src, kwargs)
    assert hf_ids(theirs, case) != report[str(root / f"to-{case}")]["ids"]
    refused(src, tmp_path / "out", "kerashub", *needles)


def test_an_xlm_roberta_model_without_fairseqs_pieces_is_not_written(world, vocabularies, tmp_path):
    """keras-hub's XLMRobertaTokenizer (as HF's) takes the model's pieces 0-2 for <unk> <s> </s>
    and puts its own ids there: a model of other first pieces (T5's <pad> </s> <unk>) is
    refused both ways."""
    root, _, _ = world
    src = weights_of("xlm-roberta", root, tmp_path / "src")
    transformers.XLMRobertaTokenizer(str(sp_model("t5", vocabularies))).save_pretrained(src)
    refused(src, tmp_path / "out", "kerashub", "XLMRobertaTokenizer", "first pieces")
    hub = tmp_path / "hub"
    shutil.copytree(root / "hub-xlm-roberta", hub)
    shutil.copyfile(sp_model("t5", vocabularies), hub / "assets" / "tokenizer" / "vocabulary.spm")
    refused(hub, tmp_path / "pt", "pt", "XLMRobertaTokenizer", "first pieces")


def test_an_albert_model_whose_pieces_hf_splits_again_is_not_written(world, vocabularies, tmp_path):
    """HF's AlbertTokenizer splits a piece ending in a digit and a comma ('9,') again, which
    SentencePiece (keras-hub's AlbertTokenizer) does not: such a model is refused."""
    root, _, _ = world
    model = tmp_path / "sp"
    train_sentencepiece(model, dict(SP_LAYOUTS["sp-albert"], user_defined_symbols=["[MASK]", "9,"]))
    theirs = transformers.AlbertTokenizer(str(model / "sp.model"), **CASES["albert"][4])
    text = "the 9, dog"
    assert theirs(text, add_special_tokens=False)["input_ids"] != \
        spm.SentencePieceProcessor(model_file=str(model / "sp.model")).encode(text)
    src = weights_of("albert", root, tmp_path / "src")
    theirs.save_pretrained(src)
    refused(src, tmp_path / "out", "kerashub", "AlbertTokenizer", "'9,'")


def test_a_mask_of_unstated_flags_is_not_written(world, tmp_path):
    """vocab.json + merges.txt alone: HF's RobertaTokenizer takes its default <mask>, which
    strips the space before it, so keras-hub's ids differ for the samples: not written."""
    root, _, report = world
    src = weights_of("roberta", root, tmp_path / "src")
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(root / "hf-roberta" / name, src / name)
    assert hf_ids(transformers.RobertaTokenizer.from_pretrained(src), "roberta") != report[str(root / "to-roberta")]["ids"]
    refused(src, tmp_path / "out", "kerashub", "RobertaTokenizer", "'<mask>'", "lstrip")
