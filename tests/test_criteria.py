"""The criteria registry (routing_dsl.criteria): every criterion is declared once and every
part of the system reads that declaration. Each registered criterion is implemented by both
engines (they give the same bytes on a world where it matters) and by explanations; a
criterion the dispatch cannot handle stops the import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from routing_dsl import vocabulary as v
from routing_dsl.criteria import REGISTRY, Criterion, Registry, RegistryError
from routing_dsl.engine import run_fast
from routing_dsl.interpreter import run_plan
from routing_dsl.plan import PlanError, load_plan
from routing_dsl.result import dump_result
from routing_dsl.snapshot import parse_snapshot

from .builders import NOW, facility, item, order, plan, queue, stock

CARD = {"weights": [1, 5, 10], "distance_unit": "mi",
        "zones": [{"zone": 2, "max_distance": 50, "transit_days": 1, "prices": [5, 8, 11]},
                  {"zone": 3, "max_distance": 100, "transit_days": 2, "prices": [6, 10, 15]},
                  {"zone": 4, "transit_days": 4, "prices": [8, 14, 20]}]}


def world():
    """Five facilities where every criterion tells them apart: distances from 1 to 160 mi
    (three zones), groups with sequence numbers, stock from 1 to 9 of a two-variant style and
    a lone product, sales velocities, an order limit, orders with promised dates, categories,
    channels and priorities."""
    places = {"A": (40.72, -74.0), "B": (41.0, -74.0), "C": (41.5, -74.0), "D": (43.0, -74.0),
              "E": (None, None)}
    groups = {"A": {"WH": 2}, "B": {"WH": 1, "ST": 1}, "C": {"ST": 3}, "D": {}, "E": {"WH": 5}}
    facilities = [{**facility(f, *places[f], groups=groups[f], limit=3 if f == "C" else None,
                              today=1), "handling_cost": 0.5 * k}
                  for k, f in enumerate(places)]
    inventory = []
    for k, f in enumerate(places):
        inventory += [stock(f, "RED", 1 + 2 * k, velocity=None if f == "B" else 5.0 - k),
                      stock(f, "BLUE", 9 - 2 * k, velocity=1.0 + k),
                      stock(f, "MUG", 4 + k % 3)]
    orders = []
    for n, (product, quantity) in enumerate([("RED", 2), ("BLUE", 3), ("MUG", 1),
                                             ("RED", 1), ("BLUE", 5)]):
        # the nearest facility rejected the first order's lines yesterday
        refused = [{"facility": "A", "at": "2026-11-22T10:00:00-05:00",
                    "reason": "NOT_IN_STOCK"}] if n == 0 else []
        built = order(f"O{n}", [item("1", product, quantity,
                                     promised_date="2026-11-25T12:00:00-05:00" if n % 2
                                     else None, rejections=refused),
                                item("2", "MUG", 1, item_group="KIT", rejections=refused)],
                      sales_channel="WEB" if n % 2 else None, priority="HIGH" if n < 2 else None,
                      origin_facility="A" if n == 3 else None,
                      tags=["VIP"] if n % 2 else [])
        built["ship_groups"][0]["shipment_method"] = "STANDARD"
        orders.append(built)
    products = [{"id": "RED", "parent": "TEE", "weight": 1, "categories": ["SHIRTS"]},
                {"id": "BLUE", "parent": "TEE", "weight": 2}, {"id": "MUG", "weight": 0.5}]
    return parse_snapshot({
        "format": "routing-snapshot/1", "now": NOW, "timezone": "America/New_York",
        "product_stores": [{"id": "STORE"}], "facilities": facilities + [queue("_NA_")],
        "products": products, "inventory": inventory,
        "shipment_methods": [{"id": "STANDARD", "delivery_days": 3, "rates": CARD}],
        "orders": orders})


HEADER = ("declare facility_group WH, ST\ndeclare sales_channel WEB\ndeclare category SHIRTS\n"
          "declare shipment_method STANDARD\ndeclare tag VIP, GIFT\n")


def routing(filters: str = "", order_sorts: str = "", conditions: str = "",
            sorts: str = "") -> str:
    inventory = f"inventory {{ {conditions} }}" if conditions else ""
    return plan(f'routing "R" {{ filter {{ queue == _NA_ {filters} }} {order_sorts}\n'
                f'  rule "r" {{ assign partial {inventory} {sorts} }}\n'
                '  rule "rest" { assign partial } }', HEADER)


def both_engines_agree(the_plan, snap) -> dict:
    reference = run_plan(the_plan, snap)
    assert dump_result(run_fast(the_plan, snap)) == dump_result(reference)
    return reference


def sample(criterion: Criterion) -> str:
    text = criterion.samples[0].replace("UNIT", "mi")
    return {"queue": "queue == PARK", "shipment_method": "shipment_method != STANDARD",
            "facility_group": "facility_group in [WH]",
            "origin_facility_group": "origin_facility_group == WH",
            "product_category": "product_category == SHIRTS",
            "sales_channel": "sales_channel == WEB", "promise_date": "promise_date <= 3 days",
            "distance": "distance <= 60 mi", "transit_days": "transit_days <= 1",
            "shipping_cost": "shipping_cost <= 7"}.get(criterion.name, text) \
        if criterion.level in ("order_filter", "inventory_condition") else text


LEVELS = ["order_filter", "order_sort", "inventory_condition", "inventory_sort", "setting"]
CRITERIA = [c for level in LEVELS for c in REGISTRY(level).values()]


@pytest.mark.parametrize("criterion", CRITERIA, ids=lambda c: f"{c.level}:{c.name}")
def test_every_criterion_runs_on_both_engines_with_the_same_bytes(criterion):
    text = sample(criterion)
    the_plan = {
        "order_filter": lambda: routing(filters=text),
        "order_sort": lambda: routing(order_sorts=f"sort by {text}"),  # see below
        "inventory_condition": lambda: routing(conditions=text, sorts="sort by distance"),
        "inventory_sort": lambda: routing(conditions="facility_group in [WH, ST]"
                                          if criterion.name == "facility_sequence" else "",
                                          sorts=f"sort by {text}"),
        "setting": lambda: routing(
            conditions=text, sorts="sort by shipping_cost" if criterion.name == "split_cost"
            else ""),
    }[criterion.level]()
    snap = world()
    without = both_engines_agree(routing(), snap)
    result = both_engines_agree(the_plan, snap)
    if criterion.level not in ("setting", "order_sort"):  # it changes what happens here
        assert result["allocations"] != without["allocations"], text


def contended():
    """Two orders for the one unit in stock, apart on every order sort."""
    orders = [order("O1", [item("1", "P", 1, ship_before="2026-11-25T12:00:00-05:00",
                                ship_after="2026-11-21T12:00:00-05:00")],
                    date="2026-11-20T10:00:00-05:00", priority="HIGH"),
              order("O2", [item("1", "P", 1, ship_before="2026-11-24T12:00:00-05:00",
                                ship_after="2026-11-22T12:00:00-05:00")],
                    date="2026-11-21T10:00:00-05:00", priority="LOW")]
    orders[0]["ship_groups"][0]["shipment_method"] = "NEXT_DAY"
    orders[1]["ship_groups"][0]["shipment_method"] = "STANDARD"
    return parse_snapshot({
        "format": "routing-snapshot/1", "now": NOW, "timezone": "America/New_York",
        "product_stores": [{"id": "STORE"}], "facilities": [facility("A"), queue("_NA_")],
        "products": [{"id": "P"}], "inventory": [stock("A", "P", 1)],
        "shipment_methods": [{"id": "NEXT_DAY", "delivery_days": 1},
                             {"id": "STANDARD", "delivery_days": 3}], "orders": orders})


@pytest.mark.parametrize("criterion", list(REGISTRY("order_sort").values()),
                         ids=lambda c: c.name)
def test_every_order_sort_decides_who_gets_scarce_stock_on_both_engines(criterion):
    winners = set()
    for direction in ("asc", "desc"):
        result = both_engines_agree(routing(order_sorts=f"sort by {criterion.name} "
                                            f"{direction}"), contended())
        [allocation] = result["allocations"]
        winners.add(allocation["order"])
    assert winners == {"O1", "O2"}


@pytest.mark.parametrize("criterion", list(REGISTRY("inventory_sort").values()),
                         ids=lambda c: c.name)
def test_every_inventory_sort_is_explained(criterion):
    """A chosen facility's sort keys hold what the sort's criterion explains."""
    conditions = "facility_group in [WH, ST]" if criterion.name == "facility_sequence" else ""
    result = run_plan(routing(conditions=conditions, sorts=f"sort by {criterion.samples[0]}"),
                      world(), explain=True)
    chosen = [c for unit in result["explanations"] for rule in unit["rules"]
              for c in rule["chosen"]]
    assert chosen
    assert all("items_in_full" in entry["sort_keys"] for entry in chosen)
    keys = {k for entry in chosen for k in entry["sort_keys"]}
    expected = {"distance": {"distance", "distance_unit"}, "shipping_cost": {"shipping_cost"},
                "delivery_date": {"delivery_date"}}.get(criterion.name, {criterion.name})
    assert expected <= keys


@pytest.mark.parametrize("criterion", list(REGISTRY("inventory_condition").values()),
                         ids=lambda c: c.name)
def test_every_inventory_condition_is_explained(criterion):
    """A facility that fails the condition is explained by its text, from its source."""
    result = run_plan(routing(conditions=sample(criterion), sorts="sort by distance"), world(),
                      explain=True, explain_facilities={"A", "B", "C", "D", "E"})
    # the condition as written: `distance <= 60 mi`, `not rejected within 7 days`
    named = {word for unit in result["explanations"] for rule in unit["rules"]
             if rule["rule"] == "r" for entry in rule.get("facilities", []) if not entry["chosen"]
             for word in entry["excluded_by"]["condition"].split()[:2]}
    assert criterion.name in named


def test_the_vocabulary_and_the_plan_read_the_registry():
    assert list(v.ORDER_FIELDS) == list(REGISTRY("order_filter"))
    assert list(v.INVENTORY_FIELDS) == list(REGISTRY("inventory_condition"))
    assert list(v.INVENTORY_SORTS) == list(REGISTRY("inventory_sort"))
    assert list(v.ORDER_SORTS) == list(REGISTRY("order_sort"))
    assert list(v.FLAGS) == list(REGISTRY("setting"))
    for spec in v.INVENTORY_FIELDS.values():
        criterion = REGISTRY.get("inventory_condition", spec.name)
        assert (spec.doc, spec.operators, spec.value) == (criterion.doc, criterion.operators,
                                                         criterion.value)


def test_the_hotwax_map_reads_the_registry():
    from routing_dsl.interchange import hotwax
    assert set(hotwax.INVENTORY_SORTS.values()) == {
        c.name for c in REGISTRY("inventory_sort").values() if c.hotwax}
    assert hotwax.ORDER_SORTS == {c.hotwax: c.name for c in REGISTRY("order_sort").values()}


@pytest.mark.parametrize("broken,message", [
    (Criterion("x", "inventory_wish", "?"), "unknown level"),
    (Criterion("x", "inventory_sort", "?"), "no reference, kernel, explain"),
    (Criterion("x", "inventory_condition", "?", stage="candidate", fact="mood",
               reference=print, kernel=print, explain=print, explain_text=print),
     "no fact 'mood'"),
    (Criterion("x", "inventory_condition", "?", stage="someday", reference=print,
               kernel=print, explain=print, explain_text=print), "unknown stage"),
    (Criterion("x", "inventory_condition", "?", stage="candidate", fact="km",
               reference=print, kernel=print, explain=print), "no explain_text"),
], ids=["level", "hooks", "fact", "stage", "explain_text"])
def test_a_criterion_the_dispatch_cannot_handle_fails_at_import(broken, message):
    with pytest.raises(RegistryError, match=message):
        Registry([*REGISTRY.all(), broken])


def test_a_fact_the_fast_engine_does_not_compute_stops_its_import():
    # a condition on a new fact needs the kernel to compute that fact: until it does, the
    # fast engine refuses to load rather than pass or fail the condition silently
    code = ("from routing_dsl import criteria\n"
            "criteria.FACTS['candidate'] = (*criteria.FACTS['candidate'], 'humidity')\n"
            "import routing_dsl.engine.kernel\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert "RegistryError" in done.stderr and "humidity" in done.stderr


def test_a_criterion_is_declared_once():
    with pytest.raises(RegistryError, match="declared twice"):
        Registry([*REGISTRY.all(), REGISTRY.get("inventory_sort", "distance")])


def test_a_plan_naming_an_unknown_sort_is_refused():
    text = routing(sorts="sort by distance").to_json().replace('"field": "distance"',
                                                               '"field": "weekOfSupply"')
    with pytest.raises(PlanError, match="sorts.0.field"):
        load_plan(text)
