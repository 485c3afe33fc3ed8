"""Tiny randomly initialised HF models of every family and head class irconv claims, built
locally by transformers (the oracle), with matching inputs.

A family joins the TF2 tests by adding its config here and its classes to TF2_CASES."""
from __future__ import annotations

import numpy as np

# family -> (HF config class, tiny config kwargs)
_TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
_LLM = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=37, rope_theta=5e5, rms_norm_eps=1e-5, pad_token_id=0)
CONFIGS = {
    "bert": ("BertConfig", dict(_TINY, max_position_embeddings=64, type_vocab_size=2)),
    "roberta": ("RobertaConfig", dict(_TINY, max_position_embeddings=66)),
    "xlm-roberta": ("XLMRobertaConfig", dict(_TINY, max_position_embeddings=66)),
    # Pre-LN RoBERTa (no TF class): pt views only.
    "xlm-roberta-xl": ("XLMRobertaXLConfig", dict(_TINY, max_position_embeddings=66)),
    "camembert": ("CamembertConfig", dict(_TINY, max_position_embeddings=66)),
    "layoutlm": ("LayoutLMConfig", dict(_TINY, max_position_embeddings=64, max_2d_position_embeddings=128)),
    "electra": ("ElectraConfig", dict(_TINY, embedding_size=16, max_position_embeddings=64)),
    # 4 passes over 2 groups of 2 shared layers. HF's PyTorch ALBERT needs inner_group_num <=
    # num_hidden_layers // num_hidden_groups (its head_mask slice), else its forward raises.
    "albert": ("AlbertConfig", dict(_TINY, embedding_size=16, num_hidden_layers=4, num_hidden_groups=2,
                                    inner_group_num=2, max_position_embeddings=64)),
    "distilbert": ("DistilBertConfig", dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                            max_position_embeddings=64)),
    # One token type: DPRReader (TF and PT) takes no token_type_ids, and inputs_for passes them
    # whenever type_vocab_size > 1.
    "dpr": ("DPRConfig", dict(_TINY, max_position_embeddings=64, type_vocab_size=1)),
    "xlnet": ("XLNetConfig", dict(vocab_size=99, d_model=32, n_layer=2, n_head=4, d_inner=37)),
    # Two languages, so lang_embeddings exists (xlm_inputs then passes langs).
    "xlm": ("XLMConfig", dict(vocab_size=99, emb_dim=32, n_layers=2, n_heads=4, max_position_embeddings=64,
                              n_langs=2)),
    # pre_norm moves where the layer norms apply (same tensors): the layout FlauBERT adds to XLM.
    "flaubert": ("FlaubertConfig", dict(vocab_size=99, emb_dim=32, n_layers=2, n_heads=4,
                                        max_position_embeddings=64, pre_norm=True)),
    # Two conv layers (stride 4) turn 1600 samples into 98 frames; a 16-tap positional conv in
    # 2 groups. mask_time_prob > 0 (the default) keeps masked_spec_embed.
    "wav2vec2": ("Wav2Vec2Config", dict(vocab_size=32, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=20, conv_dim=(8, 8), conv_stride=(4, 4),
                                        conv_kernel=(8, 8), num_conv_pos_embeddings=16,
                                        num_conv_pos_embedding_groups=2)),
    # A quarter-width, half-depth EfficientNet (1-2 blocks per stage) on 32x32 images; hidden_dim
    # must equal round_filters(1280) for HF's top conv and top BN to agree.
    "efficientnet": ("EfficientNetConfig", dict(width_coefficient=0.25, depth_coefficient=0.5, image_size=32,
                                                hidden_dim=320)),
    # ALIGN: the quarter-width EfficientNet tower (its hidden_dim is the last block's width, as
    # there is no top conv, and AlignModel compares it with the text projection: projection_dim)
    # beside a tiny BERT.
    "align": ("AlignConfig", dict(projection_dim=80, text_config=dict(_TINY, max_position_embeddings=64,
                                                                      type_vocab_size=2),
                                  vision_config=dict(width_coefficient=0.25, depth_coefficient=0.5, image_size=32,
                                                     hidden_dim=80))),
    # 16 patches of 8x8; encoder_stride = patch_size, so the masked-image decoder rebuilds 32x32.
    "vit": ("ViTConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                              image_size=32, patch_size=8, encoder_stride=8)),
    # DeBERTa-v2 with position and token-type tables and the conv layer beside layer 0, but no
    # relative attention: with it, transformers' own TF class computes ~5e-4 away from its
    # PyTorch one (its from_pt loading shows the same), so test_families_deberta_v2 checks the
    # relative parts in TF against transformers' own PyTorch-to-TF loading instead.
    "deberta-v2": ("DebertaV2Config", dict(_TINY, max_position_embeddings=64, type_vocab_size=2, conv_kernel_size=3)),
    # FLAVA's three towers; its MIM heads predict codebook tokens, so their vocabulary is the
    # codebook's. HF builds the codebook from image_codebook_config (DALL-E's, smaller).
    "flava": ("FlavaConfig", dict(text_config=dict(_TINY, max_position_embeddings=64),
                                  image_config=dict(_TINY, image_size=32, patch_size=8, vocab_size=50),
                                  multimodal_config=dict(_TINY, num_hidden_layers=1),
                                  image_codebook_config=dict(hidden_size=16, vocab_size=50, num_blocks_per_group=1),
                                  hidden_size=32, projection_dim=24)),
    # Two blocks per group, so the 1-based block repeat and the id_path-only-in-block_1 show.
    "flava-image-codebook": ("FlavaImageCodebookConfig", dict(hidden_size=16, vocab_size=50, num_blocks_per_group=2)),
    # 2 language, 1 cross, 1 vision layer; every pretraining head on (task_obj_predict, task_qa
    # and the three visual losses are on by default).
    "lxmert": ("LxmertConfig", dict(vocab_size=99, hidden_size=32, num_attention_heads=4, intermediate_size=37,
                                    l_layers=2, x_layers=1, r_layers=1, max_position_embeddings=64,
                                    num_qa_labels=5, num_object_labels=7, num_attr_labels=4,
                                    visual_feat_dim=12, visual_pos_dim=4)),
    # Three adaptive parts (cutoffs 10, 50 of 99 tokens), each half as wide as the last
    # (div_val=2), so every part has its own projection; tie_projs is [False, True, True].
    "transfo-xl": ("TransfoXLConfig", dict(vocab_size=99, cutoffs=[10, 50], d_model=32, d_embed=32, n_head=4,
                                           d_head=8, d_inner=37, div_val=2, n_layer=2, mem_len=10)),
    # n_inner != 4 * n_embd, so the MLP width must come from the config (or the shapes).
    "gpt2": ("GPT2Config", dict(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=64, n_inner=37)),
    "openai-gpt": ("OpenAIGPTConfig", dict(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=64)),
    "ctrl": ("CTRLConfig", dict(vocab_size=99, n_embd=32, n_layer=2, n_head=4, dff=37, n_positions=64)),
    # Decoder LLMs: grouped-query attention (4 heads, 2 kv heads), heads of 16 where q_proj is
    # then wider than hidden_size (so head_dim cannot be hidden // heads: qwen3, gemma), a
    # non-default rope_theta, and a pad token (their sequence classifiers need one for a batch).
    # Llama keeps hidden // heads, the only head_dim Meta's layout (format meta) holds.
    "llama": ("LlamaConfig", dict(_LLM)),
    "mistral": ("MistralConfig", dict(_LLM, sliding_window=5)),
    "qwen2": ("Qwen2Config", dict(_LLM)),
    "qwen3": ("Qwen3Config", dict(_LLM, head_dim=16)),
    # Four experts, two per token; Gemma's head_dim (GemmaConfig's default is 256) is given.
    "mixtral": ("MixtralConfig", dict(_LLM, num_local_experts=4, num_experts_per_tok=2)),
    # rope_theta 10000: every Gemma release's, and the one keras-hub's GemmaBackbone computes with.
    "gemma": ("GemmaConfig", dict(_LLM, head_dim=16, rope_theta=10000.0)),
    "gemma2": ("Gemma2Config", dict(_LLM, head_dim=16, sliding_window=5, query_pre_attn_scalar=12)),
    # Different encoder and decoder depths, so the two repeat counts cannot be confused.
    "t5": ("T5Config", dict(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=3,
                            num_heads=4, relative_attention_num_buckets=8)),
    "bart": ("BartConfig", dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=3,
                                encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37,
                                decoder_ffn_dim=37, max_position_embeddings=64)),
    # Grouped-query attention (2 k/v heads for 4), so qkv_proj's three parts differ in size.
    "phi3": ("Phi3Config", dict(_LLM, max_position_embeddings=64)),
}

# (family, HF class without the TF prefix) pairs that convert both ways between pt and tf2.
TF2_CASES = [
    ("bert", "BertForPreTraining"),
    ("bert", "BertForMaskedLM"),
    ("bert", "BertForSequenceClassification"),
    ("bert", "BertForQuestionAnswering"),
    ("bert", "BertModel"),
    ("roberta", "RobertaForMaskedLM"),
    ("roberta", "RobertaForCausalLM"),
    ("roberta", "RobertaForSequenceClassification"),
    ("xlm-roberta", "XLMRobertaForMaskedLM"),
    ("camembert", "CamembertForMaskedLM"),
    ("layoutlm", "LayoutLMForMaskedLM"),
    ("electra", "ElectraForPreTraining"),
    ("albert", "AlbertForPreTraining"),
    ("distilbert", "DistilBertForMaskedLM"),
    ("distilbert", "DistilBertForQuestionAnswering"),
    ("dpr", "DPRContextEncoder"),
    ("dpr", "DPRQuestionEncoder"),
    ("dpr", "DPRReader"),
    ("xlnet", "XLNetLMHeadModel"),
    ("xlnet", "XLNetModel"),
    ("xlm", "XLMWithLMHeadModel"),
    ("xlm", "XLMModel"),
    ("flaubert", "FlaubertWithLMHeadModel"),
    ("flaubert", "FlaubertModel"),
    ("wav2vec2", "Wav2Vec2Model"),
    ("vit", "ViTModel"),
    ("vit", "ViTForImageClassification"),
    ("deberta-v2", "DebertaV2Model"),
    ("deberta-v2", "DebertaV2ForMaskedLM"),
    ("deberta-v2", "DebertaV2ForSequenceClassification"),
    ("deberta-v2", "DebertaV2ForTokenClassification"),
    ("deberta-v2", "DebertaV2ForQuestionAnswering"),
    ("deberta-v2", "DebertaV2ForMultipleChoice"),
    ("lxmert", "LxmertForPreTraining"),
    ("lxmert", "LxmertModel"),
    ("gpt2", "GPT2LMHeadModel"),
    ("gpt2", "GPT2Model"),
    ("openai-gpt", "OpenAIGPTLMHeadModel"),
    ("openai-gpt", "OpenAIGPTModel"),
    ("ctrl", "CTRLLMHeadModel"),
    ("ctrl", "CTRLModel"),
    ("t5", "T5ForConditionalGeneration"),
    ("t5", "T5Model"),
    ("bart", "BartForConditionalGeneration"),
    ("bart", "BartForSequenceClassification"),
    ("bart", "BartModel"),
]


def config_for(family: str, cls_name: str, **overrides):
    import transformers
    config_cls, kwargs = CONFIGS[family]
    kwargs = dict(kwargs, **overrides)
    kwargs.setdefault("num_labels", 2 if cls_name.endswith("QuestionAnswering") else 3)
    return getattr(transformers, config_cls)(**kwargs)


def perturb_pt(model, seed):
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.02)
    return model


def make_pt(family: str, cls_name: str, seed: int = 0, **overrides):
    """A PyTorch model whose every tensor is random (no exact 0/1 constants left)."""
    import torch
    import transformers
    torch.manual_seed(seed)
    model = getattr(transformers, cls_name)(config_for(family, cls_name, **overrides))
    return perturb_pt(model, seed).eval()


# family -> (variable, variable it always equals in real checkpoints), names after the Keras
# model name. TF ALBERT's MLM head has two vocab biases but only adds `decoder/bias`; every real
# TF ALBERT comes from PyTorch, where both load the one tied predictions.bias, so they are
# equal. Independent random values would be a file no conversion ever makes (and one irconv
# cannot round-trip, as it keeps the bias the forward uses and writes it under both names).
TF_EQUAL_VARIABLES = {
    "albert": (("predictions/bias:0", "predictions/decoder/bias:0"),),
    # TF Transformer-XL keeps its own adaptive-softmax tables and projections; PyTorch ties them
    # to the embedding's (tie_word_embeddings, tie_projs = [False, True, True] here).
    "transfo-xl": tuple((f"crit/out_layers_._{i}_._weight:0", f"transformer/word_emb/emb_layers_._{i}/embeddings:0")
                        for i in range(3))
    + tuple((f"crit/out_projs_._{i}:0", f"transformer/word_emb/emb_projs_._{i}:0") for i in (1, 2)),
}


def make_tf(family: str, cls_name: str, seed: int = 0, **overrides):
    """A TF model, built, with every variable random (save those TF_EQUAL_VARIABLES pairs)."""
    import tensorflow as tf
    import transformers
    tf.random.set_seed(seed)
    model = getattr(transformers, "TF" + cls_name)(config_for(family, cls_name, **overrides))
    model(model.dummy_inputs)
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(v.numpy() + rng.standard_normal(v.shape).astype(v.dtype.as_numpy_dtype) * 0.02)
    by_name = {v.name.split("/", 1)[-1]: v for v in model.weights}   # 'final_logits_bias:0' has one part
    for copy, source in TF_EQUAL_VARIABLES.get(family, ()):
        if copy in by_name and source in by_name:
            by_name[copy].assign(by_name[source])
    return model


def text_inputs(config, rng) -> dict[str, np.ndarray]:
    ids = rng.integers(0, config.vocab_size, (2, 7))
    mask = np.ones_like(ids)
    mask[1, -1] = 0
    out = {"input_ids": ids, "attention_mask": mask}
    if getattr(config, "type_vocab_size", 0) > 1:
        out["token_type_ids"] = rng.integers(0, config.type_vocab_size, (2, 7))
    return out


def audio_inputs(config, rng) -> dict[str, np.ndarray]:
    """Raw float audio, 1600 samples per example (models with a conv feature encoder)."""
    return {"input_values": rng.standard_normal((2, 1600)).astype(np.float32)}


def xlnet_inputs(config, rng) -> dict[str, np.ndarray]:
    """Text with two segments, so each layer's seg_embed takes part in the outputs."""
    out = text_inputs(config, rng)
    out["token_type_ids"] = rng.integers(0, 2, out["input_ids"].shape)
    return out


def xlm_inputs(config, rng) -> dict[str, np.ndarray]:
    """Text plus language ids when the model has lang_embeddings (n_langs > 1)."""
    out = text_inputs(config, rng)
    if config.n_langs > 1 and config.use_lang_emb:
        out["langs"] = rng.integers(0, config.n_langs, out["input_ids"].shape)
    return out


def ids_only_inputs(config, rng) -> dict[str, np.ndarray]:
    """Token ids alone (Transformer-XL takes no attention mask)."""
    return {"input_ids": rng.integers(0, config.vocab_size, (2, 7))}


def visual_text_inputs(config, rng) -> dict[str, np.ndarray]:
    """Text plus 5 object features and their boxes (LXMERT's visual stream)."""
    out = text_inputs(config, rng)
    out["visual_feats"] = rng.standard_normal((2, 5, config.visual_feat_dim)).astype(np.float32)
    out["visual_pos"] = rng.uniform(0, 1, (2, 5, config.visual_pos_dim)).astype(np.float32)
    return out


def image_inputs(config, rng) -> dict[str, np.ndarray]:
    """Two NCHW images of the config's size."""
    size = config.image_size
    return {"pixel_values": rng.standard_normal((2, config.num_channels, size, size)).astype(np.float32)}


def text_image_inputs(config, rng) -> dict[str, np.ndarray]:
    """Text for the text tower and images for the image tower (ALIGN)."""
    return {**text_inputs(config.text_config, rng), **image_inputs(config.vision_config, rng)}


def deberta_inputs(config, rng) -> dict[str, np.ndarray]:
    """Text with no padding (transformers' TF and PyTorch DeBERTa-v2 give different outputs at
    padded positions, from its own weights too); for a multiple-choice class (as the config
    names it: save_pretrained sets it), two choices per example, (batch, choices, length)."""
    out = text_inputs(config, rng)
    out["attention_mask"] = np.ones_like(out["attention_mask"])
    if (config.architectures or [""])[0].endswith("MultipleChoice"):
        out = {k: np.stack([v, v[::-1]], axis=1) for k, v in out.items()}
    return out


# family -> inputs maker (config, numpy Generator) -> dict of numpy arrays; default: text.
def seq2seq_inputs(config, rng) -> dict[str, np.ndarray]:
    """Text for an encoder-decoder: the encoder's ids end in one </s> and hold no other (BART's
    classifier reads the decoder state at the </s> of input_ids), plus decoder_input_ids of the
    same length (T5 builds none without labels)."""
    ids = rng.integers(3, config.vocab_size, (2, 7))
    ids[:, -1] = config.eos_token_id
    mask = np.ones_like(ids)
    mask[1, 0] = 0
    return {"input_ids": ids, "attention_mask": mask,
            "decoder_input_ids": rng.integers(3, config.vocab_size, (2, 7))}


def flava_inputs(config, rng) -> dict[str, np.ndarray]:
    """FlavaForPreTraining's text+image pass with its losses: masked patches, MLM and ITM labels,
    and codebook pixels, from which its image codebook makes the masked-image labels."""
    text, image = text_inputs(config.text_config, rng), image_inputs(config.image_config, rng)
    patches = (config.image_config.image_size // config.image_config.patch_size) ** 2
    masked = np.zeros((2, patches), np.int64)
    masked[:, ::3] = 1
    return {**text, **image, "input_ids_masked": text["input_ids"], "mlm_labels": text["input_ids"],
            "itm_labels": np.array([1, 0]), "bool_masked_pos": masked,
            "codebook_pixel_values": rng.uniform(0, 1, image["pixel_values"].shape).astype(np.float32)}


def codebook_inputs(config, rng) -> dict[str, np.ndarray]:
    """Images in [0, 1] for an image codebook (any size divisible by 8)."""
    return {"pixel_values": rng.uniform(0, 1, (2, config.input_channels, 32, 32)).astype(np.float32)}


INPUTS = {"transfo-xl": ids_only_inputs, "t5": seq2seq_inputs, "bart": seq2seq_inputs, "lxmert": visual_text_inputs, "xlnet": xlnet_inputs, "xlm": xlm_inputs, "flaubert": xlm_inputs, "wav2vec2": audio_inputs, "efficientnet": image_inputs, "vit": image_inputs,
          "deberta-v2": deberta_inputs,
          "align": text_image_inputs, "flava": flava_inputs, "flava-image-codebook": codebook_inputs}


def inputs_for(family: str, config, seed: int = 1) -> dict[str, np.ndarray]:
    return INPUTS.get(family, text_inputs)(config, np.random.default_rng(seed))


def run_pt(model, inputs) -> dict[str, np.ndarray]:
    import torch
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    if isinstance(out, torch.Tensor):           # FlavaImageCodebook returns its logits bare
        out = {"logits": out}
    return {k: v.float().numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}


def run_tf(model, inputs) -> dict[str, np.ndarray]:
    import tensorflow as tf
    out = model({k: tf.constant(v) for k, v in inputs.items()}, training=False)
    return {k: v.numpy() for k, v in out.items() if isinstance(v, tf.Tensor)}


# Families whose PyTorch forward transformers 4.57.6 itself cannot run: their conversions are
# checked by bytes and by loading, and their outputs through TF (see their family tests).
PT_FORWARD_BROKEN = {"transfo-xl": "TransfoXLModel.forward calls Tensor.type_as(dtype=...)"}


def assert_same_safetensors(src, out, copies: dict[str, str] | None = None):
    """Both HF directories' model.safetensors hold the same names and bytes (read by safetensors);
    `copies`: names only `out` holds -> the name in `src` whose bytes they repeat."""
    import torch
    from safetensors.torch import load_file
    ref, got = load_file(src / "model.safetensors"), load_file(out / "model.safetensors")
    for name, of in (copies or {}).items():
        assert name not in ref and torch.equal(got.pop(name), ref[of]), name
    assert sorted(ref) == sorted(got)
    for k in ref:
        # reshape(-1): a 0-d tensor (BatchNorm's num_batches_tracked) cannot be viewed as bytes.
        assert torch.equal(ref[k].reshape(-1).view(torch.uint8), got[k].reshape(-1).view(torch.uint8)), k


def hf_safetensors(directory) -> dict:
    """Every tensor of an HF directory's model.safetensors or of its shards (named by the
    index), read by the safetensors library."""
    import json
    from safetensors.torch import load_file
    index = directory / "model.safetensors.index.json"
    if not index.is_file():
        return load_file(directory / "model.safetensors")
    files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    return {k: v for f in files for k, v in load_file(directory / f).items()}


def assert_same_tensors(ref: dict, got: dict):
    """Same names, dtypes, shapes and bytes (torch tensors, as hf_safetensors gives them)."""
    import torch
    assert sorted(ref) == sorted(got), (sorted(set(ref) - set(got)), sorted(set(got) - set(ref)))
    for k in ref:
        assert ref[k].dtype == got[k].dtype and ref[k].shape == got[k].shape, k
        assert torch.equal(ref[k].reshape(-1).view(torch.uint8), got[k].reshape(-1).view(torch.uint8)), k


def save_bf16_sharded(model, directory):
    """`model` in bf16, saved by transformers in 20KB shards (several files and an index)."""
    import torch
    model.to(torch.bfloat16).save_pretrained(directory, max_shard_size="20KB")
    assert (directory / "model.safetensors.index.json").is_file()
    return directory


def assert_pt_copy(family: str, cls_name: str, src, out, atol: float = 1e-6):
    """`out` (irconv's pt output of the HF directory `src`) holds src's tensors bit for bit
    under the same names, names the class, loads strictly, and computes what src computes,
    both loaded by transformers the same way (bf16 upcast to f32). Identical weights loaded
    twice may still differ in the last float bit (torch picks kernels by memory alignment)."""
    import json
    import transformers
    import test_tf2
    from irconv import FAMILIES
    assert_same_tensors(hf_safetensors(src), hf_safetensors(out))
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] in FAMILIES.get(family).model_types and config["architectures"] == [cls_name]
    ref = getattr(transformers, cls_name).from_pretrained(src).eval()
    got = test_tf2.pt_loads_cleanly(cls_name, out)
    inputs = inputs_for(family, ref.config)
    assert_close(run_pt(ref, inputs), run_pt(got, inputs), atol)


def assert_pt_convert_and_pipe(family: str, cls_name: str, src, tmp):
    """`irconv convert SRC --to pt` and `irconv import pt SRC | irconv export pt OUT
    --max-shard-size 20KB` (sharded): both give assert_pt_copy's copy of src."""
    from conftest import run_irconv, run_pipe
    run_irconv("convert", src, tmp / "convert", "--to", "pt", check=True)
    assert_pt_copy(family, cls_name, src, tmp / "convert")
    rc, err, proc = run_pipe(["import", "pt", src], ["export", "pt", tmp / "pipe", "--max-shard-size", "20KB"])
    assert rc == 0 and proc.returncode == 0, (err, proc.stderr)
    assert (tmp / "pipe" / "model.safetensors.index.json").is_file()
    assert_pt_copy(family, cls_name, src, tmp / "pipe")


def assert_close(ref: dict, got: dict, atol: float):
    shared = sorted(set(ref) & set(got))
    assert shared, (sorted(ref), sorted(got))
    for k in shared:
        assert ref[k].shape == got[k].shape, k
        diff = float(np.max(np.abs(ref[k].astype(np.float64) - got[k].astype(np.float64)))) if ref[k].size else 0.0
        assert diff <= atol, f"{k}: max abs diff {diff}"


def convert_bare(weights, out, config, required: tuple, *args, also: tuple = ()):
    """`irconv convert WEIGHTS OUT ARGS` of a weights file with no config.json beside it (irconv
    reads one that is): never a guessed config (issue 13). Without values it is refused, exit 2
    with one line naming each `required` field (those the tensors cannot say) with --set, and
    writes nothing; with the real values of `required` and `also` (fields with a stated default
    the model does not use) read from the HF `config` it was built from, as --set, and
    --accept-defaults for the rest (the defaults taken are then said), it converts. Returns
    that run."""
    import json
    from conftest import assert_one_line_error, run_irconv
    assert not (weights.parent / "config.json").exists(), weights
    line = assert_one_line_error(run_irconv("convert", weights, out, *args),
                                 "no config.json", *(f"--set {key}=..." for key in required))
    assert not out.exists()
    assert "--accept-defaults" in line, line               # the defaults it would take are named
    sets = [arg for key in (*required, *also) for arg in ("--set", f"{key}={json.dumps(getattr(config, key))}")]
    proc = run_irconv("convert", weights, out, *args, *sets, "--accept-defaults", check=True)
    assert b"(--accept-defaults)" in proc.stderr, proc.stderr   # ... and those it took are said
    return proc
