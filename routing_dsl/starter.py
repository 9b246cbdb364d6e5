"""The starter project `routing init` writes: rules using the stdlib, a catalog, a small
snapshot that routes out of the box, and the project-root marker imports are confined to."""

from __future__ import annotations

import json

CATALOG = """\
# Your facility groups and other ids. `routing check` catches a misspelled id anywhere.
declare facility_group WAREHOUSES "Distribution centres", STORES "Retail stores"
"""

RULES = """\
# Order routing for the store STORE. `routing run routes.route --snapshot snapshot.json`
use std.hotwax
use std.templates
use "catalog.route"

group "Brokering" for store STORE {
  schedule "0 */15 * * * ?" in "America/New_York"

  routing "Web orders" {
    filter {
      queue == _NA_
    }
    sort by priority, order_date

    rule "Nearest warehouse ships everything" extends closest_single_facility {
      inventory {
        facility_group == WAREHOUSES
        distance <= 1000 mi
      }
    }

    rule "Nearest stores split the order" extends nearest_split {
      inventory {
        facility_group == STORES
        distance <= 100 mi
      }
      when unfilled {
        move to queue UNFILLABLE_PARKING
      }
    }
  }
}
"""


def _snapshot() -> dict:
    def queue(facility_id: str) -> dict:
        return {"id": facility_id, "type": "QUEUE", "virtual": True, "product_stores": ["STORE"]}

    def line(item_id: str, product: str, quantity: int) -> dict:
        return {"id": item_id, "product": product, "quantity": quantity, "unit_price": 40.0}

    def order(order_id: str, lat: float, lon: float, items: list[dict]) -> dict:
        return {"id": order_id, "product_store": "STORE", "order_date": "2026-11-22T18:00:00",
                "sales_channel": "WEB_CHANNEL", "priority": "MEDIUM",
                "ship_groups": [{"id": "00001", "facility": "_NA_",
                                 "ship_to": {"lat": lat, "lon": lon}, "items": items}]}

    return {
        "format": "routing-snapshot/1",
        "now": "2026-11-23T09:30:00-05:00",
        "timezone": "America/New_York",
        "product_stores": [{"id": "STORE"}],
        "facilities": [
            {"id": "WH_NJ", "type": "WAREHOUSE", "lat": 40.73, "lon": -74.17,
             "product_stores": ["STORE"], "groups": {"WAREHOUSES": 1}},
            {"id": "ST_NYC", "type": "RETAIL_STORE", "lat": 40.75, "lon": -73.99,
             "max_orders_per_day": 20, "product_stores": ["STORE"], "groups": {"STORES": 1}},
            {"id": "ST_BOS", "type": "RETAIL_STORE", "lat": 42.36, "lon": -71.06,
             "product_stores": ["STORE"], "groups": {"STORES": 2}},
            queue("_NA_"), queue("UNFILLABLE_PARKING")],
        "products": [{"id": "TEE-M"}, {"id": "MUG"}, {"id": "CAP"}],
        "inventory": [
            {"facility": "WH_NJ", "product": "TEE-M", "atp": 5, "minimum_stock": 1},
            {"facility": "WH_NJ", "product": "MUG", "atp": 1},
            {"facility": "ST_NYC", "product": "MUG", "atp": 2},
            {"facility": "ST_BOS", "product": "CAP", "atp": 1}],
        "orders": [
            order("O-1", 40.71, -74.0, [line("00001", "TEE-M", 2)]),
            order("O-2", 40.71, -74.0, [line("00001", "TEE-M", 1), line("00002", "MUG", 2)]),
            order("O-3", 34.05, -118.24, [line("00001", "CAP", 1)])],
    }


def files() -> dict[str, str]:
    """File name -> text, for a new project folder."""
    return {
        ".routing-root": "# `use \"...\"` imports stay inside this folder.\n",
        "catalog.route": CATALOG,
        "routes.route": RULES,
        "snapshot.json": json.dumps(_snapshot(), indent=2) + "\n",
    }
