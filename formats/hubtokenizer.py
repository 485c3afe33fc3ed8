"""A keras-hub preset's tokenizer <-> the HF tokenizer files of the same vocabulary, per kind
(FORMATS.md §12.1). Nothing here imports keras or transformers.

    kind            HF files                                  preset (assets/tokenizer/ + tokenizer.json)
    wordpiece       vocab.txt + tokenizer_config.json         vocabulary.txt; lowercase, strip_accents, oov_token ...
    bpe             vocab.json + merges.txt                   vocabulary.json (with HF's added tokens) + merges.txt;
                                                              unsplittable_tokens = the added tokens
    sentencepiece   tokenizer.model (spiece.model ALBERT, T5; vocabulary.spm (the ModelProto bytes unchanged)
                    sentencepiece.bpe.model XLM-R, spm.model
                    DeBERTa-v3)

The special tokens a keras-hub tokenizer class fixes (BertTokenizer's [CLS], QwenTokenizer's
end token) are the family's declared data (models/kerashub.py HubTokenizer): an HF tokenizer
is written only where its tokens (tokenizer_config.json, special_tokens_map.json, else the HF
class's default) are those, its casing is stated, and the HF class's own preprocessing settings
(HubTokenizer.settings: ALBERT's do_lower_case/keep_accents, T5's extra_ids) are ones keras-hub's
class computes as; otherwise `NotWritten` says why, and the weights convert without a tokenizer.
The way back writes every role and setting explicitly. XLM-R's ids are fairseq's on both
sides (HubTokenizer.fairseq: the model's pieces one up behind <s> <pad> </s> <unk>, <mask>
last), for a model whose first pieces are <unk> <s> </s>, as both classes take them to be.

merges.txt: transformers' slow GPT2Tokenizer drops the first line whatever it is, Qwen2Tokenizer
and `tokenizers` skip a leading "#version" line, and keras-hub skips any "#version:" line; the
preset keeps the HF file's bytes, and the way back adds the header where a preset's file (as
keras-hub's save_assets writes it from a list) has none.

What keras-hub's classes compute differently from transformers for the same vocabulary is
theirs, not a setting: its byte-pair split is Llama 3's pattern (digits in runs of up to
three, where GPT-2 takes any run with its leading space and Qwen2 single digits: the same ids
only where the merges hold no digit pair, as Qwen's do not), without Qwen2's NFC
normalization; its WordPiece lowercasing is casefold ('ß' -> 'ss', where HF keeps 'ß'). Its
SentencePiece classes encode the whole text with the model, where HF's split the text at their
special tokens first and encode each part alone: the same ids for text without the special
tokens written in it (a control piece such as </s> is never matched in text by SentencePiece,
and the space before a user-defined one such as ALBERT's [MASK] is a piece of its own). HF's
AlbertTokenizer also writes `` and '' as " before encoding, whatever its settings.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from ..ir import limits
from ..ir.errors import FormatError

SP_MODELS = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "spm.model")     # HF's names per class
VOCABULARIES = ("tokenizer.json", "vocab.txt", "vocab.json") + SP_MODELS
HF_FILES = ("vocab.txt", "vocab.json", "merges.txt", *SP_MODELS, "tokenizer_config.json",
            "special_tokens_map.json", "added_tokens.json", "tokenizer.json")
KIND_FILES = {"wordpiece": ("vocab.txt",), "bpe": ("vocab.json", "merges.txt")}
ASSET_FILES = {"wordpiece": ("vocabulary.txt",), "bpe": ("vocabulary.json", "merges.txt"),
               "sentencepiece": ("vocabulary.spm",)}
MERGES_HEADER = "#version: 0.2\n"
MAX_BYTES = 256 << 20
# A preset's tokenizer assets: the largest real ones (a 256K-token vocabulary.json or
# vocabulary.spm) are a few MB; a larger one would be parsed into GBs.
MAX_ASSET_BYTES = 32 << 20
# tokenizer.json arguments that give the vocabulary itself (a list, or a file name keras-hub
# would open) instead of leaving it to the assets/tokenizer/ files.
INLINE_ARGS = ("vocabulary", "merges", "proto")
# The keys every keras-hub tokenizer config carries (as save_to_preset writes them).
_BASE = {"trainable": True, "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "int32"},
                                      "registered_name": None},
         "config_file": "tokenizer.json"}


class NotWritten(Exception):
    """Why a tokenizer is not written (the weights still convert)."""


Files = Mapping[str, Callable[[], bytes]]      # file name -> its bytes


def directory_files(directory: Path | None, names=HF_FILES) -> dict[str, Callable[[], bytes]]:
    """The tokenizer files of a directory, read when asked for (a link out of the directory
    is not: NotWritten, as the extras it would be are not carried)."""
    if directory is None:
        return {}

    def reader(path: Path):
        def read() -> bytes:
            if limits.outside(path, directory):
                raise NotWritten(f"{path.name} is a link to a file outside {Path(directory).name}")
            return _read(path)
        return read
    return {name: reader(Path(directory) / name) for name in names if (Path(directory) / name).is_file()}


def _read(path: Path, most: int = MAX_BYTES, name: str | None = None) -> bytes:
    """The bytes of a regular file of at most `most` bytes (NotWritten otherwise)."""
    try:
        with limits.open_regular(path, "a tokenizer file") as f:
            data = f.read(most + 1)
    except FormatError as exc:
        raise NotWritten(f"{name or path.name}: {exc.args[0] if exc.args else exc}") from None
    if len(data) > most:
        raise NotWritten(f"{name or path.name} is over {most >> 20} MiB")
    return data


def _asset(assets: Path, name: str) -> bytes:
    return _read(assets / name, MAX_ASSET_BYTES, f"assets/tokenizer/{name}")


def _json(files: Files, name: str):
    if name not in files:
        return None
    try:
        value = json.loads(files[name]().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotWritten(f"{name} is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise NotWritten(f"{name} is not a JSON object")
    return value


def _content(value):
    return value.get("content") if isinstance(value, dict) else value


_UNSTATED = object()


def _role(settings: list[dict], role: str, default):
    """A special token's value as HF reads it: tokenizer_config.json, special_tokens_map.json,
    else the class default."""
    for source in settings:
        if role in source:
            return _content(source[role])
    return default


def _added_tokens(files: Files, config: dict) -> list[tuple[int, str, dict]]:
    """(id, content, flags) of HF's added tokens, from wherever the directory lists them."""
    decoder = config.get("added_tokens_decoder")
    if isinstance(decoder, dict):
        try:
            out = [(int(i), t.get("content"), t) for i, t in decoder.items() if isinstance(t, dict)]
        except ValueError:
            raise NotWritten("tokenizer_config.json's added_tokens_decoder has a key that is not an id") from None
    else:
        fast = _json(files, "tokenizer.json") or {}
        listed = fast.get("added_tokens")
        if isinstance(listed, list):
            out = [(t.get("id"), t.get("content"), t) for t in listed if isinstance(t, dict)]
        else:
            out = [(i, t, {}) for t, i in (_json(files, "added_tokens.json") or {}).items()]
    for i, content, _ in out:
        if not isinstance(i, int) or not isinstance(content, str):
            raise NotWritten(f"an added token is not an (id, content) pair: {i!r}, {content!r}")
    return sorted(out)


def _settings(spec, files: Files) -> tuple[dict, list[dict]]:
    config = _json(files, "tokenizer_config.json") or {}
    stated = config.get("tokenizer_class")
    if stated is not None and stated not in (spec.hf_class, spec.hf_class + "Fast"):
        raise NotWritten(f"tokenizer_config.json names {stated}, not the {spec.hf_class} keras-hub's {spec.cls} reads")
    return config, [config, _json(files, "special_tokens_map.json") or {}]


def hf_files(spec) -> tuple[str, ...]:
    """The HF files holding the vocabulary of the spec's kind (a SentencePiece model under its
    HF class's name: tokenizer.model, spiece.model, sentencepiece.bpe.model)."""
    return KIND_FILES.get(spec.kind) or (spec.model_file,)


def _check_settings(spec, config: dict) -> None:
    """The HF class's own preprocessing settings are the ones keras-hub's class computes as
    (stated, or HF's default where unstated or null)."""
    for key, theirs, default in spec.settings:
        have = config.get(key)
        have = default if have is None else have
        if have != theirs or type(have) is not type(theirs):
            raise NotWritten(f"its {key} is {have!r} (HF's {spec.hf_class} takes {default!r} where unstated), and "
                             f"keras-hub's {spec.cls} computes as {key}={theirs!r}")


def _check_roles(spec, settings: list[dict], vocabulary) -> None:
    for role, theirs, default in spec.tokens:
        have = _role(settings, role, default)
        if have != theirs:
            raise NotWritten(f"its {role} is {have!r}, and keras-hub's {spec.cls} fixes {theirs!r}")
        if theirs is not None and theirs not in vocabulary:
            raise NotWritten(f"its vocabulary has no {theirs!r}, keras-hub's {spec.cls}'s {role}")


def _tokenizer_json(spec, config: dict) -> dict:
    return {"module": spec.module, "class_name": spec.cls,
            "config": {"name": _snake(spec.cls), **_BASE, **config}, "registered_name": f"keras_hub>{spec.cls}"}


def _snake(name: str) -> str:
    """A class name as Keras names its instances (GPT2Tokenizer -> gpt2_tokenizer)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


@dataclass
class PresetTokenizer:
    config: dict                 # tokenizer.json
    assets: dict[str, bytes]     # assets/tokenizer/<name>


def to_preset(spec, files: Files) -> PresetTokenizer | None:
    """The preset tokenizer of the HF files, None where the source has none of this kind's
    files (NotWritten: it has them, but keras-hub's class cannot be said to tokenize as they do)."""
    needed = hf_files(spec)
    if not any(n in files for n in needed):
        others = sorted(n for n in VOCABULARIES if n in files)
        if others:
            raise NotWritten(f"the source has {', '.join(others)}, not the {' + '.join(needed)} keras-hub's "
                             f"{spec.cls} reads")
        return None
    missing = [n for n in needed if n not in files]
    if missing:
        raise NotWritten(f"the source has no {', '.join(missing)}")
    config, settings = _settings(spec, files)
    _check_settings(spec, config)
    return {"wordpiece": _wordpiece_to_preset, "bpe": _bpe_to_preset,
            "sentencepiece": _sentencepiece_to_preset}[spec.kind](spec, files, config, settings)


def _wordpiece_to_preset(spec, files, config, settings) -> PresetTokenizer:
    data = files["vocab.txt"]()
    try:
        vocab = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise NotWritten("vocab.txt is not UTF-8") from None
    vocab = vocab[:-1] if vocab and vocab[-1] == "" else vocab
    ids = {t: i for i, t in reversed(list(enumerate(vocab)))}
    lower = config.get("do_lower_case")
    if not isinstance(lower, bool):
        raise NotWritten("tokenizer_config.json does not say do_lower_case, which is keras-hub's lowercase")
    accents = config.get("strip_accents")
    cjk = config.get("tokenize_chinese_chars", True)
    if config.get("never_split"):
        raise NotWritten(f"never_split={config['never_split']!r} has no keras-hub {spec.cls} setting")
    unk = _role(settings, "unk_token", "[UNK]")
    _check_roles(spec, settings, ids)
    if unk not in ids:
        raise NotWritten(f"its unk_token {unk!r} is not in vocab.txt")
    whole = set(spec.fixed().values()) | {unk}
    for i, content, _ in _added_tokens(files, config):
        if content not in whole or ids.get(content) != i:
            raise NotWritten(f"added token {content!r} (id {i}) is not one of the special tokens keras-hub's "
                             f"{spec.cls} keeps whole at its vocab.txt line")
    return PresetTokenizer(_tokenizer_json(spec, {
        "vocabulary": None, "sequence_length": None, "lowercase": lower,
        "strip_accents": lower if accents is None else bool(accents), "split": True, "split_on_cjk": bool(cjk),
        "suffix_indicator": "##", "oov_token": unk, "special_tokens": None,
        # HF never splits its special tokens in text, nor does keras-hub with this.
        "special_tokens_in_strings": True}), {"vocabulary.txt": data})


def _vocab_json(data: bytes, name: str) -> dict:
    try:
        vocab = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotWritten(f"{name} is not JSON ({exc})") from None
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise NotWritten(f"{name} is not a token -> id object")
    return vocab


def _merges(data: bytes, vocab: dict, name: str) -> list[str]:
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise NotWritten(f"{name} is not UTF-8") from None
    lines = lines[:-1] if lines and lines[-1] == "" else lines
    out = []
    for n, line in enumerate(lines):
        if n == 0 and line.startswith("#version"):
            continue
        pair = line.rstrip().split(" ")
        if len(pair) != 2 or pair[0] not in vocab or pair[1] not in vocab:
            raise NotWritten(f"{name} line {n + 1} ({line[:40]!r}) is not a merge of two vocabulary tokens")
        out.append(line)
    return out


# The role whose token an HF class strips the space before (lstrip) unless its flags say not.
_HF_LSTRIP = {"RobertaTokenizer": ("mask_token", "<mask>"), "BartTokenizer": ("mask_token", "<mask>")}


def _bpe_to_preset(spec, files, config, settings) -> PresetTokenizer:
    data = files["vocab.json"]()
    vocab = _vocab_json(data, "vocab.json")
    merges = files["merges.txt"]()
    _merges(merges, vocab, "merges.txt")
    added = _added_tokens(files, config)
    full = dict(vocab)
    by_id = {i: t for t, i in vocab.items()}
    for i, content, flags in added:
        bent = [k for k in ("lstrip", "rstrip", "single_word") if flags.get(k)]
        if bent:
            raise NotWritten(f"added token {content!r} has {', '.join(bent)}, which keras-hub's unsplittable "
                             "tokens do not")
        if full.get(content, i) != i or by_id.get(i, content) != content:
            raise NotWritten(f"added token {content!r} (id {i}) clashes with vocab.json")
        full[content], by_id[i] = i, content
    _check_roles(spec, settings, full)
    role, default = _HF_LSTRIP.get(spec.hf_class, (None, None))
    stripped = _role(settings, role, default) if role else None
    if stripped is not None and stripped not in {c for _, c, _ in added}:
        raise NotWritten(f"its {role} {stripped!r} is not listed with its flags (added_tokens_decoder, tokenizer.json), "
                         f"so HF's {spec.hf_class} takes the space before it (lstrip), which keras-hub's unsplittable "
                         "tokens do not")
    prefix = config.get("add_prefix_space", False)
    if not isinstance(prefix, bool):
        raise NotWritten(f"add_prefix_space={prefix!r} is not a bool")
    unsplittable = [c for _, c, _ in added]
    whole = [*spec.fixed().values(), *(_role(settings, role, default) for role, default in spec.others)]
    unsplittable += [t for t in dict.fromkeys(whole) if t in full and t not in unsplittable]
    vocabulary = data if full == vocab else json.dumps(full).encode("utf-8")
    return PresetTokenizer(_tokenizer_json(spec, {"sequence_length": None, "add_prefix_space": prefix,
                                                  "unsplittable_tokens": unsplittable}),
                           {"vocabulary.json": vocabulary, "merges.txt": merges})


def pieces(proto: bytes, name: str = "tokenizer.model") -> list[str]:
    """The pieces of a SentencePiece ModelProto in id order (its field 1, each piece's field 1),
    read with TensorBundle's protobuf wire reader; `name` is the file's, for the errors."""
    from .tensorbundle.protowire import _WireError, _fields
    out = []
    try:
        for number, wire, value in _fields(proto):
            if number == 1 and wire == 2:
                piece = next((v for n, w, v in _fields(value) if n == 1 and w == 2), b"")
                try:
                    out.append(piece.decode("utf-8"))
                except UnicodeDecodeError:
                    raise NotWritten(f"{name} has a piece that is not UTF-8") from None
    except _WireError as exc:
        raise NotWritten(f"{name} is not a SentencePiece model ({exc})") from None
    if not out:
        raise NotWritten(f"{name} holds no pieces: not a SentencePiece model")
    return out


FAIRSEQ = ("<s>", "<pad>", "</s>", "<unk>")       # ids 0-3; the model's own <unk> <s> </s> are its pieces 0-2


def sentencepiece_ids(spec, vocab: list[str], name: str) -> dict[str, int]:
    """token -> the id keras-hub's class gives it: the model's piece ids (and spec.appended
    after them where no piece is it), or (spec.fairseq, XLM-R) the pieces from 3 on one up
    behind FAIRSEQ, and <mask> last."""
    if not spec.fairseq:
        ids = {t: i for i, t in reversed(list(enumerate(vocab)))}
        if spec.appended and spec.appended not in ids:
            ids[spec.appended] = len(vocab)
        return ids
    if vocab[:3] != ["<unk>", "<s>", "</s>"]:
        raise NotWritten(f"{name}'s first pieces are {vocab[:3]!r}, not the <unk> <s> </s> keras-hub's {spec.cls} "
                         "(and HF's) map to fairseq's ids")
    placed = [t for t in ("<pad>", "<mask>") if t in vocab]
    if placed:
        raise NotWritten(f"{name} has {placed!r} as pieces, which keras-hub's {spec.cls} places itself")
    ids = {t: i + 1 for i, t in reversed(list(enumerate(vocab))) if i >= 3}
    return {**{t: i for i, t in enumerate(FAIRSEQ)}, **ids, "<mask>": len(vocab) + 1}


# What an HF class does to the model's pieces beyond SentencePiece: the pieces where it does.
_HF_PIECES = {"AlbertTokenizer": (lambda p: len(p) > 1 and p[-1] == "," and p[-2].isdigit(),
                                  "which HF's AlbertTokenizer splits again (a digit before a comma)")}


def _hf_pieces(spec, vocab: list[str], name: str) -> None:
    rule = _HF_PIECES.get(spec.hf_class)
    bent = [p for p in vocab if rule and rule[0](p)]
    if bent:
        raise NotWritten(f"{name} has pieces {bent[:3]!r}, {rule[1]} and keras-hub's {spec.cls} does not")


def _model_ids(spec, proto: bytes, name: str) -> dict[str, int]:
    """token -> id of a SentencePiece model both classes read alike (NotWritten otherwise)."""
    vocab = pieces(proto, name)
    ids = sentencepiece_ids(spec, vocab, name)
    _hf_pieces(spec, vocab, name)
    return ids


def _sentencepiece_to_preset(spec, files, config, settings) -> PresetTokenizer:
    name = spec.model_file
    proto = files[name]()
    ids = _model_ids(spec, proto, name)
    _check_roles(spec, settings, ids)
    for i, content, _ in _added_tokens(files, config):
        if ids.get(content) != i:
            raise NotWritten(f"added token {content!r} (id {i}) is not {name}'s piece {i}; keras-hub's "
                             f"{spec.cls} has the model's pieces only")
    return PresetTokenizer(_tokenizer_json(spec, {"proto": None, "sequence_length": None, "add_bos": False,
                                                  "add_eos": False}), {"vocabulary.spm": proto})


# --------------------------------------------------------------------------- the way back

def to_hf(spec, config: dict, assets: Path) -> list[dict]:
    """The HF tokenizer files of a preset's tokenizer: entries {"name", "from" (a file to copy),
    "prefix"} or {"name", "json"} (extras.write_made writes them); NotWritten says why not."""
    args = config.get("config")
    if not isinstance(args, dict):
        raise NotWritten("tokenizer.json has no config object")
    missing = [n for n in ASSET_FILES[spec.kind] if not (assets / n).is_file()]
    if missing:
        raise NotWritten(f"the preset has no assets/tokenizer/{', '.join(missing)}")
    inline = [k for k in INLINE_ARGS if args.get(k) is not None]
    if inline:
        raise NotWritten(f"tokenizer.json gives its {', '.join(inline)} itself ({_brief(args[inline[0]])}), which "
                         "keras-hub reads instead of the assets/tokenizer/ files")
    for key in ("sequence_length",):
        if args.get(key) is not None:
            raise NotWritten(f"its {key}={args[key]!r} (truncation and padding in the tokenizer) has no place in "
                             f"{spec.hf_class}'s files")
    made = {"wordpiece": _wordpiece_to_hf, "bpe": _bpe_to_hf, "sentencepiece": _sentencepiece_to_hf}[spec.kind](
        spec, args, assets)
    return made


def _brief(value) -> str:
    return repr(value[:40]) if isinstance(value, str) else f"a {type(value).__name__}"


def _roles_back(spec) -> dict:
    """The roles and settings the HF files state: keras-hub's, whatever HF's defaults are."""
    return {**{role: token for role, token, _ in spec.tokens}, **{key: value for key, value, _ in spec.settings}}


def _setting(args: dict, key: str, want_type=bool):
    value = args.get(key)
    if not isinstance(value, want_type):
        raise NotWritten(f"tokenizer.json does not say {key}")
    return value


def _wordpiece_to_hf(spec, args, assets) -> list[dict]:
    lower = _setting(args, "lowercase")
    strip = _setting(args, "strip_accents")
    if args.get("split", True) is not True:
        raise NotWritten("split=false (no whitespace and punctuation split) has no HF BertTokenizer setting")
    if args.get("suffix_indicator", "##") != "##":
        raise NotWritten(f"suffix_indicator={args['suffix_indicator']!r}: HF's WordPiece prefix is '##'")
    if args.get("special_tokens"):
        raise NotWritten(f"special_tokens={args['special_tokens']!r} beyond {spec.cls}'s own")
    oov = _setting(args, "oov_token", str)
    if not args.get("special_tokens_in_strings", False):
        raise NotWritten(f"keras-hub's {spec.cls} splits its special tokens where the text holds them "
                         f"(special_tokens_in_strings=false), which HF's {spec.hf_class} always keeps whole")
    try:
        vocab = set(_asset(assets, "vocabulary.txt").decode("utf-8").split("\n"))
    except UnicodeDecodeError:
        raise NotWritten("assets/tokenizer/vocabulary.txt is not UTF-8") from None
    absent = [t for t in [*spec.fixed().values(), oov] if t not in vocab]
    if absent:
        raise NotWritten(f"assets/tokenizer/vocabulary.txt has no {', '.join(map(repr, absent))}, which keras-hub's "
                         f"{spec.cls} needs")
    return [{"name": "vocab.txt", "from": str(assets / "vocabulary.txt")},
            {"name": "tokenizer_config.json", "json": {
                "tokenizer_class": spec.hf_class, "do_lower_case": lower, "strip_accents": strip,
                "tokenize_chinese_chars": bool(args.get("split_on_cjk", True)), "unk_token": oov,
                **_roles_back(spec)}}]


def _bpe_to_hf(spec, args, assets) -> list[dict]:
    vocab = _vocab_json(_asset(assets, "vocabulary.json"), "assets/tokenizer/vocabulary.json")
    merges = _asset(assets, "merges.txt")
    _merges(merges, vocab, "assets/tokenizer/merges.txt")
    whole = args.get("unsplittable_tokens")
    if whole is None:
        whole = list(dict.fromkeys(spec.fixed().values()))
    if not isinstance(whole, list) or not all(isinstance(t, str) for t in whole):
        raise NotWritten(f"unsplittable_tokens={whole!r} is not a list of tokens")
    absent = [t for t in whole if t not in vocab]
    if absent:
        raise NotWritten(f"its unsplittable tokens {absent!r} are not in vocabulary.json")
    prefix = args.get("add_prefix_space", False)
    # HF keeps its other roles' tokens whole in text: named only where the preset keeps them whole.
    others = {role: default if default in whole else None for role, default in spec.others}
    return [{"name": "vocab.json", "from": str(assets / "vocabulary.json")},
            {"name": "merges.txt", "from": str(assets / "merges.txt"),
             "prefix": "" if merges.startswith(b"#version") else MERGES_HEADER},
            {"name": "tokenizer_config.json", "json": {
                "tokenizer_class": spec.hf_class, "add_prefix_space": bool(prefix), **others, **_roles_back(spec),
                "added_tokens_decoder": {str(vocab[t]): {"content": t, "lstrip": False, "normalized": False,
                                                         "rstrip": False, "single_word": False, "special": True}
                                         for t in sorted(whole, key=vocab.get)}}}]


def _sentencepiece_to_hf(spec, args, assets) -> list[dict]:
    if args.get("add_bos") or args.get("add_eos"):
        raise NotWritten("add_bos/add_eos in the tokenizer itself: HF adds them by add_bos_token in the model's "
                         "encoding, which is another setting")
    ids = _model_ids(spec, _asset(assets, "vocabulary.spm"), "assets/tokenizer/vocabulary.spm")
    absent = [t for t in spec.fixed().values() if t not in ids]
    if absent:
        raise NotWritten(f"vocabulary.spm has no {absent!r}")
    return [{"name": spec.model_file, "from": str(assets / "vocabulary.spm")},
            {"name": "tokenizer_config.json", "json": {"tokenizer_class": spec.hf_class, **_roles_back(spec)}}]


def made_files(made: list[dict]) -> dict[str, Callable[[], bytes]]:
    """The HF files of a to_hf() list, read when asked for (a preset written back as a preset)."""
    def reader(entry):
        if "json" in entry:
            return lambda: json.dumps(entry["json"]).encode("utf-8")
        return lambda: entry.get("prefix", "").encode("utf-8") + _read(Path(entry["from"]))
    return {e["name"]: reader(e) for e in made if isinstance(e, dict) and "name" in e}
