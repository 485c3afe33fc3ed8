"""keras-hub Task presets both ways (task.json + task.weights.h5 beside the Backbone's files),
with keras_hub itself as the oracle, in one subprocess (KERAS_BACKEND=jax) as in test_kerashub.

HF BertForSequenceClassification and the decoders' *ForCausalLM -> `--to kerashub` -> keras_hub's
`TextClassifier.from_preset(dir)` / `CausalLM.from_preset(dir)` (no arguments: task.json says
what to build) computes HF's logits within 1e-4, with the same variables as keras-hub's own HF
loader makes of the same directory; back to pt gives every tensor byte for byte. Tasks keras_hub's
own `save_to_preset` wrote -> `--to pt` -> transformers loads them strictly and computes the task's
logits; back to kerashub gives the same datasets. What a task cannot hold is refused in one line.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from test_kerashub import (HF_CASES, HUB_ARGS, HUB_CASES_ENCODER, attention, h5_datasets, hf_outputs,  # noqa: E402
                           hub_oracle, make_hf, outputs, verified)
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from zoo import assert_same_safetensors  # noqa: E402

import irconv  # noqa: E402

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

BERT = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
            max_position_embeddings=16, hidden_act="gelu_pytorch_tanh")
DISTILBERT = HF_CASES["distilbert"][2]
# case -> (HF config class, HF model class, config kwargs); the decoders are test_kerashub's.
TASK_HF = {
    "bert-classifier": ("BertConfig", "BertForSequenceClassification", dict(BERT, num_labels=3, classifier_dropout=0.2)),
    "distilbert-classifier": ("DistilBertConfig", "DistilBertForSequenceClassification",
                              dict(DISTILBERT, num_labels=3, seq_classif_dropout=0.3)),
    **{case: HF_CASES[case] for case in ("llama", "llama-tied", "mistral", "qwen2", "qwen3", "gemma", "gemma2")},
}
# The keras-hub task base class that loads each case's preset, and keras-hub's own HF loader's kwargs.
TASK_BASE = {"bert-classifier": ("TextClassifier", {"num_classes": 3}),
             "distilbert-classifier": ("TextClassifier", {"num_classes": 3})}
# keras_hub tasks built and saved by keras_hub: case -> (task, backbone, backbone args, task args, HF class)
HUB_TASKS = {
    "bert-classifier": ("BertTextClassifier", "BertBackbone", HUB_CASES_ENCODER, {"num_classes": 3, "dropout": 0.3},
                        "BertForSequenceClassification"),
    "distilbert-classifier": ("DistilBertTextClassifier", "DistilBertBackbone", HUB_CASES_ENCODER,
                              {"num_classes": 3, "dropout": 0.3}, "DistilBertForSequenceClassification"),
    "llama": ("LlamaCausalLM", "LlamaBackbone", dict(HUB_ARGS, layer_norm_epsilon=1e-5, tie_word_embeddings=False), {},
              "LlamaForCausalLM"),
    # Written back as LlamaCausalLM over a LlamaBackbone (the same variables, WRITTEN_AS).
    "llama3": ("Llama3CausalLM", "Llama3Backbone", dict(HUB_ARGS, tie_word_embeddings=True), {}, "LlamaForCausalLM"),
    "qwen2": ("QwenCausalLM", "QwenBackbone", HUB_ARGS, {}, "Qwen2ForCausalLM"),
    "gemma2": ("GemmaCausalLM", "GemmaBackbone", dict(HUB_ARGS, head_dim=16, use_post_ffw_norm=True,
                                                      use_post_attention_norm=True, attention_logit_soft_cap=1.0,
                                                      final_logit_soft_cap=2.0, use_sliding_window_attention=True,
                                                      sliding_window_size=4), {}, "Gemma2ForCausalLM"),
}
WRITTEN_AS = {"llama3": "LlamaCausalLM"}
# keras_hub tasks irconv refuses to read: case -> (task, backbone, backbone args, task args, the one line's words)
HUB_REFUSED = {
    "bert-mlm": ("BertMaskedLM", "BertBackbone", HUB_CASES_ENCODER, {}, "exact GELU and epsilon 1e-5"),
    "distilbert-mlm": ("DistilBertMaskedLM", "DistilBertBackbone", HUB_CASES_ENCODER, {}, "epsilon 1e-5"),
    "bert-softmax": ("BertTextClassifier", "BertBackbone", HUB_CASES_ENCODER, {"num_classes": 3, "activation": "softmax"},
                     "activation='softmax'"),
    "bert-embedder": ("BertTextEmbedder", "BertBackbone", HUB_CASES_ENCODER, {}, "BertTextEmbedder"),
}

TASK_ORACLE = r"""
import json, os, sys
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np, keras, keras_hub
ids = np.array(json.loads(sys.argv[2]))

def run(task, text):
    if text is not None:           # raw strings through the task's own preprocessor
        x = task.preprocessor(text)
        x = x[0] if isinstance(x, tuple) else x
        return np.asarray(task({k: np.asarray(v) for k, v in x.items()}), "float32")
    given = {"token_ids": ids, "padding_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids),
             "mask_positions": np.arange(ids.shape[1])[None]}
    return np.asarray(task({k: given[k] for k in task.input}), "float32")

def head(task):
    # What a MaskedLM head computes with (the constants its task class fixes).
    h = getattr(task, "masked_lm_head", None)
    return h and {"activation": keras.activations.serialize(h.intermediate_activation), "epsilon": h.layer_norm_epsilon}

report = {}
for job in json.load(open(sys.argv[1])):
    try:
        if "build" in job:
            keras.utils.set_random_seed(7)
            backbone = getattr(keras_hub.models, job["backbone"])(**job["backbone_args"])
            task = getattr(keras_hub.models, job["build"])(backbone, **job["args"])
            rng = np.random.default_rng(7)
            for v in task.weights:      # norms and biases off their initial ones and zeros
                v.assign((np.asarray(v, "float32") + rng.normal(0, 0.05, v.shape)).astype(v.dtype))
            task.save_to_preset(job["dir"])
        else:
            task = getattr(keras_hub.models, job["task"]).from_preset(job["dir"], **job.get("kwargs", {}))
        np.savez(job["out"], logits=run(task, job.get("text")))
        report[job["dir"]] = {"class": type(task).__name__, "variables": [[v.path, list(v.shape)] for v in task.weights],
                              "head": head(task), "preprocessor": type(task.preprocessor).__name__ if task.preprocessor else None}
    except Exception as exc:
        report[job["dir"]] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
json.dump(report, open(sys.argv[3], "w"))
"""


WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "the", "cafe"]
TEXTS = ["Hello worlds, the Café!", "the world"]


def base_of(case: str) -> tuple[str, dict]:
    return TASK_BASE.get(case, ("CausalLM", {}))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("kerashub-tasks")
    hf, jobs = {}, []
    for case in TASK_HF:
        model = make_hf(case, root / f"hf-{case}", cases=TASK_HF)
        hf[case] = hf_outputs(model)
        irconv.convert(root / f"hf-{case}", root / f"to-{case}", to="kerashub")
        base, own_kwargs = base_of(case)
        jobs.append({"dir": str(root / f"to-{case}"), "task": base, "out": str(root / f"to-{case}.npz")})
        # keras-hub's own HF loader on the same directory (the head it has no weights for is new).
        jobs.append({"dir": str(root / f"hf-{case}"), "task": base, "kwargs": {**own_kwargs, "preprocessor": None},
                     "out": str(root / f"hf-{case}.npz")})
    # With a WordPiece vocabulary beside it, the classifier's preset takes raw strings.
    shutil.copytree(root / "hf-bert-classifier", root / "hf-text")
    (root / "vocab.txt").write_text("".join(f"{w}\n" for w in WORDS + [f"w{i}" for i in range(50 - len(WORDS))]))
    transformers.BertTokenizer(str(root / "vocab.txt"), do_lower_case=True).save_pretrained(root / "hf-text")
    run_irconv("convert", root / "hf-text", root / "to-text", "--to", "kerashub", check=True)    # the CLI carries it
    jobs.append({"dir": str(root / "to-text"), "task": "TextClassifier", "text": TEXTS, "out": str(root / "to-text.npz")})
    for case, (task, backbone, backbone_args, args, *_) in {**HUB_TASKS, **HUB_REFUSED}.items():
        jobs.append({"build": task, "backbone": backbone, "backbone_args": backbone_args, "args": args,
                     "dir": str(root / f"hub-{case}"), "out": str(root / f"hub-{case}.npz")})
    return root, hf, hub_oracle(jobs, root, TASK_ORACLE)


@pytest.mark.parametrize("case", list(TASK_HF))
def test_hf_task_to_kerashub_computes_hf(case, world):
    root, hf, report = world
    got = report[str(root / f"to-{case}")]
    assert "error" not in got, got
    assert json.loads((root / f"to-{case}" / "task.json").read_text())["class_name"] == got["class"]
    diff = np.abs(outputs(root / f"to-{case}.npz")["logits"] - hf[case]["logits"]).max()
    assert diff < 1e-4, diff


@pytest.mark.parametrize("case", list(TASK_HF))
def test_same_task_variables_as_keras_hubs_own_loader(case, world):
    root, _, report = world
    theirs = report[str(root / f"hf-{case}")]
    if "error" in theirs:
        pytest.skip(f"keras-hub's own loader cannot load this directory: {theirs['error'][:200]}")
    assert report[str(root / f"to-{case}")]["variables"] == theirs["variables"]


@pytest.mark.parametrize("case", list(TASK_HF))
def test_hf_task_to_kerashub_to_pt_is_bit_exact(case, world, tmp_path):
    root, _, _ = world
    irconv.convert(root / f"to-{case}", tmp_path / "back", to="pt")
    assert_same_safetensors(root / f"hf-{case}", tmp_path / "back")
    config = json.loads((tmp_path / "back" / "config.json").read_text())
    source = json.loads((root / f"hf-{case}" / "config.json").read_text())
    assert config["architectures"] == source["architectures"]
    for key in ("classifier_dropout", "hidden_dropout_prob", "seq_classif_dropout"):
        assert config.get(key) == source.get(key), key
    assert len(transformers.AutoConfig.from_pretrained(tmp_path / "back").id2label) == \
        len(transformers.AutoConfig.from_pretrained(root / f"hf-{case}").id2label)


def test_a_classifier_with_a_vocabulary_gets_its_preprocessor(world):
    """task.json holds BertTextClassifierPreprocessor around the preset's BertTokenizer:
    keras_hub's predict on raw strings computes HF's tokenizer + model (padded to 16)."""
    root, _, report = world
    got = report[str(root / "to-text")]
    assert "error" not in got, got
    assert got["preprocessor"] == "BertTextClassifierPreprocessor"
    assert json.loads((root / "to-text" / "preprocessor.json").read_text()) == \
        json.loads((root / "to-text" / "task.json").read_text())["config"]["preprocessor"]
    tokenizer = transformers.BertTokenizer.from_pretrained(root / "hf-text")
    model = transformers.BertForSequenceClassification.from_pretrained(root / "hf-text").eval()
    with torch.no_grad():
        ref = model(**tokenizer(TEXTS, padding="max_length", max_length=16, return_tensors="pt")).logits.numpy()
    diff = np.abs(outputs(root / "to-text.npz")["logits"] - ref).max()
    assert diff < 1e-4, diff


# Each verify starts keras_hub and torch (~27 s): under make test-long, to keep make test within its time.
@pytest.mark.slow
@pytest.mark.parametrize("case", ["bert-classifier", "distilbert-classifier"])
def test_irconv_verify_runs_a_task_preset_beside_hf(case, world):
    root, _, _ = world
    assert "logits" in verified(root, case)


def task_datasets(path) -> dict:
    """task.weights.h5's layer weights (its optimizer state is training state irconv does not carry)."""
    return {k: v for k, v in h5_datasets(path).items() if not k.startswith("optimizer/")}


@pytest.mark.parametrize("case", list(HUB_TASKS))
def test_keras_hub_task_preset_to_pt(case, world, tmp_path):
    root, _, report = world
    assert "error" not in report[str(root / f"hub-{case}")], report[str(root / f"hub-{case}")]
    cls = HUB_TASKS[case][-1]
    irconv.convert(root / f"hub-{case}", tmp_path / "pt", to="pt")
    model, info = getattr(transformers, cls).from_pretrained(tmp_path / "pt", output_loading_info=True,
                                                             **attention(case))
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    diff = np.abs(outputs(root / f"hub-{case}.npz")["logits"] - hf_outputs(model.eval())["logits"]).max()
    assert diff < 1e-4, diff
    # And back: the same datasets in both files, and task.json's class and arguments.
    irconv.convert(tmp_path / "pt", tmp_path / "hub", to="kerashub")
    for name, read in (("model.weights.h5", h5_datasets), ("task.weights.h5", task_datasets)):
        assert (root / f"hub-{case}" / name).exists() == (tmp_path / "hub" / name).exists(), name
        if (root / f"hub-{case}" / name).exists():
            assert read(root / f"hub-{case}" / name) == read(tmp_path / "hub" / name), name
    theirs, ours = (json.loads((d / "task.json").read_text()) for d in (root / f"hub-{case}", tmp_path / "hub"))
    assert ours["class_name"] == WRITTEN_AS.get(case, theirs["class_name"])
    own = {k: v for k, v in theirs["config"].items() if k not in ("backbone", "preprocessor", "name")}
    assert {k: ours["config"][k] for k in own} == own


@pytest.mark.parametrize("case", list(HUB_REFUSED))
def test_tasks_irconv_cannot_read_are_refused(case, world, tmp_path):
    root, _, report = world
    assert "error" not in report[str(root / f"hub-{case}")], report[str(root / f"hub-{case}")]
    proc = run_irconv("convert", root / f"hub-{case}", tmp_path / "out", "--to", "pt")
    assert_one_line_error(proc, HUB_REFUSED[case][-1])
    assert not (tmp_path / "out").exists()


def test_the_masked_lm_limits_are_keras_hubs_constants(world):
    """The refusals above stand on what keras-hub's MaskedLM heads compute with."""
    root, _, report = world
    assert report[str(root / "hub-bert-mlm")]["head"] == {"activation": "gelu", "epsilon": 1e-5}
    assert report[str(root / "hub-distilbert-mlm")]["head"] == {"activation": "gelu", "epsilon": 1e-5}


@pytest.mark.parametrize("cls,kwargs,needle", [
    ("BertForMaskedLM", BERT, "exact GELU and epsilon 1e-5"),
    ("DistilBertForMaskedLM", DISTILBERT, "epsilon 1e-5"),
], ids=["bert-mlm", "distilbert-mlm"])
def test_hf_masked_lms_the_tasks_compute_otherwise_are_refused(cls, kwargs, needle, tmp_path):
    """(BertForPreTraining's NSP head, which no task holds: test_kerashub.py.)"""
    config = getattr(transformers, cls.replace("ForMaskedLM", "Config"))(**kwargs)
    getattr(transformers, cls)(config).save_pretrained(tmp_path / "src")
    proc = run_irconv("convert", tmp_path / "src", tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "out").exists()


def test_a_classifier_without_its_label_count_is_refused(world, tmp_path):
    root, _, _ = world
    src = tmp_path / "src"
    src.mkdir()
    config = json.loads((root / "hf-bert-classifier" / "config.json").read_text())
    config.pop("id2label"), config.pop("label2id")
    (src / "config.json").write_text(json.dumps(config))
    (src / "model.safetensors").write_bytes((root / "hf-bert-classifier" / "model.safetensors").read_bytes())
    proc = run_irconv("convert", src, tmp_path / "out", "--to", "kerashub")
    assert_one_line_error(proc, "num_labels")
    assert not (tmp_path / "out").exists()

