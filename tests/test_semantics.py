"""One named test per routing decision in docs/semantics.md (and the reference's
semantics-decisions.md): each fails if that behaviour changes."""

from __future__ import annotations

import pytest

from routing_dsl.checker import Workspace

from .builders import (allocated, facility, item, order, plan, rule_plan, run, stock, world)


# ---- where this project deliberately differs from HotWax -------------------------------------

def test_q1_distance_applies_to_every_candidate_in_partial_rules():
    snap = world([facility("NEAR", 40.72, -74.0), facility("FAR", 34.05, -118.2)],
                 [stock("NEAR", "P", 1), stock("FAR", "P", 10)], [order("O1", [item("1", "P", 3)])])
    result = run(rule_plan("assign partial inventory { distance <= 50 mi }"), snap)
    assert allocated(result) == [("O1", "1", "NEAR", 1)]


def test_q2_single_takes_the_first_facility_that_can_fill_the_whole_unit():
    # F1 ranks first and has item a, F2 ranks second and has everything
    snap = world([facility("F1", 40.71, -74.0), facility("F2", 40.9, -74.0)],
                 [stock("F1", "A", 5), stock("F2", "A", 5), stock("F2", "B", 5)],
                 [order("O1", [item("1", "A", 1), item("2", "B", 1)])])
    result = run(rule_plan("assign single sort by distance"), snap)
    assert allocated(result) == [("O1", "1", "F2", 1), ("O1", "2", "F2", 1)]


def test_q3_same_product_on_several_lines_never_over_allocates():
    snap = world([facility("F")], [stock("F", "P", 3)],
                 [order("O1", [item("1", "P", 2), item("2", "P", 2)]),
                  order("O2", [item("1", "P", 2)])])
    result = run(rule_plan("assign partial"), snap)
    assert allocated(result) == [("O1", "1", "F", 2), ("O1", "2", "F", 1)]
    assert result["inventory_after"] == [{"facility": "F", "product": "P", "atp": 0}]


def test_q4_ids_are_strings_numeric_order_ids_route_normally():
    snap = world([facility("F")], [stock("F", "P", 5)],
                 [order("10001", [item("00001", "P", 2), item("00002", "P", 2)])])
    result = run(rule_plan("assign partial"), snap)
    assert allocated(result) == [("10001", "00001", "F", 2), ("10001", "00002", "F", 2)]
    assert result["allocations"][0]["new_ship_group"] == "00001-1"


def test_q4_new_ship_group_ids_never_parse_old_ones():
    # `²` is a digit to str.isdigit() and a 5,000-digit id is too long for int(): both are
    # opaque strings, and a new id never collides with one the order already has
    snap = world([facility("F")], [stock("F", "P", 9)],
                 [order("O1", [item("1", "P", 1)], sg="²"),
                  order("O2", [item("1", "P", 1)], sg="9" * 5000)])
    result = run(rule_plan("assign single"), snap)
    assert [a["new_ship_group"] for a in result["allocations"]] == ["²-1", "9" * 5000 + "-1"]


def test_q4_a_new_ship_group_id_skips_one_the_order_holds_in_both_engines():
    # order O1 holds `1` and `1-1`: the packages split from `1` are `1-2` and `1-3`, those
    # from `1-1` are `1-1-1`; O2, holding no such id, counts from 1 (the fast engine counts
    # in arrays where no id can be taken, and takes the run's rule where one can)
    from routing_dsl.engine import run_fast
    from routing_dsl.result import dump_result
    snap = world([facility("F1", 40.71, -74.0), facility("F2", 40.8, -74.0)],
                 [stock("F1", "P", 1), stock("F2", "P", 5)],
                 [order("O1", [item("1", "P", 2)], sg="1")
                  | {"ship_groups": [*order("O1", [item("1", "P", 2)], sg="1")["ship_groups"],
                                     *order("O1", [item("1", "P", 1)], sg="1-1")["ship_groups"]]},
                  order("O2", [item("1", "P", 1)], sg="1")])
    the_plan = rule_plan("assign partial sort by distance")
    result = run(the_plan, snap)
    assert [(a["order"], a["ship_group"], a["new_ship_group"])
            for a in result["allocations"]] == [("O1", "1", "1-2"), ("O1", "1", "1-3"),
                                                ("O1", "1-1", "1-1-1"), ("O2", "1", "1-1")]
    assert dump_result(run_fast(the_plan, snap)) == dump_result(result)


def test_q5_a_split_line_gives_one_allocation_per_facility_with_its_quantity():
    snap = world([facility("F1", 40.71, -74.0), facility("F2", 40.8, -74.0)],
                 [stock("F1", "P", 2), stock("F2", "P", 5)], [order("O1", [item("1", "P", 5)])])
    result = run(rule_plan("assign partial sort by distance"), snap)
    assert allocated(result) == [("O1", "1", "F1", 2), ("O1", "1", "F2", 3)]
    assert len({a["new_ship_group"] for a in result["allocations"]}) == 2


def test_q6_the_quantity_to_route_is_quantity_minus_cancel_quantity():
    snap = world([facility("F")], [stock("F", "P", 3)],
                 [order("O1", [item("1", "P", 5, cancel_quantity=2)])])
    result = run(rule_plan("assign single"), snap)
    assert allocated(result) == [("O1", "1", "F", 3)]


def test_q7_facility_sequence_without_a_group_is_a_compile_time_error():
    text = ('group "G" for store S { routing "R" { rule "r" { assign partial '
            'sort by facility_sequence } } }')
    codes = [d.code for d in Workspace().check_text(text).diagnostics]
    assert codes == ["RT403"]


def test_q8_run_time_failure_is_an_error_on_the_run_and_fires_no_action():
    snap = world([facility("F")], [], [order("O1", [item("1", "P", 1)])])
    the_plan = plan('routing "R" { rule "r" { assign single when unfilled { '
                    'move to queue "NO_SUCH_QUEUE" } } }')
    result = run(the_plan, snap)
    [record] = result["batches"][0]["runs"]
    assert "NO_SUCH_QUEUE" in record["error"]
    assert result["unfillable"] == [] and result["allocations"] == []


def test_q9_include_and_exclude_facility_groups_apply_together():
    snap = world([facility("AB", groups={"A": 1, "B": 1}), facility("A_ONLY", groups={"A": 1})],
                 [stock("AB", "P", 9), stock("A_ONLY", "P", 1)], [order("O1", [item("1", "P", 1)])])
    result = run(rule_plan("assign single inventory { facility_group == A facility_group != B }"
                           " sort by inventory_balance desc"), snap)
    assert allocated(result) == [("O1", "1", "A_ONLY", 1)]


def test_q10_excluding_a_group_keeps_facilities_in_no_group():
    snap = world([facility("NONE"), facility("INB", groups={"B": 1})],
                 [stock("NONE", "P", 1), stock("INB", "P", 9)], [order("O1", [item("1", "P", 1)])])
    result = run(rule_plan("assign single inventory { facility_group != B }"), snap)
    assert allocated(result) == [("O1", "1", "NONE", 1)]


def test_q11_empty_queue_and_fractional_days_are_rejected_by_the_checker():
    text = ('group "G" for store S { routing "R" { rule "r" { assign single when unfilled { '
            'move to queue "" auto_cancel after 1.5 days } } } }')
    codes = sorted(d.code for d in Workspace().check_text(text).diagnostics)
    assert codes == ["RT306", "RT307"]


def test_q12_missing_coordinates_fail_distance_filters_sort_last_and_warn():
    snap = world([facility("NOGEO", None, None), facility("FAR", 41.5, -74.0)],
                 [stock("NOGEO", "P", 5), stock("FAR", "P", 5)],
                 [order("O1", [item("1", "P", 1)]), order("O2", [item("1", "P", 1)])])
    filtered = run(rule_plan("assign single inventory { distance <= 500 mi }"), snap)
    assert [a[2] for a in allocated(filtered)] == ["FAR", "FAR"]
    sorted_only = run(rule_plan("assign single sort by distance"), snap)
    assert [a[2] for a in allocated(sorted_only)] == ["FAR", "FAR"]
    assert any("NOGEO has no coordinates" in w for w in filtered["warnings"])


def test_q13_the_snapshot_clock_decides_promise_cutoffs_and_auto_cancel_dates():
    # now is 23:30 on the 23rd in New York, already the 24th in UTC: "today" is New York's
    snap = world([facility("F")], [],
                 [order("O1", [item("1", "P", 1, promised_date="2026-11-23T23:45:00-05:00")]),
                  order("O2", [item("1", "P", 1, promised_date="2026-11-24T01:00:00-05:00")])],
                 now="2026-11-24T04:30:00+00:00")
    result = run(rule_plan("assign partial when unfilled { auto_cancel after 2 days }",
                           filters="promise_date within 0 days"), snap)
    assert [(u["order"], u["auto_cancel_date"]) for u in result["unfillable"]] == [
        ("O1", "2026-11-25T23:30:00-05:00")]


def test_q14_missing_values_sort_last_unless_nulls_first():
    orders = [order("NONE", [item("1", "P", 1)]),
              order("LOW", [item("1", "P", 1)], priority="LOW"),
              order("HIGH", [item("1", "P", 1)], priority="HIGH")]
    snap = world([facility("F")], [stock("F", "P", 2)], orders)
    last = run(rule_plan("assign single", sorts="sort by priority"), snap)
    assert [a[0] for a in allocated(last)] == ["HIGH", "LOW"]
    first = run(rule_plan("assign single", sorts="sort by priority nulls first"), snap)
    assert [a[0] for a in allocated(first)] == ["NONE", "HIGH"]


def test_q15_each_unit_is_attempted_once_per_routing():
    snap = world([facility("F")], [],
                 [order("O1", [item("1", "P", 1, ship_before="2026-11-24T00:00:00-05:00"),
                               item("2", "P", 1, ship_before="2026-11-25T00:00:00-05:00")])])
    result = run(rule_plan("assign partial", sorts="sort by ship_before"), snap)
    assert result["batches"][0]["runs"][0]["attempted_items"] == 2
    assert len(result["unfillable"]) == 2


def test_q18_item_groups_go_together_to_one_facility_or_none():
    snap = world([facility("F1", 40.71, -74.0), facility("F2", 40.8, -74.0)],
                 [stock("F1", "A", 1), stock("F2", "A", 1), stock("F2", "B", 1)],
                 [order("O1", [item("1", "A", 1, item_group="KIT"),
                               item("2", "B", 1, item_group="KIT")])])
    together = run(rule_plan("assign partial inventory { keep_item_groups_together } "
                             "sort by distance"), snap)
    assert allocated(together) == [("O1", "1", "F2", 1), ("O1", "2", "F2", 1)]
    split = run(rule_plan("assign partial sort by distance"), snap)
    assert allocated(split) == [("O1", "1", "F1", 1), ("O1", "2", "F2", 1)]


def test_facility_order_limit_is_at_most_max_per_day_and_counts_during_the_run():
    snap = world([facility("F", limit=2, today=1), facility("G", 41.0, -74.0)],
                 [stock("F", "P", 9), stock("G", "P", 9)],
                 [order(f"O{i}", [item("1", "P", 1)]) for i in range(3)])
    result = run(rule_plan("assign single sort by distance"), snap)
    assert [a[2] for a in allocated(result)] == ["F", "G", "G"]
    assert {c["facility"]: c["orders_today"] for c in result["facility_counts_after"]} == {
        "F": 2, "G": 2}
    ignoring = run(rule_plan("assign single inventory { ignore_facility_order_limit } "
                             "sort by distance"), snap)
    assert [a[2] for a in allocated(ignoring)] == ["F", "F", "F"]


def test_zero_capacity_means_no_orders():
    snap = world([facility("F", limit=0)], [stock("F", "P", 9)], [order("O", [item("1", "P", 1)])])
    assert allocated(run(rule_plan("assign single"), snap)) == []


# ---- kept as HotWax does it -------------------------------------------------------------------

def test_routings_and_rules_run_in_order_and_only_active_ones():
    snap = world([facility("A1", groups={"A": 1}), facility("B1", groups={"B": 1})],
                 [stock("A1", "P", 5), stock("B1", "P", 5)], [order("O1", [item("1", "P", 1)])])
    the_plan = plan('routing "R0" draft { rule "x" { assign single } }\n'
                    'routing "R1" { filter { queue == _NA_ }\n'
                    ' rule "b draft" draft { assign single inventory { facility_group == A } }\n'
                    ' rule "b" { assign single inventory { facility_group == B } }\n'
                    ' rule "a" { assign single inventory { facility_group == A } } }')
    result = run(the_plan, snap)
    assert [(a["routing"], a["rule"], a["facility"]) for a in result["allocations"]] == [
        ("R1", "b", "B1")]
    assert [r["routing"] for r in result["batches"][0]["runs"]] == ["R1"]


def test_a_unit_stops_at_the_first_rule_that_fills_it_or_at_a_move():
    snap = world([facility("A1", groups={"A": 1}), facility("B1", groups={"B": 1})],
                 [stock("B1", "P", 5)], [order("O1", [item("1", "P", 1)])])
    moved = run(rule_plan("assign single inventory { facility_group == A } "
                          "when unfilled { move to queue PARK }",
                          more_rules='rule "r2" { assign single }'), snap)
    assert allocated(moved) == []
    assert moved["unfillable"][0]["action"] == "moved"
    assert moved["unfillable"][0]["queue"] == "PARK"
    next_rule = run(rule_plan("assign single inventory { facility_group == A }",
                              more_rules='rule "r2" { assign single }'), snap)
    assert allocated(next_rule) == [("O1", "1", "B1", 1)]


def test_only_ship_groups_in_a_queue_of_the_store_are_eligible():
    other_queue = {"id": "OTHER_Q", "virtual": True, "product_stores": ["OTHER"]}
    snap = world([facility("F"), other_queue], [stock("F", "P", 9)],
                 [order("IN_QUEUE", [item("1", "P", 1)]),
                  order("AT_FACILITY", [item("1", "P", 1)], at="F"),
                  order("OTHER_STORES_QUEUE", [item("1", "P", 1)], at="OTHER_Q"),
                  order("NOT_APPROVED", [item("1", "P", 1)], status="CREATED"),
                  order("ITEM_NOT_APPROVED", [item("1", "P", 1, status="CANCELLED")])])
    result = run(rule_plan("assign single", filters=""), snap)
    assert [a[0] for a in allocated(result)] == ["IN_QUEUE"]


def test_moved_items_are_picked_up_by_a_later_routing_of_their_new_queue():
    snap = world([facility("F")], [stock("F", "P", 1)], [order("O1", [item("1", "P", 1)])])
    the_plan = plan('routing "first" { filter { queue == _NA_ } rule "park" { assign single '
                    'inventory { facility_group == C } when unfilled { move to queue PARK } } }\n'
                    'routing "second" { filter { queue == PARK } rule "any" { assign single } }')
    result = run(the_plan, snap)
    assert [(a["routing"], a["facility"]) for a in result["allocations"]] == [("second", "F")]


def test_promise_date_filter_routes_item_by_item():
    snap = world([facility("F")], [stock("F", "A", 1), stock("F", "B", 1)],
                 [order("O1", [item("1", "A", 1, promised_date="2026-11-24T10:00:00-05:00"),
                               item("2", "B", 1, promised_date="2026-12-24T10:00:00-05:00")])])
    result = run(rule_plan("assign partial", filters="promise_date within 2 days"), snap)
    assert allocated(result) == [("O1", "1", "F", 1)]
    assert result["batches"][0]["runs"][0]["attempted_items"] == 1


def test_net_stock_is_atp_minus_minimum_stock_and_hidden_rows_give_nothing():
    snap = world([facility("F"), facility("H")],
                 [stock("F", "P", 5, minimum=3), stock("H", "P", 50, brokering=False)],
                 [order("O1", [item("1", "P", 4)])])
    result = run(rule_plan("assign partial"), snap)
    assert allocated(result) == [("O1", "1", "F", 2)]


def test_brokering_safety_stock_needs_the_threshold_and_the_whole_line():
    snap = world([facility("F1", 40.71, -74.0), facility("F2", 40.8, -74.0)],
                 [stock("F1", "P", 4), stock("F2", "P", 6)], [order("O1", [item("1", "P", 4)])])
    strict = run(rule_plan("assign partial inventory { brokering_safety_stock > 4 } "
                           "sort by distance"), snap)
    assert allocated(strict) == [("O1", "1", "F2", 4)]
    inclusive = run(rule_plan("assign partial inventory { brokering_safety_stock >= 4 } "
                              "sort by distance"), snap)
    assert allocated(inclusive) == [("O1", "1", "F1", 4)]


def test_every_inventory_condition_holds_even_two_on_one_field():
    """All of a rule's conditions must hold: a looser threshold written after a stricter one
    does not replace it (once only the last safety-stock or delivery-date condition counted)."""
    from routing_dsl.engine import run_fast
    from routing_dsl.result import dump_result
    snap = world([facility("F1", 40.71, -74.0), facility("F2", 40.8, -74.0)],
                 [stock("F1", "P", 4), stock("F2", "P", 6)], [order("O1", [item("1", "P", 4)])])
    the_plan = rule_plan("assign partial inventory { brokering_safety_stock > 4 "
                         "brokering_safety_stock >= 4 } sort by distance")
    result = run(the_plan, snap)
    assert allocated(result) == [("O1", "1", "F2", 4)]
    assert dump_result(run_fast(the_plan, snap)) == dump_result(result)


def test_only_if_all_items_available_keeps_all_or_nothing():
    snap = world([facility("F")], [stock("F", "A", 1)],
                 [order("O1", [item("1", "A", 1), item("2", "B", 1)])])
    assert allocated(run(rule_plan("assign partial inventory { only_if_all_items_available }"),
                         snap)) == []
    assert allocated(run(rule_plan("assign partial"), snap)) == [("O1", "1", "F", 1)]


def test_shipment_threshold_applies_to_each_shipment_and_to_what_stays_open():
    facilities = [facility("F1", 40.71, -74.0), facility("F2", 40.8, -74.0)]
    inventory = [stock("F1", "A", 1), stock("F2", "B", 1)]
    items = [item("1", "A", 1, unit_price=30.0), item("2", "B", 1, unit_price=10.0,
                                                       adjustments=5.0)]
    snap = world(facilities, inventory, [order("O1", items)])
    assert allocated(run(rule_plan("assign partial inventory { shipment_threshold 15 }"),
                         snap)) == [("O1", "1", "F1", 1), ("O1", "2", "F2", 1)]
    assert allocated(run(rule_plan("assign partial inventory { shipment_threshold 16 }"),
                         snap)) == []
    # one facility shipping everything is never held back by the threshold
    whole = world([facility("F")], [stock("F", "A", 1)], [order("O1", [item("1", "A", 1)])])
    assert allocated(run(rule_plan("assign partial inventory { shipment_threshold 1000 }"),
                         whole)) == [("O1", "1", "F", 1)]


def test_clear_auto_cancel_wins_over_auto_cancel_days():
    snap = world([facility("F")], [],
                 [order("O1", [item("1", "P", 1, auto_cancel_date="2026-12-01T00:00:00-05:00")])])
    result = run(rule_plan("assign single when unfilled { clear auto_cancel }"), snap)
    assert result["unfillable"][0]["action"] == "auto_cancel_cleared"
    assert result["unfillable"][0]["auto_cancel_date"] is None


def test_built_in_tie_breakers_more_items_in_full_then_availability_then_facility_id():
    snap = world([facility("Z"), facility("Y"), facility("X")],
                 [stock("Z", "A", 1), stock("Z", "B", 1), stock("Y", "A", 9), stock("X", "A", 9)],
                 [order("O1", [item("1", "A", 1), item("2", "B", 1)])])
    result = run(rule_plan("assign partial"), snap)
    assert allocated(result) == [("O1", "1", "Z", 1), ("O1", "2", "Z", 1)]
    single_item = world([facility("Z"), facility("Y"), facility("X")],
                        [stock("Z", "A", 2), stock("Y", "A", 9), stock("X", "A", 9)],
                        [order("O1", [item("1", "A", 2)])])
    assert allocated(run(rule_plan("assign partial"), single_item)) == [("O1", "1", "X", 2)]


def test_distances_are_great_circle_in_the_rules_unit():
    # New York to Boston is about 306 km / 190 mi
    snap = world([facility("BOS", 42.36, -71.06)], [stock("BOS", "P", 9)],
                 [order("O1", [item("1", "P", 1)]), order("O2", [item("1", "P", 1)])])
    km = run(rule_plan("assign single inventory { distance <= 310 km }"), snap)
    assert km["allocations"][0]["distance_unit"] == "km"
    assert 300 < km["allocations"][0]["distance"] < 310
    assert allocated(run(rule_plan("assign single inventory { distance <= 180 mi }"), snap)) == []


def test_one_batch_per_group_run_and_one_run_record_per_routing():
    snap = world([facility("F")], [stock("F", "P", 1)],
                 [order("O1", [item("1", "P", 1)]), order("O2", [item("1", "P", 1)])])
    the_plan = plan('routing "R1" { rule "r" { assign single } }\n'
                    'routing "R2" { rule "r" { assign single } }')
    result = run(the_plan, snap)
    figures = {"shipping_cost": 0.0, "split_orders": 0, "late_items": 0}
    assert result["batches"] == [{"group": "G", "product_store": "STORE", "runs": [
        {"routing": "R1", "attempted_items": 2, "brokered_items": 1, "error": None,
         "packages": 1, **figures},
        {"routing": "R2", "attempted_items": 1, "brokered_items": 0, "error": None,
         "packages": 0, **figures}], "totals": {"packages": 1, **figures}}]


def test_a_store_with_brokering_disabled_is_skipped():
    snap = world([facility("F")], [stock("F", "P", 1)], [order("O1", [item("1", "P", 1)])],
                 brokering=False)
    result = run(rule_plan("assign single"), snap)
    assert result["allocations"] == []
    assert "disabled" in result["batches"][0]["skipped"]


def test_order_filters_missing_values_match_not_equal_but_never_equal():
    snap = world([facility("F")], [stock("F", "P", 9)],
                 [order("NONE", [item("1", "P", 1)]),
                  order("WEB", [item("1", "P", 1)], sales_channel="WEB"),
                  order("POS", [item("1", "P", 1)], sales_channel="POS")])
    equal = run(rule_plan("assign single", filters='sales_channel == "WEB"'), snap)
    assert [a[0] for a in allocated(equal)] == ["WEB"]
    not_in = run(rule_plan("assign single", filters='sales_channel not in ["POS"]'), snap)
    assert [a[0] for a in allocated(not_in)] == ["NONE", "WEB"]


def test_product_category_matches_a_ship_group_by_any_item_and_routes_all_of_it():
    products = [{"id": "SHOE", "categories": ["FOOTWEAR"]}, {"id": "SOCK", "categories": []}]
    snap = world([facility("F")], [stock("F", "SHOE", 9), stock("F", "SOCK", 9)],
                 [order("MIXED", [item("1", "SHOE", 1), item("2", "SOCK", 1)]),
                  order("SOCKS", [item("1", "SOCK", 1)])], products=products)
    result = run(rule_plan("assign single", filters='product_category == "FOOTWEAR"'), snap)
    assert allocated(result) == [("MIXED", "1", "F", 1), ("MIXED", "2", "F", 1)]


def test_sales_velocity_sorts_slowest_first_missing_last():
    snap = world([facility("FAST"), facility("SLOW"), facility("UNKNOWN")],
                 [stock("FAST", "P", 9, velocity=9.0), stock("SLOW", "P", 9, velocity=1.0),
                  stock("UNKNOWN", "P", 9)], [order("O1", [item("1", "P", 1)])])
    assert allocated(run(rule_plan("assign single sort by sales_velocity"), snap))[0][2] == "SLOW"


def test_broken_style_only_picks_broken_assortments_fewest_variants_first():
    # only S is ordered: the fast engine keeps the stock of its style's other variants (and
    # not X's, which nothing orders), and decides as the reference does
    from routing_dsl.engine import run_fast
    products = [{"id": v, "parent": "STYLE"} for v in ("S", "M", "L")] + [{"id": "X"}]
    snap = world([facility("ALL_SIZES"), facility("BROKEN")],  # ALL_SIZES first by id
                 [stock("ALL_SIZES", v, 10) for v in ("S", "M", "L", "X")]
                 + [stock("BROKEN", "S", 10), stock("BROKEN", "M", 10)],
                 [order("O1", [item("1", "S", 1)])], products=products)
    for engine in (run, run_fast):
        result = engine(rule_plan("assign partial sort by broken_style"), snap)
        assert allocated(result) == [("O1", "1", "BROKEN", 1)]


def test_facility_sequence_follows_the_included_groups():
    snap = world([facility("SECOND", groups={"A": 2}), facility("FIRST", groups={"A": 1})],
                 [stock("SECOND", "P", 9), stock("FIRST", "P", 9)], [order("O1", [item("1", "P", 1)])])
    result = run(rule_plan("assign single inventory { facility_group == A } "
                           "sort by facility_sequence"), snap)
    assert allocated(result)[0][2] == "FIRST"


def test_excluded_facilities_of_an_item_are_skipped():
    snap = world([facility("F1", 40.71, -74.0), facility("F2", 40.8, -74.0)],
                 [stock("F1", "P", 9), stock("F2", "P", 9)],
                 [order("O1", [item("1", "P", 1, excluded_facilities=["F1"])])])
    assert allocated(run(rule_plan("assign single sort by distance"), snap))[0][2] == "F2"


def test_shipment_threshold_shares_adjustments_per_ordered_unit():
    # 4 ordered, 2 cancelled, 20.00 each with 8.00 of adjustments (2.00 per ordered unit):
    # 1 unit from F1 is worth 22.00 and the other from F2 22.00; sharing over the 2 open
    # units instead would give each 24.00 and let the cancelled units' share count
    facilities = [facility("F1", 40.71, -74.0), facility("F2", 40.8, -74.0)]
    inventory = [stock("F1", "A", 1), stock("F2", "A", 1)]
    line = item("1", "A", 4, cancel_quantity=2, unit_price=20.0, adjustments=8.0)
    snap = world(facilities, inventory, [order("O1", [line])])
    assert allocated(run(rule_plan("assign partial inventory { shipment_threshold 22 }"),
                         snap)) == [("O1", "1", "F1", 1), ("O1", "1", "F2", 1)]
    assert allocated(run(rule_plan("assign partial inventory { shipment_threshold 23 }"),
                         snap)) == []


def test_a_rule_without_distance_conditions_reports_the_files_unit():
    snap = world([facility("F", 40.8, -74.0)], [stock("F", "P", 5)],
                 [order("O1", [item("1", "P", 1)])])
    km = rule_plan("assign single sort by distance", more_rules=(
        'rule "r2" { assign partial inventory { distance <= 50 km } }'))
    [allocation] = run(km, snap)["allocations"]
    assert allocation["distance_unit"] == "km"
    assert allocation["distance"] == pytest.approx(10.01, abs=0.01)
    [plain] = run(rule_plan("assign single"), snap)["allocations"]
    assert plain["distance_unit"] == "mi"
