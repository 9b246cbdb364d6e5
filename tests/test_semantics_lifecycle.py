"""One named test per rule of the order lifecycle (issue 23; docs/semantics.md, "Rejections,
tags, facilities per order, active windows"), each run by both engines, which must give the
same bytes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from routing_dsl.checker import Workspace
from routing_dsl.engine import run_fast
from routing_dsl.result import dump_result

from .builders import allocated, facility, item, order, plan, rule_plan, run, stock, world

ENGINES = ("reference", "fast")


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


def routed(engine: str, the_plan, snapshot, **options) -> dict:
    """The result of ``engine``, after checking the other engine gives the same bytes."""
    reference = run(the_plan, snapshot, **options)
    fast = run_fast(the_plan, snapshot, **options)
    assert dump_result(fast) == dump_result(reference)
    return reference if engine == "reference" else fast


def rejected(facility_id: str, at: str, reason: str | None = "NOT_IN_STOCK") -> dict:
    return {"facility": facility_id, "at": at, "reason": reason}


NEAR, FAR = facility("NEAR", 40.72, -74.0), facility("FAR", 40.9, -74.0)
AVOID = "assign partial inventory { not rejected within 7 days } sort by distance"


def two_stores(rejections, quantity=1, near=5, far=5, **snapshot):
    return world([NEAR, FAR], [stock("NEAR", "P", near), stock("FAR", "P", far)],
                 [order("O1", [item("1", "P", quantity, rejections=rejections)])], **snapshot)


# ---- not rejected within N days ----------------------------------------------------------------

def test_not_rejected_within_keeps_a_recent_rejecter_from_the_item(engine):
    snap = two_stores([rejected("NEAR", "2026-11-22T16:00:00-05:00")])
    assert allocated(routed(engine, rule_plan(AVOID), snap)) == [("O1", "1", "FAR", 1)]


def test_not_rejected_within_lets_an_old_rejecter_ship_again(engine):
    snap = two_stores([rejected("NEAR", "2026-10-30T12:00:00-05:00")])
    assert allocated(routed(engine, rule_plan(AVOID), snap)) == [("O1", "1", "NEAR", 1)]


def test_a_rule_without_the_condition_ignores_rejections(engine):
    snap = two_stores([rejected("NEAR", "2026-11-23T08:00:00-05:00")])
    result = routed(engine, rule_plan("assign partial sort by distance"), snap)
    assert allocated(result) == [("O1", "1", "NEAR", 1)]


@pytest.mark.parametrize("at, avoided", [
    ("2026-11-16T00:00:00-05:00", True),   # midnight starting the day now - 7 days: counts
    ("2026-11-15T23:59:59-05:00", False),  # one second before: does not
    ("2026-11-23T09:30:00-05:00", True),   # at now
])
def test_within_n_days_reaches_back_to_midnight_starting_the_day_now_minus_n(engine, at,
                                                                             avoided):
    # now is 2026-11-23 09:30 New York time
    result = routed(engine, rule_plan(AVOID), two_stores([rejected("NEAR", at)]))
    assert allocated(result) == [("O1", "1", "FAR" if avoided else "NEAR", 1)]


def test_within_0_days_means_today(engine):
    today = rule_plan("assign partial inventory { not rejected within 0 days } "
                      "sort by distance")
    this_morning = two_stores([rejected("NEAR", "2026-11-23T00:00:00-05:00")])
    yesterday_night = two_stores([rejected("NEAR", "2026-11-22T23:59:00-05:00")])
    assert allocated(routed(engine, today, this_morning)) == [("O1", "1", "FAR", 1)]
    assert allocated(routed(engine, today, yesterday_night)) == [("O1", "1", "NEAR", 1)]


def test_a_rejection_dated_after_now_counts(engine):
    # a snapshot older than the rejection (a static file routed later)
    snap = two_stores([rejected("NEAR", "2026-11-30T10:00:00-05:00")])
    assert allocated(routed(engine, rule_plan(AVOID), snap)) == [("O1", "1", "FAR", 1)]


def test_the_days_are_those_of_the_snapshots_time_zone(engine):
    # 2026-11-16 03:00 UTC is Nov 15 in New York (before the cutoff) but Nov 16 in Tokyo
    at = "2026-11-16T03:00:00+00:00"
    new_york = two_stores([rejected("NEAR", at)])
    tokyo = two_stores([rejected("NEAR", at)], now="2026-11-23T23:30:00+09:00",
                       zone="Asia/Tokyo")
    assert allocated(routed(engine, rule_plan(AVOID), new_york)) == [("O1", "1", "NEAR", 1)]
    assert allocated(routed(engine, rule_plan(AVOID), tokyo)) == [("O1", "1", "FAR", 1)]


def test_the_latest_rejection_by_a_facility_decides(engine):
    snap = two_stores([rejected("NEAR", "2026-11-22T10:00:00-05:00"),
                       rejected("NEAR", "2026-09-01T10:00:00-05:00")])
    assert allocated(routed(engine, rule_plan(AVOID), snap)) == [("O1", "1", "FAR", 1)]


def test_single_assignment_fails_a_facility_that_rejected_any_item_of_the_unit(engine):
    snap = world([NEAR, FAR], [stock(f, p, 5) for f in ("NEAR", "FAR") for p in ("A", "B")],
                 [order("O1", [item("1", "A", 1),
                               item("2", "B", 1, rejections=[
                                   rejected("NEAR", "2026-11-22T10:00:00-05:00")])])])
    result = routed(engine, rule_plan("assign single inventory { not rejected within 7 days }"
                                      " sort by distance"), snap)
    assert allocated(result) == [("O1", "1", "FAR", 1), ("O1", "2", "FAR", 1)]


def test_partial_assignment_avoids_the_rejecter_only_for_the_item_it_rejected(engine):
    snap = world([NEAR, FAR], [stock(f, p, 5) for f in ("NEAR", "FAR") for p in ("A", "B")],
                 [order("O1", [item("1", "A", 1),
                               item("2", "B", 1, rejections=[
                                   rejected("NEAR", "2026-11-22T10:00:00-05:00")])])])
    result = routed(engine, rule_plan(AVOID), snap)
    assert allocated(result) == [("O1", "1", "NEAR", 1), ("O1", "2", "FAR", 1)]


def test_items_kept_together_fail_a_facility_that_rejected_one_of_them(engine):
    snap = world([NEAR, FAR], [stock(f, p, 5) for f in ("NEAR", "FAR") for p in ("A", "B")],
                 [order("O1", [item("1", "A", 1, item_group="KIT"),
                               item("2", "B", 1, item_group="KIT", rejections=[
                                   rejected("NEAR", "2026-11-22T10:00:00-05:00")])])])
    result = routed(engine, rule_plan("assign partial inventory { not rejected within 7 days "
                                      "keep_item_groups_together } sort by distance"), snap)
    assert allocated(result) == [("O1", "1", "FAR", 1), ("O1", "2", "FAR", 1)]


def test_a_rejection_by_a_facility_not_in_the_snapshot_changes_nothing(engine):
    snap = two_stores([rejected("CLOSED_STORE", "2026-11-22T10:00:00-05:00")])
    assert allocated(routed(engine, rule_plan(AVOID), snap)) == [("O1", "1", "NEAR", 1)]


def test_a_unit_every_facility_rejected_stays_open_for_its_actions(engine):
    snap = two_stores([rejected("NEAR", "2026-11-22T10:00:00-05:00"),
                       rejected("FAR", "2026-11-21T10:00:00-05:00")])
    result = routed(engine, rule_plan(AVOID + " when unfilled { move to queue PARK }"), snap)
    assert allocated(result) == []
    assert [(u["order"], u["action"], u["queue"]) for u in result["unfillable"]] == [
        ("O1", "moved", "PARK")]


def test_the_explanation_names_the_rejection():
    snap = two_stores([rejected("NEAR", "2026-11-22T16:00:00-05:00")])
    result = run(rule_plan(AVOID), snap, explain=True, explain_facilities={"NEAR"})
    [rule] = result["explanations"][0]["rules"]
    [near] = rule["facilities"]
    assert near["excluded_by"]["condition"] == "not rejected within 7 days"
    assert near["excluded_by"]["values"] == {"item": "1",
                                             "rejected": "rejected 2026-11-22, NOT_IN_STOCK"}


# ---- the rejections filter ----------------------------------------------------------------------

def test_rejections_filter_counts_an_items_rejections_however_old(engine):
    three = [rejected(f, f"2025-0{k}-01T10:00:00-05:00") for k, f in enumerate("XYZ", 1)]
    snap = world([NEAR], [stock("NEAR", "P", 9)],
                 [order("O1", [item("1", "P", 1, rejections=three)]),
                  order("O2", [item("1", "P", 1, rejections=three[:2])]),
                  order("O3", [item("1", "P", 1)])])
    needs_a_person = plan(
        'routing "Review" { filter { rejections >= 3 } rule "park" { assign single '
        'inventory { facility_group == A } when unfilled { move to queue PARK } } }\n'
        'routing "Rest" { filter { queue == _NA_ rejections < 3 } '
        'rule "any" { assign single } }')
    result = routed(engine, needs_a_person, snap)
    assert allocated(result) == [("O2", "1", "NEAR", 1), ("O3", "1", "NEAR", 1)]
    assert [(u["order"], u["queue"]) for u in result["unfillable"]] == [("O1", "PARK")]


def test_rejections_filter_a_ship_group_counts_its_most_rejected_item(engine):
    twice = [rejected("X", "2026-11-01T10:00:00-05:00"), rejected("Y", "2026-11-02T10:00:00Z")]
    snap = world([NEAR], [stock("NEAR", "P", 9)],
                 [order("O1", [item("1", "P", 1), item("2", "P", 1, rejections=twice)]),
                  order("O2", [item("1", "P", 1), item("2", "P", 1)])])
    result = routed(engine, rule_plan("assign single", filters="rejections >= 2"), snap)
    assert allocated(result) == [("O1", "1", "NEAR", 1), ("O1", "2", "NEAR", 1)]


# ---- tags ---------------------------------------------------------------------------------------

TAGGED = [order("O1", [item("1", "P", 1)], tags=["VIP", "GIFT"]),
          order("O2", [item("1", "P", 1)], tags=["GIFT"]),
          order("O3", [item("1", "P", 1)])]


@pytest.mark.parametrize("condition, orders", [
    ("tags in [VIP, B2B]", ["O1"]),                 # any of the listed tags
    ("tags not in [VIP]", ["O2", "O3"]),            # none of them (untagged orders too)
    ("tags is null", ["O3"]),                       # no tags
    ("tags is not null", ["O1", "O2"]),
])
def test_tags_filter_matches_the_orders_tags(engine, condition, orders):
    snap = world([NEAR], [stock("NEAR", "P", 9)], TAGGED)
    the_plan = plan(f'routing "R" {{ filter {{ {condition} }} rule "r" {{ assign single }} }}',
                    header="declare tag VIP, GIFT, B2B")
    assert [a[0] for a in allocated(routed(engine, the_plan, snap))] == orders


# ---- max_facilities -----------------------------------------------------------------------------

def spread(quantity=6, facilities=("F1", "F2", "F3"), each=2, **extra):
    """``facilities`` north of the address, nearest first, each with ``each`` of P."""
    return world([facility(f, 40.72 + k / 10, -74.0) for k, f in enumerate(facilities)],
                 [stock(f, "P", each) for f in facilities],
                 [order("O1", [item("1", "P", quantity)], **extra)])


def test_max_facilities_caps_the_facilities_a_partial_rule_ships_from(engine):
    result = routed(engine, rule_plan("assign partial inventory { max_facilities 2 } "
                                      "sort by distance"), spread())
    assert allocated(result) == [("O1", "1", "F1", 2), ("O1", "1", "F2", 2)]
    assert [u["quantity"] for u in result["unfillable"]] == [2]


def test_max_facilities_counts_the_facilities_earlier_rules_chose(engine):
    # r1 ships 2 from F3 alone; r2 (cap 2) may open one more: F1, not F2
    the_plan = rule_plan(
        "assign partial inventory { facility_group == C }",
        more_rules='rule "r2" { assign partial inventory { max_facilities 2 } '
                   'sort by distance }')
    snap = world([facility("F1", 40.72, -74.0), facility("F2", 40.82, -74.0),
                  facility("F3", 40.92, -74.0, groups={"C": 1})],
                 [stock(f, "P", 2) for f in ("F1", "F2", "F3")],
                 [order("O1", [item("1", "P", 6)])])
    assert allocated(routed(engine, the_plan, snap)) == [
        ("O1", "1", "F3", 2), ("O1", "1", "F1", 2)]


def test_max_facilities_lets_facilities_in_use_take_more_once_reached(engine):
    # two lines: the first opens F1 and F2; the second may still take from F2 (not F3)
    snap = world([facility(f, 40.72 + k / 10, -74.0) for k, f in enumerate(("F1", "F2", "F3"))],
                 [stock("F1", "A", 1), stock("F2", "A", 5), stock("F2", "B", 1),
                  stock("F3", "B", 9), stock("F1", "B", 0)],
                 [order("O1", [item("1", "A", 2), item("2", "B", 2)])])
    result = routed(engine, rule_plan("assign partial inventory { max_facilities 2 } "
                                      "sort by distance"), snap)
    assert allocated(result) == [("O1", "1", "F1", 1), ("O1", "1", "F2", 1),
                                 ("O1", "2", "F2", 1)]


def test_max_facilities_counts_facilities_across_the_routings_of_a_run(engine):
    snap = world([facility(f, 40.72 + k / 10, -74.0) for k, f in enumerate(("F1", "F2", "F3"))],
                 [stock("F3", "P", 1), stock("F1", "P", 1), stock("F2", "P", 9)],
                 [order("O1", [item("1", "P", 3)])])
    the_plan = plan(
        'routing "First" { filter { queue == _NA_ } rule "far one" { assign partial '
        'sort by distance desc inventory { max_facilities 1 } } }\n'
        'routing "Second" { filter { queue == _NA_ } rule "two in all" { assign partial '
        'inventory { max_facilities 2 } sort by distance } }')
    # First ships 1 from F3; Second may open one more: F1 (1), not F2
    assert allocated(routed(engine, the_plan, snap)) == [("O1", "1", "F3", 1),
                                                         ("O1", "1", "F1", 1)]


def test_max_facilities_under_single_assignment_needs_a_facility_in_use_once_reached(engine):
    the_plan = rule_plan(
        "assign partial inventory { facility_group == C }",
        more_rules='rule "r2" { assign single inventory { max_facilities 1 } '
                   'sort by distance }')
    snap = world([facility("F1", 40.72, -74.0), facility("F3", 40.92, -74.0, groups={"C": 1})],
                 [stock("F1", "P", 9), stock("F3", "P", 1), stock("F3", "Q", 9)],
                 [order("O1", [item("1", "P", 2), item("2", "Q", 1)])])
    # r1: F3 ships P x1 and Q x1; r2 (one facility in all) may only use F3, which has no P
    result = routed(engine, the_plan, snap)
    assert allocated(result) == [("O1", "1", "F3", 1), ("O1", "2", "F3", 1)]
    assert [(u["item"], u["quantity"]) for u in result["unfillable"]] == [("1", 1)]


def test_max_facilities_in_item_mode_counts_the_ship_groups_facilities(engine):
    snap = world([facility(f, 40.72 + k / 10, -74.0) for k, f in enumerate(("F1", "F2"))],
                 [stock("F1", "A", 1), stock("F2", "B", 1), stock("F2", "A", 1)],
                 [order("O1", [item("1", "A", 1, promised_date="2026-11-24T10:00:00-05:00"),
                               item("2", "B", 1, promised_date="2026-11-24T10:00:00-05:00")])])
    the_plan = rule_plan("assign partial inventory { max_facilities 1 } sort by distance",
                         filters="queue == _NA_ promise_date within 5 days")
    result = routed(engine, the_plan, snap)
    assert allocated(result) == [("O1", "1", "F1", 1)]  # item 2 may not open F2
    assert [u["item"] for u in result["unfillable"]] == ["2"]


def test_max_facilities_in_item_mode_names_the_facilities_in_use_when_explained(engine):
    """An asked facility kept out by `max_facilities` is shown with the facilities its ship
    group shipped from when the rule decided: on the fast engine, the run's list of them cut
    at the count the kernel saw, though later units of the ship group add to it."""
    snap = world([facility(f, 40.72 + k / 10, -74.0) for k, f in enumerate(("F1", "F2", "F3"))],
                 [stock("F1", "A", 1), stock("F2", "B", 1), stock("F3", "C", 1)],
                 [order("O1", [item(str(k), p, 1, promised_date="2026-11-24T10:00:00-05:00")
                               for k, p in enumerate("ABC", 1)])])
    # r1 ships from one facility at most; r2 from any, so each item opens its own
    the_plan = rule_plan("assign partial inventory { max_facilities 1 } sort by distance",
                         filters="queue == _NA_ promise_date within 5 days",
                         more_rules='rule "r2" { assign partial sort by distance }')
    result = routed(engine, the_plan, snap, explain=True, explain_facilities={"F2", "F3"})
    assert [a["facility"] for a in result["allocations"]] == ["F1", "F2", "F3"]
    shown = {(unit["item"], rule["rule"], detail["facility"]): detail.get("excluded_by")
             for unit in result["explanations"] for rule in unit["rules"]
             for detail in rule["facilities"]}
    assert shown[("2", "r1", "F2")] == {"condition": "max_facilities 1",
                                        "values": {"shipping_from": ["F1"]}}
    assert shown[("3", "r1", "F3")]["values"] == {"shipping_from": ["F1", "F2"]}
    assert shown[("3", "r2", "F3")] is None  # chosen


def test_what_max_facilities_leaves_open_goes_to_the_next_rule(engine):
    the_plan = rule_plan("assign partial inventory { max_facilities 1 } sort by distance",
                         more_rules='rule "rest" { assign partial inventory { '
                                    'max_facilities 3 } sort by distance }')
    result = routed(engine, the_plan, spread())
    assert [(a["facility"], a["quantity"], a["rule"]) for a in result["allocations"]] == [
        ("F1", 2, "r1"), ("F2", 2, "rest"), ("F3", 2, "rest")]


def test_max_facilities_keeps_its_count_when_the_table_grows():
    # many ship groups, each split over two facilities: the fast engine's table of facilities
    # in use grows several times and must route exactly as the reference does
    n = 3000
    orders = [order(f"O{k:04d}", [item("1", f"P{k}", 3)]) for k in range(n)]
    snap = world([facility(f, 40.72 + k / 10, -74.0) for k, f in enumerate(("F1", "F2", "F3"))],
                 [stock(f, f"P{k}", 1) for k in range(n) for f in ("F1", "F2", "F3")], orders)
    result = routed("fast", rule_plan("assign partial inventory { max_facilities 2 } "
                                      "sort by distance"), snap)
    assert len(result["allocations"]) == 2 * n  # F1 and F2 each give one, F3 may not
    assert {u["quantity"] for u in result["unfillable"]} == {1}


# ---- active windows -----------------------------------------------------------------------------

ANY = 'rule "r" { assign single }'


def windowed(window: str, rule_window: str = "", schedule: str = "") -> object:
    return plan(f'{schedule}\nrouting "R" {window} {{ filter {{ queue == _NA_ }} '
                f'rule "r" {rule_window} {{ assign single }} }}')


def one_order(**snapshot):
    return world([NEAR], [stock("NEAR", "P", 9)], [order("O1", [item("1", "P", 1)])],
                 **snapshot)


def test_a_routing_outside_its_window_is_skipped_as_if_draft(engine):
    result = routed(engine, windowed('active from "2026-11-27" until "2026-12-01"'),
                    one_order())
    assert allocated(result) == [] and result["unfillable"] == []
    assert result["batches"][0]["runs"] == []  # no run record, as for a draft routing


def test_a_rule_outside_its_window_is_skipped_as_if_draft(engine):
    the_plan = plan('routing "R" { filter { queue == _NA_ }\n'
                    ' rule "Black Friday" active from "2026-11-27" { assign single '
                    'inventory { facility_group == A } }\n rule "Any" { assign single } }')
    result = routed(engine, the_plan, one_order())
    assert [a["rule"] for a in result["allocations"]] == ["Any"]


@pytest.mark.parametrize("now, runs", [
    ("2026-11-27T00:00:00-05:00", True),    # from is inclusive
    ("2026-11-26T23:59:59-05:00", False),
    ("2026-11-30T23:59:59-05:00", True),
    ("2026-12-01T00:00:00-05:00", False),   # until is exclusive
])
def test_a_window_runs_from_its_start_until_just_before_its_end(engine, now, runs):
    result = routed(engine, windowed('active from "2026-11-27" until "2026-12-01T00:00"'),
                    one_order(now=now))
    assert bool(allocated(result)) is runs


def test_window_bounds_are_read_in_the_groups_time_zone(engine):
    # the schedule's zone (Los Angeles) decides, not the snapshot's (New York): 09:30 in New
    # York is 06:30 in Los Angeles, before a window that opens at 07:00 there
    the_plan = windowed('active from "2026-11-23T07:00"',
                        schedule='schedule "*/15 * * * *" in "America/Los_Angeles"')
    assert allocated(routed(engine, the_plan, one_order())) == []
    without_zone = windowed('active from "2026-11-23T07:00"')
    assert allocated(routed(engine, without_zone, one_order())) == [("O1", "1", "NEAR", 1)]


def test_a_window_bound_with_an_offset_is_that_instant(engine):
    the_plan = windowed('active until "2026-11-23T14:00:00Z"')  # 09:00 in New York
    assert allocated(routed(engine, the_plan, one_order())) == []


def test_a_routing_whose_rules_are_all_outside_their_windows_is_skipped(engine):
    result = routed(engine, windowed("", rule_window='active until "2026-11-01"'),
                    one_order())
    assert result["batches"][0]["runs"] == [] and result["unfillable"] == []


def test_the_checker_warns_when_a_window_has_ended_and_refuses_a_bad_one():
    text = ('group "G" for store S {\n routing "R" active from "2026-11-01" until "2026-12-01" '
            '{ rule "r" { assign single } }\n routing "Q" active from "Nov 1" '
            '{ rule "r" { assign single } }\n routing "V" active from "2026-12-02" until '
            '"2026-12-01" { rule "r" { assign single } } }')

    def codes(now: datetime) -> list[str]:
        return [d.code for d in Workspace(now=now).check_text(text).diagnostics]
    assert codes(datetime(2026, 11, 15, tzinfo=UTC)) == ["RT415", "RT415"]
    assert codes(datetime(2026, 12, 2, tzinfo=UTC)) == ["RT416", "RT415", "RT415"]
