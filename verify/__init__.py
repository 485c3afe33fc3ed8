"""`irconv verify SRC OUT`: run both checkpoints in their real frameworks and compare outputs.

The transformers conversion scripts' --compare_with_pt_model, for any pair of formats: each
side is loaded by the loader that recognises its directory, both get the same seeded random
inputs, and every output is compared by max absolute difference.

This is the one place outside the tests where torch, tensorflow and transformers are used,
and only inside the functions below, so that `import irconv.verify` (and `irconv.cli`) stays
framework-free.

Layout: base.py (the Loader record, its registry, importing the frameworks), inputs.py (what
both sides run on), compare.py, and one module of loaders per framework family: hf.py
(transformers' PyTorch, TF2 and TF1 BERT loading), keras.py (tf_keras.applications), kerashub.py
(keras_hub presets). A new
framework is one module here with its loader functions and `LOADERS.add` lines, imported below;
a new input kind is one entry in inputs.INPUTS.
"""
from __future__ import annotations

from pathlib import Path

from ..importers.base import read_json
from ..ir.errors import IrconvError, UsageError
from ..ir.limits import missing
from . import flax, hf, keras, kerashub  # noqa: F401  (register their loaders)
from .base import INSTALL_HINT, LOADERS, LoadedModel, Loader, _import_frameworks  # noqa: F401  (the API)
from .compare import Result, _shape, compare, max_abs_diff, per_position  # noqa: F401
from .inputs import INPUTS, _text_inputs, make_inputs  # noqa: F401


def detect_loaders(path: Path) -> list[Loader]:
    if not path.exists():
        raise missing(path, IrconvError)
    found = [loader for loader in LOADERS if loader.detect(path)]
    if not found:
        raise UsageError("verify cannot load this: expected one of "
                         + "; ".join(loader.description for loader in LOADERS), path=str(path))
    return found


def pick_loaders(src: Path, out: Path) -> tuple[Loader, Loader]:
    """The loader of each side. verify is a cross-check, so when a directory holds several
    formats (a hub snapshot with model.safetensors and tf_model.h5) it is read in one the
    other side is not read in."""
    a, b = detect_loaders(src), detect_loaders(out)
    pairs = [(x, y) for x in a for y in b]
    return next(((x, y) for x, y in pairs if x.name != y.name), pairs[0])


# ---------------------------------------------------------------- the verb


def same_model(src: Path, config_a: dict, out: Path, config_b: dict) -> None:
    """Refuse, before any framework is imported, two configs of different models: the same
    random inputs would not even fit both (another vocabulary), and a difference in what they
    compute would show as a conversion error that is none."""
    from ..importers.config import config_differences
    from ..models import family_for_model_type
    types = [c.get("model_type") for c in (config_a, config_b)]
    if types[0] != types[1]:
        raise UsageError(f"{src} and {out} are different models: model_type {types[0]!r} vs {types[1]!r}")
    family = family_for_model_type(types[0]) if isinstance(types[0], str) else None
    if family is not None:
        computing, _ = config_differences(family.name, config_a, config_b)
        if computing:
            raise UsageError(f"{src} and {out} describe different models: config {computing[0]}"
                             + (f" (and {len(computing) - 1} more)" if len(computing) > 1 else ""))


def _config_of(loader: "Loader", path: Path, given: dict | None) -> dict:
    """A side's own config; `given` (--config) for a side that has none."""
    try:
        return loader.read_config(path)
    except IrconvError:
        if given is None:
            raise
        return dict(given)


def verify(src, out, *, atol: float = 1e-4, seed: int = 0, echo=print, config: dict | None = None,
           texts: list[str] | None = None) -> bool:
    """Load both sides, run the same inputs, print the comparison; True when all are within atol.
    `config`: the config of a side that has none; `texts`: real sentences, tokenized by the
    model's own tokenizer, instead of random ids."""
    src, out = Path(src), Path(out)
    loader_a, loader_b = pick_loaders(src, out)
    config_a, config_b = _config_of(loader_a, src, config), _config_of(loader_b, out, config)
    same_model(src, config_a, out, config_b)
    _import_frameworks(set(loader_a.needs) | set(loader_b.needs),
                       f"{loader_a.name} and {loader_b.name} models" if loader_a is not loader_b
                       else f"{loader_a.name} models")
    side_a, side_b = loader_a.load(src, config_a), loader_b.load(out, config_b)
    inputs = make_inputs(config_a, side_a.accepts & side_b.accepts, seed)
    if texts:
        inputs.update(_text_inputs(texts, src, out, side_a.accepts & side_b.accepts))
        batch = len(texts)
        inputs = {k: v for k, v in inputs.items() if v.shape[:1] == (batch,)}
    echo(f"# {src} ({side_a.label})  vs  {out} ({side_b.label})")
    echo(f"# inputs (seed {seed}): " + ", ".join(f"{k} {_shape(v)}" for k, v in inputs.items()))

    problems = [(src, p) for p in side_a.problems] + [(out, p) for p in side_b.problems]
    for where, problem in problems:
        echo(f"{where}: {problem}")
    for where, note in [(src, n) for n in side_a.notes] + [(out, n) for n in side_b.notes]:
        echo(f"# {where}: note: {note}")

    res_a, res_b = side_a.run(inputs), side_b.run(inputs)
    for here, there, res, other, lacking in ((src, out, res_a, res_b, side_b.lacks), (out, src, res_b, res_a, side_a.lacks)):
        for name in [n for n in res if n not in other]:
            if name in lacking:
                problems.append((there, f"gives no {name} (its file has none of the weights), {here} does"))
                echo(f"{there}: {problems[-1][1]}")
            else:
                echo(f"# only in {here}: {name}")
    mask = inputs.get("attention_mask")
    results = compare(res_a, res_b, atol, mask)
    if any(per_position(res_a[r.name], mask) for r in results if r.diff is not None):
        echo("# outputs per position are compared where attention_mask is 1 (a padded position's is no result)")
    if not results:
        echo(f"FAILED: no output is named the same on both sides ({', '.join(res_a) or 'none'} vs "
             f"{', '.join(res_b) or 'none'})")
        return False
    rows = [(r.name, r.shape, "-" if r.diff is None else f"{r.diff:.3g}", "ok" if r.ok else "FAIL")
            for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        echo("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[3])
    worst = max((r.diff for r in results if r.diff is not None), default=float("nan"))
    failures = sum(not r.ok for r in results)
    if failures or problems:
        why = [f"{failures} of {len(results)} output(s) differ beyond atol {atol:g}"] if failures else []
        why += [f"{len(problems)} weight loading problem(s)"] if problems else []
        echo(f"FAILED: {'; '.join(why)} (max abs diff {worst:.3g})")
        return False
    echo(f"verified: {len(results)} output(s) within atol {atol:g} (max abs diff {worst:.3g})")
    return True


def cmd_verify(args) -> None:
    config = read_json(Path(args.config)) if args.config else None
    if not verify(args.src, args.out, atol=args.atol, seed=args.seed, config=config, texts=args.text):
        raise SystemExit(1)


def add_parser(sub, parents) -> None:
    s = sub.add_parser("verify", parents=parents,
                       help="run SRC and OUT in their frameworks (torch, tensorflow, transformers) on the "
                       "same random inputs and compare outputs (exit 1 above --atol)",
                       description="Load SRC and OUT with the frameworks' own classes (transformers' PyTorch "
                       "and TF classes, tf_keras) and run both on the same seeded random inputs, printing "
                       "the largest difference per output. Needs the test extras: pip install 'irconv[test]' "
                       "(torch, tensorflow, transformers; several GB). Exit 1 when an output differs "
                       "beyond --atol, 2 when either side cannot be loaded.")
    s.add_argument("src", help="one model directory (HF PyTorch, HF TF2, TF1 BERT, Keras EfficientNet)")
    s.add_argument("out", help="the other, usually irconv's conversion of SRC")
    s.add_argument("--atol", type=float, default=1e-4, help="largest max-abs-difference accepted (1e-4)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")
    s.add_argument("--config", help="HF config.json for a side that has none (a TF1 checkpoint without "
                   "bert_config.json)")
    s.add_argument("--text", action="append", metavar="SENTENCE", help="run this sentence (repeatable) "
                   "through the model's own tokenizer instead of random token ids")
    s.set_defaults(func=cmd_verify)
