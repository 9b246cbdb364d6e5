"""docs/semantics.md section 14, shipping cost and delivery dates: one named test per rule.

Geometry: the ship-to address is at (40.71, -74.0); NEAR is under a mile away (zone 2),
MID about 55 miles (zone 3) and FAR about 160 miles (zone 4) on the card below. Every test
runs on both engines, which must agree byte for byte.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_dsl.engine import run_fast
from routing_dsl.interpreter import run_plan
from routing_dsl.result import Result, dump_result
from routing_dsl.snapshot import SnapshotError, parse_snapshot

from .builders import NOW, facility, item, order, queue, rule_plan, stock

NEAR, MID, FAR = (40.72, -74.0), (41.5, -74.0), (43.0, -74.0)

# zone 2 up to 50 mi (1 day), zone 3 up to 100 mi (2 days), zone 4 beyond (4 days)
CARD = {"weights": [1, 5, 10], "distance_unit": "mi",
        "zones": [{"zone": 2, "max_distance": 50, "transit_days": 1, "prices": [5, 8, 11]},
                  {"zone": 3, "max_distance": 100, "transit_days": 2, "prices": [6, 10, 15]},
                  {"zone": 4, "transit_days": 4, "prices": [8, 14, 20]}]}
PRODUCTS = [{"id": "SHOE", "weight": 2}, {"id": "TEE", "weight": 0.5},
            {"id": "BOOT", "weight": 8}, {"id": "BOX", "weight": 1,
                                           "dimensions": {"length": 12, "width": 12,
                                                          "height": 12}},
            {"id": "MYSTERY"}]


def place(fid, where, **extra):
    return {**facility(fid, *where), **extra}


def shipped(oid, items, *, method="STANDARD", carrier=None, postal=None, **extra):
    built = order(oid, items, **extra)
    group = built["ship_groups"][0]
    group["shipment_method"] = method
    group["carrier"] = carrier
    group["ship_to"]["postal_code"] = postal
    return built


def snapshot(facilities, inventory, orders, *, card=None, methods=None, now=NOW):
    return parse_snapshot({
        "format": "routing-snapshot/1", "now": now, "timezone": "America/New_York",
        "product_stores": [{"id": "STORE"}], "facilities": facilities + [queue("_NA_")],
        "products": PRODUCTS, "inventory": inventory,
        "shipment_methods": methods or [{"id": "STANDARD", "rates": card or CARD}],
        "orders": orders})


def run(rule_body: str, snap) -> dict:
    """The reference result, after checking that the fast engine gives the same bytes."""
    the_plan = rule_plan(rule_body)
    result = run_plan(the_plan, snap)
    assert dump_result(run_fast(the_plan, snap)) == dump_result(result)
    Result.model_validate(result)
    return result


def placed(result) -> list[tuple]:
    return [(a["order"], a["item"], a["facility"]) for a in result["allocations"]]


def costs(result) -> list:
    return [a["shipping_cost"] for a in result["allocations"]]


CHEAPEST = "assign partial sort by shipping_cost"


def test_zone_comes_from_the_postal_chart_before_the_distance_bands():
    chart = dict(CARD, postal_zones=[{"origin": "100", "destination": "100", "zone": 4}])
    snap = snapshot([place("A", NEAR, postal_code="10010")], [stock("A", "SHOE", 5)],
                    [shipped("O1", [item("1", "SHOE", 1)], postal="10001"),
                     shipped("O2", [item("1", "SHOE", 1)], postal="07030")], card=chart)
    result = run(CHEAPEST, snap)
    # O1: the chart's zone 4 (4 days, 14.00); O2 has no chart entry: zone 2 by distance
    assert [(a["order"], a["transit_days"], a["shipping_cost"]) for a in result["allocations"]] \
        == [("O1", 4, 14.0), ("O2", 1, 8.0)]


def test_billable_weight_is_the_larger_of_actual_and_dimensional_rounded_up():
    card = dict(CARD, dim_divisor=139)
    snap = snapshot([place("A", NEAR)], [stock("A", "BOX", 5), stock("A", "SHOE", 10)],
                    [shipped("O1", [item("1", "BOX", 1)]),      # 1728 / 139 = 12.4 lb: no bucket
                     shipped("O2", [item("1", "SHOE", 1)]),     # 2 lb -> the 5 lb bucket
                     shipped("O3", [item("1", "SHOE", 0.5)])],  # exactly 1 lb
                    card=card)
    assert costs(run(CHEAPEST, snap)) == [None, 8.0, 5.0]


def test_package_cost_adds_surcharges_and_handling():
    card = dict(CARD, surcharges=[{"name": "fuel", "percent": 10},
                                  {"name": "residential", "amount": 2}])
    snap = snapshot([place("A", NEAR, handling_cost=1.5)], [stock("A", "SHOE", 5)],
                    [shipped("O1", [item("1", "SHOE", 1)])], card=card)
    assert costs(run(CHEAPEST, snap)) == [(8 + 2) * 1.1 + 1.5]


def test_delivery_date_counts_from_the_same_day_cutoff():
    # now is 09:30: A's 12:00 cutoff ships today, B's 09:00 one tomorrow
    snap = snapshot([place("A", NEAR, same_day_cutoff="12:00"),
                     place("B", NEAR, same_day_cutoff="09:00")],
                    [stock("A", "SHOE", 1), stock("B", "SHOE", 1)],
                    [shipped("O1", [item("1", "SHOE", 1)]), shipped("O2", [item("1", "SHOE", 1)])])
    result = run("assign partial sort by delivery_date", snap)
    assert [(a["facility"], a["delivery_date"]) for a in result["allocations"]] == \
        [("A", "2026-11-24"), ("B", "2026-11-25")]


def test_cheapest_facility_is_chosen():
    snap = snapshot([place("A", FAR), place("B", MID), place("C", NEAR, handling_cost=3)],
                    [stock(f, "SHOE", 5) for f in "ABC"],
                    [shipped("O1", [item("1", "SHOE", 1)])])
    # A 14.00, B 10.00, C 8.00 + 3.00 handling: B, though C is nearer
    assert placed(run(CHEAPEST, snap)) == [("O1", "1", "B")]


# zone 4's 10 lb bucket is dear: a boot added to a package there costs more than a package
STEEP = dict(CARD, zones=[CARD["zones"][0], CARD["zones"][1],
                          dict(CARD["zones"][2], prices=[8, 14, 30])])
SPLITTABLE = ([place("FAR", FAR), place("NEAR", NEAR)],
              [stock("FAR", "SHOE", 5), stock("FAR", "TEE", 5), stock("FAR", "BOOT", 5),
               stock("NEAR", "TEE", 5), stock("NEAR", "BOOT", 5)],
              [shipped("O1", [item("1", "SHOE", 1), item("2", "TEE", 1)]),
               shipped("O2", [item("1", "SHOE", 1), item("2", "BOOT", 1)])])


def test_a_split_happens_only_when_a_second_package_costs_less():
    # SHOE is only at FAR: a 2 lb package, 14.00. O1's tee keeps it in the 5 lb bucket (adds
    # 0.00), where a package of its own from NEAR would cost 5.00: one package. O2's boot
    # takes it to 10 lb (30.00, adds 16.00), where NEAR ships the boot alone for 11.00: split.
    result = run(CHEAPEST, snapshot(*SPLITTABLE, card=STEEP))
    assert placed(result) == [("O1", "1", "FAR"), ("O1", "2", "FAR"), ("O2", "1", "FAR"),
                              ("O2", "2", "NEAR")]
    assert result["batches"][0]["totals"] == {"shipping_cost": 14 + 14 + 11,
                                              "packages": 3, "split_orders": 1, "late_items": 0}


def test_split_cost_keeps_an_order_in_fewer_packages():
    # O2's second package costs 11.00 + 6.00, more than the 16.00 the boot adds at FAR
    result = run(CHEAPEST + " inventory { split_cost 6.00 }", snapshot(*SPLITTABLE, card=STEEP))
    assert placed(result) == [("O1", "1", "FAR"), ("O1", "2", "FAR"), ("O2", "1", "FAR"),
                              ("O2", "2", "FAR")]
    assert result["batches"][0]["totals"]["split_orders"] == 0


def test_split_cost_as_a_distance_adds_to_the_distance_sort():
    facilities = [place("FAR", FAR), place("MID", MID)]
    inventory = [stock("FAR", "SHOE", 5), stock("FAR", "TEE", 5), stock("MID", "TEE", 5)]
    snap = snapshot(facilities, inventory,
                    [shipped("O1", [item("1", "SHOE", 1), item("2", "TEE", 1)])])
    # nearest first splits (MID is ~100 mi nearer); a split cost of 150 mi keeps one package
    assert placed(run("assign partial sort by distance", snap)) == \
        [("O1", "1", "FAR"), ("O1", "2", "MID")]
    assert placed(run("assign partial inventory { split_cost 150 mi } sort by distance",
                      snap)) == [("O1", "1", "FAR"), ("O1", "2", "FAR")]


def test_shipping_cost_condition_limits_each_package():
    snap = snapshot([place("A", FAR), place("B", NEAR)],
                    [stock("A", "SHOE", 5), stock("B", "SHOE", 1)],
                    [shipped("O1", [item("1", "SHOE", 1)]), shipped("O2", [item("1", "SHOE", 1)]),
                     shipped("O3", [item("1", "SHOE", 3)])])
    result = run("assign partial inventory { shipping_cost <= 10.00 } sort by distance", snap)
    # O1 takes B (8.00); A costs 14.00 for O2 (fails); O3's 6 lb package would cost 11.00
    assert placed(result) == [("O1", "1", "B")]
    assert [u["order"] for u in result["unfillable"]] == ["O2", "O3"]


def test_transit_days_condition_keeps_facilities_within_the_days():
    snap = snapshot([place("A", FAR), place("B", MID)],
                    [stock("A", "SHOE", 5), stock("B", "SHOE", 1)],
                    [shipped("O1", [item("1", "SHOE", 1)]), shipped("O2", [item("1", "SHOE", 1)])])
    result = run("assign partial inventory { transit_days <= 2 } sort by distance desc", snap)
    # A (4 days) never passes, though it sorts first; B (2 days) ships O1, then is empty
    assert placed(result) == [("O1", "1", "B")]
    assert result["allocations"][0]["transit_days"] == 2


def test_promise_date_feasibility_passes_over_facilities_that_would_be_late():
    snap = snapshot([place("A", FAR), place("B", MID, same_day_cutoff="09:00")],
                    [stock("A", "SHOE", 5), stock("B", "SHOE", 5)],
                    [shipped("O1", [item("1", "SHOE", 1, promised_date="2026-11-25T18:00:00")]),
                     shipped("O2", [item("1", "SHOE", 1, promised_date="2026-11-26T08:00:00")]),
                     shipped("O3", [item("1", "SHOE", 1)])])
    result = run("assign partial inventory { delivery_date <= promise_date } "
                 "sort by shipping_cost desc", snap)
    # A (the dearer) arrives 11-27, B leaves tomorrow and arrives 11-26: O1 (11-25) fits
    # neither; O2 (11-26) only B; O3 has no promise, so A, which ranks first, ships it
    assert placed(result) == [("O2", "1", "B"), ("O3", "1", "A")]
    assert result["unfillable"][0]["order"] == "O1"


def test_delivery_date_sort_puts_the_earliest_first():
    snap = snapshot([place("A", NEAR, same_day_cutoff="08:00"), place("B", MID)],
                    [stock("A", "SHOE", 5), stock("B", "SHOE", 5)],
                    [shipped("O1", [item("1", "SHOE", 1)])])
    # A: tomorrow + 1 day = 11-25; B: today + 2 days = 11-25; the tie goes to... shipping
    # cost (A 8.00, B 10.00) when it is the next sort, and to A by id otherwise
    result = run("assign partial sort by delivery_date, shipping_cost desc", snap)
    assert placed(result) == [("O1", "1", "B")]
    snap = snapshot([place("A", NEAR, same_day_cutoff="08:00"), place("B", FAR)],
                    [stock("A", "SHOE", 5), stock("B", "SHOE", 5)],
                    [shipped("O1", [item("1", "SHOE", 1)])])
    assert placed(run("assign partial sort by delivery_date", snap)) == [("O1", "1", "A")]


def test_unknown_costs_sort_last_and_fail_conditions():
    snap = snapshot([place("A", NEAR), place("B", FAR)],
                    [stock("A", "MYSTERY", 1), stock("B", "SHOE", 5), stock("B", "MYSTERY", 1)],
                    [shipped("O1", [item("1", "MYSTERY", 1)]),
                     shipped("O2", [item("1", "SHOE", 1)], method="NO_CARD"),
                     shipped("O3", [item("1", "MYSTERY", 1)])],
                    methods=[{"id": "STANDARD", "rates": CARD}, {"id": "NO_CARD"}])
    result = run("assign partial sort by shipping_cost", snap)
    # no weight: no cost; A and B tie on "unknown", A first by id
    assert placed(result) == [("O1", "1", "A"), ("O2", "1", "B"), ("O3", "1", "B")]
    assert costs(result) == [None, None, None]
    limited = run("assign partial inventory { shipping_cost <= 100 } sort by distance", snap)
    assert placed(limited) == []


def test_allocations_share_their_package_cost_and_runs_total_it():
    snap = snapshot([place("A", FAR)], [stock("A", "SHOE", 5), stock("A", "TEE", 5)],
                    [shipped("O1", [item("1", "SHOE", 1), item("2", "TEE", 2,
                                                                promised_date="2026-11-24")])])
    result = run(CHEAPEST, snap)
    # one 3 lb package, 14.00: shared by weight, 2 lb and 1 lb, in cents
    assert costs(result) == [9.33, 4.67]
    run_record = result["batches"][0]["runs"][0]
    assert {k: run_record[k] for k in ("shipping_cost", "packages", "split_orders",
                                       "late_items")} == \
        {"shipping_cost": 14.0, "packages": 1, "split_orders": 0, "late_items": 1}
    assert result["batches"][0]["totals"]["late_items"] == 1


def test_the_rate_card_follows_the_ship_groups_method_and_carrier():
    air = dict(CARD, zones=[dict(z, transit_days=1) for z in CARD["zones"]])
    methods = [{"id": "STANDARD", "rates": CARD},
               {"id": "STANDARD", "carrier": "FEDEX", "rates": air}]
    snap = snapshot([place("A", FAR)], [stock("A", "SHOE", 5)],
                    [shipped("O1", [item("1", "SHOE", 1)], carrier="FEDEX"),
                     shipped("O2", [item("1", "SHOE", 1)], carrier="UPS"),
                     shipped("O3", [item("1", "SHOE", 1)], method="NEXT_DAY")],
                    methods=methods)
    result = run(CHEAPEST, snap)
    # FEDEX's own card, UPS falls back to the card for any carrier, NEXT_DAY has none
    assert [a["transit_days"] for a in result["allocations"]] == [1, 4, None]


@pytest.mark.parametrize("card, message", [
    (dict(CARD, weights=[5, 1, 10]), "weights must increase"),
    (dict(CARD, zones=[dict(CARD["zones"][0], prices=[5, 4, 11])]), "a heavier bucket costs"),
    (dict(CARD, zones=[dict(CARD["zones"][0], prices=[5])]), "has 1 prices for 3 weights"),
    (dict(CARD, postal_zones=[{"origin": "1", "destination": "100", "zone": 9}]),
     "zone 9 is not one of the card's zones"),
])
def test_a_rate_card_that_cannot_price_consistently_is_refused(card, message):
    with pytest.raises(SnapshotError, match=message):
        snapshot([place("A", NEAR)], [], [], card=card)


def test_rate_data_that_would_take_unbounded_memory_is_refused():
    # 4,000 origins x 4,000 destinations would be a 16-million-cell table
    chart = [{"origin": f"{k:04d}", "destination": f"{k:04d}", "zone": 2} for k in range(4000)]
    with pytest.raises(SnapshotError, match="too large a chart"):
        snapshot([place("A", NEAR)], [], [], card=dict(CARD, postal_zones=chart))
    many = [{"id": f"M{k}", "rates": CARD} for k in range(33)]
    with pytest.raises(SnapshotError, match="33 rate cards"):
        snapshot([place("A", NEAR)], [], [], methods=many)


def test_the_example_in_the_doc_costs_what_it_says():
    from routing_dsl.checker import Workspace
    from routing_dsl.compiler import compile_program
    from routing_dsl.snapshot import load_snapshot

    from .conftest import ROOT
    folder = ROOT / "examples" / "shipping_cost"
    doc = (ROOT / "docs" / "semantics.md").read_text(encoding="utf-8")
    plan = compile_program(Workspace().check_path(folder / "shipping_cost.route").program)
    result = run_plan(plan, load_snapshot(folder / "snapshot.json"), explain=True,
                      explain_orders={"C-1"}, explain_facilities={"ST_NYC"})
    [first] = [a for a in result["allocations"] if a["order"] == "C-1"]
    [store] = result["explanations"][0]["rules"][0]["facilities"]
    nyc = store["excluded_by"]["values"]["sort_keys"]["shipping_cost"]
    assert f"warehouse (9 miles away) for {first['shipping_cost']:.2f}" in doc
    assert f"makes it\n{nyc:.2f})" in doc or f"makes it {nyc:.2f})" in doc


# ---- hostile rate data: a clear error or a run, never a traceback ----------------------------

HOSTILE_VALUES = [-1, 0, 0.5, 1e308, 10 ** 30, "x", "", None, [], {}, True, "25:99", "09:00",
                  [0], [1e308], {"zone": 2}]


def _paths(document, prefix=()):
    """Every value in the shipping parts of a snapshot document, as a path."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document[:3]):
            yield from _paths(value, (*prefix, index))
    yield prefix


def _shipping_paths():
    import json

    from .conftest import ROOT
    document = json.loads((ROOT / "examples" / "shipping_cost" / "snapshot.json").read_text())
    wanted = ("rates", "weight", "weight_unit", "dimensions", "handling_cost",
              "same_day_cutoff", "postal_code")
    return document, [p for p in _paths(document) if any(w in map(str, p) for w in wanted)]


BASE, SHIPPING_PATHS = _shipping_paths()


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.sampled_from(SHIPPING_PATHS), st.sampled_from(HOSTILE_VALUES),
       st.sampled_from(["fast", "reference"]))
def test_hostile_rate_data_is_refused_clearly_or_routed(path, value, engine):
    import copy
    import json

    from click.testing import CliRunner

    from routing_dsl.cli import main

    from .conftest import ROOT
    document = copy.deepcopy(BASE)
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        snapshot = f"{folder}/snapshot.json"
        with open(snapshot, "w") as handle:
            json.dump(document, handle)
        result = CliRunner().invoke(main, [
            "run", str(ROOT / "examples" / "shipping_cost" / "shipping_cost.route"),
            "--snapshot", snapshot, "--engine", engine, "--out", f"{folder}/r.json"])
    assert result.exit_code in (0, 2), (path, value, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        (path, value, result.exception)
    if result.exit_code == 2:
        assert "snapshot.json" in result.stderr and "Traceback" not in result.stderr
