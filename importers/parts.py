"""Second sources: `--with NAME=PATH` (API: `parts={NAME: PATH}`).

Some views hold only part of a model: the original FLAVA checkpoint has no image codebook,
which is DALL-E's encoder, released as its own file. A family declares such parts
(engine.Part); after the main import, each part the checkpoint lacks is read from its file
through the ordinary detection and importers, as the part's own family, and merged in: its
tensors under the part's canonical prefix, its config under the part's config key. This is
done once here for every importer and family; nothing in it knows FLAVA.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping

from ..ir.checkpoint import Checkpoint
from ..ir.errors import MappingError, UsageError
from ..ir.tensor import Tensor
from ..models import FAMILIES
from ..models.engine import Family, Part

# (path, family name) -> the part's Checkpoint; the caller's load(), so detection is the usual.
LoadPart = Callable[[object, str], Checkpoint]


def parse_with(values: list[str] | None) -> dict[str, str]:
    """['codebook=enc.pkl', ...] (repeated --with options) -> {'codebook': 'enc.pkl'}."""
    out: dict[str, str] = {}
    for value in values or ():
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--with {value!r}: expected NAME=PATH (e.g. --with codebook=encoder.pkl)")
        if name in out:
            raise UsageError(f"--with {name}=... is given twice")
        out[name] = path
    return out


def attach_parts(ckpt: Checkpoint, given: Mapping[str, object] | None, where: str, load_part: LoadPart,
                 *, require: bool = True) -> Checkpoint:
    """`ckpt` with every declared part it lacks merged in from `given` (name -> path). A part
    the model has (its config flag is not false) but neither the file nor `given` holds is an
    error, or with require=False (for listings) a note."""
    family = FAMILIES.get(ckpt.family)
    given = dict(given or {})
    unknown = sorted(set(given) - {p.name for p in family.parts})
    if unknown:
        takes = ", ".join(f"--with {p.name}=PATH" for p in family.parts) or "no second file"
        raise UsageError(f"--with {unknown[0]}=...: family {family.name!r} takes {takes}")
    for part in family.parts:
        held = [name for name in ckpt.tensors if name.startswith(part.prefix + ".")]
        path = given.get(part.name)
        if path is not None:
            if held:
                raise UsageError(f"{where} holds {part.prefix}.* itself ({len(held)} tensors); "
                                 f"drop --with {part.name}")
            ckpt = merge_part(ckpt, load_part(path, part.family), part, family, str(path))
        elif not held and _has_part(part, ckpt.config):
            view = ckpt.source.get("view", "?")
            message = (f"{where}: the {family.name} {view!r} view holds no {part.prefix}.* tensors, they are "
                       f"a second file: pass --with {part.name}=PATH ({part.what})")
            if part.flag:
                message += f", or a config with {part.flag}: false for a model without it"
            if require:
                raise UsageError(message)
            ckpt.source.setdefault("notes", []).append(message)
    return ckpt


def _has_part(part: Part, config: dict) -> bool:
    return part.flag is None or bool(config.get(part.flag, True))


def merge_part(ckpt: Checkpoint, sub: Checkpoint, part: Part, family: Family, where: str) -> Checkpoint:
    """`ckpt` plus `sub`'s tensors under `part.prefix.` and its config under `part.config_key`.
    Raw names from the part's file are shown as 'NAME:raw' (`irconv ls`)."""
    if sub.family != part.family:
        raise UsageError(f"--with {part.name}={where}: this is a {sub.family} checkpoint, expected {part.family}")
    pre, tag = part.prefix + ".", part.name + ":"
    tensors = dict(ckpt.tensors)
    for name, t in sub.tensors.items():
        tensors[pre + name] = Tensor(replace(t.spec, name=pre + name), t.load, tag + t.source)
    tensors = {name: tensors[name] for name in in_block_order(family, list(tensors))}
    src = sub.source
    source = dict(ckpt.source)
    source["parts"] = {**source.get("parts", {}), part.name: {
        k: src[k] for k in ("format", "view", "files") if k in src}}
    source["skipped"] = list(source.get("skipped", ())) + [tag + raw for raw in src.get("skipped", ())]
    source["copies"] = {**source.get("copies", {}), **{tag + a: tag + b for a, b in src.get("copies", {}).items()}}
    source["derived"] = list(source.get("derived", ())) + [pre + name for name in src.get("derived", ())]
    source["notes"] = list(source.get("notes", ())) + [f"{part.name}: {note}" for note in src.get("notes", ())]
    return replace(ckpt, tensors=tensors, config=merged_config(ckpt.config, sub.config, part, where),
                   aliases={**ckpt.aliases, **{pre + a: pre + b for a, b in sub.aliases.items()}},
                   source=source, dropped={**ckpt.dropped, **{tag + k: v for k, v in sub.dropped.items()}})


def merged_config(config: dict, part_config: dict, part: Part, where: str) -> dict:
    """The whole config with the part's under its key. A given config may say more about the
    part (initializer_range ...) but must agree on what the part's tensors decide."""
    given = config.get(part.config_key) or {}
    own = {k: v for k, v in part_config.items() if k != "architectures"}
    clash = [k for k in part.config_keys if k in given and k in own and given[k] != own[k]]
    if clash:
        k = clash[0]
        raise MappingError(f"the config says {part.config_key}.{k}={given[k]!r} but the {part.name} file has "
                           f"{k}={own[k]!r}", path=where)
    merged = {**config, part.config_key: {**given, **own}}
    if part.flag:
        merged[part.flag] = True
    return merged


def in_block_order(family: Family, names: list[str]) -> list[str]:
    """`names` sorted by the family's block order (stable: within a block, as given), through
    the first view that knows every name."""
    rank = {id(b): n for n, b in enumerate(family.blocks)}
    for view in family.views:
        fv = family.view(view)
        blocks = [fv.block_of(name) for name in names]
        if all(blocks):
            order = {name: rank.get(id(b), len(rank)) for name, b in zip(names, blocks)}
            return sorted(names, key=order.__getitem__)
    return names
