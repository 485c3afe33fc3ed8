"""The rest of a model directory: every file that is not weights (the tokenizer and its vocab,
processor and generation configs, sentence-transformers modules and their sub-directories,
chat templates, the model card) is carried to the output unchanged, so the converted directory
loads as the source did (`AutoTokenizer.from_pretrained(out)`).

What is not carried: the weights of any framework beside the config (the output has its own),
the config files every exporter writes itself, hidden files and HF Trainer's checkpoint-N/
directories. Sub-directories (sentence-transformers' 1_Pooling/, 2_Dense/ with its own small
weights) are carried whole. A TF1 output (Google's BERT layout) also needs the
vocabulary as vocab.txt, which run_classifier.py's --vocab_file reads: it is written from
tokenizer.json where the source has no vocab.txt.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..ir.limits import outside

# Weights (and their indexes) of every framework irconv reads or writes, and training state.
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "*.bin.index.json",
                   "*.h5", "*.h5.index.json", "*.keras", "*.msgpack", "*.msgpack.index.json", "*.pt", "*.pth",
                   "*.pkl", "*.ckpt", "*.ckpt.*", "*.ckpt-*", "*.index", "*.data-*-of-*", "checkpoint",
                   "*.onnx", "*.gguf", "*.npz", "*.irs")
# Written by the exporters themselves (a source's is replaced, not carried).
OWN_FILES = ("config.json", "bert_config.json")
# HF Trainer's intermediate checkpoints beside a final model: not part of it.
TRAINER_DIR = re.compile(r"^checkpoint-\d+$")
# Extras are small text and JSON files; a larger file is named as not carried.
MAX_EXTRA_BYTES = 256 << 20


@dataclass
class Extras:
    carried: list[str] = field(default_factory=list)
    not_carried: list[str] = field(default_factory=list)    # "name (why)"
    made: list[str] = field(default_factory=list)           # written from another file (vocab.txt)


def source_directory(src) -> Path | None:
    """The model directory a source path stands for: the directory itself, or a weights
    file's directory when that holds a config (else a bare file's neighbours are not its)."""
    if src is None or str(src) == "-":
        return None
    path = Path(src)
    if path.is_dir():
        return path
    parent = path.parent
    if any((parent / name).is_file() for name in OWN_FILES):
        return parent
    return None


def _is_weights(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p) for p in WEIGHT_PATTERNS)


def plan(source: Path | None, read_files: list[str], out: Path | None = None) -> tuple[list[str], list[str]]:
    """(relative paths to carry, "name (why)" of those that will not be) for a source directory;
    `out` (the output, when it lies inside the source) is never walked."""
    if source is None:
        return [], []
    read = set(read_files)
    carry, skip = [], []
    skip_dir = os.path.realpath(out) if out is not None else None
    for root, dirs, files in os.walk(source, followlinks=False):
        rel_root = os.path.relpath(root, source)
        trainer = [d for d in dirs if rel_root == "." and TRAINER_DIR.match(d)]
        skip += [f"{d}/ (a training checkpoint)" for d in sorted(trainer)]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in trainer
                         and os.path.realpath(os.path.join(root, d)) != skip_dir)
        for name in sorted(files):
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            # The model's own weights and config are at the top; a module sub-directory
            # (sentence-transformers' 2_Dense) is carried whole, weights and all.
            top = rel_root == "."
            if name.startswith(".") or rel in read or (top and (name in OWN_FILES or _is_weights(rel))):
                continue
            path = Path(root) / name
            try:
                size = path.stat().st_size
            except OSError:
                skip.append(f"{rel} (unreadable)")
                continue
            if not path.is_file():
                skip.append(f"{rel} (not a regular file)")
            elif outside(path, source):
                # A link out of the directory (a crafted model's tokenizer.json naming a file
                # elsewhere) would copy that file's bytes into the output.
                skip.append(f"{rel} (a link to a file outside {source.name})")
            elif size > MAX_EXTRA_BYTES:
                skip.append(f"{rel} ({size:,} bytes: not a tokenizer or config file)")
            else:
                carry.append(rel)
    return carry, skip


def carry(source: Path | None, read_files: list[str], dest: Path, fmt: str, target: Path | None = None,
          made=(), not_made=()) -> Extras:
    """Copy the extras of `source` into `dest` (the output's temporary directory) beside
    what the exporter wrote, never over it; `target` is the final output directory. `made`:
    files the importer makes from the source's own (a keras-hub preset's tokenizer as HF's
    files), written first; `not_made`: "name (why)" of those it could not."""
    out = Extras()
    files, out.not_carried = plan(source, read_files, target)
    if source is not None:
        write_made(made, dest, out)
        out.not_carried += list(not_made)
    for rel in files:
        target = dest / rel
        if target.exists():
            out.not_carried.append(f"{rel} (the {fmt} output writes its own)")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target)
        out.carried.append(rel)
    if fmt == "tf1" and not (dest / "vocab.txt").exists():
        vocab = vocab_from_tokenizer_json(dest / "tokenizer.json") if (dest / "tokenizer.json").is_file() else None
        if vocab is not None:
            (dest / "vocab.txt").write_text("".join(f"{token}\n" for token in vocab), encoding="utf-8")
            out.made.append("vocab.txt (from tokenizer.json)")
        elif (dest / "tokenizer.json").is_file():
            out.not_carried.append("vocab.txt (tokenizer.json is not a WordPiece vocabulary, which is all "
                                   "Google's layout has a place for)")
    return out


def write_made(made, dest: Path, out: Extras) -> None:
    """Each {"name", "from" (a file, with an optional text "prefix")} or {"name", "json"}."""
    for entry in made:
        target = dest / entry["name"]
        if target.exists():
            out.not_carried.append(f"{entry['name']} (the output writes its own)")
            continue
        if "json" in entry:
            target.write_text(json.dumps(entry["json"], indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        else:
            with open(entry["from"], "rb") as src, open(target, "wb") as dst:
                dst.write(entry.get("prefix", "").encode("utf-8"))
                shutil.copyfileobj(src, dst)
        out.made.append(f"{entry['name']} (from the preset's tokenizer)")


def vocab_from_tokenizer_json(path: Path) -> list[str] | None:
    """The tokens of a WordPiece tokenizer.json in id order (what BERT's vocab.txt holds), or
    None for another kind of tokenizer, which a vocab.txt cannot describe."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        return None
    by_id = {i: t for t, i in model["vocab"].items() if isinstance(i, int)}
    if sorted(by_id) != list(range(len(by_id))):
        return None             # gaps: no line-per-id file says the same
    return [by_id[i] for i in range(len(by_id))]
