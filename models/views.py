"""A family's names in one framework's view: the mapping of raw names to canonical ones and back.

A FamilyView compiles a family's templates for one view ("pt", "tf2", "tf1", ...) into
matchers (models/engine.py's _Matcher), then maps a file's raw tensors to the canonical IR
(to_canonical: every tensor placed, stacked ones split, relayouts attached, the config
checked against the shapes) and the IR back to raw names (from_canonical). A ConfigView is a
ConfigFamily's: its names follow from the config. Family.view() makes them.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from ..ir.checkpoint import Checkpoint, architectures_problem
from ..ir.errors import FormatError, MappingError
from ..ir.layout import UNIT, Axes, Split, relayout
from ..ir.tensor import Tensor, from_array, read_once_for
from .engine import (VIEW_STYLES, Block, Fused, _Entry, _join, _Matcher, config_contradictions,
                     repeat_count_problems)

if TYPE_CHECKING:
    from .engine import ConfigFamily, Family


class FamilyView:
    def __init__(self, family: Family, view: str):
        missing = family.unspelled(view)
        if missing:
            raise ValueError(f"family {family.name!r} declares view {view!r} but does not spell "
                             + ", ".join(missing))
        self.family, self.view = family, view
        self.sep = VIEW_STYLES[view].sep
        self.base_prefix = family.base_prefix.get(view, "")
        # Longest first, so 'span_predictor.encoder.bert_model.' wins over a shorter match.
        self.prefixes = sorted({self.base_prefix, *family.arch_prefixes.get(view, {}).values()} - {""},
                               key=len, reverse=True)
        self.entries: list[_Entry] = []           # params this view names
        self.implicit: list[_Entry] = []          # tied params this view never stores
        self._raw = _Matcher()
        self._canonical = _Matcher()
        # A part of a stacked tensor -> (its Fused, the entries of all its parts in order).
        self._stacked: dict[str, tuple[Fused, tuple[_Entry, ...]]] = {}      # by canonical template
        for block in family.blocks:
            if view not in block.prefixes:
                continue                      # an optional part this framework never has
            by_name = {p.name: p for p in block.params}
            for f in block.fused.get(view, ()):
                raw = _join(block.prefixes[view], f.template, self.sep)
                parts = tuple(_Entry(block, by_name[n], _join(block.name, n, "."), raw, f.axes or by_name[n].axes)
                              for n in f.parts)
                self._raw.add(raw, parts[0])
                for part in parts:
                    self._stacked[part.canonical] = (f, parts)
            for p in block.params:
                if _join(block.name, p.name, ".") in self._stacked:
                    f, parts = self._stacked[_join(block.name, p.name, ".")]
                    part = next(e for e in parts if e.param is p)
                    self.entries.append(part)
                    self._canonical.add(part.canonical, part)
                    continue
                if view not in p.spellings:
                    self.implicit.append(_Entry(block, p, _join(block.name, p.name, "."), "", p.axes))
                    self._canonical.add(_join(block.name, p.name, "."), self.implicit[-1])
                    continue
                spelling = p.spellings[view]
                entry = _Entry(block, p, _join(block.name, p.name, "."),
                               _join(block.prefixes[view], spelling.template, self.sep),
                               spelling.axes or p.axes)
                self.entries.append(entry)
                self._raw.add(entry.raw, entry)
                self._canonical.add(entry.canonical, entry)
        self._ignore = [re.compile(p) for p in family.ignore.get(view, ())]
        self._duplicates = [(re.compile(p), twin) for p, twin in family.duplicates.get(view, ())]

    # ---- names

    def raw_name(self, canonical: str, prefix: str) -> str | None:
        """The raw name of a canonical one, with `prefix` in front of base-model names."""
        hit = self._canonical.match(canonical)
        if hit is None:
            return None
        entry, idx = hit
        if not entry.raw:
            return None       # a tie this view keeps implicitly
        raw = entry.raw.format(**idx)
        return prefix + raw if entry.block.base else raw

    def param_axes(self, canonical: str) -> Axes | None:
        """The axes the family declares for a canonical tensor name (None: not one of its names,
        or one without declared axes)."""
        hit = self._canonical.match(canonical)
        return hit[0].param.axes if hit else None

    def placed_count(self, names: Iterable[str], prefix: str) -> int:
        """How many of `names` canonical_name(name, prefix) places (what family detection
        scores), at a dict lookup for each name that cannot fit: a file of 48k names is scored
        by every family view in well under a second."""
        could = self._raw.could_match
        return sum(1 for name in names
                   if (could(name) or (prefix and name.startswith(prefix)))
                   and self.canonical_name(name, prefix))

    def canonical_name(self, raw: str, prefix: str) -> tuple[_Entry, str, dict] | None:
        """(entry, canonical name, indices) of a raw name, or None if it does not fit."""
        if prefix and raw.startswith(prefix):
            hit = self._raw.match(raw[len(prefix):])
            if hit is not None and not hit[0].block.base:
                hit = None
        else:
            hit = self._raw.match(raw)
            if hit is not None and prefix and hit[0].block.base:
                hit = None
        if hit is None:
            return None
        entry, idx = hit
        return entry, entry.canonical.format(**idx), idx

    def stacked(self, canonical: str) -> tuple[Fused, list[str]] | None:
        """(the Fused, all its parts' canonical names) when this view stores `canonical` stacked
        with others in one tensor, else None."""
        hit = self._canonical.match(canonical)
        if hit is None or hit[0].canonical not in self._stacked:
            return None
        f, entries = self._stacked[hit[0].canonical]
        return f, [e.canonical.format(**hit[1]) for e in entries]

    def block_of(self, canonical: str) -> Block | None:
        hit = self._canonical.match(canonical)
        return hit[0].block if hit else None

    def detect_prefix(self, raw_names: Iterable[str]) -> str:
        """The base prefix these names use: the known one most of them start with, or ''."""
        raw_names = list(raw_names)
        best, best_n = "", 0
        for prefix in self.prefixes:
            n = sum(1 for r in raw_names if r.startswith(prefix))
            if n > best_n:
                best, best_n = prefix, n
        return best

    def export_prefix(self, ckpt: Checkpoint) -> str:
        archs = ckpt.config.get("architectures") or []
        by_arch = self.family.arch_prefixes.get(self.view, {})
        return by_arch.get(archs[0], self.base_prefix) if archs else self.base_prefix

    def is_ignored(self, raw: str) -> bool:
        return any(p.search(raw) for p in self._ignore)

    def copies(self, names: Iterable[str], present: Mapping[str, Tensor]) -> dict[str, str]:
        """raw name -> the raw name it is a declared copy of, for those of `names` whose twin
        is in `present` with the same dtype and shape (else it is no copy: it stays unplaced)."""
        out = {}
        for name in names:
            for pattern, twin in self._duplicates:
                if pattern.fullmatch(name):
                    target = pattern.sub(twin, name)
                    if target != name and target in present and \
                            (present[target].dtype, present[target].shape) == (present[name].dtype, present[name].shape):
                        out[name] = target
                        break
        return out

    # ---- import

    def to_canonical(self, raw_tensors: list[Tensor], config: dict | None, where: str,
                     tied_hint: Callable[[str, str], bool] | None = None) -> Checkpoint:
        """Place every raw tensor or fail with all problems at once.

        `config` may be None (a bare weights file): counts then come from the names and the
        config is inferred from shapes. `tied_hint(raw_a, raw_b)` says whether two raw
        tensors share storage (used when the config does not say whether heads are tied)."""
        fam = self.family
        problem = architectures_problem(config)
        if problem:
            raise FormatError(problem, path=where)
        prefix = self.detect_prefix(t.name for t in raw_tensors)
        placed: dict[str, tuple[_Entry, Tensor]] = {}
        stacked: dict[str, tuple[tuple[Fused, tuple[_Entry, ...]], Tensor, dict]] = {}   # first part -> ...
        unplaced, skipped, problems = [], [], []
        max_index: dict[str, int] = {}
        for t in raw_tensors:
            hit = self.canonical_name(t.name, prefix)
            if hit is None:
                (skipped if self.is_ignored(t.name) else unplaced).append(t.name)
                continue
            entry, canonical, idx = hit
            if canonical in placed:
                problems.append(f"{t.name!r} and {placed[canonical][1].name!r} both map to {canonical!r}")
                continue
            if len(t.shape) != len(entry.raw_axes) or any(
                    a == UNIT and n != 1 for a, n in zip(entry.raw_axes, t.shape)):
                problems.append(f"{t.name!r} has shape {list(t.shape)}, expected {len(entry.raw_axes)} axes "
                                f"{entry.raw_axes}" + (" (a 'unit' axis has size 1)" if UNIT in entry.raw_axes else ""))
                continue
            for field_name, key in entry.block.repeats:
                n = idx[field_name] - entry.block.first.get(field_name, 0)
                if n < 0:
                    problems.append(f"{t.name!r}: index {idx[field_name]} of {key!r} counts from "
                                    f"{entry.block.first[field_name]}")
                max_index[key] = max(max_index.get(key, -1), n)
            if entry.canonical in self._stacked:
                # Named by its first part; split below, once the config gives the extents.
                stacked[canonical] = (self._stacked[entry.canonical], t, idx)
                continue
            placed[canonical] = (entry, t)

        # Every part of a stacked tensor counts as placed (it is split below).
        parts_of = {entry.canonical.format(**idx): first
                    for first, ((_, entries), _, idx) in stacked.items() for entry in entries}
        by_name = {t.name: t for t in raw_tensors}
        copy_of = self.copies(unplaced, by_name)
        unplaced = [name for name in unplaced if name not in copy_of]
        skipped += list(copy_of)
        counts = {key: n + 1 for key, n in max_index.items()}
        if config is not None:
            problems += repeat_count_problems(fam, config, counts)
        roles = {e.block.role for e, _ in placed.values() if e.block.role}
        # A head made only of ties (GPT-2's lm_head is the word embeddings) leaves no tensor
        # of its own, so the config's class says whether the model has it. With no config, a
        # base prefix that only head classes use (GPT2Model's keys have none) says it.
        archs = (config or {}).get("architectures") or [None]
        implied = fam.architectures.get(archs[0], frozenset())
        known = [a for a in archs if a in fam.architectures]
        if config is not None and known:
            # A config naming a class without some of the file's heads would have them written
            # under that class, whose loader reports them unexpected: say so instead.
            telling = frozenset().union(*fam.architectures.values())     # roles some class names
            beyond = (roles & telling) - frozenset().union(*(fam.architectures[a] for a in known))
            if beyond:
                fits = fam.architecture_for(roles)
                heads = sorted({t.name for e, t in placed.values() if e.block.role in beyond})
                problems.append(f"config.json architectures {known} has no {', '.join(sorted(beyond))} part, but the "
                                f"file holds {', '.join(map(repr, heads[:3]))}" + (" ..." if len(heads) > 3 else "")
                                + (f"; a class that has them: {fits}" if fits else ""))
        if config is None and prefix and prefix == self.base_prefix and fam.arch_prefixes.get(self.view):
            implied = frozenset().union(*fam.architectures.values())
        tie_only = {b.role for b in fam.blocks if b.role in implied and all(p.tied_to for p in b.params)}
        if config is None and fam.architecture_for(roles | tie_only) is None and fam.architecture_for(roles):
            tie_only = set()      # the heads present make a class without them: a classifier, no LM
        roles |= tie_only

        # The tie decision: the config's flag when there is a config, else shared storage.
        def tied(entry: _Entry, canonical: str) -> bool:
            if entry.param.tied_to is None:
                return False
            if entry.param.tie_key is None or not entry.raw:
                return True
            if config is not None:
                flag = config.get(entry.param.tie_key, fam.tie_default)
                if isinstance(flag, (list, tuple)):
                    # One flag per index of the block's innermost repeat (TransfoXL's tie_projs).
                    index = self._canonical.match(canonical)[1][entry.block.repeats[-1][0]]
                    flag = index < len(flag) and flag[index]
                return bool(flag)
            if canonical in placed and tied_hint is not None:
                target = self._expand(entry.param.tied_to, canonical, entry)
                return target in placed and tied_hint(placed[canonical][1].name, placed[target][1].name)
            return canonical not in placed

        expected, aliases = [], {}
        tied_copies: dict[str, tuple[_Entry, Tensor]] = {}   # a tied name the file also stored
        for block in fam.blocks:
            if block.role and block.role not in roles:
                continue
            # Layer-major order: all of layer 0, then layer 1, ... as the frameworks list them.
            own = [e for e in self.entries + self.implicit if e.block is block]
            own.sort(key=lambda e: block.params.index(e.param))
            names = [(entry, entry.canonical.format(**idx)) for idx in block.indices(counts) for entry in own]
            for entry, canonical in names:
                if tied(entry, canonical):
                    aliases[canonical] = self._expand(entry.param.tied_to, canonical, entry)
                    if canonical in placed:
                        tied_copies[canonical] = placed.pop(canonical)
                        skipped.append(tied_copies[canonical][1].name)
                else:
                    expected.append(canonical)
        # Buffers the file does not hold (this view never stores them, or this file left out
        # one it may store) are computed from the config once it is known.
        derived = {c: e for e, c in ((self._canonical.match(c)[0], c) for c in expected if c not in placed)
                   if e.param.derive is not None}
        missing = [c for c in expected if c not in placed and c not in derived and c not in parts_of]
        extra = [c for c in [*placed, *parts_of] if c not in expected]
        if unplaced or missing or problems or extra:
            parts = []
            if unplaced:
                parts.append(f"{len(unplaced)} tensor(s) not in the {fam.name} {self.view!r} view: "
                             + ", ".join(map(repr, unplaced[:8])) + (" ..." if len(unplaced) > 8 else ""))
            if missing:
                raws = [self.raw_name(c, prefix) or c for c in missing]
                parts.append(f"{len(missing)} required tensor(s) missing: "
                             + ", ".join(map(repr, raws[:8])) + (" ..." if len(raws) > 8 else ""))
            if extra:
                parts.append("tensors beyond the configured size: " + ", ".join(map(repr, extra[:8])))
            parts.extend(problems)
            hint = "" if config is not None else "; if this is another model, name it with --model"
            raise MappingError(f"does not fit family {fam.name!r} ({self.view} view): " + "; ".join(parts) + hint,
                               path=where)

        tensors: dict[str, Tensor] = {}
        order = {c: n for n, c in enumerate(expected)}
        for canonical in sorted(placed, key=order.__getitem__):
            entry, t = placed[canonical]
            moved = t.with_spec(name=canonical, axes=entry.raw_axes).transformed(
                relayout(entry.raw_axes, entry.param.axes))
            tensors[canonical] = moved

        if stacked:
            # The parts' extents come from the config (or, with none, the one the other tensors
            # give); a file whose stacked tensor does not split so is refused here.
            sizing = config if config is not None else fam.infer_config({c: t.spec for c, t in tensors.items()},
                                                                        counts)[0]
            for first, ((f, entries), t, idx) in stacked.items():
                entry = entries[0]
                axis = entry.raw_axes.index(f.axis)
                try:
                    split = Split(axis, tuple(f.sizes(sizing, t.shape[axis])))
                    moved = split.apply(t.with_spec(axes=entry.raw_axes),
                                        tuple(e.canonical.format(**idx) for e in entries))
                except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
                    raise MappingError(f"cannot split {t.name!r} into {', '.join(f.parts)}: {exc}",
                                       path=where) from None
                for e, part in zip(entries, moved):
                    tensors[part.name] = part.transformed(relayout(e.raw_axes, e.param.axes))
            tensors = {c: tensors[c] for c in sorted(tensors, key=order.__getitem__)}
        notes: list[str] = []
        inferred = config is None
        if config is None:
            config, notes = fam.infer_config({c: t.spec for c, t in tensors.items()}, counts)
            # A tied param the file stores as a tensor of its own is untied: a config that left
            # the flag out would have the class tie it again on load (transformers' default).
            # (Parts split from a stacked tensor are placed under its name, not theirs: never tied.)
            untied = {placed[c][0].param.tie_key for c in tensors if c in placed
                      and placed[c][0].param.tied_to and isinstance(placed[c][0].param.tie_key, str)}
            config = {**{key: False for key in sorted(untied)}, **config}
        else:
            checked = {c: t.spec for c, t in tensors.items()}
            contradictions = config_contradictions(fam, config, checked, counts)
            if contradictions:
                raise MappingError("the config contradicts the tensors: " + "; ".join(contradictions[:6])
                                   + " (fix the config or pass --config)", path=where)
        config = dict(config)
        if not config.get("architectures"):
            # A class-specific prefix names the class (DPR's ctx_encoder vs question_encoder);
            # otherwise the heads present do.
            by_prefix = {p: a for a, p in fam.arch_prefixes.get(self.view, {}).items()}
            arch = by_prefix.get(prefix) or fam.architecture_for(roles)
            if arch:
                config["architectures"] = [arch]
        for canonical, t in list(tensors.items()):
            spelling = self._canonical.match(canonical)[0].param.spellings.get(self.view)
            if spelling is not None and spelling.transform is not None:
                try:
                    tensors[canonical] = t.transformed(spelling.transform(config))
                except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
                    raise MappingError(f"{t.source!r}: {exc}", path=where) from None
        if derived:
            for canonical, entry in derived.items():
                tensors[canonical] = from_array(canonical, entry.param.derive(config), entry.param.axes)
            tensors = {c: tensors[c] for c in sorted(tensors, key=order.__getitem__)}
        # What was dropped as a copy, with its twin, so `ls` can say so and a sum check can
        # confirm that it was one (tied copies compare in canonical layout).
        dropped = {raw: (by_name[raw], by_name[twin]) for raw, twin in copy_of.items()}
        for canonical, (entry, t) in tied_copies.items():
            target = aliases[canonical]
            if target in placed:
                copy_of[t.name] = placed[target][1].name
                dropped[t.name] = (t.with_spec(axes=entry.raw_axes).transformed(
                    relayout(entry.raw_axes, entry.param.axes)), tensors[target])
        return Checkpoint(fam.name, config, tensors, aliases,
                          {"view": self.view, "skipped": skipped, "notes": notes, "copies": copy_of,
                           "derived": list(derived), "config_inferred": inferred}, dropped=dropped,
                          config_check=None if inferred else
                          (lambda given: config_contradictions(fam, given, checked, counts)))

    def _stack(self, ckpt: Checkpoint, entry: _Entry, idx: dict, raw: str, where: str) -> Tensor | None:
        """The one tensor this view stores for `entry`'s Fused: its parts, concatenated."""
        f, entries = self._stacked[entry.canonical]
        names = [e.canonical.format(**idx) for e in entries]
        if any(n not in ckpt.tensors for n in names):
            return None
        parts = [ckpt.tensors[n].transformed(relayout(e.param.axes, e.raw_axes)) for n, e in zip(names, entries)]
        axis = entry.raw_axes.index(f.axis)
        try:
            return Split(axis, tuple(p.shape[axis] for p in parts)).merge(parts, raw)
        except ValueError as exc:
            raise MappingError(f"cannot stack {', '.join(map(repr, names))} into {raw!r}: {exc}",
                               path=where) from None

    def _expand(self, template: str, canonical: str, entry: _Entry) -> str:
        hit = self._canonical.match(canonical)
        return template.format(**(hit[1] if hit else {}))

    # ---- export

    def from_canonical(self, ckpt: Checkpoint, where: str) -> tuple[list[Tensor], dict[str, str]]:
        """Raw tensors (lazy, renamed and re-laid-out) in checkpoint order, and raw aliases."""
        limit = self.family.view_limits.get(self.view)
        problem = limit(ckpt.config) if limit else None
        if problem:
            raise MappingError(f"the {self.family.name} {self.view!r} view cannot hold this model: {problem}", path=where)
        prefix = self.export_prefix(ckpt)
        out, unknown, merged = [], [], set()
        for canonical, t in ckpt.tensors.items():
            hit = self._canonical.match(canonical)
            if hit is None:
                unknown.append(canonical)
                continue
            entry, idx = hit
            spelling = entry.param.spellings.get(self.view)
            if spelling is not None and spelling.transform is not None:
                try:
                    t = t.transformed(spelling.transform(ckpt.config).inverse())
                except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
                    raise MappingError(f"{canonical!r} has no {self.view} layout for this config: {exc!r}",
                                       path=where) from None
            if entry.canonical in self._stacked:
                raw = self.raw_name(canonical, prefix)
                if raw not in merged:
                    merged.add(raw)
                    stacked = self._stack(ckpt, entry, idx, raw, where)
                    if stacked is None:
                        unknown.append(canonical)
                    else:
                        out.append(stacked)
                continue
            raw = self.raw_name(canonical, prefix)
            if raw is None and entry.param.derive is not None and not entry.raw:
                continue                      # a buffer this view recomputes, never stores
            if raw is None:
                unknown.append(canonical)     # e.g. an untied decoder in a view that always ties
                continue
            if entry.param.axes is not None and (t.axes != entry.param.axes or len(t.shape) != len(entry.param.axes)):
                raise MappingError(f"tensor {canonical!r} is {list(t.shape)} with axes {t.axes}, but the "
                                   f"{self.family.name} family's {canonical} has axes {entry.param.axes}", path=where)
            out.append(t.transformed(relayout(entry.param.axes, entry.raw_axes)).with_spec(name=raw))
        aliases, copies = {}, {}
        for alias, target in ckpt.aliases.items():
            hit = self._canonical.match(alias)
            if hit is not None and (not hit[0].raw or not hit[0].param.spellings[self.view].tied_copy):
                continue                      # this view ties it without storing a name
            raw_alias, raw_target = self.raw_name(alias, prefix), self.raw_name(target, prefix)
            target_hit = self._canonical.match(target)
            if raw_alias is None or raw_target is None:
                unknown.append(alias)
            elif hit is not None and target in ckpt.tensors and (
                    (target_hit is not None and hit[0].raw_axes != target_hit[0].raw_axes)
                    or (hit[0].param.stored_untied and not ckpt.config.get(hit[0].param.stored_untied, True))):
                # A copy stored in another layout (TF Mistral's lm_head kernel is the embedding
                # matrix transposed), or one the consumer would not re-tie (stored_untied), is a
                # tensor of its own, not a second name for the bytes.
                copies.setdefault(target, (target_hit[0] if target_hit else None, []))[1].append((raw_alias, hit[0]))
            else:
                aliases[raw_alias] = raw_target
        for target, (target_entry, names) in copies.items():
            root, raw_target = ckpt.tensors[target], self.raw_name(target, prefix)
            at = next((n for n, o in enumerate(out) if o.name == raw_target), None)
            if ckpt.ordered and at is not None and target_entry is not None:
                # A stream gives the bytes once, in table order: every name loads them from one
                # read, the copies right after their target.
                root = read_once_for(root, 1 + len(names))
                out[at] = root.transformed(relayout(target_entry.param.axes, target_entry.raw_axes)).with_spec(name=raw_target)
            else:
                at = None
            tensors = [root.transformed(relayout(entry.param.axes, entry.raw_axes)).with_spec(name=raw)
                       for raw, entry in names]
            if at is not None:
                out[at + 1:at + 1] = tensors
            else:
                out.extend(tensors)
        if unknown:
            raise MappingError(f"{len(unknown)} canonical tensor(s) have no name in the {self.family.name} "
                               f"{self.view!r} view: " + ", ".join(map(repr, unknown[:8])), path=where)
        return out, aliases


class ConfigView:
    """A ConfigFamily's view: names depend on the config. Everything but import and export
    (entries, raw_name, ...) is the static view's; name scoring for family detection
    (canonical_name) also tries the largest candidate's table, so a bare file of any variant
    is recognised."""

    def __init__(self, family: ConfigFamily, static: FamilyView):
        self.family, self.view, self._static = family, static.view, static
        candidates = family.candidates()
        self._widest = family.concrete(candidates[-1][1]).view(static.view) if candidates else static

    def __getattr__(self, name):            # entries, detect_prefix, raw_name, is_ignored, ...
        return getattr(self._static, name)

    def canonical_name(self, raw: str, prefix: str):
        return self._static.canonical_name(raw, prefix) or self._widest.canonical_name(raw, prefix)

    def placed_count(self, names, prefix: str) -> int:
        could = (self._static._raw.could_match, self._widest._raw.could_match)
        return sum(1 for name in names
                   if (could[0](name) or could[1](name) or (prefix and name.startswith(prefix)))
                   and self.canonical_name(name, prefix))

    def to_canonical(self, raw_tensors, config, where, tied_hint=None):
        if config is not None:
            try:
                concrete = self.family.concrete(config)
            except MappingError as exc:
                raise MappingError(str(exc), path=where) from None
            return concrete.view(self.view).to_canonical(raw_tensors, config, where, tied_hint)
        errors = []
        for label, cfg in self.family.candidates():
            try:
                ckpt = self.family.concrete(cfg).view(self.view).to_canonical(raw_tensors, None, where, tied_hint)
            except MappingError as exc:
                errors.append(f"{label}: {exc}")
                continue
            problem = self.family.check(ckpt, ckpt.config)
            if problem is None:
                ckpt.source.setdefault("notes", []).append(self.family.inferred_note(label, ckpt.config))
                return ckpt
            errors.append(f"{label}: {problem}")
        raise MappingError(f"fits no {self.family.name} variant it knows (pass --config for others): "
                           + (errors[0][:400] if errors else "no candidates"), path=where)

    def from_canonical(self, ckpt, where):
        return self.family.concrete(ckpt.config).view(self.view).from_canonical(ckpt, where)
