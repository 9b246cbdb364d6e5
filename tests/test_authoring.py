"""What-if changes and the behavioural diff between two versions of the rules."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from routing_dsl.authoring.diff import compare, diff_plans, figures
from routing_dsl.authoring.whatif import WhatIfError, apply, parse, read_patch
from routing_dsl.cli import main
from routing_dsl.interpreter import run_plan

from .builders import facility, item, order, plan, stock, world
from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "omnichannel"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def example_copy(folder, changed: bool):
    """The omnichannel rules in ``folder`` (with the catalog they use), the store rule's
    distance cut from 1000 to 100 miles when ``changed``."""
    (folder / "catalog.route").write_text((ROOT / "examples" / "catalog.route").read_text())
    text = (EXAMPLE / "omnichannel.route").read_text().replace('use "../catalog.route"',
                                                              'use "catalog.route"')
    if changed:
        text = text.replace("distance <= 1000 mi", "distance <= 100 mi")
    (folder / "rules.route").write_text(text)
    return folder / "rules.route"


def two_warehouses():
    return world([facility("NEAR", 40.72, -74.0), facility("FAR", 42.36, -71.06)],
                 [stock("NEAR", "P1", 5), stock("FAR", "P1", 5), stock("FAR", "P2", 5)],
                 [order("O1", [item("00001", "P1", 2)]),
                  order("O2", [item("00001", "P1", 1), item("00002", "P2", 1)])])


NEAREST = plan('routing "R" { filter { queue == _NA_ } rule "nearest" { assign partial '
               'sort by distance } }')


# ---- what-if ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, described", [
    ("close NEAR", "close NEAR"),
    ("  stock   P1 at NEAR = 0 ", "stock P1 at NEAR = 0"),
    ("stock P1 at NEAR=2.5", "stock P1 at NEAR = 2.5"),
    ("limit NEAR 10", "limit NEAR 10"),
    ("limit NEAR none", "limit NEAR none"),
    ('close "NEAR"', "close NEAR"),
])
def test_what_if_statements_read_as_written(text, described):
    assert parse(text).describe() == described


@pytest.mark.parametrize("text", ["open NEAR", "stock P1 NEAR = 1", "close",
                                  "close NEAR FAR"])
def test_a_what_if_that_does_not_parse_says_what_is_expected(text):
    with pytest.raises(WhatIfError, match="expected `close FACILITY`"):
        parse(text)


# Found by the what-if fuzzer (tests/test_fuzz_surfaces.py): each number slot is read against
# the range the engines hold exactly, and refused naming the statement.
@pytest.mark.parametrize("text, words", [
    # a limit too large to be a float became infinity, and int(inf) crashed (exit 3)
    ("limit NEAR " + "9" * 400, "the daily order limit '999999999999999999999999999...' is "
                                "outside the supported range (finite numbers up to "
                                "9007199254740991)"),
    # a stock too large to be a float became infinity in the snapshot, then in the result
    ("stock P1 at NEAR = " + "9" * 400, "outside the supported range"),
    ("stock P1 at NEAR = 9007199254740993", "the stock '9007199254740993' is outside the "
                                            "supported range"),
    ("stock P1 at NEAR = 9007199254740992", "the stock '9007199254740992' is outside"),
    ("stock P1 at NEAR = -9007199254740992", "the stock '-9007199254740992' is outside"),
    ("stock P1 at NEAR = 9007199254740991.5", "is outside the supported range"),
    ("limit NEAR 9007199254740992", "the daily order limit '9007199254740992' is outside"),
    ("limit NEAR " + "9" * 5000, "outside the supported range"),  # int() refuses > 4300 digits
    ("limit NEAR -1", "the daily order limit '-1' is negative; it is 0 or more"),
    ("limit NEAR 1.5", "the daily order limit '1.5' is not a whole number (or `none`)"),
    ("stock P1 at NEAR = nan", "the stock 'nan' is not a number (write it like 12 or 2.5)"),
    ("stock P1 at NEAR = lots", "the stock 'lots' is not a number"),
    ("stock P1 at NEAR = 1e5", "the stock '1e5' is not a number"),
    ("stock P1 at NEAR = \u0661\u0662", "is not a number"),  # Arabic-Indic digits read as 12
])
def test_a_what_if_number_out_of_range_is_refused_naming_the_statement(text, words):
    with pytest.raises(WhatIfError) as error:
        parse(text, "patch.txt:3")
    assert str(error.value).startswith("patch.txt:3: '" + text[:20])
    assert words in str(error.value)


def test_the_largest_exact_numbers_are_accepted():
    assert parse(f"stock P1 at NEAR = {2**53 - 1}").number == 2**53 - 1
    assert parse(f"stock P1 at NEAR = -{2**53 - 1}").number == -(2**53 - 1)
    assert parse(f"limit NEAR {2**53 - 1}").number == 2**53 - 1


def test_closing_a_facility_sends_its_orders_elsewhere():
    snapshot = two_warehouses()
    assert {a["facility"] for a in run_plan(NEAREST, snapshot)["allocations"]} == {"NEAR",
                                                                                   "FAR"}
    closed = apply(snapshot, [parse("close NEAR")])
    assert {a["facility"] for a in run_plan(NEAREST, closed)["allocations"]} == {"FAR"}
    assert snapshot.facilities[0].product_stores == ["STORE"]  # the original is untouched


def test_stock_and_limit_changes_apply_in_order():
    snapshot = apply(two_warehouses(), [parse("stock P1 at NEAR = 0"),
                                        parse("stock P2 at NEAR = 3"), parse("limit FAR 1")])
    rows = {(r.facility, r.product): r.atp for r in snapshot.inventory}
    assert rows[("NEAR", "P1")] == 0 and rows[("NEAR", "P2")] == 3  # a new row
    assert [f.max_orders_per_day for f in snapshot.facilities][:2] == [None, 1]
    result = run_plan(NEAREST, snapshot)
    assert [(a["order"], a["facility"]) for a in result["allocations"]] == [
        ("O1", "FAR"), ("O2", "NEAR")]  # FAR takes one order; O2's P1 finds no stock near


def test_unknown_ids_in_a_what_if_are_refused_with_suggestions():
    with pytest.raises(WhatIfError, match=r"no facility 'NAER' \(did you mean NEAR\?\)"):
        apply(two_warehouses(), [parse("close NAER")])
    with pytest.raises(WhatIfError, match="no product 'P9'"):
        apply(two_warehouses(), [parse("stock P9 at NEAR = 1")])
    with pytest.raises(WhatIfError, match="no facility '_NA_'"):  # a queue ships nothing
        apply(two_warehouses(), [parse("close _NA_")])


def test_a_patch_file_names_the_line_of_a_bad_statement(tmp_path):
    patch = tmp_path / "patch.txt"
    patch.write_text("# closing time\nclose NEAR\n\nlimit FAR lots\n")
    with pytest.raises(WhatIfError, match=r"patch.txt:4: 'limit FAR lots': the daily order limit"):
        read_patch(patch)
    patch.write_text("close NEAR  # for the day\nlimit FAR 3\n")
    assert [c.describe() for c in read_patch(patch)] == ["close NEAR", "limit FAR 3"]


def test_run_applies_what_ifs_and_refuses_bad_ones():
    base = ["run", EXAMPLE / "omnichannel.route", "--snapshot", EXAMPLE / "snapshot.json",
            "--out", "-"]
    plain = json.loads(invoke(*base).stdout)
    closed = invoke(*base, "--what-if", "close ST_NYC")
    assert closed.exit_code == 0, closed.output
    assert "ST_NYC" in {a["facility"] for a in plain["allocations"]}
    assert "ST_NYC" not in {a["facility"] for a in json.loads(closed.stdout)["allocations"]}
    bad = invoke(*base, "--what-if", "close NYC")
    assert bad.exit_code == 2 and "no facility 'NYC'" in bad.stderr
    huge = invoke(*base, "--what-if", "limit WH_NJ " + "9" * 400)
    assert huge.exit_code == 2 and "error: --what-if: 'limit WH_NJ 999" in huge.stderr
    assert "outside the supported range" in huge.stderr and "Traceback" not in huge.output


def test_a_what_if_file_value_too_large_for_a_float_is_refused_not_infinity(tmp_path):
    patch = tmp_path / "patch.txt"
    patch.write_text("close ST_NYC\nstock RUN-8 at WH_NJ = 1" + "0" * 400 + "\n")
    result = invoke("run", EXAMPLE / "omnichannel.route", "--snapshot",
                    EXAMPLE / "snapshot.json", "--what-if-file", patch, "--out",
                    tmp_path / "result.json")
    assert result.exit_code == 2, result.output
    assert f"error: {patch}:2: 'stock RUN-8 at WH_NJ = 1000" in result.stderr
    assert "is outside the supported range (finite numbers up to 9007199254740991)" in \
        result.stderr
    assert not (tmp_path / "result.json").exists()


# ---- diff -------------------------------------------------------------------------------------

def test_a_changed_rule_lists_each_changed_unit_with_both_placements():
    snapshot = two_warehouses()
    farthest = plan('routing "R" { filter { queue == _NA_ } rule "farthest" { assign partial '
                    'sort by distance desc } }')
    result = diff_plans(NEAREST, farthest, snapshot)
    # O2's P2 ships from FAR either way, but by another rule: that is a change too
    assert [(c.order, c.item) for c in result.changes] == [
        ("O1", "00001"), ("O2", "00001"), ("O2", "00002")]
    first = result.changes[0]
    assert [(p["facility"], p["rule"]) for p in first.old] == [("NEAR", "nearest")]
    assert [(p["facility"], p["rule"]) for p in first.new] == [("FAR", "farthest")]
    assert first.old_rules == ["nearest: filled (NEAR)"]
    assert first.new_rules == ["farthest: filled (FAR)"]
    assert result.before["split_shipments"] == 1 and result.after["split_shipments"] == 0
    assert result.before["orders_per_facility"] == {"FAR": 1, "NEAR": 2}
    assert result.after["orders_per_facility"] == {"FAR": 2}


def test_the_same_rules_change_nothing():
    snapshot = two_warehouses()
    same = run_plan(NEAREST, snapshot)
    assert compare(same, same) == []
    numbers = figures(same)
    assert numbers["allocations"] == 3 and numbers["unfilled_items"] == 0
    assert numbers["distance_unit"] == "mi" and numbers["mean_distance"] > 0


def test_diff_command_exit_codes_text_and_json(tmp_path):
    changed = example_copy(tmp_path, changed=True)
    snapshot = ["--snapshot", EXAMPLE / "snapshot.json"]
    same = invoke("diff", EXAMPLE / "omnichannel.route", EXAMPLE / "omnichannel.route",
                  *snapshot, "--exit-code")
    assert same.exit_code == 0 and "no unit changed" in same.stdout
    differs = invoke("diff", EXAMPLE / "omnichannel.route", changed, *snapshot, "--exit-code")
    assert differs.exit_code == 2, differs.output
    assert "~ order O-1003, ship group 00001, item 00001 (RUN-10)" in differs.stdout
    assert "- ST_BOS x7 by rule 'Nearest stores split the order'" in differs.stdout
    assert "orders per facility: ST_BOS 1 -> 0" in differs.stdout
    assert invoke("diff", EXAMPLE / "omnichannel.route", changed, *snapshot).exit_code == 0
    document = json.loads(invoke("diff", EXAMPLE / "omnichannel.route", changed, *snapshot,
                                 "--format", "json").stdout)
    assert document["units_changed"] == 1
    assert document["before"]["allocations"] == 6 and document["after"]["allocations"] == 5
    # no rate cards: the cost is unknown, not 0.0
    assert document["before"]["shipping_cost"] is None is document["after"]["shipping_cost"]
    assert "shipping cost" not in differs.stdout
    missing = invoke("diff", tmp_path / "nope.route", changed, *snapshot)
    assert missing.exit_code == 1 and "no such file" in missing.stderr
    broken = tmp_path / "broken.route"
    broken.write_text("group {")
    assert invoke("diff", broken, changed, *snapshot).exit_code == 1


def test_diff_reads_a_version_from_git(tmp_path, monkeypatch):
    rules = example_copy(tmp_path, changed=False)
    for command in (["git", "init", "-q"], ["git", "add", "rules.route", "catalog.route"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "r"]):
        subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)
    rules.write_text(rules.read_text().replace("distance <= 1000 mi", "distance <= 100 mi"))
    (tmp_path / "snapshot.json").write_text((EXAMPLE / "snapshot.json").read_text())
    monkeypatch.chdir(tmp_path)
    result = invoke("diff", "git:HEAD:rules.route", "rules.route", "--snapshot",
                    "snapshot.json", "--exit-code")
    assert result.exit_code == 2, result.output
    # docs/authoring.md shows this very run
    doc = (ROOT / "docs" / "authoring.md").read_text()
    shown = doc.split("```text\nrouting diff:", 1)[1].split("```", 1)[0]
    assert result.stdout == "routing diff:" + shown
    unknown = invoke("diff", "git:HEAD:nope.route", "rules.route", "--snapshot",
                     EXAMPLE / "snapshot.json")
    assert unknown.exit_code == 1 and "git show failed" in unknown.stderr


def test_diff_shows_what_the_shipping_costs_before_and_after(tmp_path):
    folder = EXAMPLE.parent / "shipping_cost"
    (tmp_path / "catalog.route").write_text((EXAMPLE.parent / "catalog.route").read_text())
    nearest = tmp_path / "nearest.route"
    nearest.write_text((folder / "shipping_cost.route").read_text()
                       .replace('use "../catalog.route"', 'use "catalog.route"')
                       .replace("split_cost 2.00\n", "")
                       .replace("sort by shipping_cost, delivery_date", "sort by distance"))
    shown = invoke("diff", folder / "shipping_cost.route", nearest, "--snapshot",
                   folder / "snapshot.json")
    assert shown.exit_code == 0, shown.output
    line = next(x for x in shown.stdout.splitlines() if x.strip().startswith("shipping cost"))
    before, after = (float(x) for x in line.split()[-2:])
    assert before < after  # distance does not minimise cost
    document = json.loads(invoke("diff", folder / "shipping_cost.route", nearest, "--snapshot",
                                 folder / "snapshot.json", "--format", "json").stdout)
    assert document["before"]["shipping_cost"] == before
    assert document["before"]["packages"] == 7
