"""Each set of allowed values is declared once, as a Literal type of lggan.config (config/types.py); everything
else reads it.

The scan looks at the code of every module of the package (not its prose): a tuple, list or set of string constants
with exactly the words of one of config's Literal types, or a second Literal[...] of them, is a copy that can drift.
"""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import lggan
import lggan.config as config_module
from lggan.config import StepOrder, choices

PACKAGE = Path(lggan.__file__).parent


def config_literals() -> dict[frozenset[str], str]:
    """{the words of a Literal type of lggan.config: its name}, for the types of two or more strings."""
    found: dict[frozenset[str], str] = {}
    for name, value in vars(config_module).items():
        if typing.get_origin(value) is typing.Literal:
            words = frozenset(a for a in typing.get_args(value) if isinstance(a, str))
            if len(words) >= 2:
                found.setdefault(words, name)
    return found


def copies_in(source: str, literals: dict[frozenset[str], str]) -> list[tuple[int, str]]:
    """(line, which Literal) of every word list in `source` that repeats one of `literals`."""
    hits, inside_literal = [], set()
    for node in ast.walk(ast.parse(source)):  # breadth first: a Literal[...] comes before the tuple inside it
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", getattr(node.value, "attr", None)) == "Literal":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            inside_literal.add(id(node.slice))
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)) and id(node) not in inside_literal:
            elts = node.elts
        else:
            continue
        words = [e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        if len(words) == len(elts) and frozenset(words) in literals:
            hits.append((node.lineno, literals[frozenset(words)]))
    return sorted(hits)


def package_modules() -> list[Path]:
    """Every module of the package except config/types.py, where the Literal types live."""
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p.relative_to(PACKAGE).parts != ("config", "types.py")]


def test_the_config_declares_the_word_lists_the_scan_looks_for():
    literals = config_literals()
    assert literals[frozenset({"hinge", "vanilla"})] == "GanMode"
    assert literals[frozenset({"a2g", "g2a"})] == "Direction"
    assert len(literals) >= 20


def test_the_scan_finds_a_copied_list_and_a_second_literal():
    literals = config_literals()
    source = ('MODES = ("hinge", "vanilla")\n'
              'def f(x: Literal["a2g", "g2a"]):\n'
              '    return x in ["center", "random"] or x in ("more", "most")\n')
    assert copies_in(source, literals) == [(1, "GanMode"), (2, "Direction"), (3, "CropMode")]


def test_no_module_repeats_a_config_literal():
    literals = config_literals()
    copies = [f"{path.relative_to(PACKAGE.parent)}:{line}: the words of lggan.config.{name}"
              for path in package_modules() for line, name in copies_in(path.read_text(), literals)]
    assert copies == [], "read the Literal of lggan.config with choices() instead:\n" + "\n".join(copies)


def test_dispatch_tables_cover_exactly_their_literal():
    from lggan.training import STEP_ORDERS

    assert tuple(STEP_ORDERS) == choices(StepOrder)
