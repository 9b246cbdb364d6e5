"""Writes each example's snapshot.json from one shared world (facilities, products, stock)
and the orders that exercise that example. Run it after changing the data:

    .venv/bin/python examples/build_snapshots.py

The expected results beside them are golden files (`make goldens` rewrites them).
"""

from __future__ import annotations

import json
from pathlib import Path

from routing_dsl.bench.scenarios import rate_card

HERE = Path(__file__).resolve().parent
NOW = "2026-11-23T09:30:00-05:00"
ZONE = "America/New_York"
QUEUES = ["_NA_", "UNFILLABLE_PARKING", "BACKORDER_PARKING", "REJECTED_ITM_PARKING"]


def facility(fid, kind, lat, lon, groups, limit=None, today=0):
    return {"id": fid, "type": kind, "virtual": False, "lat": lat, "lon": lon,
            "max_orders_per_day": limit, "orders_today": today, "product_stores": ["STORE"],
            "groups": groups}


FACILITIES = [
    facility("WH_NJ", "WAREHOUSE", 40.73, -74.17, {"WAREHOUSES": 1, "EAST_WAREHOUSES": 1}, 500, 12),
    facility("WH_CA", "WAREHOUSE", 34.06, -117.65, {"WAREHOUSES": 2}, 500),
    facility("WH_TX", "WAREHOUSE", 32.78, -96.80, {"WAREHOUSES": 3}, 2, 1),
    facility("ST_NYC", "RETAIL_STORE", 40.75, -73.99,
             {"STORES": 1, "FLAGSHIP_STORES": 1, "US_STORES": 1}, 20),
    facility("ST_BKN", "RETAIL_STORE", 40.68, -73.94, {"STORES": 2, "US_STORES": 2}),
    facility("ST_BOS", "RETAIL_STORE", 42.36, -71.06, {"STORES": 3, "US_STORES": 3}),
    facility("ST_OUT", "OUTLET_STORE", 40.79, -74.06, {"CLEARANCE_STORES": 1, "US_STORES": 4}),
    facility("ST_LDN", "RETAIL_STORE", 51.51, -0.13, {"STORES": 4}),
    facility("ST_NOGEO", "RETAIL_STORE", None, None, {"STORES": 5}),
] + [{"id": q, "type": "QUEUE", "virtual": True, "product_stores": ["STORE"]} for q in QUEUES]

PRODUCTS = [
    {"id": "RUN-8", "categories": ["FOOTWEAR"], "parent": "STYLE-RUN"},
    {"id": "RUN-9", "categories": ["FOOTWEAR"], "parent": "STYLE-RUN"},
    {"id": "RUN-10", "categories": ["FOOTWEAR"], "parent": "STYLE-RUN"},
    {"id": "TEE-M", "categories": ["APPAREL"], "parent": "STYLE-TEE"},
    {"id": "TEE-L", "categories": ["APPAREL"], "parent": "STYLE-TEE"},
    {"id": "GIFT-BOX", "categories": ["GIFT_SETS"], "parent": None},
    {"id": "GIFT-CARD", "categories": ["GIFT_SETS"], "parent": None},
    {"id": "PRE-1", "categories": ["PRE_ORDER"], "parent": None},
]


def stock(fid, product, atp, minimum=0, velocity=None, brokering=True):
    row = {"facility": fid, "product": product, "atp": atp, "minimum_stock": minimum,
           "allow_brokering": brokering}
    if velocity is not None:
        row["sales_velocity"] = velocity
    return row


INVENTORY = [
    stock("WH_NJ", "RUN-8", 10, 2, 4.0), stock("WH_NJ", "RUN-9", 1), stock("WH_NJ", "TEE-M", 20),
    stock("WH_NJ", "GIFT-BOX", 2), stock("WH_NJ", "GIFT-CARD", 5),
    stock("WH_CA", "RUN-8", 50, 0, 1.5), stock("WH_CA", "RUN-9", 50), stock("WH_CA", "RUN-10", 40),
    stock("WH_CA", "TEE-M", 30), stock("WH_CA", "TEE-L", 30), stock("WH_CA", "GIFT-CARD", 10),
    stock("WH_TX", "RUN-8", 5), stock("WH_TX", "TEE-L", 5),
    stock("ST_NYC", "RUN-8", 3, 0, 6.0), stock("ST_NYC", "RUN-9", 6), stock("ST_NYC", "RUN-10", 1),
    stock("ST_NYC", "TEE-M", 2), stock("ST_NYC", "GIFT-BOX", 5), stock("ST_NYC", "GIFT-CARD", 1),
    stock("ST_BKN", "RUN-8", 8, 1, 0.5), stock("ST_BKN", "TEE-L", 4), stock("ST_BKN", "GIFT-CARD", 4),
    stock("ST_BOS", "RUN-9", 7), stock("ST_BOS", "RUN-10", 7), stock("ST_BOS", "TEE-M", 9),
    stock("ST_OUT", "RUN-8", 100), stock("ST_OUT", "TEE-M", 100),
    stock("ST_LDN", "TEE-M", 12), stock("ST_LDN", "RUN-8", 12),
    stock("ST_NOGEO", "RUN-8", 20),
    stock("ST_BOS", "GIFT-BOX", 0, 0, None, False),
]

METHODS = [
    {"id": "NEXT_DAY", "carrier": "UPS", "delivery_days": 1, "parent": None},
    {"id": "SECOND_DAY", "carrier": "UPS", "delivery_days": 2, "parent": None},
    {"id": "STANDARD", "carrier": "UPS", "delivery_days": 5, "parent": None},
    {"id": "STOREPICKUP", "carrier": None, "delivery_days": 0, "parent": None},
]

NYC = {"lat": 40.71, "lon": -74.0, "postal_code": "10001", "country": "USA"}
LA = {"lat": 34.05, "lon": -118.24, "postal_code": "90012", "country": "USA"}
BOSTON = {"lat": 42.35, "lon": -71.05, "postal_code": "02110", "country": "USA"}
LONDON = {"lat": 51.50, "lon": -0.12, "postal_code": "WC2N", "country": "GBR"}


def item(iid, product, qty, price=20.0, **extra):
    base = {"id": iid, "product": product, "status": "APPROVED", "quantity": qty,
            "cancel_quantity": 0, "unit_price": price, "adjustments": 0.0, "promised_date": None,
            "ship_before": None, "ship_after": None, "auto_cancel_date": None,
            "item_group": None, "excluded_facilities": []}
    base.update(extra)
    return base


def order(oid, date, items, ship_to=NYC, method="STANDARD", channel="WEB_CHANNEL",
          priority=None, queue="_NA_", origin=None, sg="00001", tags=None):
    document = {"id": oid, "product_store": "STORE", "status": "APPROVED", "order_date": date,
                "sales_channel": channel, "priority": priority, "origin_facility": origin,
                "ship_groups": [{"id": sg, "facility": queue, "shipment_method": method,
                                 "carrier": "UPS", "ship_to": ship_to, "items": items}]}
    if tags:
        document["tags"] = tags
    return document


def rejected(facility, at, reason):
    return {"facility": facility, "at": at, "reason": reason}


ORDERS = {
    "omnichannel": [
        order("O-1001", "2026-11-22T18:04:00-05:00", [item("00001", "RUN-8", 2, 49.5)],
              priority="HIGH"),
        order("O-1002", "2026-11-22T19:00:00-05:00",
              [item("00001", "RUN-9", 3), item("00002", "TEE-M", 1)], ship_to=BOSTON),
        order("O-1003", "2026-11-21T08:00:00-05:00",
              [item("00001", "RUN-10", 45), item("00002", "TEE-L", 1)],
              channel="PHONE_CHANNEL", priority="MEDIUM"),
        order("O-1004", "2026-11-22T07:00:00-05:00", [item("00001", "PRE-1", 1)]),
        order("O-1005", "2026-11-22T09:00:00-05:00", [item("00001", "RUN-8", 1)],
              channel="AMAZON_CHANNEL"),
    ],
    "express_first": [
        order("E-1", "2026-11-22T10:00:00-05:00", [item("00001", "TEE-M", 2)], method="NEXT_DAY",
              priority="HIGH", ship_to=BOSTON),
        order("E-2", "2026-11-22T09:00:00-05:00", [item("00001", "TEE-L", 2)], method="SECOND_DAY",
              priority="LOW", ship_to=NYC),
        order("E-3", "2026-11-22T08:00:00-05:00", [item("00001", "RUN-10", 1)],
              method="NEXT_DAY", ship_to=LA),
        order("E-4", "2026-11-20T08:00:00-05:00", [item("00001", "RUN-9", 2)]),
        order("E-5", "2026-11-21T08:00:00-05:00", [item("00001", "TEE-L", 3)], ship_to=LA),
    ],
    "store_first_split": [
        order("S-1", "2026-11-22T10:00:00-05:00",
              [item("00001", "RUN-8", 4), item("00002", "RUN-9", 2)]),
        order("S-2", "2026-11-22T11:00:00-05:00", [item("00001", "TEE-L", 6)]),
        order("S-3", "2026-11-22T12:00:00-05:00", [item("00001", "RUN-8", 1)],
              method="STOREPICKUP"),
        order("S-4", "2026-11-22T13:00:00-05:00", [item("00001", "TEE-M", 1)], origin="ST_NYC"),
        order("S-5", "2026-11-22T14:00:00-05:00", [item("00001", "TEE-M", 2)], ship_to=LONDON),
    ],
    "backorder_parking": [
        order("B-1", "2026-11-20T10:00:00-05:00", [item("00001", "RUN-10", 60)]),
        order("B-2", "2026-11-21T10:00:00-05:00", [item("00001", "TEE-L", 2)]),
        order("B-3", "2026-11-01T10:00:00-05:00",
              [item("00001", "RUN-9", 1, auto_cancel_date="2026-11-30T00:00:00-05:00"),
               item("00002", "PRE-1", 1)], queue="BACKORDER_PARKING"),
        order("B-4", "2026-11-02T10:00:00-05:00",
              [item("00001", "GIFT-BOX", 9, auto_cancel_date="2026-11-30T00:00:00-05:00")],
              queue="BACKORDER_PARKING"),
    ],
    "safety_stock": [
        order("T-1", "2026-11-22T10:00:00-05:00", [item("00001", "RUN-9", 2)]),
        order("T-2", "2026-11-22T11:00:00-05:00", [item("00001", "RUN-8", 2)]),
        order("T-3", "2026-11-22T12:00:00-05:00", [item("00001", "TEE-M", 5)],
              queue="REJECTED_ITM_PARKING"),
        order("T-4", "2026-11-22T13:00:00-05:00", [item("00001", "RUN-10", 3)], channel="POS_CHANNEL"),
        order("T-5", "2026-11-22T14:00:00-05:00", [item("00001", "GIFT-BOX", 4)]),
    ],
    "item_groups": [
        order("G-1", "2026-11-22T10:00:00-05:00",
              [item("00001", "GIFT-BOX", 1, 30.0, item_group="KIT-1"),
               item("00002", "GIFT-CARD", 1, 10.0, item_group="KIT-1")]),
        order("G-2", "2026-11-22T11:00:00-05:00",
              [item("00001", "GIFT-BOX", 1, 30.0, item_group="KIT-A"),
               item("00002", "GIFT-CARD", 3, 10.0, item_group="KIT-A"),
               item("00003", "RUN-10", 1, 40.0)]),
        order("G-3", "2026-11-22T12:00:00-05:00",
              [item("00001", "GIFT-BOX", 1, 30.0), item("00002", "GIFT-CARD", 1, 5.0)]),
        order("G-4", "2026-11-22T13:00:00-05:00",
              [item("00001", "GIFT-BOX", 20, 30.0), item("00002", "GIFT-CARD", 1, 10.0)]),
    ],
    "promise_date": [
        order("P-1", "2026-11-22T10:00:00-05:00",
              [item("00001", "RUN-8", 1, promised_date="2026-11-24T12:00:00-05:00"),
               item("00002", "TEE-M", 1, promised_date="2026-11-30T12:00:00-05:00")],
              method="NEXT_DAY"),
        order("P-2", "2026-11-22T11:00:00-05:00",
              [item("00001", "RUN-9", 2, promised_date="2026-11-25T23:00:00-05:00",
                    ship_before="2026-11-24T00:00:00-05:00")], method="SECOND_DAY", ship_to=LONDON),
        order("P-3", "2026-11-22T12:00:00-05:00",
              [item("00001", "RUN-10", 2, promised_date="2026-11-26T00:30:00-05:00"),
               item("00002", "TEE-L", 2, promised_date=None)]),
    ],
    # Stores reject items; VIP orders go first; a cap on facilities; a holiday rule by date.
    # `now` is 2026-11-23 09:30 New York time: "within 7 days" reaches back to 2026-11-16.
    "rejections": [
        # rejected by the nearest store yesterday: the next nearest ships it
        order("R-1", "2026-11-21T10:00:00-05:00",
              [item("00001", "RUN-8", 2, 49.5, rejections=[
                  rejected("ST_NYC", "2026-11-22T16:00:00-05:00", "NOT_IN_STOCK")])],
              queue="REJECTED_ITM_PARKING", tags=["VIP"]),
        # rejected weeks ago: the store may ship it again
        order("R-2", "2026-11-22T08:00:00-05:00",
              [item("00001", "TEE-M", 1, 25.0, rejections=[
                  rejected("ST_NYC", "2026-10-30T12:00:00-04:00", "DAMAGED")])],
              tags=["VIP", "GIFT"]),
        # rejected three times: a person looks at it
        order("R-3", "2026-11-19T09:00:00-05:00",
              [item("00001", "RUN-9", 1, 60.0, rejections=[
                  rejected("ST_NYC", "2026-11-20T11:00:00-05:00", "NOT_IN_STOCK"),
                  rejected("ST_BOS", "2026-11-21T15:30:00-05:00", "DAMAGED"),
                  rejected("WH_NJ", "2026-11-22T09:15:00-05:00", "NOT_IN_STOCK")])],
              queue="REJECTED_ITM_PARKING"),
        # four lines, at most two facilities in the VIP rule, a third warehouse after it
        order("R-4", "2026-11-22T09:00:00-05:00",
              [item("00001", "TEE-L", 1), item("00002", "RUN-10", 2),
               item("00003", "GIFT-CARD", 1, 10.0)], tags=["VIP"]),
        # a whole order from one warehouse: the nearest rejected one of its items
        order("R-5", "2026-11-22T10:00:00-05:00",
              [item("00001", "RUN-8", 1, rejections=[
                  rejected("WH_NJ", "2026-11-20T11:00:00-05:00", "NOT_IN_STOCK")]),
               item("00002", "TEE-M", 1)], tags=["GIFT"]),
        # too much for one warehouse: the Black Friday rule (in its window) takes it
        order("R-6", "2026-11-22T11:00:00-05:00", [item("00001", "RUN-8", 60, 30.0)]),
    ],
}


# ---- shipping: the benchmark's ground rate card (zones 2-8 by distance) and air ones -----
SHIPPING_METHODS = [
    dict(METHODS[0], rates=rate_card(2.8, transit=1)),
    dict(METHODS[1], rates=rate_card(1.9, transit=2)),
    dict(METHODS[2], rates=rate_card()),
    METHODS[3],
]
WEIGHT = {"RUN": (2.5, {"length": 13, "width": 8, "height": 5}), "TEE": (0.5, None),
          "GIFT-BOX": (3.0, {"length": 12, "width": 12, "height": 12}),
          "GIFT-CARD": (0.1, None), "PRE-1": (1.0, None)}
HANDLING = {"WAREHOUSE": (1.00, "15:00"), "RETAIL_STORE": (2.50, "12:00"),
            "OUTLET_STORE": (2.50, "09:00")}


def shipping_world() -> tuple[list, list]:
    facilities = []
    for f in FACILITIES:
        if f["virtual"]:
            facilities.append(f)
            continue
        cost, cutoff = HANDLING[f["type"]]
        facilities.append(dict(f, handling_cost=cost, same_day_cutoff=cutoff))
    products = []
    for p in PRODUCTS:
        weight, size = WEIGHT.get(p["id"]) or WEIGHT[p["id"].split("-")[0]]
        products.append(dict(p, weight=weight, **({"dimensions": size} if size else {})))
    return facilities, products


ORDERS["shipping_cost"] = [
    # one pair of running shoes to New York: the cheapest package, not the nearest stock
    order("C-1", "2026-11-22T10:00:00-05:00", [item("00001", "RUN-8", 1)]),
    # shoes and a tee to Boston: one package from a store beats two from the cheapest of each
    order("C-2", "2026-11-22T11:00:00-05:00",
          [item("00001", "RUN-9", 1), item("00002", "TEE-M", 1)], ship_to=BOSTON),
    # promised in two days: a store that misses the promise is passed over
    order("C-3", "2026-11-22T12:00:00-05:00",
          [item("00001", "RUN-10", 2, promised_date="2026-11-25T12:00:00-05:00")], ship_to=LA),
    # overnight to Los Angeles
    order("C-4", "2026-11-22T13:00:00-05:00", [item("00001", "TEE-L", 2)], method="NEXT_DAY",
          ship_to=LA),
    # a gift box is light but bulky: dimensional weight prices it
    order("C-5", "2026-11-22T14:00:00-05:00", [item("00001", "GIFT-BOX", 1)]),
    # shoes stocked in California, a gift box only in the east: two packages
    order("C-6", "2026-11-22T15:00:00-05:00",
          [item("00001", "RUN-8", 1), item("00002", "GIFT-BOX", 1)], ship_to=LA),
    # promised tomorrow in London: no facility can make it, so it waits for stock
    order("C-7", "2026-11-22T16:00:00-05:00",
          [item("00001", "TEE-L", 1, promised_date="2026-11-24T12:00:00+00:00")],
          ship_to=LONDON),
]


ORDERS["optimize"] = [
    # the first order to New York takes Manhattan's only pair of RUN-10 (the nearest) ...
    order("P-1", "2026-11-22T10:00:00-05:00", [item("00001", "RUN-10", 1)]),
    # ... which the next one needed: promised tomorrow, only Manhattan delivers by then
    order("P-2", "2026-11-22T11:00:00-05:00",
          [item("00001", "RUN-10", 1, promised_date="2026-11-24T18:00:00-05:00")]),
    # shoes from California and a gift box from New Jersey cost two packages; the gift box's
    # dimensional weight already pays for the shoes, so New Jersey can ship both for one
    order("P-3", "2026-11-22T12:00:00-05:00",
          [item("00001", "RUN-8", 1), item("00002", "GIFT-BOX", 1)], ship_to=LA),
]


def snapshot(orders: list, shipping: bool = False, queues: tuple = ()) -> dict:
    facilities, products = shipping_world() if shipping else (FACILITIES, PRODUCTS)
    facilities = facilities + [{"id": q, "type": "QUEUE", "virtual": True,
                                "product_stores": ["STORE"]} for q in queues]
    return {"format": "routing-snapshot/1", "now": NOW, "timezone": ZONE,
            "product_stores": [{"id": "STORE", "enable_brokering": True}],
            "facilities": facilities, "products": products, "inventory": INVENTORY,
            "shipment_methods": SHIPPING_METHODS if shipping else METHODS, "orders": orders}


def main() -> None:
    for name, orders in ORDERS.items():
        path = HERE / name / "snapshot.json"
        path.parent.mkdir(exist_ok=True)
        document = snapshot(orders, shipping=name in ("shipping_cost", "optimize"),
                            queues=("GENERAL_OPS_PARKING",) if name == "rejections" else ())
        path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")
    # the same rejected orders after the holidays: the Black Friday rule's window is over
    path = HERE / "rejections" / "december.json"
    document = dict(snapshot(ORDERS["rejections"], queues=("GENERAL_OPS_PARKING",)),
                    now="2026-12-02T09:30:00-05:00")
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
