"""The README stays true: its tables list exactly what the registries hold (and the tests
parametrised over the registries cover)."""
from __future__ import annotations

from pathlib import Path

from irconv import EXPORTERS, FAMILIES, IMPORTERS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def table_after(heading_text: str) -> list[list[str]]:
    lines = README[README.index(heading_text):].splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("|"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_family_table_matches_the_registry():
    rows = table_after("Families (`irconv models`")
    assert [r[0] for r in rows] == FAMILIES.names()
    for name, classes, views in rows:
        fam = FAMILIES.get(name)
        assert classes.split(", ") == list(fam.architectures), name
        assert views.split(", ") == fam.views, name


def test_format_table_matches_the_registries():
    rows = table_after("Formats (`irconv formats`)")
    assert sorted(r[0].strip("`") for r in rows) == sorted(set(IMPORTERS.names()) | set(EXPORTERS.names()))
    for name, into, out, _ in rows:
        name = name.strip("`")
        assert (into == "yes") == (name in IMPORTERS) and (out == "yes") == (name in EXPORTERS), name
