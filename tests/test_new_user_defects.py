"""The defects a new user hit, trying the product from the docs alone (issue 22): each has a
named test. Those fixed earlier are tested where their feature is (listed in DEFECTS, and
`test_every_defect_has_its_test` holds each name to an existing test); the rest are below."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from routing_dsl.checker import Workspace
from routing_dsl.cli import main
from routing_dsl.compiler import compile_program
from routing_dsl.ops.store import RunStore
from routing_dsl.service.app import create_app
from routing_dsl.service.state import LiveState
from routing_dsl.snapshot import load_snapshot

from .conftest import ROOT

HERE = Path(__file__).parent

DEFECTS = {
    "a SQL mapping without an optional column (allow_brokering) crashed with KeyError":
        "test_ops_sources.py::test_a_mapping_may_leave_out_optional_columns",
    "a misnamed column printed two errors per row":
        "test_ops_sources.py::test_a_misnamed_column_is_one_error_naming_it",
    "the summary counted unfilled items by routing name across groups":
        "test_cli_run.py::test_the_summary_counts_unfilled_items_per_group",
    "HotWax import dropped the group's description":
        "test_interchange.py::test_descriptions_are_carried_as_comments_and_exported_back",
    "HotWax export reordered a rule's conditions and dropped an explicit IMPERIAL":
        "test_interchange.py::"
        "test_an_explicit_imperial_and_the_order_of_conditions_survive_the_round_trip",
    "a missing queue was reported as 'no ship group was eligible'":
        "test_hostile_snapshots.py::test_a_queue_missing_from_the_snapshot_is_named",
    "a rule test naming an order absent from the snapshot said 'no routing took the order'":
        "test_ruletests.py::test_an_order_absent_from_the_snapshot_is_said_so",
    "a quote no routing takes answered 200 with empty lists and no reason":
        "test_fuzz_http.py::test_a_quote_no_routing_takes_says_why",
    "the console answered 200 for unknown orders":
        "test_new_user_defects.py::test_the_console_answers_404_with_a_page_for_an_unknown_order",
    "the rule-file page omitted the imported catalog.route":
        "test_new_user_defects.py::test_the_rule_file_page_shows_the_imported_files",
    "'1 items'":
        "test_new_user_defects.py::test_one_is_never_plural",
    "'1 units' and 'the last 1 batches' in alerts":
        "test_alerts.py::test_one_unit_and_one_batch_are_said_in_the_singular",
    "coverage printed `distance <= 250` without its unit":
        "test_ruletests.py::test_coverage_reports_rules_and_conditions_and_gates",
    "`diff --format json` showed shipping_cost 0.0 with no rate cards":
        "test_authoring.py::test_diff_command_exit_codes_text_and_json",
    "operations.md listed a `serving` event --once never prints":
        "test_new_user_defects.py::test_the_operations_doc_lists_what_once_prints",
    "a --once with nothing due printed nothing":
        "test_ops_scheduler.py::test_serve_once_runs_the_due_groups_of_several_files",
    "examples/README.md called brokering_safety_stock a buffer":
        "test_new_user_defects.py::test_the_examples_readme_calls_brokering_safety_stock_a_threshold",
    "gen-snapshot was missing from the README's command table":
        "test_new_user_defects.py::test_the_readme_command_table_names_every_command",
    "the benchmark's rules existed only in source code":
        "test_docs.py::test_the_benchmark_rules_are_shipped_as_the_route_files_the_docs_show",
}


def test_every_defect_has_its_test():
    for defect, test in DEFECTS.items():
        file, name = test.split("::")
        assert re.search(rf"^def {name}\(", (HERE / file).read_text(), re.M), (defect, test)


@pytest.fixture
def starter(tmp_path):
    """The starter project (`routing init`) served with a run store, one group run."""
    assert CliRunner().invoke(main, ["init", str(tmp_path / "demo")]).exit_code == 0
    folder = tmp_path / "demo"
    rules = folder / "routes.route"
    plan = compile_program(Workspace().check_path(rules).program)
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    state = LiveState([plan], lambda: load_snapshot(folder / "snapshot.json"),
                      texts=[rules.read_text()], store=store)
    state.refresh()
    _, group = state.group(plan.groups[0].name)
    result, batches = state.run_group(plan, group, store)
    with TestClient(create_app(state)) as client:
        yield client, batches[0], folder
    store.dispose()


def plain(page: str) -> str:
    """A page's text, as a reader sees it."""
    import html
    return html.unescape(re.sub(r"<[^>]+>", "", page))


BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_the_console_answers_404_with_a_page_for_an_unknown_order(starter):
    client, _, _ = starter
    page = client.get("/console/orders/NO-SUCH-ORDER", headers=BROWSER)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert '<h1 id="error-title">Not found</h1>' in page.text
    assert "no order &#39;NO-SUCH-ORDER&#39;: the live state does not hold it and routing " \
           "never decided it" in page.text
    assert 'href="/console/orders"' in page.text  # somewhere to go from there
    problem = client.get("/console/orders/NO-SUCH-ORDER")  # not a browser: a problem document
    assert problem.status_code == 404
    assert problem.headers["content-type"] == "application/problem+json"
    assert client.get("/console/orders/O-1", headers=BROWSER).status_code == 200
    invalid = client.get("/console/queues/_NA_?start=-1", headers=BROWSER)
    assert invalid.status_code == 422 and "query.start" in invalid.text


def test_the_rule_file_page_shows_the_imported_files(starter):
    client, batch, folder = starter
    page = client.get(f"/console/batches/{batch}/rules").text
    assert 'use "catalog.route"' in plain(page)
    assert "<h2>Imported files</h2>" in page
    assert f"<h3>{folder / 'catalog.route'}</h3>" in page
    catalog = plain(page.split(f"<h3>{folder / 'catalog.route'}</h3>")[1])
    assert "declare facility_group WAREHOUSES" in catalog
    assert "<summary>std.templates (stdlib)</summary>" in page
    assert "compiles to the plan this batch ran" in page
    (folder / "catalog.route").write_text((folder / "catalog.route").read_text().replace(
        'STORES "Retail stores"', 'STORES "Retail stores", OUTLETS'))
    changed = client.get(f"/console/batches/{batch}/rules").text
    assert "OUTLETS" in changed and "compiles to the plan this batch ran" in changed
    (folder / "catalog.route").write_text("declare facility_group WAREHOUSES\n")
    gone = client.get(f"/console/batches/{batch}/rules").text
    assert "compiles to the plan this batch ran" not in gone


def test_one_is_never_plural(tmp_path):
    """"1 items": the run summary says 1 item, 1 allocation, 1 facility (with several
    groups: test_the_summary_counts_unfilled_items_per_group; alerts:
    test_alerts.py::test_one_unit_and_one_batch_are_said_in_the_singular)."""
    assert CliRunner().invoke(main, ["init", str(tmp_path / "demo")]).exit_code == 0
    demo = tmp_path / "demo"
    result = CliRunner().invoke(main, ["run", str(demo / "routes.route"), "--snapshot",
                                       str(demo / "snapshot.json"), "--out",
                                       str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert re.search(r"\b\d+ (item|allocation)", result.output), result.output
    assert not re.search(r"\b1 (items|allocations|facilities|records|batches|units)\b",
                         result.output), result.output


def test_the_operations_doc_lists_what_once_prints():
    text = (ROOT / "docs" / "operations.md").read_text()
    assert "`--once` prints no\n  `serving` or `stopped`" in text or \
        "`--once` prints no `serving`" in text.replace("\n  ", " ")
    assert '"event": "once"' in text and '"nothing_due": true' in text


def test_the_examples_readme_calls_brokering_safety_stock_a_threshold():
    readme = (ROOT / "examples" / "README.md").read_text()
    [line] = [line for line in readme.splitlines() if "brokering_safety_stock" in line]
    assert "threshold" in line and "buffer" not in line
    language = (ROOT / "docs" / "language.md").read_text()
    assert "threshold" in language[language.index("brokering_safety_stock"):][:600]


def test_the_readme_command_table_names_every_command():
    readme = (ROOT / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `routing "))
    for command in main.commands:
        assert re.search(rf"`routing (\S+\\\|)?{re.escape(command)}\b", table) or \
            f"routing {command}" in table, command
