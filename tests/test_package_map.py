"""README's package map (Development) names every module of src/lggan once, with what it owns, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import lggan

PACKAGE = Path(lggan.__file__).parent
README = PACKAGE.parent.parent / "README.md"


def parse_map(text: str) -> dict[str, str]:
    """{path inside the package ("training/run.py", "models/"): its description} of the map's text block.

    Two spaces of indent per level; a name ending in "/" opens a package, its modules follow one level deeper.
    """
    block = re.search(r"### Package map\n.*?```text\n(.*?)```", text, re.S)
    if block is None:
        raise AssertionError("README has no '### Package map' section with a ```text block")
    lines = block.group(1).splitlines()
    assert lines[0] == "lggan/", lines[0]
    entries: dict[str, str] = {}
    parents: list[str] = []
    for line in lines[1:]:
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 2 == 0 and indent >= 2, f"bad indent: {line!r}"
        level = indent // 2 - 1
        name, _, description = line.strip().partition(" ")
        assert level <= len(parents), f"{name}: indented below no package"
        parents = parents[:level]
        path = "".join(parents) + name
        assert path not in entries, f"{path}: listed twice"
        entries[path] = description.strip()
        if name.endswith("/"):
            parents.append(name)
    return entries


def package_tree() -> set[str]:
    """Every module (no __init__.py) and subpackage of src/lggan, as the map names them."""
    found = set()
    for p in PACKAGE.rglob("*.py"):
        rel = p.relative_to(PACKAGE)
        if "__pycache__" in rel.parts:
            continue
        found.update(f"{'/'.join(rel.parts[:i])}/" for i in range(1, len(rel.parts)))
        if p.name != "__init__.py":
            found.add(rel.as_posix())
    return found


def test_the_map_lists_every_module_and_only_those():
    entries = parse_map(README.read_text())
    tree = package_tree()
    assert sorted(tree - set(entries)) == [], "modules missing from README's package map"
    assert sorted(set(entries) - tree) == [], "README's package map names modules that do not exist"
    assert all(len(d.split()) >= 3 for d in entries.values()), [p for p, d in entries.items() if len(d.split()) < 3]


def test_the_parser_reads_nesting_and_finds_mistakes():
    text = "### Package map\n\n```text\nlggan/\n  a.py    owns a thing\n  sub/    a package of two\n" \
           "    b.py  owns b here\n  c.py    owns c there\n```\n"
    assert parse_map(text) == {"a.py": "owns a thing", "sub/": "a package of two", "sub/b.py": "owns b here",
                               "c.py": "owns c there"}
    with pytest.raises(AssertionError, match="listed twice"):
        parse_map(text.replace("c.py ", "a.py "))
    with pytest.raises(AssertionError, match="no '### Package map'"):
        parse_map("## Development\n")
