"""Benchmark: irconv beside `cp`, a naive rewrite and transformers, in one run (ratios).

    python bench/run.py [--scale-gb 8] [--only bert|scale|startup] [--runs 3] [--scale-runs 3] [--keep DIR]
    (irconv installed: `make bench`; the naive and transformers baselines need the test extras)

Three parts, each case a child process timed by bench/measure.py (wall time, peak RSS):
- start-up: `irconv --help` and friends beside `python -c "import numpy"`.
- BERT-base: a synthetic checkpoint with bert-base-uncased's shapes (440 MB of fp32,
  model.safetensors + config.json) converted to every format, through the pipe, and back;
  beside `cp -r`, the naive rewrite (safetensors.numpy.load_file + h5py, no relayout:
  bench/baselines.py) and transformers' from_pt + save_pretrained.
- keras: EfficientNet-B7 (the largest model irconv writes as Keras h5), when transformers
  is installed to make it.
- scale: a BERT of hidden 2048 / FFN 8192, with as many layers as make --scale-gb GB of
  fp32, sharded 2 GB (and the same in bf16, half the bytes), generated lazily; every target,
  the pipe and the reverse directions beside `cp -r` and the naive rewrite.
Every irconv case runs with IRCONV_STAGES=1, so its row also shows where the time went
(read, relayout, checksum, stream, write: seconds summed over threads) and its CPU seconds
(user + system, all processes: less disturbed by a busy machine than wall time). Peak RSS is shown
against the bound irconv promises: 2 x the largest tensor + 100 MiB. Numbers, not asserts:
compare the ratios across commits; bench/README.md keeps the last table.
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import irconv
from irconv.ir import Checkpoint, Tensor, TensorSpec
from irconv.ir.dtypes import DTYPES

sys.path.insert(0, str(Path(__file__).parent))
import baselines  # noqa: E402

BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)
SCALE = dict(BERT_BASE, hidden_size=2048, intermediate_size=8192, num_attention_heads=16)
MiB = 1 << 20
STAGES = ("read", "relayout", "cast", "checksum", "stream read", "stream write", "write", "copy")


def _filler(n: int, dtype_name: str):
    """Deterministic, incompressible data at memory speed: a random MiB tiled."""
    block = np.random.default_rng(n).integers(0, 1 << 16, MiB // 2, dtype=np.uint16)
    if dtype_name == "F32":     # finite floats: random mantissas, exponents near 1
        block = (block.astype(np.uint32) << 7 | np.uint32(0x3F000000)).view(np.float32)
    else:
        block = (block & np.uint16(0x3FFF) | np.uint16(0x3C00)).view(DTYPES["BF16"].numpy)

    def make(shape):
        count = int(np.prod(shape))
        reps = -(-count // block.size)
        return np.tile(block, reps)[:count].reshape(shape)
    return make


def synthetic_bert(config: dict, layers: int, dtype_name: str = "F32") -> Checkpoint:
    """A BertForPreTraining of the given shapes whose tensors are generated on demand."""
    c = dict(config, num_hidden_layers=layers, model_type="bert", architectures=["BertForPreTraining"])
    if dtype_name != "F32":
        c["torch_dtype"] = DTYPES[dtype_name].torch
    h, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    shapes = {"embeddings.word.weight": (v, h), "embeddings.position.weight": (c["max_position_embeddings"], h),
              "embeddings.token_type.weight": (2, h), "embeddings.norm.weight": (h,), "embeddings.norm.bias": (h,)}
    for i in range(layers):
        p = f"encoder.layers.{i}."
        for m in ("attn.q", "attn.k", "attn.v", "attn.out"):
            shapes[p + m + ".weight"], shapes[p + m + ".bias"] = (h, h), (h,)
        shapes[p + "ffn.up.weight"], shapes[p + "ffn.up.bias"] = (f, h), (f,)
        shapes[p + "ffn.down.weight"], shapes[p + "ffn.down.bias"] = (h, f), (h,)
        for n in ("attn.norm", "ffn.norm"):
            shapes[p + n + ".weight"], shapes[p + n + ".bias"] = (h,), (h,)
    shapes.update({"pooler.dense.weight": (h, h), "pooler.dense.bias": (h,),
                   "heads.mlm.transform.dense.weight": (h, h), "heads.mlm.transform.dense.bias": (h,),
                   "heads.mlm.transform.norm.weight": (h,), "heads.mlm.transform.norm.bias": (h,),
                   "heads.mlm.bias": (v,), "heads.nsp.dense.weight": (2, h), "heads.nsp.dense.bias": (2,)})
    axes = {1: ("out",), 2: ("out", "in")}
    tensors = {}
    dtype = DTYPES[dtype_name]
    for n, (name, shape) in enumerate(shapes.items()):
        ax = ("rows", "hidden") if name.startswith("embeddings.") and len(shape) == 2 else axes[len(shape)]
        if name.endswith("norm.weight") or name.endswith("norm.bias"):
            ax = ("hidden",)
        if name == "heads.mlm.bias":
            ax = ("rows",)
        make = _filler(n, dtype_name)
        tensors[name] = Tensor(TensorSpec(name, dtype, shape, ax), lambda s=shape, m=make: m(s))
    aliases = {"heads.mlm.decoder.weight": "embeddings.word.weight", "heads.mlm.decoder.bias": "heads.mlm.bias"}
    return Checkpoint("bert", c, tensors, aliases)


# --cases: the labels to run (None: all)
SELECT = None


LLAMA = dict(vocab_size=32000, hidden_size=2048, intermediate_size=8192, num_attention_heads=16,
             num_key_value_heads=16, max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
             tie_word_embeddings=False, hidden_act="silu")


def synthetic_llama(config: dict, layers: int, dtype_name: str = "F32") -> Checkpoint:
    """A LlamaForCausalLM of the given shapes whose tensors are generated on demand: the
    families keras-hub and HF Flax hold (the BERT above has no keras-hub twin at this size)."""
    c = dict(config, num_hidden_layers=layers, model_type="llama", architectures=["LlamaForCausalLM"])
    if dtype_name != "F32":
        c["torch_dtype"] = DTYPES[dtype_name].torch
    h, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    kv = h // c["num_attention_heads"] * c["num_key_value_heads"]
    specs = {"embeddings.word.weight": ((v, h), ("rows", "hidden"))}
    for i in range(layers):
        p = f"decoder.layers.{i}."
        for name, rows, cols in (("attn.q", h, h), ("attn.k", kv, h), ("attn.v", kv, h), ("attn.out", h, h),
                                 ("ffn.gate", f, h), ("ffn.up", f, h), ("ffn.down", h, f)):
            specs[p + name + ".weight"] = ((rows, cols), ("out", "in"))
        for name in ("attn.norm", "ffn.norm"):
            specs[p + name + ".weight"] = ((h,), ("hidden",))
    specs["decoder.norm.weight"] = ((h,), ("hidden",))
    specs["heads.lm.weight"] = ((v, h), ("rows", "hidden"))
    dtype = DTYPES[dtype_name]
    tensors = {}
    for n, (name, (shape, axes)) in enumerate(specs.items()):
        make = _filler(n, dtype_name)
        tensors[name] = Tensor(TensorSpec(name, dtype, shape, axes), lambda s=shape, m=make: m(s))
    return Checkpoint("llama", c, tensors, {})


def pretouch(nbytes: int) -> None:
    """Touch and free up to `nbytes` of memory (never more than is free) just before a case.

    On a VM whose balloon takes free memory back (free page reporting: a page freed for ~2 s
    goes to the host), the first touch of a page costs ~2.5 s per GB here, 10x its cost on a
    touched page, and falls on whichever case comes first (`cp` of 4 GB took 2 to 11 s). The
    pages freed here go to the head of the kernel's free lists, so the case's page cache and
    buffers start warm, as on a machine without a balloon."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return
    free = int(re.search(r"^MemFree:\s+(\d+) kB", meminfo, re.M).group(1)) * 1024
    nbytes = min(nbytes, free - 512 * MiB)
    pieces = [np.ones(min(256 * MiB, nbytes - done), np.uint8) for done in range(0, max(nbytes, 0), 256 * MiB)]
    del pieces


def measure(out: str | None, *stages: list[str], runs: int = 1, touch: int = 0) -> dict:
    """Median wall seconds, peak RSS (the largest process of a pipeline) and the irconv
    processes' stage times of `runs` runs, via measure.py; `out` is removed before each and
    the directories the case reads are read into the page cache and `touch` bytes of memory
    are touched just before it starts (pretouch)."""
    argv = [sys.executable, str(Path(__file__).with_name("measure.py"))]
    for n, stage in enumerate(stages):
        argv += (["|"] if n else []) + stage
    results = []
    for _ in range(runs):
        if out:
            _remove(out)
        os.sync()       # the previous case's dirty pages are written back before this one starts
        for arg in (a for stage in stages for a in stage):
            if arg != out and Path(arg).is_dir():
                warm(Path(arg))     # this VM pages out file pages unread for ~60 s (DAMON)
        pretouch(touch)
        env = dict(os.environ, IRCONV_STAGES="1")
        r = json.loads(subprocess.run(argv, capture_output=True, check=True, env=env).stdout)
        if not r["ok"]:
            raise SystemExit(f"benchmark case failed: {' | '.join(map(' '.join, stages))}\n"
                             + "\n".join(r["stderr"]))
        results.append(r)
    results.sort(key=lambda r: r["wall"])
    return results[len(results) // 2]


def _remove(path: str) -> None:
    p = Path(path)
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def warm(path: Path) -> None:
    """Read every file once, so that each case starts from the page cache as cp does."""
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if p.is_file():
            subprocess.run(["cat", str(p)], stdout=subprocess.DEVNULL, check=True)


def table(title: str, cases: list, runs: int, largest: int, source: int) -> None:
    """Run `cases` [(label, out, stage, ...) or (label, None, why)] and print one row each;
    each starts on memory touched for its output and buffers (`source` bytes + the bound)."""
    bound = 2 * largest + 100 * MiB
    print(f"\n## {title}")
    print(f"{'case':34} {'seconds':>8} {'x cp':>6} {'CPU s':>6} {'peak RSS MB':>12} {'/bound':>7}   stages (s)")
    base = None
    for n, (label, out, *stages) in enumerate(cases):
        if not stages:
            print(f"{label:34} {'-':>8}   skipped: {out}")
            continue
        if base is not None and SELECT and not SELECT.search(label):
            # not asked for: run once, unshown, only when a later case asked for reads its output
            if any(SELECT.search(later[0]) and out in (a for st in later[2:] for a in st)
                   for later in cases[n + 1:]):
                measure(out, *stages, runs=1)
            continue
        r = measure(out, *stages, runs=runs, touch=source + bound + 256 * MiB)
        if out and not any(out in arg for later in cases[n + 1:] for st in later[2:] for arg in st):
            _remove(out)         # (unless a later case reads it: the reverse directions)
        base = base or r["wall"]
        parts = {}
        for proc in r["stages"]:
            for k, v in proc.items():
                parts[k] = parts.get(k, 0.0) + v["seconds"]
        shown = "  ".join(f"{k} {parts[k]:.1f}" for k in STAGES if parts.get(k, 0) >= 0.05)
        print(f"{label:34} {r['wall']:8.2f} {r['wall'] / base:6.2f} {r['cpu']:6.1f} {r['rss'] / 1e6:12.0f} "
              f"{r['rss'] / bound:7.2f}   {shown}", flush=True)


def startup(runs: int = 5) -> None:
    """Start-up beside the interpreter importing numpy alone (medians of `runs`)."""
    py = [sys.executable]
    cases = [("python -c 'import numpy' (baseline)", py + ["-c", "import numpy"]),
             ("irconv --help", py + ["-m", "irconv", "--help"]),
             ("irconv formats", py + ["-m", "irconv", "formats"]),
             ("irconv convert (argument error)", py + ["-m", "irconv", "convert", "a", "b"])]
    print("\n## start-up")
    print(f"{'case':34} {'seconds':>8} {'x numpy':>8}")
    base = None
    for label, argv in cases:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        wall = statistics.median(times)
        base = base or wall
        print(f"{label:34} {wall:8.2f} {wall / base:8.1f}", flush=True)


def irconv_cases(src: Path, work: Path, tag: str, targets=("pt", "pt --bin", "tf1", "tf2"),
                 shard: str | None = None) -> list:
    py = [sys.executable, "-m", "irconv"]
    cases = []

    def convert(label, source, out, fmt, *flags):
        sharded = ["--max-shard-size", shard] if shard and fmt != "keras" else []
        cases.append((label, str(out), py + ["convert", "-q", *sharded, str(source), str(out), "--to", fmt, *flags]))

    for target in targets:
        fmt, *flags = target.split()
        convert(f"convert -> {target}", src, work / f"{tag}-{fmt}{''.join(flags)}", fmt, *flags)
    for fmt in ("tf2", "pt"):
        if fmt in targets:
            out = work / f"{tag}-pipe-{fmt}"
            cases.append((f"import pt | export {fmt} (pipe)", str(out), py + ["import", "-q", "pt", str(src)],
                          py + ["export", "-q", *(["--max-shard-size", shard] if shard else []), fmt, str(out)]))
    for fmt in ("tf2", "tf1"):
        if fmt in targets:
            convert(f"convert {fmt} -> pt (reverse)", work / f"{tag}-{fmt}", work / f"{tag}-back-{fmt}", "pt")
    return cases


def baseline_cases(src: Path, work: Path, tag: str, with_transformers: bool, naive: bool = True) -> list:
    py = [sys.executable, str(Path(__file__).with_name("baselines.py"))]
    out = work / f"{tag}-copy"
    cases = [("cp -r (baseline)", str(out), ["cp", "-r", str(src), str(out)])]
    kinds = [("naive rewrite (safetensors+h5py)", "naive", work / f"{tag}-naive.h5")] if naive else []
    if with_transformers:
        kinds.append(("transformers from_pt+save_pretrained", "transformers", work / f"{tag}-hf"))
    for label, kind, out in kinds:
        why = baselines.available(kind)
        cases.append((label, why) if why else (label, str(out), py + [kind, str(src), str(out)]))
    return cases


def keras_case(work: Path, runs: int) -> None:
    """The keras target needs a family with Keras names: EfficientNet-B7 (HF, random weights;
    the largest model irconv writes as Keras h5), made by transformers when it is installed."""
    why = baselines.available("efficientnet-b7")
    if why:
        print(f"\n## keras: EfficientNet-B7 skipped: {why}")
        return
    src = work / "efficientnet-b7"
    if not src.exists():
        subprocess.run([sys.executable, str(Path(__file__).with_name("baselines.py")), "efficientnet-b7", "-",
                        str(src)], check=True, capture_output=True)
        os.sync()
    warm(src)
    largest = max(t.nbytes for t in irconv.load(src))
    py = [sys.executable, "-m", "irconv"]
    out = work / "effnet-copy"
    cases = [("cp -r (baseline)", str(out), ["cp", "-r", str(src), str(out)])]
    for fmt in ("keras", "pt --bin"):
        name, *flags = fmt.split()
        out = work / f"effnet-{name}"
        cases.append((f"convert -> {fmt}", str(out), py + ["convert", "-q", str(src), str(out), "--to", name, *flags]))
    out = work / "effnet-pipe"
    cases.append(("import pt | export keras (pipe)", str(out), py + ["import", "-q", "pt", str(src)],
                  py + ["export", "-q", "keras", str(out)]))
    table(f"keras: EfficientNet-B7, {du(src) / 1e6:,.0f} MB safetensors, largest tensor {largest / 1e6:,.1f} MB "
          f"(median of {runs})", cases, runs, largest, du(src))


def llm_cases(src: Path, work: Path, tag: str, shard: str) -> list:
    """The frameworks BERT has no scale case in: a keras-hub preset and HF Flax, from pt."""
    py = [sys.executable, "-m", "irconv"]
    cases = []
    for fmt in ("kerashub", "flax"):     # (a keras-hub preset is one model.weights.h5)
        out = work / f"{tag}-{fmt}"
        sharded = ["--max-shard-size", shard] if fmt != "kerashub" else []
        cases.append((f"convert -> {fmt}", str(out), py + ["convert", "-q", *sharded, str(src), str(out), "--to", fmt]))
    out = work / f"{tag}-pipe-kerashub"
    cases.append(("import pt | export kerashub (pipe)", str(out), py + ["import", "-q", "pt", str(src)],
                  py + ["export", "-q", "kerashub", str(out)]))
    cases.append(("convert kerashub -> pt (reverse)", str(work / f"{tag}-back"),
                  py + ["convert", "-q", "--max-shard-size", shard, str(work / f"{tag}-kerashub"),
                        str(work / f"{tag}-back"), "--to", "pt"]))
    return cases


def make_source(ckpt: Checkpoint, src: Path, shard: str | None) -> None:
    if not src.exists():
        print(f"# writing {src.name} ({ckpt.nbytes / 1e9:.2f} GB) ...", flush=True)
        options = {"max_shard_size": irconv_size(shard)} if shard else {}
        irconv.save(ckpt, src, "pt", **options)
        os.sync()
    warm(src)


def irconv_size(text: str) -> int:
    from irconv.formats.sharding import parse_size
    return parse_size(text, unit=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale-gb", type=float, default=4.0, help="size of the scale case in fp32 (0: skip)")
    ap.add_argument("--only", choices=("startup", "bert", "keras", "scale", "llm"), action="append")
    ap.add_argument("--runs", type=int, default=3, help="runs per BERT-base and keras case (median)")
    ap.add_argument("--scale-runs", type=int, default=3,
                    help="runs per scale case (median; on a shared VM one run of a GB case varies by ~30%%)")
    ap.add_argument("--keep", help="work in this directory and keep it (sources are reused)")
    ap.add_argument("--cases", metavar="REGEX",
                    help="only the cases whose label matches (each table's first, its baseline, always runs)")
    args = ap.parse_args()
    global SELECT
    SELECT = re.compile(args.cases) if args.cases else None
    parts = args.only or ["startup", "bert", "keras", "scale", "llm"]
    work = Path(args.keep or tempfile.mkdtemp(prefix="irconv-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    # As pip installs it: bytecode compiled (an editable checkout under PYTHONDONTWRITEBYTECODE
    # would otherwise compile every module at each start, ~0.08 s, where numpy's never is).
    compileall.compile_dir(str(Path(irconv.__file__).parent), quiet=1,
                           rx=re.compile(r"[/\\](\.venv|tests|bench|build)[/\\]"))
    print(f"# python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} cores, "
          f"irconv {irconv.__version__}")
    try:
        if "startup" in parts:
            startup()
        if "bert" in parts:
            ckpt = synthetic_bert(BERT_BASE, 12)
            src = work / "bert-base"
            make_source(ckpt, src, None)
            largest = max(t.nbytes for t in ckpt)
            title = (f"BERT-base: {du(src) / 1e6:,.0f} MB safetensors, largest tensor {largest / 1e6:,.0f} MB "
                     f"(median of {args.runs})")
            table(title, baseline_cases(src, work, "bert", True) + irconv_cases(src, work, "bert"),
                  args.runs, largest, du(src))
        if "keras" in parts:
            keras_case(work, args.runs)
        if "scale" in parts and args.scale_gb > 0:
            per_layer = 4 * (4 * 2048 * 2048 + 2 * 2048 * 8192)
            layers = max(1, int(args.scale_gb * 1e9 // per_layer))
            for dtype_name in ("F32", "BF16"):
                ckpt = synthetic_bert(SCALE, layers, dtype_name)
                src = work / f"scale-{dtype_name.lower()}"
                make_source(ckpt, src, "2GB")
                largest = max(t.nbytes for t in ckpt)
                tag = f"scale-{dtype_name.lower()}"
                targets = ("pt", "pt --bin", "tf1", "tf2") if dtype_name == "F32" else ("pt", "pt --bin", "tf1")
                # (safetensors.numpy cannot load bf16: no naive baseline there)
                cases = (baseline_cases(src, work, tag, False, naive=dtype_name == "F32")
                         + irconv_cases(src, work, tag, targets, shard="1GB"))
                runs = max(1, args.scale_runs)
                table(f"scale, {dtype_name}: {du(src) / 1e9:.2f} GB in {len(list(src.glob('*.safetensors')))} "
                      f"shards, {layers} layers, largest tensor {largest / 1e6:,.0f} MB "
                      f"({f'median of {runs}' if runs > 1 else 'one run each'})", cases, runs, largest, du(src))
                for p in work.glob(f"{tag}-*"):
                    _remove(str(p))
        if "llm" in parts and args.scale_gb > 0:
            h, f = LLAMA["hidden_size"], LLAMA["intermediate_size"]
            layers = max(1, int(args.scale_gb * 1e9 // (4 * (4 * h * h + 3 * h * f))))
            ckpt = synthetic_llama(LLAMA, layers)
            src = work / "llama-f32"
            make_source(ckpt, src, "2GB")
            largest = max(t.nbytes for t in ckpt)
            runs = max(1, args.scale_runs)
            cases = baseline_cases(src, work, "llama", False, naive=False) + llm_cases(src, work, "llama", "1GB")
            table(f"llm, F32: Llama of {du(src) / 1e9:.2f} GB in {len(list(src.glob('*.safetensors')))} shards, "
                  f"{layers} layers, largest tensor {largest / 1e6:,.0f} MB "
                  f"({f'median of {runs}' if runs > 1 else 'one run each'})", cases, runs, largest, du(src))
            for p in work.glob("llama-*"):
                if p != src:
                    _remove(str(p))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
