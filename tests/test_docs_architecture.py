"""docs/architecture.md stays true: its criteria table names every criterion under the module
that declares it, its runtime table every runtime module, its layers every sub-package, and its
example runs."""

from __future__ import annotations

import importlib
import re

import pytest

from .conftest import ROOT

DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
PACKAGE = ROOT / "routing_dsl"


def table_rows(heading: str) -> dict[str, str]:
    """The first column (a module path in backquotes) -> the rest of the row, for the table
    under ``heading``."""
    section = DOC.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `([^`]+)` \|(.*)\|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


# the modules that declare criteria (`text` holds what they share)
FAMILIES = sorted(p.stem for p in (PACKAGE / "criteria").glob("*.py") if not p.stem.startswith(
    "_") and hasattr(importlib.import_module(f"routing_dsl.criteria.{p.stem}"), "CRITERIA"))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_criterion_is_listed_under_the_module_that_declares_it(family):
    """A newcomer looking for a criterion finds it in one guess."""
    rows = table_rows("Where a criterion lives")
    assert f"criteria/{family}.py" in rows, f"criteria/{family}.py is not in the table"
    listed = set(re.findall(r"`([a-z_]+)`", rows[f"criteria/{family}.py"]))
    declared = {c.name for c in importlib.import_module(f"routing_dsl.criteria.{family}").CRITERIA}
    assert listed == declared


def test_the_criteria_table_is_generated_from_the_registry():
    """Regenerate with `python -m routing_dsl.vocabulary docs/language.md
    docs/architecture.md`: a new criterion changes the registry module and these generated
    lines, nothing written by hand."""
    from routing_dsl.vocabulary import render_generated
    assert "<!-- generated: criteria-modules -->" in DOC
    assert render_generated(DOC) == DOC


def test_every_runtime_module_is_described():
    rows = table_rows("The runtime")
    modules = {p.name for p in (PACKAGE / "runtime").glob("*.py") if p.name != "__init__.py"}
    assert set(rows) == modules


def test_every_layer_above_the_core_is_named():
    rows = table_rows("The application layer")
    packages = {f"{p.name}/" for p in PACKAGE.iterdir()
                if (p / "__init__.py").exists() and p.name not in (
                    "criteria", "runtime", "engine", "shipping")}  # the core: drawn above
    assert packages <= set(rows), packages - set(rows)


def test_the_runtime_example_runs(monkeypatch, capsys):
    block = re.search(r"```python\n(.*?)```", DOC, re.S).group(1)
    monkeypatch.chdir(ROOT)
    exec(compile(block, "docs/architecture.md", "exec"), {})
    assert re.fullmatch(r"\d+ allocations\n", capsys.readouterr().out)
