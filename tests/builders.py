"""Small builders for snapshots and plans in tests: a world in a few lines."""

from __future__ import annotations

from routing_dsl.checker import Workspace
from routing_dsl.compiler import compile_program
from routing_dsl.interpreter import run_plan
from routing_dsl.snapshot import parse_snapshot

NOW = "2026-11-23T09:30:00-05:00"


def facility(fid, lat=40.7, lon=-74.0, groups=None, limit=None, today=0, virtual=False,
             stores=("STORE",)):
    return {"id": fid, "virtual": virtual, "lat": lat, "lon": lon, "max_orders_per_day": limit,
            "orders_today": today, "product_stores": list(stores), "groups": groups or {}}


def queue(fid, stores=("STORE",)):
    return {"id": fid, "virtual": True, "product_stores": list(stores)}


def stock(fid, product, atp, minimum=0, brokering=True, velocity=None):
    return {"facility": fid, "product": product, "atp": atp, "minimum_stock": minimum,
            "allow_brokering": brokering, "sales_velocity": velocity}


def item(iid, product, quantity, **extra):
    return {"id": iid, "product": product, "quantity": quantity, **extra}


def order(oid, items, *, sg="00001", at="_NA_", ship_to=(40.71, -74.0), date=None, **extra):
    lat, lon = ship_to if ship_to else (None, None)
    return {"id": oid, "product_store": extra.pop("store", "STORE"),
            "order_date": date or "2026-11-22T10:00:00-05:00",
            **extra,
            "ship_groups": [{"id": sg, "facility": at, "ship_to": {"lat": lat, "lon": lon},
                             "items": items}]}


def world(facilities, inventory, orders, products=None, now=NOW, zone="America/New_York",
          brokering=True, methods=None):
    products = products or sorted({row["product"] for row in inventory}
                                  | {i["product"] for o in orders for g in o["ship_groups"]
                                     for i in g["items"]})
    return parse_snapshot({
        "format": "routing-snapshot/1", "now": now, "timezone": zone,
        "product_stores": [{"id": "STORE", "enable_brokering": brokering}],
        "facilities": facilities + [queue("_NA_"), queue("PARK")],
        "products": [p if isinstance(p, dict) else {"id": p} for p in products],
        "inventory": inventory, "shipment_methods": methods or [], "orders": orders})


def plan(routings: str, header: str = ""):
    text = ("declare queue _NA_, PARK\ndeclare facility_group A, B, C\n"
            "declare priority HIGH, MEDIUM, LOW\n" + header +
            f'\ngroup "G" for store STORE {{\n{routings}\n}}\n')
    result = Workspace().check_text(text, name="test.route")
    errors = [d for d in result.diagnostics if d.is_error]
    assert not errors, [f"{d.code} {d.message}" for d in errors]
    return compile_program(result.program)


def rule_plan(rule_body: str, filters: str = "queue == _NA_", sorts: str = "",
              more_rules: str = ""):
    return plan(f'routing "R" {{\n filter {{ {filters} }}\n {sorts}\n'
                f' rule "r1" {{ {rule_body} }}\n{more_rules}\n}}')


def run(the_plan, snapshot, **options):
    return run_plan(the_plan, snapshot, **options)


def allocated(result) -> list[tuple]:
    return [(a["order"], a["item"], a["facility"], a["quantity"]) for a in result["allocations"]]
