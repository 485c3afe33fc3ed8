"""Round trips as properties over the whole format graph (tests/formatgraph.py): a drawn model
of a drawn family (its class, depth, tie and vocabulary drawn; dtype F32, F16 or BF16 with
NaN, -0.0, infinities and subnormals) walked through 1-4 hops of the formats that write that
family and the IR stream (sharded outputs and --bin drawn too) comes back bit for bit, with its
names, axes, ties and config; a format that cannot hold it refuses with its documented error
and writes nothing; framework readers (safetensors, torch.load(weights_only=True), h5py, TF's
checkpoint reader) find the bytes irconv reads in every file written. A new family or format
is drawn with no new test code.

`make test` draws EXAMPLES walks; `make test-long` (IRCONV_TEST_LONG=1) LONG_EXAMPLES of them
with a fixed seed set (derandomized)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, note, settings, strategies as st

import formatgraph as fg
import irconv
from conftest import run_pipe
from irconv import EXPORTERS, FAMILIES, IrconvError

pytestmark = pytest.mark.property

LONG = os.environ.get("IRCONV_TEST_LONG") == "1"
EXAMPLES, LONG_EXAMPLES = 200, 5000
FAMILY_NAMES = fg.generated_families()
PER_FAMILY = settings(max_examples=max(4, -(-(LONG_EXAMPLES if LONG else EXAMPLES) // len(FAMILY_NAMES))),
                      deadline=None, derandomize=LONG, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def variants(draw, family: str | None = None):
    family = family or draw(st.sampled_from(FAMILY_NAMES))
    fam = FAMILIES.get(family)
    return fg.Variant(family, draw(st.sampled_from(sorted(fam.architectures))), shallow=draw(st.booleans()),
                      untied=fg.tieable(family) and draw(st.booleans()), wider_vocab=draw(st.booleans()))


def hops(family: str, with_stream: bool = True):
    formats = fg.writers(family) + ([fg.STREAM] if with_stream else [])

    @st.composite
    def hop(draw):
        fmt = draw(st.sampled_from(formats))
        if fmt == fg.STREAM:
            return fg.Hop(fmt)
        return fg.Hop(fmt, bin=EXPORTERS.get(fmt).supports_bin and draw(st.booleans()),
                      shards=draw(st.sampled_from([1, 1, 3])))
    return hop()


@st.composite
def models(draw, family: str | None = None):
    variant = draw(variants(family))
    ckpt = fg.checkpoint(variant, draw(st.sampled_from(fg.FLOATS)), draw(st.integers(0, 2**32 - 1)),
                         specials=draw(st.booleans()))
    assume(ckpt is not None)             # a variant transformers cannot build
    return variant, ckpt


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_walks_through_the_format_graph_are_bit_exact(family, tmp_path):
    """EXAMPLES walks in all (LONG_EXAMPLES in test-long), shared out over the families: each
    family is walked every run, and the families run in parallel under xdist."""
    @PER_FAMILY
    @given(drawn=models(family), data=st.data())
    def walks(drawn, data):
        variant, ckpt = drawn
        path = data.draw(st.lists(hops(variant.family), min_size=1, max_size=4), label="path")
        note(f"{variant} {sorted({t.dtype.name for t in ckpt.tensors.values()})}")
        with tempfile.TemporaryDirectory(dir=tmp_path) as root:
            note(fg.walk(ckpt, path, Path(root))[0])
    walks()


def barest(family: str) -> str:
    """The family's class with the fewest heads (its bare model), which every format that
    writes the family can hold (a keras-hub Backbone holds no MLM head)."""
    archs = FAMILIES.get(family).architectures
    return min(sorted(archs), key=lambda arch: len(archs[arch]))


def holds_barest(family: str, *fmts: str) -> bool:
    """Whether every one of `fmts` writes the family's bare class as the zoo configures it
    (a view's declared limit may refuse that config: BartBackbone one layer count for both stacks)."""
    fam, tpl = FAMILIES.get(family), fg.template(fg.Variant(family, barest(family)))
    if tpl is None:
        return False
    limits = [fam.view_limits.get(EXPORTERS.get(fmt).view_for(fam)) for fmt in fmts]
    return not any(limit and limit(tpl.config) for limit in limits)


def first_family_written_by(fmt: str) -> str:
    return next(f for f in FAMILY_NAMES if fmt in fg.writers(f) and holds_barest(f, fmt))


# Every way a format writes its weights, each read once per run by the framework's own reader.
KINDS = [(fmt, bin_, shards) for fmt in EXPORTERS.names() if fmt not in fg.NOT_WALKED for bin_ in ([False, True] if EXPORTERS.get(fmt).supports_bin
                                                                     else [False]) for shards in (1, 3)]


@pytest.mark.parametrize("fmt,bin_,shards", KINDS, ids=[f"{f}{'-bin' * b}{'-sharded' * (s > 1)}" for f, b, s in KINDS])
def test_every_output_kind_is_read_by_its_framework(fmt, bin_, shards, tmp_path):
    family = first_family_written_by(fmt)
    variant = fg.Variant(family, barest(family))
    ckpt = fg.checkpoint(variant, "F32", seed=5, specials=True)
    done, readers = fg.walk(ckpt, [fg.Hop(fmt, bin_, shards)], tmp_path, read_all=True)
    assert readers and "refused" not in done[0], (done, readers)


def first_family_written_by_both(a: str, b: str) -> str | None:
    return next((f for f in FAMILY_NAMES if a in fg.writers(f) and b in fg.writers(f) and holds_barest(f, a, b)), None)


# Every edge of the graph (a format's output read and written in another), whatever the walks drew.
WALKED = [f for f in EXPORTERS.names() if f not in fg.NOT_WALKED]
PAIRS = [(a, b) for a in WALKED for b in WALKED if first_family_written_by_both(a, b)]


@pytest.mark.parametrize("first,second", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_every_format_pair_is_read_by_the_frameworks(first, second, tmp_path):
    family = first_family_written_by_both(first, second)
    variant = fg.Variant(family, barest(family))
    ckpt = fg.checkpoint(variant, "F16", seed=6, specials=True)
    done, readers = fg.walk(ckpt, [fg.Hop(first), fg.Hop(second)], tmp_path, read_all=True)
    assert readers and not any("refused" in d for d in done), (done, readers)


@settings(max_examples=40 if LONG else 4, deadline=None, derandomize=LONG,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.filter_too_much])
@given(drawn=models(), data=st.data())
def test_the_real_pipe_between_two_formats(drawn, data, tmp_path):
    """`irconv import A SRC | irconv export B OUT [--bin] [--max-shard-size N]` as processes,
    from a file irconv wrote in A: OUT is the drawn model, bit for bit."""
    variant, ckpt = drawn
    first = data.draw(hops(variant.family, with_stream=False), label="source")
    second = data.draw(hops(variant.family, with_stream=False), label="target")
    with tempfile.TemporaryDirectory(dir=tmp_path) as root:
        root = Path(root)
        try:
            fg.write(ckpt, first, root / "src")
        except IrconvError as exc:
            assume(fg.refusal(exc, ckpt, first) is None)   # refusals are the in-process walk's to check
            raise
        args = ["--bin"] if second.bin else []
        size = fg.shard_size(ckpt, second.shards)
        args += ["--max-shard-size", str(size)] if size else []
        # The importer that detects what A wrote (tf1 and tf2 write a Keras-only family in
        # Keras names, which the keras importer reads).
        left_rc, left_err, right = run_pipe(["import", irconv.detect_format(root / "src"), root / "src"],
                                            ["export", second.format, root / "out", *args])
        if right.returncode:
            # (the import side then stops at the closed pipe, saying so)
            err = right.stderr.decode()
            assert right.returncode == 2 and err.startswith("irconv: error: ") and len(err.strip().splitlines()) == 1, err
            assert not (root / "out").exists(), err
            assume(False)
        assert left_rc == 0, left_err.decode()
        got = irconv.load(root / "out")
        config = fg.kept_config(fg.kept_config(ckpt.config, variant.family, first.format), variant.family,
                                second.format)
        # a preset on the way keeps what the in-process walk expects of it (BART's position rows
        # 0-1 zeroed, a bare decoder's head tied)
        preset = first if first.format == "kerashub" else second
        want = fg.as_read_from(fg.kept_by_preset(ckpt) if preset.format == "kerashub" else ckpt, got, preset)
        fg.assert_same(want, got, config, f"{first} | {second}")


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_family_is_drawn_in_every_class(family):
    """Each class of each family builds at zoo's size, so the walks draw it (a variant that
    transformers refuses is only ever one of the drawn depths or ties)."""
    assert fg.writers(family)
    for arch in sorted(FAMILIES.get(family).architectures):
        tpl = fg.template(fg.Variant(family, arch))
        assert tpl is not None and tpl.specs, arch
        assert tpl.config["architectures"] == [arch]
