"""The reference documentation covers the whole language and stays in sync with the code."""

from __future__ import annotations

import re

from routing_dsl import vocabulary as v
from routing_dsl.errorcodes import render_markdown
from routing_dsl.parser import keyword_terminals

from .conftest import ROOT

LANGUAGE = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")


def test_diagnostics_doc_is_generated_from_the_registry():
    assert (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8") == render_markdown()


def test_every_keyword_is_documented():
    words = set(re.findall(r"[A-Za-z_]+", LANGUAGE))
    missing = sorted(k for k in keyword_terminals().values() if k not in words)
    assert missing == []


def test_every_field_sort_and_flag_is_documented():
    names = (list(v.ORDER_FIELDS) + list(v.INVENTORY_FIELDS) + list(v.ORDER_SORTS)
             + list(v.INVENTORY_SORTS) + list(v.FLAGS))
    assert [name for name in names if f"`{name}`" not in LANGUAGE] == []


def test_every_keyword_has_hover_text():
    assert sorted(k for k in keyword_terminals().values() if k not in v.KEYWORDS
                  and k not in ("for", "store", "to", "after", "by", "first", "last", "null",
                                "day", "rule", "queue", "paused")) == []


def test_reference_tables_are_generated_from_the_vocabulary():
    # hover texts and docs/language.md share one source (`python -m routing_dsl.vocabulary
    # docs/language.md` regenerates the tables)
    assert "<!-- generated: order-fields -->" in LANGUAGE
    assert v.render_generated(LANGUAGE) == LANGUAGE


def test_every_test_the_semantics_doc_names_exists():
    text = (ROOT / "docs" / "semantics.md").read_text(encoding="utf-8")
    named = {n for n in re.findall(r"`(test_[a-z0-9_]+)`", text) if not n.endswith("_")}
    defined = set()
    for path in (ROOT / "tests").glob("test_semantics*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M))
    assert named and sorted(named - defined) == []


def test_the_shipping_rule_example_in_the_language_reference_checks_cleanly():
    from routing_dsl.checker import Workspace
    blocks = [b for b in re.findall(r"```route\n(.*?)```", LANGUAGE, re.S)
              if b.startswith("rule ") and "split_cost" in b]
    assert blocks
    for block in blocks:
        text = ('use std.hotwax\nuse "examples/catalog.route"\ngroup "G" for store STORE {\n'
                f'  routing "R" {{\n    filter {{ queue == _NA_ }}\n{block}  }}\n}}\n')
        result = Workspace().check_text(text, name=str(ROOT / "docs.route"))
        assert [d.message for d in result.diagnostics] == [], block


def test_the_benchmark_rules_are_shipped_as_the_route_files_the_docs_show():
    from routing_dsl.checker import Workspace
    try:  # where the bench sub-package (issue 21) keeps them
        from routing_dsl.bench import scenarios, suite as bench
    except ImportError:
        from routing_dsl import bench, scenarios
    shipped = {"scenario.route": scenarios.PLAN, "scenario-shipping.route":
               scenarios.SHIPPING_PLAN, "throughput.route": bench.BENCH_ROUTE}
    performance = (ROOT / "docs" / "performance.md").read_text()
    for name, text in shipped.items():
        path = ROOT / "docs" / "bench" / name
        assert path.read_text() == text, f"{path} differs from what the bench routes"
        assert not Workspace().check_path(path).has_errors
        assert f"bench/{name}" in performance
