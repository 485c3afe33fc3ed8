"""The inputs both sides run on: seeded random ones made from the config (one generator per
forward-argument name; a new input kind is one INPUTS entry), or real sentences through the
model's own tokenizer (--text)."""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from ..ir.errors import UsageError

BATCH, SEQ = 2, 7


def _vocab_ids(config: dict, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, config["vocab_size"], size=(BATCH, SEQ), dtype=np.int64)


def _attention_mask(config: dict, rng: np.random.Generator) -> np.ndarray:
    mask = np.ones((BATCH, SEQ), dtype=np.int64)
    mask[1, -1] = 0                              # one padded position, so masking is exercised
    return mask


def _token_type_ids(config: dict, rng: np.random.Generator) -> np.ndarray:
    types = config.get("type_vocab_size", 1)
    if types > 1:
        return rng.integers(0, types, size=(BATCH, SEQ), dtype=np.int64)
    return np.zeros((BATCH, SEQ), dtype=np.int64)


def _decoder_input_ids(config: dict, rng: np.random.Generator) -> np.ndarray:
    """The decoder's ids of an encoder-decoder model (T5 needs them; BART would shift its
    input_ids right without): the decoder's start token, then random ids."""
    ids = rng.integers(0, config["vocab_size"], size=(BATCH, SEQ - 2), dtype=np.int64)
    start = config.get("decoder_start_token_id")
    if start is None:
        start = config.get("pad_token_id") or 0
    return np.concatenate([np.full((BATCH, 1), start, dtype=np.int64), ids], axis=1)


def _pixel_values(config: dict, rng: np.random.Generator) -> np.ndarray:
    """NCHW images in [0, 1], as HF's models take them (after the image processor)."""
    size = config["image_size"]
    return rng.uniform(0, 1, (BATCH, config.get("num_channels", 3), size, size)).astype(np.float32)


# Forward-argument name -> generator(config, rng). An entry is used when both sides accept
# that argument; each gets its own rng stream so adding an entry changes no other input.
INPUTS: dict[str, Callable[[dict, np.random.Generator], np.ndarray]] = {
    "input_ids": _vocab_ids,
    "attention_mask": _attention_mask,
    "token_type_ids": _token_type_ids,
    "decoder_input_ids": _decoder_input_ids,
    "pixel_values": _pixel_values,
}


def make_inputs(config: dict, accepts: frozenset[str] | set[str], seed: int = 0) -> dict[str, np.ndarray]:
    inputs = {}
    for name, make in INPUTS.items():
        if name not in accepts:
            continue
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        try:
            inputs[name] = make(config, rng)
        except KeyError as exc:
            raise UsageError(f"config.json has no {exc.args[0]!r}, needed to make {name!r}") from None
    if not inputs:
        raise UsageError(f"the models accept none of the inputs verify can make ({', '.join(INPUTS)})")
    return inputs



def _text_inputs(texts: list[str], src: Path, out: Path, accepts) -> dict[str, np.ndarray]:
    """--text: the sentences through the model's own tokenizer (SRC's, else OUT's)."""
    import transformers
    for where in (src, out):
        if where.is_dir() and any((where / n).is_file() for n in ("tokenizer.json", "vocab.txt",
                                                                    "tokenizer_config.json")):
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(str(where))
            except Exception as exc:       # a tokenizer transformers cannot build: say which
                raise UsageError(f"--text: cannot load the tokenizer: {type(exc).__name__}: {exc}",
                                 path=str(where)) from None
            encoded = tokenizer(list(texts), padding=True, return_tensors="np")
            return {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items() if k in accepts}
    raise UsageError(f"--text needs a tokenizer (tokenizer.json or vocab.txt) in {src} or {out}")


