"""Benchmark: irconv conversions of a BERT-base-shaped checkpoint beside `cp` of the same bytes.

    python bench/run.py [--layers 12] [--keep DIR]      (irconv installed: `make bench`)

A synthetic checkpoint (random data, the real shapes of bert-base-uncased) is written as
pytorch_model.bin, then each case runs in a child process; wall time and the child's peak
RSS are reported, each as a ratio to the `cp` baseline measured in the same run. Peak RSS
is also shown against the model size and the largest tensor: streaming means it tracks
the latter. Numbers, not asserts: compare ratios across commits.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import irconv  # noqa: E402
from irconv.ir import Checkpoint, Tensor, TensorSpec  # noqa: E402
from irconv.ir.dtypes import DTYPES  # noqa: E402

BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)


def synthetic_bert(layers: int) -> Checkpoint:
    """A BertForPreTraining of bert-base shapes whose tensors are generated on demand."""
    c = dict(BERT_BASE, num_hidden_layers=layers, model_type="bert", architectures=["BertForPreTraining"])
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
    for n, (name, shape) in enumerate(shapes.items()):
        ax = ("rows", "hidden") if name.startswith("embeddings.") and len(shape) == 2 else axes[len(shape)]
        if name.endswith("norm.weight") or name.endswith("norm.bias"):
            ax = ("hidden",)
        if name == "heads.mlm.bias":
            ax = ("rows",)
        spec = TensorSpec(name, DTYPES["F32"], shape, ax)
        tensors[name] = Tensor(spec, lambda s=shape, n=n: np.random.default_rng(n).standard_normal(s, np.float32))
    aliases = {"heads.mlm.decoder.weight": "embeddings.word.weight", "heads.mlm.decoder.bias": "heads.mlm.bias"}
    return Checkpoint("bert", c, tensors, aliases)


def measure(*stages: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes, the largest process of a pipeline), via measure.py."""
    argv = [sys.executable, str(Path(__file__).with_name("measure.py"))]
    for n, stage in enumerate(stages):
        argv += (["|"] if n else []) + stage
    result = json.loads(subprocess.run(argv, capture_output=True, check=True).stdout)
    if not result["ok"]:
        raise SystemExit(f"benchmark case failed: {' | '.join(map(' '.join, stages))}")
    return result["wall"], result["rss"]


def startup(runs: int = 5) -> None:
    """Start-up beside the interpreter importing numpy alone (medians of `runs`): a command
    that reads no checkpoint should cost little more than that."""
    py = [sys.executable]
    cases = [("python -c 'import numpy' (baseline)", py + ["-c", "import numpy"]),
             ("irconv --help", py + ["-m", "irconv", "--help"]),
             ("irconv formats", py + ["-m", "irconv", "formats"]),
             ("irconv convert (argument error)", py + ["-m", "irconv", "convert", "a", "b"])]
    print(f"{'start-up':34} {'seconds':>8} {'x numpy':>8}")
    base = None
    for label, argv in cases:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        wall = statistics.median(times)
        base = base or wall
        print(f"{label:34} {wall:8.2f} {wall / base:8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--keep", help="work in this directory and keep it")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="irconv-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ckpt = synthetic_bert(args.layers)
        src = work / "src"
        if not src.exists():
            irconv.save(ckpt, src, "pt", bin=True)
        weights = src / "pytorch_model.bin"
        size = weights.stat().st_size
        largest = max(t.nbytes for t in ckpt)
        subprocess.run(["cat", str(weights)], stdout=subprocess.DEVNULL, check=True)   # warm the page cache
        py = [sys.executable, "-m", "irconv"]
        env_note = f"python {sys.version.split()[0]}, numpy {np.__version__}"
        cases = [
            ("cp (baseline)", ["cp", str(weights), str(work / "copy.bin")]),
            ("convert pt -> pt (safetensors)", py + ["convert", "-q", str(src), str(work / "o1"), "--to", "pt"]),
            ("convert pt -> pt --bin", py + ["convert", "-q", str(src), str(work / "o2"), "--to", "pt", "--bin"]),
            ("import pt | export pt (pipe)", py + ["import", "-q", "pt", str(src)],
             py + ["export", "-q", "pt", str(work / "o3")]),
            ("convert pt -> tf1", py + ["convert", "-q", str(src), str(work / "o4"), "--to", "tf1"]),
            ("convert pt -> tf2", py + ["convert", "-q", str(src), str(work / "o5"), "--to", "tf2"]),
        ]
        startup()
        print(f"# BERT-base shapes, {args.layers} layers: {size / 1e6:,.0f} MB checkpoint, "
              f"largest tensor {largest / 1e6:,.0f} MB ({env_note})")
        print(f"{'case':34} {'seconds':>8} {'x cp':>6} {'peak RSS MB':>12} {'x cp':>6} "
              f"{'RSS/model':>9} {'RSS/largest':>11}")
        base = None
        for label, *stages in cases:
            wall, rss = measure(*stages)
            base = base or (wall, rss)
            print(f"{label:34} {wall:8.2f} {wall / base[0]:6.1f} {rss / 1e6:12.0f} {rss / base[1]:6.1f} "
                  f"{rss / size:9.2f} {rss / largest:11.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
