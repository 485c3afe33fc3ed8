"""Registries, the descriptor engine and layouts, over every registered family and format."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from irconv import EXPORTERS, FAMILIES, IMPORTERS
from irconv.ir import Checkpoint, UnknownNameError, from_array
from irconv.ir.layout import UNIT, Permute, Squeeze, relayout
from irconv.ir.errors import UsageError
from irconv.ir.tensor import Tensor, TensorSpec
from irconv.ir.dtypes import DTYPES
from irconv.registry import Registry


def test_registry_refuses_duplicates_and_lists_known_names():
    reg = Registry("thing")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="twice"):
        reg.add("a", 2)
    with pytest.raises(UnknownNameError, match="known: a"):
        reg.get("b")


def test_every_registered_name_is_reachable():
    for name in IMPORTERS.names():
        assert IMPORTERS.get(name).name == name
    for name in EXPORTERS.names():
        assert EXPORTERS.get(name).name == name
    for fam in FAMILIES:
        assert fam.views, fam.name


def test_the_family_index_is_what_the_modules_declare():
    """models.MODULES says which module holds which families and model_types, so that a
    conversion imports only its family's module: it must be what each module declares, and
    every module of models/ that declares families must be in it."""
    import importlib
    import pkgutil
    import irconv.models as models
    declared = {}
    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"irconv.models.{info.name}")
        if isinstance(getattr(module, "FAMILIES", None), list):
            declared[info.name] = {f.name: f.model_types for f in module.FAMILIES}
    assert declared == models.MODULES
    assert FAMILIES.names() == sorted(f.name for f in FAMILIES)
    for module, fams in models.MODULES.items():
        for name, types in fams.items():
            for model_type in types:
                assert models.family_for_model_type(model_type) is FAMILIES.get(name)


def test_a_conversion_imports_only_its_familys_module(tmp_path):
    """A config's model_type (or a stream's family) names the family: the other families'
    modules are not imported (they were ~30 ms of every start); an unknown name, listing and
    scoring still see them all."""
    import subprocess
    import sys
    from pathlib import Path
    tiny = Path(__file__).resolve().parent.parent / "examples" / "tiny-bert"
    code = ("import sys, irconv.cli\n"
            "sys.argv = ['irconv', 'convert', '-q', sys.argv[1], sys.argv[2], '--to', 'tf2']\n"
            "try:\n    irconv.cli.run()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "from irconv.models import FAMILIES\n"
            "print(sorted(FAMILIES._items), 'irconv.models.llama' in sys.modules)\n"
            "FAMILIES.get('BERT')\n"
            "print(len(FAMILIES._items))")
    out = subprocess.run([sys.executable, "-c", code, str(tiny), str(tmp_path / "o")], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[0] == "['bert'] False", out
    assert int(out[1]) == sum(len(f) for f in __import__("irconv.models").models.MODULES.values())
    assert (tmp_path / "o" / "tf_model.h5").is_file()


def full_canonical_names(fam, n_layers, view=None, always_tied=True):
    """Every canonical name of `fam` with every optional part, for `n_layers` repeats,
    layer-major (the order importers produce); with `view`, only the names it spells."""
    fv = fam.view(view or fam.views[0])
    entries = fv.entries if view else fv.entries + fv.implicit
    names = []
    for block in fam.blocks:
        own = [e for e in entries if e.block is block
               and (always_tied or not (e.param.tied_to and e.param.tie_key is None))]
        own.sort(key=lambda e: [p for p in block.params].index(e.param))
        for idx in block.indices({key: n_layers for _, key in block.repeats}):
            names += [e.canonical.format(**idx) for e in own]
    return names


@pytest.mark.parametrize("fam", list(FAMILIES), ids=lambda f: f.name)
@pytest.mark.parametrize("n_layers", [1, 2, 3, 12, 25])
def test_views_are_bijective(fam, n_layers):
    everything = full_canonical_names(fam, n_layers)
    assert len(set(everything)) == len(everything)
    for view in fam.views:
        fv = fam.view(view)
        assert all(e.param.tied_to or e.param.derive for e in fv.implicit), \
            "only tied tensors and derived buffers may go unnamed"
        canon = full_canonical_names(fam, n_layers, view)
        for prefix in ["", *fv.prefixes]:
            raw = [fv.raw_name(c, prefix) for c in canon]
            assert None not in raw
            # Parts a view stores stacked in one tensor (phi3's qkv_proj) share its name, and
            # only they do; the name reads back as the first part.
            first = {c: (fv.stacked(c) or (None, [c]))[1][0] for c in canon}
            assert len(set(raw)) == len(set(first.values())), f"{view}: two canonical names share a raw name"
            for c, r in zip(canon, raw):
                hit = fv.canonical_name(r, prefix)
                assert hit is not None and hit[1] == first[c], (view, c, r)


@pytest.mark.parametrize("fam", list(FAMILIES), ids=lambda f: f.name)
def test_view_round_trip_of_random_tensors(fam):
    """canonical -> view -> canonical keeps names, axes and bytes for every view."""
    rng = np.random.default_rng(0)
    tied_params = {id(e.param) for v in fam.views for e in fam.view(v).entries + fam.view(v).implicit
                   if e.param.tied_to}
    entry_of = {}
    for e in fam.view(fam.views[0]).entries + fam.view(fam.views[0]).implicit:
        for idx in e.block.indices({key: 2 for _, key in e.block.repeats}):
            entry_of[e.canonical.format(**idx)] = e
    names = [n for n in full_canonical_names(fam, 2) if id(entry_of[n].param) not in tied_params]
    tensors = {}
    for name in names:
        axes = entry_of[name].param.axes
        shape = tuple(1 if a == UNIT else int(x) for a, x in zip(axes, rng.integers(1, 5, len(axes))))
        tensors[name] = from_array(name, rng.standard_normal(shape).astype(np.float32), axes)
    config = {key: 2 for block in fam.blocks for _, key in block.repeats}
    config["architectures"] = []
    # A view's transforms read the config (Meta's rotary rows: a head count): one head, of two
    # rows in every tensor they move (so that q and k agree on the head width too).
    moved = [n for n in names if any(s.transform for s in entry_of[n].param.spellings.values())]
    for name in moved:
        shape = (2, *tensors[name].shape[1:])
        tensors[name] = from_array(name, rng.standard_normal(shape).astype(np.float32), entry_of[name].param.axes)
    if moved:
        config["num_attention_heads"] = 1
    groups = {tuple(s[1]): s[0] for v in fam.views for s in map(fam.view(v).stacked, names) if s}
    if any(e.param.derive for e in entry_of.values()) or groups:
        # Derived buffers are computed from config fields: give them the ones the shapes imply.
        config = {**fam.infer_config({n: t.spec for n, t in tensors.items()}, config)[0], **config}
    for parts, f in groups.items():
        # A stacked tensor's parts: the extents the family's sizes give for this config along
        # the stacking axis (a fixed point of sizes, which may read the total), the first
        # part's on every other axis.
        axes = entry_of[parts[0]].param.axes
        axis = axes.index(f.axis)
        total = sum(tensors[n].shape[axis] for n in parts)
        extents = f.sizes(config, sum(f.sizes(config, total)))
        shape = list(tensors[parts[0]].shape)
        for name, extent in zip(parts, extents):
            shape[axis] = extent
            tensors[name] = from_array(name, rng.standard_normal(shape).astype(np.float32), axes)
    for view in fam.views:
        fv = fam.view(view)
        # Optional blocks a framework never has (fairseq RoBERTa's pooler) stay out of its view.
        own = {n: t for n, t in tensors.items() if view in entry_of[n].block.prefixes}
        raw, _ = fv.from_canonical(Checkpoint(fam.name, config, own), "test")
        back = fv.to_canonical(raw, config, "test")
        assert list(back.tensors) == list(own)
        # A buffer the view does not store comes back recomputed, not with the random bytes.
        recomputed = {n for n in names if entry_of[n].param.derive and view not in entry_of[n].param.spellings}
        for name, t in back.tensors.items():
            assert t.axes == tensors[name].axes
            if name not in recomputed:
                assert t.load().tobytes() == tensors[name].load().tobytes(), name


axes_names = st.lists(st.sampled_from("abcdefg"), min_size=0, max_size=5, unique=True)


@settings(max_examples=100, deadline=None)
@given(axes_names, st.data())
def test_relayout_is_computed_from_names_and_inverts(axes, data):
    perm = tuple(data.draw(st.permutations(axes)))
    shape = tuple(data.draw(st.integers(1, 4)) for _ in axes)
    arr = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    t = relayout(tuple(axes), perm)
    moved = t.apply(arr)
    assert t.spec(shape, tuple(axes)) == (moved.shape, perm)
    for i, name in enumerate(perm):
        assert moved.shape[i] == shape[axes.index(name)]
    assert np.array_equal(t.inverse().apply(moved), arr)


def test_squeeze_inverts_and_refuses_wrong_sizes():
    arr = np.arange(6, dtype=np.float32).reshape(1, 6)
    sq = Squeeze(0, "one")
    assert sq.spec((1, 6), ("one", "c")) == ((6,), ("c",))
    assert np.array_equal(sq.inverse().apply(sq.apply(arr)), arr)
    with pytest.raises(ValueError):
        sq.spec((2, 3), None)
    with pytest.raises(ValueError):
        Permute(("a", "b"), ("a", "c"))


def test_dtype_table_matches_torch_and_numpy():
    torch = pytest.importorskip("torch")
    for d in DTYPES.values():
        tdt = getattr(torch, d.torch)
        assert torch.empty((), dtype=tdt).element_size() == d.itemsize, d
        if d.torch_storage:
            assert getattr(torch, d.torch_storage).dtype == tdt, d
    assert TensorSpec("x", DTYPES["BF16"], (2, 3)).nbytes == 12


@pytest.mark.parametrize("shape", [(2048, 600), (130, 4099), (64, 64 * 300 + 1), (1, 70000)])
@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_tiled_transpose_is_the_transpose(shape, dtype):
    """The strip-wise copy large 2-D relayouts take (ir/layout.transpose_2d, what Permute uses from
    TILED_FROM bytes) equals numpy's transpose bit for bit, edges that are no multiple of the
    strip included."""
    from irconv.ir.layout import Permute, transpose_2d
    a = (np.random.default_rng(0).standard_normal(shape) * 100).astype(dtype)
    want = np.ascontiguousarray(a.T)
    for got in (transpose_2d(a), Permute(("out", "in"), ("in", "out")).apply(a)):
        assert got.flags.c_contiguous and got.shape == want.shape and got.tobytes() == want.tobytes()


def _names_of(fv) -> list[str]:
    """Raw names a view knows (each template with its indices 0 and 3), under each prefix it
    knows and none, with near misses (a wrong number of parts, a stray suffix) and junk."""
    import re
    names = []
    for entry in fv.entries:
        for i in (0, 3):
            raw = re.sub(r"\{\w+\}", str(i), entry.raw)
            names += [raw, raw + ".x", f"{raw}{fv.sep}7", *(p + raw for p in fv.prefixes)]
    return names + [f"junk.{i}.weight" for i in range(50)] + ["", ".", "0", "a.b"]


@pytest.mark.parametrize("family", [f.name for f in FAMILIES])
def test_family_detection_scores_what_canonical_name_places(family):
    """placed_count (the fast score of family detection, a dict lookup for a name that cannot
    fit) counts exactly the names canonical_name places, in every view and under every prefix."""
    fam = FAMILIES.get(family)
    for view in fam.views:
        fv = fam.view(view)
        names = _names_of(fv)
        for prefix in ("", *fv.prefixes):
            want = sum(1 for n in names if fv.canonical_name(n, prefix))
            assert fv.placed_count(names, prefix) == want, (view, prefix)
            assert want > 0


def test_names_no_family_can_place_are_never_matched_against_a_pattern(monkeypatch):
    """A file of 48k names that fit nothing was scored at ~0.1 ms a name a family view (5 s);
    now such a name costs a dict lookup per view, and each view is scored once."""
    from irconv.importers import base, pt
    from irconv.models import views
    calls = {"canonical": 0, "fit": 0}
    real_canonical, real_fit = views.FamilyView.canonical_name, base.fit_scores

    def counting(self, raw, prefix):
        calls["canonical"] += 1
        return real_canonical(self, raw, prefix)

    def fit(names, view):
        calls["fit"] += 1
        return real_fit(names, view)
    monkeypatch.setattr(views.FamilyView, "canonical_name", counting)
    monkeypatch.setattr(pt, "fit_scores", fit)
    monkeypatch.setattr(base, "fit_scores", fit)
    raw = [Tensor(TensorSpec(f"junk.{i}.weight", DTYPES["F32"], (0,)), lambda: None) for i in range(2000)]
    with pytest.raises(UsageError, match="cannot tell which model family"):
        pt.resolve_view(None, None, raw, "model.safetensors")
    assert calls["canonical"] == 0
    assert calls["fit"] == len(pt.VIEWS)
