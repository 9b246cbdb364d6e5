"""`routing test`: rule tests in .routetest files, their failures, JUnit XML and coverage."""

from __future__ import annotations

import json
import shutil
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from routing_dsl.cli import main

from .conftest import ROOT

EXAMPLES = ROOT / "examples"


def invoke(*args):
    return CliRunner().invoke(main, ["test", *[str(a) for a in args]])


@pytest.fixture
def project(tmp_path):
    """The omnichannel example in a folder of its own, with its catalog."""
    shutil.copy(EXAMPLES / "catalog.route", tmp_path / "catalog.route")
    (tmp_path / "rules.route").write_text((EXAMPLES / "omnichannel" / "omnichannel.route")
                                          .read_text().replace('"../catalog.route"',
                                                               '"catalog.route"'))
    shutil.copy(EXAMPLES / "omnichannel" / "snapshot.json", tmp_path / "snapshot.json")
    return tmp_path


def write(project, body: str):
    path = project / "rules.routetest"
    path.write_text('rules = "rules.route"\nsnapshot = "snapshot.json"\n' + body)
    return path


def test_every_example_has_tests_and_they_pass():
    examples = sorted(p.parent.name for p in EXAMPLES.glob("*/*.route"))
    tested = sorted(p.parent.name for p in EXAMPLES.glob("*/*.routetest"))
    assert tested == examples
    result = invoke(EXAMPLES)
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.stdout and "FAIL" not in result.output


def test_a_failure_shows_expected_actual_and_what_happened(project):
    write(project, '[[case]]\nname = "wrong"\nexpect = [{ order = "O-1001", facility = '
                   '"WH_CA" }]\n')
    result = invoke(project)
    assert result.exit_code == 1
    assert "FAIL" in result.stderr and "wrong" in result.stderr
    assert "facility: expected 'WH_CA', got 'WH_NJ'" in result.stderr
    assert "Web orders / Nearest warehouse ships everything: filled (WH_NJ)" in result.stderr
    assert "0 passed, 1 failed" in result.stdout


def test_table_rows_what_ifs_and_inline_snapshots(project):
    write(project, """
[[case]]
name = "rows"
columns = ["order", "facility", "quantity"]
rows = [["O-1001", "WH_NJ", 2], ["O-1002", "WH_CA", 4]]

[[case]]
name = "New Jersey closed"
what_if = ["close WH_NJ"]
expect = [{ order = "O-1001", facility = "WH_TX" }]

[[case]]
name = "a world of its own, inline"
expect = [{ order = "X", facility = "F1", rule = "Nearest warehouse ships everything" }]
[case.snapshot]
format = "routing-snapshot/1"
now = "2026-11-23T09:30:00-05:00"
timezone = "America/New_York"
product_stores = [{ id = "STORE" }]
facilities = [
  { id = "F1", lat = 40.7, lon = -74.0, product_stores = ["STORE"], groups = { WAREHOUSES = 1 } },
  { id = "_NA_", virtual = true, product_stores = ["STORE"] },
  { id = "UNFILLABLE_PARKING", virtual = true, product_stores = ["STORE"] },
]
inventory = [{ facility = "F1", product = "RUN-8", atp = 5 }]
[[case.snapshot.orders]]
id = "X"
product_store = "STORE"
sales_channel = "WEB_CHANNEL"
[[case.snapshot.orders.ship_groups]]
id = "1"
facility = "_NA_"
ship_to = { lat = 40.7, lon = -74.0 }
items = [{ id = "1", product = "RUN-8", quantity = 1 }]
""")
    result = invoke(project / "rules.routetest")
    assert result.exit_code == 0, result.output
    assert "3 passed, 0 failed" in result.stdout


def test_junit_xml_records_every_case(project, tmp_path):
    write(project, '[[case]]\nname = "good"\nexpect = [{ order = "O-1001", unfilled = false }]'
                   '\n[[case]]\nname = "bad"\nexpect = [{ order = "O-1004", unfilled = false }]'
                   '\n')
    report = tmp_path / "junit.xml"
    assert invoke(project, "--junit", report).exit_code == 1
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    [failure] = suite.iter("failure")
    assert "unfilled: expected False" in failure.get("message")


def test_coverage_reports_rules_and_conditions_and_gates(project):
    write(project, '[[case]]\nexpect = [{ order = "O-1001", facility = "WH_NJ" }]\n')
    text = invoke(project, "--coverage")
    assert text.exit_code == 0
    assert "Nearest warehouse ships everything: fired yes" in text.stdout
    assert "distance <= 1000 mi" in text.stdout  # with its unit
    document = json.loads(invoke(project, "--coverage-format", "json", "--fail-under", "0")
                          .stdout.split("\n", 2)[2])
    rules = {r["rule"]: r for r in document["rules"]}
    assert rules["Nearest warehouse ships everything"]["fired"] is True
    filters = {f["condition"]: f for f in document["filters"]}
    channel = filters["sales_channel in [WEB_CHANNEL, PHONE_CHANNEL]"]
    assert channel["true"] is True and channel["false"] is True  # a POS order fails it
    assert 0 < document["percent"] < 100
    gated = invoke(project, "--fail-under", "99")
    assert gated.exit_code == 1 and "is under 99%" in gated.stderr


@pytest.mark.parametrize("body, words", [
    ("[[case]\n", "not valid TOML"),
    ('[[case]]\nexpect = [{ order = "O-1001", facilty = "X" }]\n',
     "case[0].expect[0]: unknown check `facilty` (checks: facility, rule"),
    ('[[case]]\nexpect = [{ order = "O-1001" }]\n', "checks nothing"),
    ('[[case]]\ncolumns = ["order", "facility"]\nrows = [["O-1001"]]\n', "one value per column"),
    ('[[case]]\nwhat_if = ["shut WH_NJ"]\nexpect = [{ order = "O-1001", unfilled = false }]\n',
     "cannot read 'shut WH_NJ'"),
    ('[[case]]\nexpect = [{ order = "O-1001", quantity = "two" }]\n',
     "case[0].expect[0].quantity: expected a number, got a string"),
    ('[[case]]\nexpect = [{ order = "O-1001", shipping_cost = true }]\n',
     "case[0].expect[0].shipping_cost: expected a number, got a boolean"),
    ('[[case]]\nexpect = [{ order = "O-1001", delivery_date = "soon" }]\n',
     "case[0].expect[0].delivery_date: expected a date (2026-11-25)"),
    ("", "no [[case]] to run"),
    ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
])
def test_a_broken_test_file_is_refused_with_where_and_why(project, body, words):
    result = invoke(write(project, body))
    assert result.exit_code == 2
    assert words in result.stderr and "rules.routetest" in result.stderr


def test_rules_that_do_not_compile_or_do_not_exist(project):
    (project / "rules.route").write_text("group {")
    assert "do not compile" in invoke(write(project, "[[case]]\n")).stderr
    path = project / "other.routetest"
    path.write_text('rules = "missing.route"\n')
    result = invoke(path)
    assert result.exit_code == 2 and "no such .route file" in result.stderr
    assert invoke(project / "nothing-here").exit_code == 2


def test_the_authoring_doc_shows_the_omnichannel_tests_as_they_are():
    doc = (ROOT / "docs" / "authoring.md").read_text()
    shown = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    actual = (EXAMPLES / "omnichannel" / "omnichannel.routetest").read_text()
    assert shown.strip() in actual


def test_shipping_checks_hold_the_cost_and_the_delivery_date(tmp_path):
    folder = ROOT / "examples" / "shipping_cost"
    test = tmp_path / "t.routetest"
    test.write_text(f'rules = "{folder / "shipping_cost.route"}"\n'
                    f'snapshot = "{folder / "snapshot.json"}"\n'
                    '[[case]]\nname = "too dear, too late"\nexpect = [\n'
                    '  { order = "C-1", shipping_cost = 9.00 },\n'
                    '  { order = "C-3", delivery_date = 2026-11-23 },\n'
                    '  { order = "C-7", shipping_cost = 99.0 },\n]\n')
    result = invoke(test)
    assert result.exit_code == 1
    assert "shipping_cost: expected at most 9.0, got 9.53" in result.stderr
    assert "delivery_date: expected by 2026-11-23, got 2026-11-24" in result.stderr
    assert "order C-7: shipping_cost: expected at most 99.0, got no allocation" in result.stderr


# Found by the .routetest fuzzer (tests/test_fuzz_surfaces.py): each exited 3 with a
# traceback, or passed or failed a case instead of refusing the file.
@pytest.mark.parametrize("body, words", [
    ('[[case]]\nname = 5\nexpect = [{ order = "O-1001", unfilled = false }]\n',
     "case[0].name: expected a string, got an integer"),
    ('[[case]]\nexpect = [{ order = 5, unfilled = false }]\n',
     "case[0].expect[0].order: expected a string, got an integer"),
    ('[[case]]\ncolumns = ["order", "facility"]\nrows = [5]\n',
     "case[0].rows[0]: expected a list, got an integer"),
    ('[[case]]\ncolumns = ["order", "quantity"]\nrows = [["O-1001", "x"]]\n',
     "case[0].rows[0][1] (quantity): expected a number, got a string"),
    ('[[case]]\nexpect = [{ order = "O-1001", facility = ["WH_NJ"] }]\n',  # a silent failure
     "case[0].expect[0].facility: expected a string, got a list"),
    ('[[case]]\nexpect = [{ order = "O-1001", quantity = nan }]\n',  # passed every time
     "case[0].expect[0].quantity: expected a number >= 0.0"),
    ('[[case]]\nexpect = [{ order = "O-1001", quantity = 1e400 }]\n',
     "case[0].expect[0].quantity: expected a number within the supported range (finite "
     "numbers up to 9007199254740991)"),
    ('[[case]]\nexpect = [{ order = "O-1001", action = "parked" }]\n',
     "case[0].expect[0].action: invalid enum value 'parked' (one of: moved, left, "),
    ('[[case]]\nexpect = [{ order = "O-1001", unfilled = "yes" }]\n',
     "case[0].expect[0].unfilled: expected a boolean (true or false), got a string"),
    ("case = { name = 'x' }\n", "case: expected a list, got a table"),
    ('[[case]]\nexpect = [{ order = "O-1001", delivery_date = 2026-11-25T10:00:00 }]\n',
     "case[0].expect[0].delivery_date: expected a date (2026-11-25), got a date and time"),
    ('rulez = 1\n[[case]]\nexpect = [{ order = "O-1001", unfilled = false }]\n',
     "unknown key `rulez` (keys: rules, case, snapshot)"),
    ('[[case]]\nsnapshot = "snap\\u0000shot.json"\nexpect = [{ order = "O-1001", unfilled = '
     'false }]\n', "snapshot: expected a file path, got text with control characters"),
    ('[[case]]\nsnapshot = "' + "9" * 400 + '"\nexpect = [{ order = "O-1001", unfilled = '
     'false }]\n', "File name too long"),
    ('[[case]]\nexpect = [{ order = "\\n" }]\n', "the expectation for '\\n' checks nothing"),
])
def test_a_value_of_the_wrong_type_is_one_line_naming_its_path(project, body, words):
    result = invoke(write(project, body))
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: " + str(project / "rules.routetest")) and words in line


def test_an_order_absent_from_the_snapshot_is_said_so(project):
    result = invoke(write(project, '[[case]]\nexpect = [{ order = "O-9999", facility = '
                                   '"WH_NJ" }]\n'))
    assert result.exit_code == 1
    assert "order 'O-9999': not in the snapshot" in result.stderr
    assert "no routing took the order" not in result.stderr
