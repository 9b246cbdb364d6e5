"""The language's vocabulary: fields, their types and operators, keywords and their docs.

One table serves the checker (what is valid), the language server (completion and hover) and
the reference documentation, so they can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

ID_KINDS = ("queue", "sales_channel", "shipment_method", "priority", "facility_group", "category")

EQUALITY = ("==", "!=")
MEMBERSHIP = ("in", "not in")
NULLS = ("is null", "is not null")
ORDERING = ("<", "<=", ">", ">=")
ALL_OPERATORS = EQUALITY + ORDERING + MEMBERSHIP + NULLS

DISTANCE_UNITS = ("mi", "km")
DAY_UNITS = ("days", "day")

# The largest value a measure may take: beyond these a rule means nothing on this planet (a
# distance past half the equator, a delay of more than ten years) and dates would overflow.
MEASURE_LIMITS = {"distance": 20_000, "days": 3_650, "count": 1_000_000_000,
                  "money": 1_000_000_000, "transit": 3_650}


def is_known_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone. Looked up in the list of zones, never opened as a
    file, so no string can reach the file system."""
    return name in _zone_names()


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    from zoneinfo import available_timezones
    return frozenset(available_timezones())


def zone_names() -> list[str]:
    return sorted(_zone_names())


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field that a condition or a sort can name.

    ``value`` is an id kind (see ID_KINDS) or a measure: ``distance`` (number with mi/km),
    ``days`` (whole number with `days`), ``count`` (plain number), ``money`` (plain number),
    ``transit`` (whole number, `days` optional), ``promise`` (the word `promise_date`).
    """

    name: str
    level: str  # "order" | "inventory"
    value: str
    operators: tuple[str, ...]
    doc: str
    example: str


@dataclass(frozen=True, slots=True)
class SortSpec:
    name: str
    level: str
    nullable: bool
    doc: str


ORDER_FIELDS = {
    f.name: f
    for f in [
        FieldSpec("queue", "order", "queue", EQUALITY + MEMBERSHIP,
                  "The queue (virtual facility) the ship group waits in.", "queue == _NA_"),
        FieldSpec("shipment_method", "order", "shipment_method", EQUALITY + MEMBERSHIP + NULLS,
                  "The ship group's shipment method.", "shipment_method in [NEXT_DAY, SECOND_DAY]"),
        FieldSpec("sales_channel", "order", "sales_channel", EQUALITY + MEMBERSHIP + NULLS,
                  "The order's sales channel.", "sales_channel not in [POS_CHANNEL]"),
        FieldSpec("priority", "order", "priority", EQUALITY + MEMBERSHIP + NULLS,
                  "The order's priority.", "priority == HIGH"),
        FieldSpec("promise_date", "order", "days", ORDERING + NULLS,
                  "The item's promised date, compared with the end of the day N days from the "
                  "snapshot's `now` (negative N looks into the past). Any promise-date filter "
                  "switches the routing to item-by-item mode.",
                  "promise_date within 2 days"),
        FieldSpec("origin_facility_group", "order", "facility_group",
                  EQUALITY + MEMBERSHIP + NULLS,
                  "A facility group that the order's origin facility belongs to.",
                  "origin_facility_group in [US_STORES]"),
        FieldSpec("product_category", "order", "category", EQUALITY + MEMBERSHIP,
                  "A category of the products being routed: a ship group matches when any of "
                  "its items does.", "product_category == FOOTWEAR"),
    ]
}

INVENTORY_FIELDS = {
    f.name: f
    for f in [
        FieldSpec("facility_group", "inventory", "facility_group", EQUALITY + MEMBERSHIP,
                  "Facility groups: `==`/`in` keep members of a listed group, `!=`/`not in` keep "
                  "facilities in none of them (facilities in no group pass).",
                  "facility_group == WAREHOUSES"),
        FieldSpec("distance", "inventory", "distance", ORDERING,
                  "Great-circle distance from the facility to the ship-to address, in `mi` or "
                  "`km`; the unit also sets the rule's measurement system. Facilities or "
                  "addresses without coordinates never pass.", "distance <= 300 mi"),
        FieldSpec("brokering_safety_stock", "inventory", "count", (">", ">="),
                  "A per-rule threshold, not a reserve: a facility qualifies when its net stock "
                  "(`atp - minimum_stock`) of each item passes the comparison and covers the "
                  "item's whole open quantity, and then ships the whole quantity. With atp 3 "
                  "and `> 2` it ships 2 and keeps 1; to hold stock back, set `minimum_stock` "
                  "in the snapshot.",
                  "brokering_safety_stock > 2"),
        FieldSpec("shipping_cost", "inventory", "money", ORDERING,
                  "What the package the facility would ship costs under the ship group's rate "
                  "card (its zone's price for the package's billable weight, surcharges and "
                  "the facility's handling cost), checked each time the rule places items "
                  "there. Facilities whose cost is unknown never pass.",
                  "shipping_cost <= 15.00"),
        FieldSpec("transit_days", "inventory", "transit", ORDERING,
                  "Days in transit from the facility to the ship-to address under the ship "
                  "group's rate card (its zone's transit days). Facilities without a zone "
                  "never pass.", "transit_days <= 2"),
        FieldSpec("delivery_date", "inventory", "promise", ("<=", "<"),
                  "`delivery_date <= promise_date`: the facility delivers each item by its "
                  "promised date (the day the package leaves, after the facility's same-day "
                  "cutoff, plus transit days). Items without a promised date pass; facilities "
                  "without a zone fail items that have one.",
                  "delivery_date <= promise_date"),
    ]
}

FLAGS = {
    "keep_item_groups_together": "Items of one order-item group (a kit, a gift set) go together "
                                 "to one facility or not at all.",
    "ignore_facility_order_limit": "Facilities take orders beyond their daily order limit.",
    "only_if_all_items_available": "The rule allocates only when every open item of the unit "
                                   "can be filled.",
    "shipment_threshold": "Minimum value of each shipment the rule creates, and of what stays "
                          "unfilled, when the unit is split. Example: `shipment_threshold 40.00`.",
    "split_cost": "What one more package costs when the rule splits a unit, added to the "
                  "`shipping_cost` sort (an amount: `split_cost 5.00`) or to the `distance` "
                  "sort (a distance: `split_cost 100 mi`) of every facility that would open a "
                  "new package. Large values mean fewest splits; none means cheapest.",
}

ORDER_SORTS = {
    s.name: s
    for s in [
        SortSpec("ship_before", "order", True, "The items' ship-before date (the earliest)."),
        SortSpec("ship_after", "order", True, "The items' ship-after date (the earliest)."),
        SortSpec("order_date", "order", True, "When the order was placed. The default sort."),
        SortSpec("delivery_days", "order", True,
                 "Delivery days of the ship group's shipment method."),
        SortSpec("priority", "order", True,
                 "Order priority, in the order priorities are declared (HIGH first)."),
    ]
}

INVENTORY_SORTS = {
    s.name: s
    for s in [
        SortSpec("distance", "inventory", True, "Nearest facility first."),
        SortSpec("inventory_balance", "inventory", False,
                 "Net stock of the unit's products at the facility (use `desc` for most first)."),
        SortSpec("facility_sequence", "inventory", False,
                 "The facility's sequence number in the facility groups the rule includes."),
        SortSpec("sales_velocity", "inventory", True,
                 "How fast the facility sells the product; slowest first."),
        SortSpec("broken_style", "inventory", False,
                 "Only facilities whose assortment of the style is already broken, fewest "
                 "available variants first."),
        SortSpec("shipping_cost", "inventory", True,
                 "Cheapest first: what placing the items there adds to the shipment, the whole "
                 "package at a facility not yet shipping any of the unit, only the extra "
                 "weight at one that is (plus `split_cost` for a new package). Unknown costs "
                 "sort last."),
        SortSpec("delivery_date", "inventory", True,
                 "Earliest delivery first: the day the package leaves plus its transit days. "
                 "Unknown dates sort last."),
    ]
}

KEYWORDS = {
    "use": "Imports a module: `use std.hotwax` (stdlib) or `use \"shared.route\"` (a file). "
           "Brings its declarations, constants and templates into scope.",
    "let": "Names a constant: `let EXPRESS = [NEXT_DAY, SECOND_DAY]`, `let RADIUS = 300 mi`.",
    "declare": "Declares catalog ids of one kind: `declare facility_group WAREHOUSES \"Warehouses\"`. "
               "Kinds: " + ", ".join(ID_KINDS) + ".",
    "template": "A reusable rule body: `template closest { assign single sort by distance }`; "
                "rules use it with `extends`.",
    "group": "A routing group (HotWax brokering run): `group \"Name\" for store STORE { ... }`. "
             "Runs its active routings in order.",
    "schedule": "When the group runs: `schedule \"0 */15 * * * ?\" in \"America/New_York\"`, "
                "optionally `paused`.",
    "routing": "Selects and sorts orders, then tries its rules on each: "
               "`routing \"Name\" [draft|archived] { filter {...} sort by ... rule ... }`.",
    "filter": "Order filters of a routing; all must hold.",
    "sort": "`sort by field [asc|desc] [nulls first|last], ...`.",
    "rule": "An inventory rule: `rule \"Name\" [draft|archived] [extends T] { ... }`. Tried in "
            "order until the unit is filled or moved.",
    "extends": "Starts a rule from a template; the rule's own clauses add conditions and replace "
               "assign, sort and when unfilled.",
    "assign": "`assign single` (one facility ships everything) or `assign partial` (split "
              "across facilities, items may stay open).",
    "inventory": "Facility conditions and settings of a rule; all must hold.",
    "when": "`when unfilled { ... }`: actions for items the rule left open.",
    "unfilled": "`when unfilled { ... }`: actions for items the rule left open.",
    "next": "`next rule`: let the next rule try the open items (the default).",
    "move": "`move to queue Q`: park the open items in queue Q; later rules do not run.",
    "auto_cancel": "`auto_cancel after N days` sets the open items' auto-cancel date to now + N "
                   "days; `clear auto_cancel` clears it (clearing wins).",
    "clear": "`clear auto_cancel`: clear the open items' auto-cancel date.",
    "active": "Status: runs (the default).",
    "draft": "Status: kept but not run.",
    "archived": "Status: retired, not run.",
    "within": "`promise_date within N days`: promised by the end of the day N days from now.",
    "in": "Membership: `field in [A, B]`.",
    "not": "`not in [A, B]`, `is not null`.",
    "is": "`is null`, `is not null`.",
    "asc": "Ascending (the default).",
    "desc": "Descending.",
    "nulls": "`nulls first` or `nulls last` (the default).",
    "mi": "Miles (imperial measurement system).",
    "km": "Kilometres (metric measurement system).",
    "days": "Days.",
}
KEYWORDS.update(FLAGS)
KEYWORDS["optimize"] = (
    "`optimize { mode report  split_cost 4.00 ... }`: optimise the routing's batch under its "
    "rules (HiGHS) and report, or apply, what the optimum saves. Settings: "
    "docs/language.md, \"Optimisation\".")

OPERATOR_DOCS = {
    "==": "equals", "!=": "not equals (a missing value is not equal)",
    "<": "less than", "<=": "less than or equal", ">": "greater than",
    ">=": "greater than or equal", "in": "member of the list", "not in": "not in the list",
    "is null": "has no value", "is not null": "has a value",
}


def field_spec(name: str, level: str) -> FieldSpec | None:
    return (ORDER_FIELDS if level == "order" else INVENTORY_FIELDS).get(name)


def sort_spec(name: str, level: str) -> SortSpec | None:
    return (ORDER_SORTS if level == "order" else INVENTORY_SORTS).get(name)


# ---- the reference tables of docs/language.md, generated from this module ------------------

_VALUE_TEXT = {"distance": "number with `mi` or `km`", "days": "whole number of `days`",
               "count": "number", "money": "amount", "transit": "whole number (`days` optional)",
               "promise": "`promise_date`"}


def _field_rows(fields: dict[str, FieldSpec]) -> list[str]:
    rows = ["| field | value | operators | meaning |", "|---|---|---|---|"]
    for spec in fields.values():
        value = _VALUE_TEXT.get(spec.value, f"{spec.value.replace('_', ' ')} id")
        operators = " ".join(f"`{op}`" for op in spec.operators)
        if spec.name == "promise_date":
            operators += " `within`"
        rows.append(f"| `{spec.name}` | {value} | {operators} | {spec.doc} |")
    return rows


def _sort_rows(sorts: dict[str, SortSpec]) -> list[str]:
    rows = ["| sort | may be missing | meaning |", "|---|---|---|"]
    for spec in sorts.values():
        rows.append(f"| `{spec.name}` | {'yes' if spec.nullable else 'no'} | {spec.doc} |")
    return rows


GENERATED_SECTIONS = {
    "order-fields": lambda: _field_rows(ORDER_FIELDS),
    "order-sorts": lambda: _sort_rows(ORDER_SORTS),
    "inventory-fields": lambda: _field_rows(INVENTORY_FIELDS),
    "inventory-settings": lambda: [f"- `{name}`: {doc}" for name, doc in FLAGS.items()],
    "inventory-sorts": lambda: _sort_rows(INVENTORY_SORTS),
    "optimize-settings": lambda: _optimize_rows(),
}


def _optimize_rows() -> list[str]:
    from .optimize.settings import SETTINGS
    rows = ["| setting | value | default | meaning |", "|---|---|---|---|"]
    for spec in SETTINGS.values():
        kinds = [f"`{w}`" for w in spec.words]
        if spec.measure is not None:
            kinds.insert(0, "whole number" if spec.whole else _VALUE_TEXT[spec.measure])
        default = "`auto`" if spec.default is None else f"`{spec.default}`"
        rows.append(f"| `{spec.name}` | {' or '.join(kinds)} | {default} | {spec.doc} |")
    return rows


def render_generated(text: str) -> str:
    """``text`` with every ``<!-- generated: NAME -->`` ... ``<!-- end -->`` section rebuilt."""
    import re

    def replace(match) -> str:
        body = "\n".join(GENERATED_SECTIONS[match.group(1)]())
        return f"<!-- generated: {match.group(1)} -->\n{body}\n<!-- end -->"
    return re.sub(r"<!-- generated: ([a-z-]+) -->.*?<!-- end -->", replace, text, flags=re.S)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    for name in sys.argv[1:]:
        path = Path(name)
        path.write_text(render_generated(path.read_text(encoding="utf-8")), encoding="utf-8")
