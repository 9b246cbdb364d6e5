"""Seeded, realistic benchmark data: a retailer's warehouses and stores clustered around metro
areas, long-tail demand, and the plan `routing bench --scenario` routes it with.

Warehouses carry deep assortments and stores shallow ones; orders have 1 to 6 lines whose
products follow a Zipf-like popularity, ship to addresses near the metros, and a few have two
ship groups. The same seed always gives the same snapshot.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    orders: int
    facilities: int
    skus: int
    seed: int = 7
    warehouse_share: float = 0.05     # 1 in 20 facilities is a warehouse
    warehouse_depth: float = 0.8      # share of SKUs a warehouse stocks
    store_depth: float = 0.085        # share of SKUs a store stocks
    metros: int = 50
    shipping: bool = False            # rate cards, weights and promised dates (SHIPPING_PLAN)


SCENARIOS = {
    "small": Scenario(orders=5_000, facilities=200, skus=2_000),
    "reference": Scenario(orders=100_000, facilities=1_000, skus=20_000),
    "large": Scenario(orders=1_000_000, facilities=2_000, skus=100_000),
    "shipping": Scenario(orders=100_000, facilities=1_000, skus=20_000, shipping=True),
}

def rate_card(factor: float = 1.0, transit: int | None = None) -> dict:
    """A ground-style card: zones 2-8 by distance, a price per weight bucket, dimensional
    weight and a fuel surcharge (a 5 lb parcel costs about 9 in zone 2, 22 in zone 8);
    ``factor`` scales the prices, ``transit`` fixes the transit days (air services)."""
    zones = [(2, 150, 1, 6.50, 0.375), (3, 300, 2, 7.00, 0.55), (4, 600, 3, 7.60, 0.80),
             (5, 1000, 3, 8.10, 1.05), (6, 1400, 4, 8.70, 1.40), (7, 1800, 5, 9.30, 1.80),
             (8, None, 5, 11.00, 2.25)]  # zone, up to miles, days, 1 lb, each extra lb
    weights = [1, 2, 3, 4, 5, 10, 20, 30, 50, 70, 150]
    return {"weight_unit": "lb", "weights": weights, "distance_unit": "mi", "dim_divisor": 139,
            "zones": [{"zone": zone, "max_distance": miles,
                       "transit_days": days if transit is None else transit,
                       "prices": [round((first + extra * (w - 1)) * factor, 2)
                                  for w in weights]}
                      for zone, miles, days, first, extra in zones],
            "surcharges": [{"name": "fuel", "percent": 12.0}]}

PLAN = """\
declare queue _NA_, UNFILLABLE_PARKING
declare facility_group WAREHOUSES, STORES
declare shipment_method NEXT_DAY, STANDARD
declare priority HIGH, MEDIUM, LOW

group "Bench" for store STORE {
  routing "Express" {
    filter {
      queue == _NA_
      shipment_method == NEXT_DAY
    }
    sort by order_date
    rule "Nearest warehouse ships it all" {
      assign single
      inventory {
        facility_group == WAREHOUSES
        distance <= 500 mi
      }
      sort by distance
    }
    rule "Warehouses split, safety stock" {
      assign partial
      inventory {
        facility_group == WAREHOUSES
        brokering_safety_stock > 2
      }
      sort by distance
    }
    rule "Nearby stores" {
      assign partial
      inventory {
        facility_group == STORES
        distance <= 100 mi
      }
      sort by distance, inventory_balance desc
    }
  }
  routing "Priority" {
    filter {
      queue == _NA_
      priority == HIGH
    }
    sort by order_date
    rule "Nearest warehouse ships it all" {
      assign single
      inventory {
        facility_group == WAREHOUSES
      }
      sort by distance
    }
    rule "Stores within 200 mi" {
      assign partial
      inventory {
        facility_group == STORES
        distance <= 200 mi
      }
      sort by distance
    }
    rule "Any warehouse" {
      assign partial
      inventory {
        facility_group == WAREHOUSES
      }
      sort by inventory_balance desc
    }
  }
  routing "Standard" {
    filter {
      queue == _NA_
    }
    sort by priority, order_date
    rule "Nearest warehouse ships it all" {
      assign single
      inventory {
        facility_group == WAREHOUSES
        distance <= 1500 mi
      }
      sort by distance
    }
    rule "Stores split" {
      assign partial
      inventory {
        facility_group == STORES
        distance <= 300 mi
      }
      sort by distance, inventory_balance desc
    }
    rule "Anything left" {
      assign partial
      inventory {
        facility_group == WAREHOUSES
      }
      sort by distance
      when unfilled {
        move to queue UNFILLABLE_PARKING
      }
    }
  }
}
"""


def _shipping_plan() -> str:
    """The shipping scenario's rules: PLAN, with every facility ranked by shipping cost before
    distance, the stores' split kept within the promised dates and charged 2.00 a package, so
    that the ratio to PLAN on the same snapshot is what cost and delivery ranking costs."""
    text = PLAN.replace("sort by distance\n", "sort by shipping_cost, distance\n").replace(
        "sort by distance, inventory_balance desc",
        "sort by shipping_cost, distance, inventory_balance desc")
    stores = """        facility_group == STORES
        distance <= 300 mi
"""
    assert text.count(stores) == 1
    return text.replace(stores, stores + """        delivery_date <= promise_date
        split_cost 2.00
""")


SHIPPING_PLAN = _shipping_plan()


def generate(scenario: Scenario) -> dict:
    """The snapshot document (plain JSON data) of ``scenario``."""
    rng = random.Random(scenario.seed)
    metros = [(rng.uniform(26, 47), rng.uniform(-122, -71)) for _ in range(scenario.metros)]
    metro_weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(metros))))

    def near(spread: float) -> tuple[float, float]:
        lat, lon = metros[bisect.bisect_left(metro_weights,
                                             rng.random() * metro_weights[-1])]
        return (round(min(89.0, max(-89.0, lat + rng.uniform(-spread, spread))), 5),
                round(lon + rng.uniform(-spread, spread), 5))

    skus = [f"SKU-{index:06d}" for index in range(scenario.skus)]
    facilities, inventory = [], []
    warehouse_every = max(1, round(1 / scenario.warehouse_share))
    for index in range(scenario.facilities):
        warehouse = index % warehouse_every == 0
        lat, lon = near(0.4)
        facility_id = f"{'WH' if warehouse else 'ST'}-{index:05d}"
        facilities.append({
            "id": facility_id, "type": "WAREHOUSE" if warehouse else "RETAIL_STORE",
            "lat": lat, "lon": lon, "product_stores": ["STORE"],
            "max_orders_per_day": None if warehouse else rng.choice([None, 50, 100, 200]),
            "groups": {"WAREHOUSES" if warehouse else "STORES": index}})
        if scenario.shipping:
            facilities[-1].update(handling_cost=1.0 if warehouse else 2.5,
                                  same_day_cutoff="15:00" if warehouse else "09:00")
        depth = scenario.warehouse_depth if warehouse else scenario.store_depth
        for sku in sorted(rng.sample(range(scenario.skus), k=int(scenario.skus * depth))):
            inventory.append({"facility": facility_id, "product": skus[sku],
                              "atp": rng.randint(0, 60 if warehouse else 6),
                              "minimum_stock": rng.choice([0, 0, 0, 1])})
    facilities += [{"id": queue, "type": "QUEUE", "virtual": True, "product_stores": ["STORE"]}
                   for queue in ("_NA_", "UNFILLABLE_PARKING")]
    popularity = list(itertools.accumulate(1 / (rank + 1) ** 1.1
                                           for rank in range(scenario.skus)))
    lines = [1, 2, 3, 4, 5, 6]
    line_weights = [0.45, 0.25, 0.13, 0.08, 0.05, 0.04]
    orders = []
    for index in range(scenario.orders):
        groups = []
        for group_index in range(2 if rng.random() < 0.02 else 1):
            lat, lon = near(1.5)
            count = rng.choices(lines, line_weights)[0]
            items = [{"id": f"{line + 1:05d}",
                      "product": skus[bisect.bisect_left(popularity,
                                                         rng.random() * popularity[-1])],
                      "quantity": rng.choice([1, 1, 1, 2, 3]),
                      "unit_price": round(rng.uniform(5, 120), 2)} for line in range(count)]
            if scenario.shipping:
                for item in items:
                    if rng.random() < 0.3:
                        item["promised_date"] = f"2026-11-{rng.randint(24, 30)}T18:00:00-05:00"
            groups.append({"id": f"{group_index + 1:05d}", "facility": "_NA_",
                           "shipment_method": rng.choice(["STANDARD"] * 4 + ["NEXT_DAY"]),
                           "ship_to": {"lat": lat, "lon": lon}, "items": items})
        orders.append({"id": f"ORD-{index:07d}", "product_store": "STORE",
                       "order_date": f"2026-11-{rng.randint(16, 22):02d}T"
                                     f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00-05:00",
                       "priority": rng.choice(["HIGH", "MEDIUM", "MEDIUM", "LOW"]),
                       "sales_channel": "WEB_CHANNEL", "ship_groups": groups})
    products = [{"id": sku} for sku in skus]
    methods = [{"id": "NEXT_DAY", "delivery_days": 1}, {"id": "STANDARD", "delivery_days": 5}]
    if scenario.shipping:
        for product in products:
            product["weight"] = round(rng.uniform(0.2, 12), 1)
            if rng.random() < 0.5:
                product["dimensions"] = {"length": rng.randint(4, 24),
                                         "width": rng.randint(4, 18), "height": rng.randint(2, 12)}
        methods[0]["rates"] = rate_card(2.8, transit=1)
        methods[1]["rates"] = rate_card(1.0)
    return {"format": "routing-snapshot/1", "now": "2026-11-23T09:30:00-05:00",
            "timezone": "America/New_York", "product_stores": [{"id": "STORE"}],
            "facilities": facilities, "products": products, "inventory": inventory,
            "shipment_methods": methods, "orders": orders}
