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


# ---- docs/operations.md and docs/service.md: the console, the write-back, the alerts ----

def _block(document: str, name: str, language: str) -> str:
    text = (ROOT / "docs" / document).read_text(encoding="utf-8")
    found = re.search(rf"<!-- tested: {name} -->\n```{language}\n(.*?)```", text, re.S)
    assert found, f"{document}: no tested {name} block"
    return found.group(1)


def test_the_operations_doc_write_back_example_runs(tmp_path, monkeypatch):
    import shlex
    import shutil

    from click.testing import CliRunner

    from routing_dsl.cli import main
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    said = []
    for line in _block("operations.md", "writeback", "sh").strip().splitlines():
        result = CliRunner().invoke(main, shlex.split(line)[1:])
        assert result.exit_code == 0, (line, result.output)
        said.append(result.stderr)
    assert "wrote 4 orders back into the OMS" in said[1]
    assert "wrote 0 orders back into the OMS" in said[2]
    import json
    assert json.loads((tmp_path / "again.json").read_text())["allocations"] == []


def test_the_operations_doc_alert_rules_are_a_valid_alert_file(tmp_path):
    from routing_dsl.ops.alerts import read_rules
    path = tmp_path / "alerts.toml"
    path.write_text(_block("operations.md", "alerts", "toml"))
    rules = read_rules(path)
    assert {r.when for r in rules.rule} == {"batch_failed", "unfilled_units", "parked_units",
                                            "scheduler_late"}


def test_the_operations_doc_prometheus_rules_name_metrics_the_service_exports(tmp_path):
    from datetime import UTC, datetime

    import yaml
    from fastapi.testclient import TestClient

    from routing_dsl.checker import Workspace
    from routing_dsl.compiler import compile_program
    from routing_dsl.ops.alerts import Alerts, read_rules
    from routing_dsl.ops.hooks import AfterBatches
    from routing_dsl.ops.scheduler import Supervision
    from routing_dsl.service.app import create_app
    from routing_dsl.service.state import LiveState
    from routing_dsl.snapshot import load_snapshot
    rules = yaml.safe_load(_block("operations.md", "prometheus", "yaml"))
    expressions = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert all(r["alert"] and r["expr"] for g in rules["groups"] for r in g["rules"])
    path = tmp_path / "alerts.toml"
    path.write_text(_block("operations.md", "alerts", "toml"))
    example = ROOT / "examples" / "omnichannel"
    plan = compile_program(Workspace().check_path(example / "omnichannel.route").program)
    state = LiveState([plan], lambda: load_snapshot(example / "snapshot.json"))
    state.refresh()
    supervision = Supervision()
    supervision.succeeded("scheduler", datetime.now(UTC), [{"status": "failed"}])
    after = AfterBatches(alerts=Alerts(read_rules(path)))
    with TestClient(create_app(state, supervision=supervision, after=after)) as client:
        exported = client.get("/metrics").text
    names = set(re.findall(r"^# TYPE (\w+)", exported, re.M))
    names |= {n + suffix for n in names for suffix in ("_bucket", "_sum", "_count")}
    used = {n for e in expressions for n in re.findall(r"\brouting_\w+", e)}
    assert used and sorted(used - names) == []


def test_every_picture_the_docs_show_is_there():
    for document in (ROOT / "docs").glob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", document.read_text("utf-8")):
            assert (document.parent / target).is_file(), (document.name, target)
